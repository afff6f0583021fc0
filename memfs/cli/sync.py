"""Moving an agent between machines: push, fetch, pull, sync, clone; and conflicts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from memfs.cli.app import AppState, pass_state
from memfs.cli.failure import CommandError
from memfs.cli.output import emit_json, json_option, progress_printer, warn

if TYPE_CHECKING:
    from memfs.sync import SyncReport

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


def _report(report: SyncReport, as_json: bool) -> None:
    """Print a report, then fail with the first remote error, if any."""
    if as_json:
        emit_json(report.to_dict())
    else:
        if report.committed is not None:
            click.echo(f"committed {report.committed.short} {report.committed.summary}")
        for outcome in report.remotes:
            steps = []
            if outcome.integrated:
                steps.append(outcome.integrated)
            if outcome.pushed:
                steps.append(outcome.pushed)
            if outcome.error:
                steps.append("failed")
            click.echo(f"{outcome.remote}: {', '.join(steps) or 'nothing to do'}")
            for conflict in outcome.conflicts:
                where = (
                    f"other version at {conflict.copy_path}"
                    if conflict.copy_path
                    else conflict.resolution
                )
                click.echo(f"  conflict in {conflict.path} ({conflict.kind}): {where}")
        if not report.remotes:
            click.echo("No remotes: add one with 'memfs remote add NAME URL'.")
        for outcome in report.mirrors:
            if outcome.error is None:
                click.echo(f"{outcome.remote}: {outcome.pushed or 'nothing to do'} (mirror)")
    if report.conflicts and not as_json:
        warn(
            f"{len(report.conflicts)} conflicts settled, both versions kept: see 'memfs conflicts'"
        )
    for outcome in report.mirrors:
        if outcome.error is not None:
            warn(f"warning: mirror {outcome.remote} not updated (nothing lost): {outcome.error}")
    _fail_on_remote_errors(report)


def _fail_on_remote_errors(report: SyncReport) -> None:
    """Exit 7 (10 for a key or integrity problem) with the first remote's error, once
    everything else has been reported."""
    failed = [o for o in report.remotes if o.error]
    if failed:
        raise CommandError(failed[0].error or "", failed[0].exit_code)


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
    from memfs.sync import push as run

    progress = progress_printer(quiet)
    report = run(
        state.agent(),
        remote,
        policy,
        progress=progress,
        allow_unrelated=allow_unrelated,
        announce=True,
    )
    if report.created_remote is not None and not as_json:
        click.echo(f"Added remote origin: {report.created_remote.display_url}")
    _report(report, as_json)


@click.command()
@click.argument("remote", required=False)
@quiet_option
@json_option
@pass_state
def fetch(state: AppState, remote: str | None, quiet: bool, as_json: bool) -> None:
    """Download new commits from REMOTE (default: every non-mirror remote); change nothing else."""
    from memfs.sync import fetch as run

    report = run(state.agent(), remote, progress=progress_printer(quiet))
    if as_json:
        emit_json(report.to_dict())
    else:
        for outcome in report.remotes:
            at = outcome.fetched[:7] if outcome.fetched else "empty"
            click.echo(f"{outcome.remote}: {'failed' if outcome.error else at}")
    _fail_on_remote_errors(report)


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
    from memfs.sync import pull as run

    progress = progress_printer(quiet)
    report = run(
        state.agent(),
        remote,
        policy,
        ff_only=ff_only,
        progress=progress,
        allow_unrelated=allow_unrelated,
        announce=True,
    )
    _report(report, as_json)


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
    from memfs.sync import sync as run

    progress = progress_printer(quiet)
    report = run(
        state.agent(),
        policy,
        progress=progress,
        allow_unrelated=allow_unrelated,
        announce=True,
        env_name=env_name,
    )
    _report(report, as_json)


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
