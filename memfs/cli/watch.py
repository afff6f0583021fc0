"""``memfs watch``: commit and sync edits by themselves, in the foreground or as a daemon."""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

import click

from memfs.cli.app import AppState, pass_state
from memfs.cli.output import emit_json


@click.command()
@click.argument("directories", nargs=-1, type=click.Path(file_okay=False))
@click.option(
    "--quiet-ms",
    type=click.IntRange(min=0),
    default=300,
    show_default=True,
    help="Commit after this long without edits.",
)
@click.option(
    "--max-delay-ms",
    type=click.IntRange(min=0),
    default=2000,
    show_default=True,
    help="...but no later than this after the first edit.",
)
@click.option(
    "--poll-s",
    type=click.FloatRange(min=0.05),
    help="Check remotes at this fixed interval. Default: a hot/cold schedule, every 1 s "
    "(git hosts 10 s) for 30 s after a local edit or a remote change, backing off to 30-60 s "
    "when idle (MEMFS_WATCH_COLD_S=45, MEMFS_WATCH_HOT_FOR_S=30); folder clouds are followed "
    "by inotify.",
)
@click.option("--no-push", is_flag=True, help="Commit only; do not push or pull.")
@click.option(
    "--env-name",
    metavar="NAME",
    help="The name this environment shows under in 'memfs envs' (default: MEMFS_ENV_NAME, "
    "else the host name).",
)
@click.option("--pull-only", is_flag=True, help="Follow the remote; commit and push nothing.")
@click.option(
    "--log",
    "log_file",
    type=click.Path(dir_okay=False),
    help="Append the log to FILE instead of stderr.",
)
@click.option("--daemon", is_flag=True, help="Run in the background (log in .git/memfs/watch.log).")
@click.option("--stop", is_flag=True, help="Stop the background watcher (it flushes first).")
@click.option(
    "--status",
    "show_status",
    is_flag=True,
    help="Show whether a watcher runs, and what it did last.",
)
@click.option("--json", "as_json", is_flag=True, help="With --status: print JSON.")
@pass_state
def watch(
    state: AppState,
    directories: tuple[str, ...],
    quiet_ms: int,
    max_delay_ms: int,
    poll_s: float | None,
    no_push: bool,
    env_name: str | None,
    pull_only: bool,
    log_file: str | None,
    daemon: bool,
    stop: bool,
    show_status: bool,
    as_json: bool,
) -> None:
    """Watch agents (default: this one): every edit is committed, pushed, and remote edits
    pulled, by themselves. Ctrl-C (or SIGTERM) commits and pushes what is pending, then exits.

    \b
    Examples:
      memfs watch                      # this agent, in the foreground
      memfs watch --daemon ~/agents/garden
      memfs watch --status --json
      memfs watch --stop ~/agents/garden
    """
    from memfs import watcher as watching
    from memfs.opening import open_agent

    agents = [open_agent(d) for d in directories] if directories else [state.agent()]
    for agent in agents:
        click.get_current_context().with_resource(agent)
    if show_status:
        states = [watching.status(agent) for agent in agents]
        _print_status(states, as_json)
        return
    if stop:
        for agent in agents:
            pid = watching.stop_daemon(agent)
            click.echo(f"Stopped the watcher of {agent.root} (pid {pid})")
        return
    options = [f"--quiet-ms={quiet_ms}", f"--max-delay-ms={max_delay_ms}"]
    options += [f"--poll-s={poll_s}"] if poll_s is not None else []
    options += ["--no-push"] if no_push else []
    options += ["--pull-only"] if pull_only else []
    options += [f"--env-name={env_name}"] if env_name else []
    if daemon:
        for agent in agents:
            pid = watching.start_daemon(agent, options)
            click.echo(f"Watching {agent.root} in the background (pid {pid})")
        return
    settings = watching.WatchSettings(
        quiet_ms=quiet_ms,
        max_delay_ms=max_delay_ms,
        poll_s=poll_s,
        push=not no_push,
        pull_only=pull_only,
        env_name=env_name,
    )
    run_foreground(agents, settings, log_file)


def run_foreground(agents: list[Any], settings: Any, log_file: str | None) -> None:
    """Watch ``agents`` in this process until SIGINT or SIGTERM; every watcher flushes."""
    from memfs import watcher as watching
    from memfs.errors import WatcherError

    sink = open(log_file, "a", buffering=1) if log_file else sys.stderr  # noqa: SIM115

    def logger(root: str) -> Any:
        def log(message: str) -> None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            print(f"{stamp} {root}: {message}", file=sink, flush=True)

        return log

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    watchers: list[Any] = []

    def on_gone() -> None:  # an agent went away: its watcher ended; exit once all have
        if all(watcher.gone for watcher in watchers):
            stopping.set()

    try:
        for agent in agents:
            watcher = watching.Watcher(agent, settings, logger(agent.name))
            watcher.on_gone = on_gone
            watchers.append(watcher.start())
            logger(agent.name)(f"watching {agent.root}")
        while not stopping.wait(3600):
            pass
    finally:
        for watcher in watchers:
            watcher.stop()
            watcher.log("stopped")
        if sink is not sys.stderr:
            sink.close()
    gone = [watcher.gone for watcher in watchers if watcher.gone]
    if gone:
        raise WatcherError(gone[0])


def _print_status(states: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json(states)
        return
    for entry in states:
        if entry["running"]:
            line = (
                f"{entry['agent']}: watching (pid {entry['pid']}, {entry.get('mode', 'inotify')})"
            )
        else:
            line = f"{entry['agent']}: not watched"
        click.echo(line)
        for key in ("last_commit", "last_sync", "last_error"):
            if entry.get(key):
                click.echo(f"  {key.replace('_', ' ')}: {entry[key]}")
