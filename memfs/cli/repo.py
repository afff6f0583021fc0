"""Commands on one agent's files and local history."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from memfs.cli import localcmds
from memfs.cli.app import AppState, pass_state
from memfs.cli.localcmds import warn_held
from memfs.cli.output import emit_bytes, emit_json, json_option

if TYPE_CHECKING:
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
    warn_held(agent.held)
    if agent.held:
        click.get_current_context().exit(1)


@click.command()
@json_option
@pass_state
def status(state: AppState, as_json: bool) -> None:
    """Show uncommitted changes, problems in memory files, and files left out.

    \b
    Example:
      memfs status --json
    """
    _exit_with(localcmds.status(state.agent(), as_json))


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
    _exit_with(localcmds.commit(state.agent(), message, allow_read_only))


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
    from memfs.secrets.hooks import byte_masker

    agent = state.agent()
    revs, paths = agent.split_revisions(args)
    emit_bytes(byte_masker(agent)(agent.diff(*revs, paths=paths)))  # as context masks (§6.2)


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
    from memfs.secrets.hooks import byte_masker

    agent = state.agent()
    emit_bytes(byte_masker(agent)(agent.show(spec)))  # as context masks (§6.2)


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
    _exit_with(localcmds.ls(state.agent(), as_json))


def _exit_with(code: int) -> None:
    """End the click command with a body's exit code (memfs/cli/py)."""
    if code:
        click.get_current_context().exit(code)
