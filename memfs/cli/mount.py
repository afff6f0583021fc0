"""Mounting agents into sandbox folders: mount, unmount, mounts."""

from __future__ import annotations

import click

from memfs.cli.failure import CommandError
from memfs.cli.output import emit_json, json_option


@click.command()
@click.argument("source")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--read-only", is_flag=True, help="Read-only files; only pulled, never pushed.")
@click.option("--rev", metavar="REV", help="Pin to a revision: read-only, no watcher.")
@click.option(
    "--foreground",
    is_flag=True,
    help="Watch in this process until Ctrl-C (or SIGTERM), then unmount.",
)
@click.option(
    "--env-name",
    metavar="NAME",
    help="The name this mount shows under in 'memfs envs' (default: MEMFS_ENV_NAME, else "
    "the host name).",
)
def mount(
    source: str,
    directory: str,
    read_only: bool,
    rev: str | None,
    foreground: bool,
    env_name: str | None,
) -> None:
    """Check SOURCE out into DIRECTORY and keep it synced both ways in the background.

    SOURCE is read by its form alone: a URL (s3://..., memfs::..., user@host:path), a path
    (it contains '/' or starts with '.' or '~'), or else an agent NAME in the default cloud,
    even if a folder NAME is here: write ./NAME to mount that folder. Edits in a mount of an
    agent folder are merged into that folder's files. Returns once the files are in place
    (with --foreground: once Ctrl-C has unmounted it).

    \b
    Examples:
      memfs mount garden-agent /sandbox/memory
      memfs mount ./garden-agent /sandbox/memory
      memfs mount s3://acme-agents/memory/garden /sandbox/memory --read-only
    """
    from memfs.mount import mount as run

    watch_here = foreground and rev is None
    watch_args = [f"--env-name={env_name}"] if env_name else []
    daemon = not watch_here
    record = run(source, directory, read_only, rev, watch_args=watch_args, daemon=daemon)
    if record.rev:
        mode = "pinned to " + record.rev[:7]
    else:
        mode = "read-only" if record.read_only else "synced"
    click.echo(f"Mounted {source} at {record.path} ({mode})")
    if watch_here:
        _watch_then_unmount(record.path, record.read_only, env_name)


def _watch_then_unmount(path: str, read_only: bool, env_name: str | None) -> None:
    from memfs.cli.watch import run_foreground
    from memfs.mount import unmount as stop
    from memfs.opening import open_agent
    from memfs.watcher import WatchSettings

    agent = open_agent(path)
    try:
        run_foreground([agent], WatchSettings(pull_only=read_only, env_name=env_name), None)
    finally:
        agent.close()
    result = stop(path)
    if not result.synced:
        message = f"unmounted {path}, but not everything reached the remote: {result.error}"
        raise CommandError(message, 7)
    click.echo(f"Unmounted {path}")


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--remove", is_flag=True, help="Delete DIRECTORY afterwards, only if everything was pushed."
)
def unmount(directory: str, remove: bool) -> None:
    """Commit and push what is left, stop the watcher; exit 7 if the remote did not get it all."""
    from memfs.mount import unmount as run

    result = run(directory, remove=remove)
    if not result.synced:
        raise CommandError(
            f"unmounted {result.path}, but not everything reached the remote: {result.error}"
            + ("; the folder was kept" if remove else ""),
            7,
        )
    click.echo(f"Unmounted {result.path}" + (" and removed it" if result.removed else ""))


@click.command()
@json_option
def mounts(as_json: bool) -> None:
    """List mounted agents."""
    from memfs.mount import mounts as run

    entries = run()
    if as_json:
        emit_json([entry.to_dict() for entry in entries])
        return
    for entry in entries:
        mode = "read-only" if entry.read_only else "synced"
        click.echo(f"{entry.path}\t{entry.source}\t{mode}")
    if not entries:
        click.echo("No mounts.")
