"""The bodies of ``memfs push``, ``fetch``, ``pull`` and ``sync``: click-free, run by their
click commands (memfs/cli/sync.py) and by the fast path (memfs/cli/fast.py) alike.

Each takes the open agent and its options and returns the command's exit code; a remote's
failure is raised as a ``CommandError`` once everything else is reported.
"""

from __future__ import annotations

from memfs.cli.failure import CommandError
from memfs.cli.output import echo, emit_json, progress_printer, warn

TYPE_CHECKING = False  # typing costs a command ~3 ms to import; mypy reads the block
if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.lettahook import Refusal
    from memfs.sync import SyncReport


def push(
    agent: Agent,
    remote: str | None,
    policy: str | None,
    allow_unrelated: bool,
    quiet: bool,
    as_json: bool,
) -> int:
    """Commit and push to ``remote`` (default: every remote, mirrors included)."""
    from memfs.sync import push as run

    progress = progress_printer(quiet)
    report = run(
        agent,
        remote,
        policy,
        progress=progress,
        allow_unrelated=allow_unrelated,
        announce=True,
        prescan=True,  # a one-shot process: its commit scan may run in a child
    )
    if report.created_remote is not None and not as_json:
        echo(f"Added remote origin: {report.created_remote.display_url}")
    _report(report, as_json, agent.held)
    return 0


def fetch(agent: Agent, remote: str | None, quiet: bool, as_json: bool) -> int:
    """Download new commits from ``remote`` (default: every non-mirror remote)."""
    from memfs.sync import fetch as run

    report = run(agent, remote, progress=progress_printer(quiet))
    if as_json:
        emit_json(report.to_dict())
    else:
        for outcome in report.remotes:
            at = outcome.fetched[:7] if outcome.fetched else "empty"
            echo(f"{outcome.remote}: {'failed' if outcome.error else at}")
    _fail_on_remote_errors(report)
    return 0


def pull(
    agent: Agent,
    remote: str | None,
    policy: str | None,
    ff_only: bool,
    allow_unrelated: bool,
    quiet: bool,
    as_json: bool,
) -> int:
    """Commit, then fetch and merge from ``remote`` (default: every non-mirror remote)."""
    from memfs.sync import pull as run

    progress = progress_printer(quiet)
    report = run(
        agent,
        remote,
        policy,
        ff_only=ff_only,
        progress=progress,
        allow_unrelated=allow_unrelated,
        announce=True,
        prescan=True,  # a one-shot process: its commit scan may run in a child
    )
    _report(report, as_json, agent.held)
    return 0


def sync(
    agent: Agent,
    policy: str | None,
    allow_unrelated: bool,
    env_name: str | None,
    quiet: bool,
    as_json: bool,
) -> int:
    """Commit, fetch and merge from every remote, then push to every remote."""
    from memfs.sync import sync as run

    progress = progress_printer(quiet)
    report = run(
        agent,
        policy,
        progress=progress,
        allow_unrelated=allow_unrelated,
        announce=True,
        env_name=env_name,
    )
    _report(report, as_json, agent.held)
    return 0


def _report(report: SyncReport, as_json: bool, held: list[Refusal]) -> None:
    """Print a report and what the commit held back, then fail with the first remote
    error, if any."""
    if as_json:
        emit_json(report.to_dict())
    else:
        if report.committed is not None:
            echo(f"committed {report.committed.short} {report.committed.summary}")
        for outcome in report.remotes:
            steps = []
            if outcome.integrated:
                steps.append(outcome.integrated)
            if outcome.pushed:
                steps.append(outcome.pushed)
            if outcome.error:
                steps.append("failed")
            echo(f"{outcome.remote}: {', '.join(steps) or 'nothing to do'}")
            for conflict in outcome.conflicts:
                where = (
                    f"other version at {conflict.copy_path}"
                    if conflict.copy_path
                    else conflict.resolution
                )
                echo(f"  conflict in {conflict.path} ({conflict.kind}): {where}")
        if not report.remotes:
            echo("No remotes: add one with 'memfs remote add NAME URL'.")
        for outcome in report.mirrors:
            if outcome.error is None:
                echo(f"{outcome.remote}: {outcome.pushed or 'nothing to do'} (mirror)")
    if report.conflicts and not as_json:
        warn(
            f"{len(report.conflicts)} conflicts settled, both versions kept: see 'memfs conflicts'"
        )
    for outcome in report.mirrors:
        if outcome.error is not None:
            warn(f"warning: mirror {outcome.remote} not updated (nothing lost): {outcome.error}")
    if held:
        from memfs.cli.localcmds import warn_held

        warn_held(held)
    _fail_on_remote_errors(report)


def _fail_on_remote_errors(report: SyncReport) -> None:
    """Exit 7 (10 for a key or integrity problem) with the first remote's error, once
    everything else has been reported."""
    failed = [o for o in report.remotes if o.error]
    if failed:
        raise CommandError(failed[0].error or "", failed[0].exit_code)
