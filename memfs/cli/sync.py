"""Moving an agent between machines: push, fetch, pull, sync, clone; and conflicts."""

from __future__ import annotations

import click

from memfs.cli import synccmds
from memfs.cli.app import AppState, pass_state
from memfs.cli.output import emit_json, json_option, progress_printer

POLICY_CHOICE = click.Choice(["copy", "markers", "ours", "theirs"])
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
env_name_option = click.option(
    "--env-name",
    metavar="NAME",
    help="The name this environment shows under in 'memfs envs' (default: MEMFS_ENV_NAME, "
    "else the host name).",
)
conflict_option = click.option(
    "--conflict",
    "policy",
    type=POLICY_CHOICE,
    help="How to settle a conflict (default: agent.yaml sync.conflict, else copy).",
)
unrelated_option = click.option(
    "--allow-unrelated-histories",
    "allow_unrelated",
    is_flag=True,
    help="Merge a remote history that shares no commit with this one (refused by default, "
    "exit 6: each file both hold would become a conflict).",
)


@click.command()
@click.argument("remote", required=False)
@conflict_option
@unrelated_option
@quiet_option
@json_option
@pass_state
def push(
    state: AppState,
    remote: str | None,
    policy: str | None,
    allow_unrelated: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Commit and push to REMOTE (default: every remote, mirrors included).

    If the remote has new commits they are fetched and merged first; memfs never force-pushes.
    An agent with no remote is pushed to the default cloud (see 'memfs cloud'). A push into
    an agent folder with its files checked out is refused (exit 7): pull there instead.
    """
    _exit_with(synccmds.push(state.agent(), remote, policy, allow_unrelated, quiet, as_json))


@click.command()
@click.argument("remote", required=False)
@quiet_option
@json_option
@pass_state
def fetch(state: AppState, remote: str | None, quiet: bool, as_json: bool) -> None:
    """Download new commits from REMOTE (default: every non-mirror remote); change nothing else."""
    _exit_with(synccmds.fetch(state.agent(), remote, quiet, as_json))


@click.command()
@click.argument("remote", required=False)
@conflict_option
@click.option("--ff-only", is_flag=True, help="Refuse to merge: only fast-forward.")
@unrelated_option
@quiet_option
@json_option
@pass_state
def pull(
    state: AppState,
    remote: str | None,
    policy: str | None,
    ff_only: bool,
    allow_unrelated: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Commit, then fetch and merge from REMOTE (default: every non-mirror remote)."""
    agent = state.agent()
    _exit_with(synccmds.pull(agent, remote, policy, ff_only, allow_unrelated, quiet, as_json))


@click.command()
@conflict_option
@unrelated_option
@env_name_option
@quiet_option
@json_option
@pass_state
def sync(
    state: AppState,
    policy: str | None,
    allow_unrelated: bool,
    env_name: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Commit, fetch and merge from every remote, then push to every remote.

    \b
    Example:
      memfs sync --conflict markers
    """
    agent = state.agent()
    _exit_with(synccmds.sync(agent, policy, allow_unrelated, env_name, quiet, as_json))


@click.command()
@click.argument("url")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@quiet_option
@click.option(
    "--passphrase",
    is_flag=True,
    help="Join an encrypted agent with its passphrase slot (asked; a line of stdin when piped).",
)
def clone(url: str, directory: str | None, quiet: bool, passphrase: bool) -> None:
    """Check out the agent at URL into DIRECTORY (default: the URL's last part).

    A relative path is taken from the current folder and stored absolute. A DIRECTORY left
    by a clone or checkout that was stopped midway is finished: run the same command again.
    A Letta Code memory repo (system/ or a root MEMORY.md, no agent.yaml) is cloned as it is:
    memfs keeps what it needs in .git/config and adds nothing to its files.

    \b
    Example:
      memfs clone git@github.com:ada/garden-agent.git
      memfs clone s3://acme-agents/memory/garden-agent
      memfs clone --passphrase s3://acme-agents/memory/garden-agent
    """
    from memfs.cloning import clone as run

    secret = None
    if passphrase:
        from memfs.cli.key import read_passphrase

        secret = read_passphrase("Passphrase", confirm=False)
    agent = run(url, directory, progress=progress_printer(quiet), passphrase=secret)
    with agent:
        count = agent.committed_memory_count()
        click.echo(f"Cloned {agent.name} into {agent.root} ({count} memory files)")


@click.command()
@json_option
@pass_state
def conflicts(state: AppState, as_json: bool) -> None:
    """List open conflicts: conflict copies and files with conflict markers.

    In a Letta Code memory repo the other version of a conflict is kept in
    .memfs-conflicts/PATH.conflict-SHA, where Letta never reads it as a memory block.
    """
    from memfs.conflicts import find

    found = find(state.agent())
    if as_json:
        emit_json([c.to_dict() for c in found])
        return
    for conflict in found:
        if conflict.kind == "copy":
            click.echo(f"{conflict.path}\tother version at {conflict.copy_path}")
        else:
            click.echo(f"{conflict.path}\tconflict markers")
    if not found:
        click.echo("No open conflicts.")


@click.command()
@click.argument("path")
@click.option(
    "--keep",
    type=click.Choice(["ours", "theirs", "both"]),
    required=True,
    help="ours: the file at PATH (upper side); theirs: the copy (lower side); both: both.",
)
@pass_state
def resolve(state: AppState, path: str, keep: str) -> None:
    """Settle the conflict at PATH and commit.

    \b
    Example:
      memfs resolve system/persona.md --keep both
    """
    from memfs.conflicts import resolve as run

    info = run(state.agent(), path, keep)  # type: ignore[arg-type]
    click.echo(f"[{info.short}] {info.summary}" if info else f"{path}: nothing changed")


@click.command()
@click.option(
    "--remote", "remote_name", metavar="NAME", help="Compact this object-store remote's packs."
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Seconds a replaced pack stays readable before it is deleted.",
)
@pass_state
def gc(state: AppState, remote_name: str | None, grace: float) -> None:
    """Pack loose objects and every local pack into one; with --remote, compact a bucket
    remote's packs into one.

    Sync does the same by itself once there are many packs. A compaction is a
    compare-and-swap of the manifest like any push; replaced packs are deleted only after the
    grace period, so a reader that still uses them never fails.
    """
    from memfs.repack import consolidate
    from memfs.sync import compact_remote

    agent = state.agent()
    done = consolidate(agent.history, everything=True)
    click.echo(f"Packed {done.loose} loose objects; {done.packs} packs merged into one.")
    if remote_name is not None:
        merged, deleted = compact_remote(agent, remote_name, grace)
        click.echo(f"{remote_name}: {merged} packs merged into one, {deleted} old packs deleted.")


def _exit_with(code: int) -> None:
    """End the click command with a body's exit code (memfs/cli/synccmds.py)."""
    if code:
        click.get_current_context().exit(code)
