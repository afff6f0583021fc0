"""``memfs envs``: where an agent is live (its environments), and ``memfs envs rm``."""

from __future__ import annotations

from typing import Any

import click

from memfs.cli.app import AppState, pass_state
from memfs.cli.output import emit_json, json_option


@click.command()
@click.argument("words", metavar="[AGENT] | rm ENV-ID", nargs=-1)
@click.option("--online", "online_only", is_flag=True, help="Only the environments online now.")
@click.option("--remote", metavar="NAME", help="The remote to read (default: origin, else first).")
@click.option("--cloud", "cloud_name", metavar="NAME", help="AGENT's cloud (default: the default).")
@json_option
@pass_state
def envs(
    state: AppState,
    words: tuple[str, ...],
    online_only: bool,
    remote: str | None,
    cloud_name: str | None,
    as_json: bool,
) -> None:
    """Where this agent (or cloud agent AGENT) is live: every checkout that syncs it (CLI
    sync, watcher, mount, server), when the store last saw it (by the store's own clock),
    online or not, its head and how far behind the remote it is.

    \b
    An environment is online while it beats (every MEMFS_HEARTBEAT s, default 300) and has
    not stopped. Git hosts hold no presence. 'rm ENV-ID' removes the record of an
    environment gone for good (a live one writes it again at its next heartbeat).
    Examples:
      memfs envs
      memfs envs garden-agent --online --json
      memfs envs rm e-4f0c2a9b1d7e3a55
    """
    from memfs import envs as library

    if words[:1] == ("rm",):
        if len(words) != 2:
            raise click.UsageError("usage: memfs envs rm ENV-ID")
        url = library.remove(state.agent(), words[1], remote)
        click.echo(f"Removed environment {words[1]} from {url}")
        return
    if len(words) > 1:
        raise click.UsageError("at most one AGENT")
    if words:
        report = library.cloud_environments(words[0], cloud_name)
    else:
        report = library.environments(state.agent(), remote)
    if as_json:
        emit_json(report.to_dict(online_only))
        return
    _print(report, online_only)


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def _cell(value: Any, width: int = 0) -> str:
    """A value from the store, printable: no control characters reach the terminal."""
    text = "-" if value is None else str(value)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text[:width] if width else text


def _print(report: Any, online_only: bool) -> None:
    if report.note:
        click.echo(report.note)
        return
    shown = report.online if online_only else report.environments
    rows = [["ENV", "HOST", "MODE", "STATE", "LAST SEEN", "HEAD", "BEHIND", "AHEAD", "DIRTY", ""]]
    for env in shown:
        if env["problem"]:
            state, note = "?", _cell(env["problem"], 200)
        elif env.get("state") == "stopped":
            state, note = "stopped", ""
        elif env["online"]:
            state, note = "online", ""
        else:
            every = _ago(float(env.get("heartbeat_s") or 300)).removesuffix(" ago")
            state = "offline"
            since = _ago(env["last_seen_s"]).removesuffix(" ago")
            note = f"no heartbeat for {since} (every {every})"
        rows.append([
            _cell(env.get("name") or env["env_id"], 24), _cell(env.get("host"), 24),
            _cell(env.get("mode")), state, _ago(env["last_seen_s"]),
            _cell(env.get("local_head"), 7), _cell(env.get("behind_remote")),
            _cell(env.get("ahead")), _cell(env.get("dirty")), note,
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    head = (report.remote_head or "none")[:7]
    clock = (report.to_dict()["store_now"] or "?").replace("T", " ")
    total = len(report.environments)
    click.echo(f"{len(report.online)} of {total} online · remote head {head} · store clock {clock}")
