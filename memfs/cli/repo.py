"""Commands on one agent's files and local history."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from memfs.cli.app import AppState, pass_state
from memfs.cli.output import emit_bytes, emit_json, json_option, warn

if TYPE_CHECKING:
    from memfs.lettahook import Refusal
    from memfs.trees import CommitInfo

ALLOW_READ_ONLY_HELP = (
    "In a Letta repo: change read-only files on purpose (Letta's hook would refuse it)."
)


@click.command()
@click.argument("directory", default=".", required=False, type=click.Path(file_okay=False))
@click.option("--name", help="The agent's name (default: the folder's name).")
@click.option("--description", default="", help="One line saying what this agent is for.")
def init(directory: str, name: str | None, description: str) -> None:
    """Create an agent in DIRECTORY (default: here), or adopt the memory folder there.

    A new agent gets agent.yaml, system/persona.md and system/human.md and a first commit.
    An existing Letta Code memory folder or repo (system/, or MEMORY.md for MemFS v2) is
    adopted as it is: no agent.yaml or starter file is added to its tree (memfs records the
    agent's name and id in .git/config), every file and every commit is kept.

    \b
    Example:
      memfs init my-agent --description "helps with the garden"
    """
    from memfs.opening import init_agent

    agent = init_agent(directory, name=name, description=description)
    files = len(agent.memory)  # an adopted repo may hold files not committed yet
    latest = agent.log(limit=1)
    if agent.layout.is_letta:  # adopted: HEAD may be any commit Letta Code made before
        click.echo(f"Adopt agent {agent.name} in {agent.root}")
    elif latest:
        click.echo(f"{latest[0].summary.removeprefix('memfs: ').capitalize()} in {agent.root}")
    if latest:
        click.echo(f"{files} memory files, commit {latest[0].short}")
    else:  # a Letta repo whose every file its installed hook refuses
        click.echo(f"{files} memory files, nothing committed yet")
    _warn_held(agent.held)
    if agent.held:
        click.get_current_context().exit(1)


def _warn_held(held: list[Refusal]) -> None:
    """Each change Letta's rules keep out of a commit, on stderr."""
    for refusal in held:
        if refusal.blocking:
            warn(f"Letta's hook refuses every commit until this is fixed: {refusal.render()}")
        else:
            warn(f"not committed, kept in the work tree: {refusal.render()}")


@click.command()
@json_option
@pass_state
def status(state: AppState, as_json: bool) -> None:
    """Show uncommitted changes, problems in memory files, and files left out.

    \b
    Example:
      memfs status --json
    """
    from memfs.remotestate import remote_states
    from memfs.secrets.hooks import HOLDS_SECRET, pending_count, shown_paths
    from memfs.watchstate import status as watcher_status

    agent = state.agent()
    report = agent.status()
    remotes = remote_states(agent)
    watcher = watcher_status(agent)
    pending = pending_count(agent)
    shown = shown_paths(agent, report)  # a held file's name may hold a secret's value
    if as_json:
        remote_dicts = [r.to_dict() for r in remotes]
        extra = {"remotes": remote_dicts, "watcher": watcher, "secrets_pending": pending}
        data = report.to_dict()
        data["changes"] = [{**c, "path": shown(c["path"])} for c in data["changes"]]
        emit_json({**data, **extra})
        return
    head = report.head[:7] if report.head else "no commits yet"
    click.echo(f"On branch {report.branch} at {head}")
    if report.git_operation:
        operation = report.git_operation
        click.echo(
            f"A git {operation} is in progress: memfs commits and merges nothing until "
            f"'git {operation} --continue' (or --abort) ends it"
        )
    elif report.detached:
        click.echo("HEAD is detached (not on a branch): memfs commits nothing until 'git switch'")
    if report.clean:
        click.echo("Nothing to commit: the memory matches the last commit.")
    else:
        click.echo("Changes not committed (run 'memfs commit'):")
        held = {problem.path for problem in report.held}
        for change in report.changes:
            path = shown(change.path)
            kept = "  (kept out of commits, see below)" if path in held else ""
            click.echo(f"  {change.status + ':':<10} {path}{kept}")
    holding = [p for p in report.held if p.message.startswith(HOLDS_SECRET)]
    letta = [p for p in report.held if p not in holding]
    if letta:
        click.echo(
            "Letta refuses these, so memfs leaves them in the work tree, uncommitted"
            + (" (and commits nothing until the first is fixed):" if report.blocked else ":")
        )
        for problem in letta:
            click.echo(f"  {problem.render()}")
    if holding:
        click.echo("These hold a secret's value: memfs leaves them in the work tree, uncommitted:")
        for problem in holding:
            click.echo(f"  {problem.render()}")
    if pending:
        click.echo(f"Secrets: {pending} change{'s' if pending > 1 else ''} not pushed yet")
    if report.update_pending:
        click.echo(
            "A merge is updating the files, or stopped midway: the next commit or sync puts"
            " back what it wrote and merges again (nothing is lost)"
        )
    if report.conflicts:
        click.echo("Open conflicts (reconcile, then 'memfs resolve PATH --keep ours|theirs|both'):")
        for conflict in report.conflicts:
            if conflict.kind == "copy":
                click.echo(f"  {conflict.path}: other version at {conflict.copy_path}")
            else:
                click.echo(f"  {conflict.path}: conflict markers")
    if report.problems:
        click.echo("Problems (run 'memfs check' for details):")
        for problem in report.problems:
            click.echo(f"  {problem.render()}")
    if report.secrets:
        click.echo("Ignored, looks like a secret: " + ", ".join(report.secrets))
    for skipped in report.skipped:
        click.echo(f"Not versioned: {skipped.shown}: {skipped.reason}")
    for remote in remotes:
        line = f"Remote {remote.name}: {remote.ahead} ahead, {remote.behind} behind"
        if remote.last_error:
            line += f"; last sync failed: {remote.last_error}"
        elif remote.last_ok:
            line += f"; last sync {remote.last_ok}"
        click.echo(line)
    if watcher["running"]:
        line = f"Watcher: running (pid {watcher['pid']}), last commit {watcher.get('last_commit')}"
        click.echo(
            line + (f"; last error: {watcher['last_error']}" if watcher.get("last_error") else "")
        )


@click.command()
@click.option("-m", "--message", help="Commit message (default: one saying what changed).")
@click.option(
    "--allow-read-only",
    "allow_read_only",
    multiple=True,
    metavar="PATH",
    help="In a Letta repo: commit changes to the read-only file or folder PATH on purpose "
    "(as 'git commit --no-verify' would; Letta's hook would refuse it). Repeatable.",
)
@pass_state
def commit(state: AppState, message: str | None, allow_read_only: tuple[str, ...]) -> None:
    """Commit every change to the memory files.

    Broken files are committed too, so nothing is lost; 'memfs check' reports them.
    In a Letta Code repo, a change Letta refuses stays in the work tree, uncommitted: an edit
    of a read-only file (or of its read_only line), and, when Letta's pre-commit hook is
    installed, anything that hook would reject. The rest is committed.
    Exits 1 if some files were left out (too large, a symlink leaving the agent, or refused
    by Letta's rules: each is printed as path:line: what is wrong).

    \b
    Examples:
      memfs commit -m "remember the user's timezone"
      memfs commit --allow-read-only system/rules.md
    """
    agent = state.agent()
    info = agent.commit(message=message, allow_read_only=allow_read_only)
    held = agent.held
    if info is None:
        click.echo("Nothing to commit." if not held else "Nothing committed.")
    else:
        click.echo(f"[{agent.history.branch()} {info.short}] {info.summary}")
        for path in agent.overridden:
            warn(f"{path} is read-only in Letta: changed on purpose (Letta's hook would refuse it)")
    _warn_held(held)
    skipped = agent.skipped
    for item in skipped:
        warn(f"not versioned: {item.shown}: {item.reason}")
    if skipped or held:
        click.get_current_context().exit(1)


@click.command()
@click.argument("path", required=False)
@click.option(
    "-n", "--max-count", "limit", type=click.IntRange(min=1), help="Show at most N commits."
)
@json_option
@pass_state
def log(state: AppState, path: str | None, limit: int | None, as_json: bool) -> None:
    """Show the history of the agent, or of one memory file (following renames).

    \b
    Example:
      memfs log system/persona.md -n 5
    """
    entries = state.agent().log(path, limit)
    if as_json:
        emit_json([entry.to_dict() for entry in entries])
        return
    for entry in entries:
        where = "/".join(part for part in (entry.host, entry.origin) if part)
        when = entry.date.strftime("%Y-%m-%d %H:%M")
        click.echo(f"{entry.short}  {when}  {where or '-':<16} {entry.summary}")


@click.command()
@click.argument("args", nargs=-1)
@pass_state
def diff(state: AppState, args: tuple[str, ...]) -> None:
    """Show changes: work tree vs last commit, vs REV, or REV vs REV2, optionally for PATHs.

    ARGS are [REV [REV2]] [--] [PATH...]: leading arguments that name revisions are revisions.

    \b
    Examples:
      memfs diff
      memfs diff HEAD~3 system/persona.md
      memfs diff HEAD~2 HEAD
    """
    agent = state.agent()
    revs, paths = agent.split_revisions(args)
    emit_bytes(agent.diff(*revs, paths=paths))


@click.command()
@click.argument("spec", metavar="REV[:PATH]")
@pass_state
def show(state: AppState, spec: str) -> None:
    """Show a commit and its changes, or a file as it was at REV.

    \b
    Examples:
      memfs show HEAD
      memfs show HEAD~2:system/persona.md
    """
    emit_bytes(state.agent().show(spec))


@click.command()
@click.argument("path")
@click.option(
    "--to", "rev", required=True, metavar="REV", help="The revision to bring PATH back to."
)
@click.option("--allow-read-only", "allow_read_only", is_flag=True, help=ALLOW_READ_ONLY_HELP)
@pass_state
def restore(state: AppState, path: str, rev: str, allow_read_only: bool) -> None:
    """Bring PATH (a file or folder) back to how it was at REV, as a new commit.

    Uncommitted edits are committed first, so they stay in history. In a Letta Code repo a
    restore that would change a read-only file, or that Letta's installed hook would reject,
    is refused (exit 1) before any file is touched.

    \b
    Example:
      memfs restore system/persona.md --to HEAD~2
    """
    info = state.agent().restore(path, rev, allow_read_only=allow_read_only)
    _report_new_commit(info, f"{path} already is as at {rev}")


@click.command()
@click.argument("rev")
@click.option("--allow-read-only", "allow_read_only", is_flag=True, help=ALLOW_READ_ONLY_HELP)
@pass_state
def revert(state: AppState, rev: str, allow_read_only: bool) -> None:
    """Undo the changes of commit REV in a new commit; history is never rewritten.

    Refused (exit 1, nothing changed) as restore is, in a Letta Code repo.

    \b
    Example:
      memfs revert HEAD
    """
    info = state.agent().revert(rev, allow_read_only=allow_read_only)
    _report_new_commit(info, f"nothing to revert: the changes of {rev} are already undone")


def _report_new_commit(info: CommitInfo | None, nothing: str) -> None:
    if info is not None:
        click.echo(f"[{info.short}] {info.summary}")
    else:
        click.echo(nothing[0].upper() + nothing[1:] + ".")


@click.command()
@click.option("--strict", is_flag=True, help="Fail on warnings (unknown front matter keys) too.")
@json_option
@pass_state
def check(state: AppState, strict: bool, as_json: bool) -> None:
    """Validate agent.yaml and every memory file; print path:line: message for each problem.

    Checks front matter YAML, known keys and their types, body length against 'limit',
    and UTF-8. In a Letta Code repo: what Letta's pre-commit hook would say of the work tree
    as a commit, with its messages (front matter, read_only changes, skills/<name>/SKILL.md,
    and for MemFS v2 or with .memfs.config.json: MEMORY.md indexes, depth and sizes), whether
    the hook is installed or not; a legacy 'limit' exceeded is a warning.
    Exits 1 if any error is found (with --strict, any warning too).
    """
    agent = state.agent()
    problems = agent.check()
    failing = [p for p in problems if strict or p.severity == "error"]
    if as_json:
        emit_json({"ok": not failing, "problems": [p.to_dict() for p in problems]})
    else:
        for problem in problems:
            click.echo(problem.render())
        if not problems:
            click.echo(f"All {len(agent.memory)} memory files are valid.")
    if failing:
        click.get_current_context().exit(1)


@click.command(name="ls")
@json_option
@pass_state
def ls(state: AppState, as_json: bool) -> None:
    """List memory files: label, pinned or not, size against limit, description.

    A file memfs cannot read (not UTF-8, front matter it cannot parse) is still listed, and
    named on stderr as 'path:line: what' (exit 0: 'memfs check' says more).
    """
    from memfs.layout import in_context

    agent = state.agent()
    layout = agent.layout
    # From the parse cache: a file is read only when its stat data changed since last time.
    parsed = agent.parsed_memory(agent.snapshot(), layout)
    for path, found in parsed.items():
        if found.unreadable:
            for problem in found.problem_list(path):
                if problem.severity == "error":
                    warn(problem.render())
    rows = [
        {
            "label": found.label,
            "path": path,
            "description": found.description,
            "pinned": in_context(path, layout),
            "read_only": found.read_only,
            "size": found.size,
            "limit": found.limit,
        }
        for path, found in parsed.items()
    ]
    if as_json:
        emit_json(rows)
        return
    width = max((len(row["label"]) for row in rows), default=5)
    for row in rows:
        pinned = "pinned" if row["pinned"] else "      "
        size = f"{row['size']}/{row['limit']}" if row["limit"] else str(row["size"])
        flags = " read-only" if row["read_only"] else ""
        description = row["description"] or ""
        click.echo(f"{row['label']:<{width}}  {pinned}  {size:>11}{flags}  {description}".rstrip())
