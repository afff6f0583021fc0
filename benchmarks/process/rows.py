"""The rows of issue 12's table, each measured as whole processes at one agent size.

For an agent of N files (benchmarks._common.populate: N small memory files over 100 folders)
each side has its own repository holding the same files: the memfs agent (and, with
--base-memfs, a second agent made by that other memfs build), a plain git clone of the agent
pushed by git-remote-s3 (the peer), and another pushed to a local bare repo (plain git). Each
row runs the sides in turns, ``repeat`` times; preparing steps (an edit, a commit before a
push, a fresh remote) are not timed.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import populate
from benchmarks.process.runner import Runner, interleaved

BUCKET = "bench"

STATUS, CONTEXT, LS, COMMIT = "status", "context", "ls", "commit 1 file"
FIRST_PUSH, CLONE, PUSH_ONE, PULL_ONE = "first push", "clone", "1-file push", "1-file pull"
ROWS = (FIRST_PUSH, CLONE, PUSH_ONE, PULL_ONE, STATUS, CONTEXT, LS, COMMIT)
"""Every row, in the order of the issue's table."""

GIT_COMMIT = (("git", "add", "-A"), ("git", "commit", "-q", "-m", "edit"))
"""What git does for a commit after an edit: ``git add -A && git commit``."""


def edited_file(files: int) -> str:
    """The memory file every one-file edit changes (one that populate wrote)."""
    i = min(7, files - 1)
    return f"reference/topic-{i % 100:03d}/note-{i:05d}.md"


@dataclass
class Agents:
    """The repositories of one size, and where each side pushes and clones.

    ``scripts`` maps each memfs side ("memfs", and "base" when a baseline build is measured
    too) to its console script; every other side is run with git.
    """

    files: int
    folder: Path
    scripts: dict[str, str]
    sides: Sequence[str]

    def origin(self, side: str) -> Path:
        """The repository a side edits, commits and pushes from."""
        return self.folder / side

    def remote(self, side: str, n: int) -> str:
        """The n-th fresh remote of a side: an S3 prefix, or a bare repo's path for git."""
        if side == "git":
            return str(self.folder / f"bare-{n}.git")
        return f"s3://{BUCKET}/{side}-{self.files}/push-{n}"

    def clone_dir(self, side: str, n: int) -> Path:
        return self.folder / f"{side}-clone-{n}"

    def local_sides(self) -> list[str]:
        """The sides of the rows with no remote: the memfs builds and git."""
        return [side for side in self.sides if side in self.scripts or side == "git"]

    def memfs(self, side: str, *args: str) -> list[str]:
        return [self.scripts[side], *args]

    def commit(self, side: str) -> list[Sequence[str]]:
        """A side's commit of every change: ``memfs commit``, or git's add and commit."""
        return [self.memfs(side, "commit")] if side in self.scripts else list(GIT_COMMIT)

    def push(self, side: str, n: int) -> list[str]:
        """A push of ``main`` to the side's n-th remote (memfs knows it as ``push-n``)."""
        if side in self.scripts:
            return self.memfs(side, "push", f"push-{n}")
        return ["git", "push", "-q", self.remote(side, n), "main"]


def build(runner: Runner, folder: Path, files: int, agents: Agents) -> None:
    """An N-file agent per memfs build, and two plain git clones of the first."""
    folder.mkdir(parents=True)
    for side in agents.scripts:
        populate(agents.origin(side), files)
        runner.run(agents.memfs(side, "init", str(agents.origin(side)), "--name", side), folder)
    for side in ("peer", "git"):
        runner.run(["git", "clone", "-q", str(agents.origin("memfs")), side], folder)


def edit(agents: Agents, side: str, tag: str) -> None:
    """Change one memory file of a side's origin repository (untimed)."""
    text = f"---\ndescription: note 7\n---\nfact edited by {side}, {tag}\n"
    (agents.origin(side) / edited_file(agents.files)).write_text(text)


def local_rows(runner: Runner, agents: Agents, repeat: int, rows: Sequence[str] = ROWS) -> None:
    """status, context, ls (clean tree) and commit after a one-file edit: memfs vs git."""
    files = agents.files
    # each row is named after the memfs command it runs
    reads: dict[str, list[str] | None] = {STATUS: ["git", "status"], CONTEXT: None, LS: None}
    for row, git_command in reads.items():
        if row not in rows:
            continue

        def read(n: int, side: str, row: str = row, git_command: list[str] | None = git_command,
                 ) -> None:  # fmt: skip
            if side in agents.scripts:
                runner.time(row, files, side, [agents.memfs(side, row)], agents.origin(side))
            elif git_command is not None:
                runner.time(row, files, side, [git_command], agents.origin(side))

        interleaved(repeat, agents.local_sides(), read)

    def commit(n: int, side: str) -> None:
        edit(agents, side, f"commit {n}")
        runner.time(COMMIT, files, side, agents.commit(side), agents.origin(side))

    if COMMIT not in rows:
        return
    interleaved(repeat, agents.local_sides(), commit)
    if "peer" in agents.sides:  # the same commits, untimed: every side pushes the same history
        for n in range(repeat):
            edit(agents, "peer", f"commit {n}")
            for command in agents.commit("peer"):
                runner.run(command, agents.origin("peer"))


def remote_rows(runner: Runner, agents: Agents, repeat: int, rows: Sequence[str] = ROWS) -> None:
    """First push, clone, then a one-file push and the pull of it on another clone.

    Rows left out of ``rows`` still run once, untimed, where a later row needs them (the
    first push and the clone the one-file rows push to and pull into)."""
    files = agents.files
    firsts = repeat if FIRST_PUSH in rows else 1
    for side in agents.sides:  # fresh remotes, prepared before anything is timed
        for n in range(firsts):
            if side in agents.scripts:
                add = agents.memfs(side, "remote", "add", f"push-{n}", agents.remote(side, n))
                runner.run(add, agents.origin(side))
            elif side == "git":
                runner.run(["git", "init", "-q", "--bare", agents.remote(side, n)], agents.folder)

    def first_push(n: int, side: str) -> None:
        runner.time(FIRST_PUSH, files, side, [agents.push(side, n)], agents.origin(side))
        if FIRST_PUSH not in rows:
            runner.samples.pop((FIRST_PUSH, files, side))

    def clone(n: int, side: str) -> None:
        source = agents.remote(side, 0)
        if side == "git":  # file:// makes git use its transport, not hard links
            source = Path(source).as_uri()
        target = str(agents.clone_dir(side, n))
        command = agents.memfs(side, "clone", source, target) if side in agents.scripts else (
            ["git", "clone", "-q", source, target])  # fmt: skip
        runner.time(CLONE, files, side, [command], agents.folder)
        if CLONE not in rows:
            runner.samples.pop((CLONE, files, side))

    def one_file(n: int, side: str) -> None:
        edit(agents, side, f"push {n}")
        for command in agents.commit(side):
            runner.run(command, agents.origin(side))
        runner.time(PUSH_ONE, files, side, [agents.push(side, 0)], agents.origin(side))
        pull = agents.memfs(side, "pull") if side in agents.scripts else ["git", "pull", "-q"]
        runner.time(PULL_ONE, files, side, [pull], agents.clone_dir(side, 0))

    interleaved(firsts, agents.sides, first_push)
    interleaved(repeat if CLONE in rows else 1, agents.sides, clone)
    if PUSH_ONE in rows or PULL_ONE in rows:
        interleaved(repeat, agents.sides, one_file)


def measure_size(
    runner: Runner,
    folder: Path,
    files: int,
    repeat: int,
    sides: Sequence[str],
    scripts: dict[str, str],
    rows: Sequence[str] = ROWS,
) -> None:
    """Every row (or those in ``rows``) at one agent size; the agents are removed afterwards."""
    agents = Agents(files, folder, scripts, sides)
    build(runner, folder, files, agents)
    local_rows(runner, agents, repeat, rows)
    remote_rows(runner, agents, repeat, rows)
    shutil.rmtree(folder, ignore_errors=True)
