"""The rows of issue 12's table, each measured as whole processes at one agent size.

For an agent of N files (benchmarks._common.populate: N small memory files over 100 folders)
three repositories hold the same commit: the memfs agent, a plain git clone of it pushed by
git-remote-s3 (the peer), and another pushed to a local bare repo (plain git). Each row runs
the sides in turns, ``repeat`` times; preparing steps (an edit, a commit before a push, a
fresh remote) are not timed.
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


def edited_file(files: int) -> str:
    """The memory file every one-file edit changes (one that populate wrote)."""
    i = min(7, files - 1)
    return f"reference/topic-{i % 100:03d}/note-{i:05d}.md"


@dataclass
class Agents:
    """The repositories of one size, and where each side pushes and clones."""

    files: int
    folder: Path
    memfs: str  # the memfs console script

    @property
    def origin(self) -> dict[str, Path]:
        """The repository each side edits, commits and pushes from."""
        return {side: self.folder / side for side in ("memfs", "peer", "git")}

    def remote(self, side: str, n: int) -> str:
        """The n-th fresh remote of a side: an S3 prefix, or a bare repo's path for git."""
        if side == "git":
            return str(self.folder / f"bare-{n}.git")
        return f"s3://{BUCKET}/{side}-{self.files}/push-{n}"

    def clone_dir(self, side: str, n: int) -> Path:
        return self.folder / f"{side}-clone-{n}"


def build(runner: Runner, folder: Path, files: int, memfs: str) -> Agents:
    """An N-file memfs agent, and two plain git clones of it for the peer and git."""
    folder.mkdir(parents=True)
    agents = Agents(files, folder, memfs)
    origin = agents.origin
    populate(origin["memfs"], files)
    runner.run([memfs, "init", str(origin["memfs"]), "--name", f"bench-{files}"], folder)
    for side in ("peer", "git"):
        runner.run(["git", "clone", "-q", str(origin["memfs"]), str(origin[side])], folder)
    return agents


def edit(agents: Agents, side: str, tag: str) -> None:
    """Change one memory file of a side's origin repository (untimed)."""
    text = f"---\ndescription: note 7\n---\nfact edited by {side}, {tag}\n"
    (agents.origin[side] / edited_file(agents.files)).write_text(text)


GIT_COMMIT = (("git", "add", "-A"), ("git", "commit", "-q", "-m", "edit"))
"""What git does for a commit after an edit: ``git add -A && git commit``."""


def commit_commands(agents: Agents, side: str) -> list[Sequence[str]]:
    """A side's commit of every change: ``memfs commit``, or git's add and commit."""
    return [[agents.memfs, "commit"]] if side == "memfs" else list(GIT_COMMIT)


def local_rows(runner: Runner, agents: Agents, repeat: int) -> None:
    """status, context, ls (clean tree) and commit after a one-file edit: memfs vs git."""
    origin, files = agents.origin, agents.files
    reads: dict[str, list[str] | None] = {STATUS: ["git", "status"], CONTEXT: None, LS: None}
    for row, git_command in reads.items():

        def read(n: int, side: str, row: str = row, git_command: list[str] | None = git_command,
                 ) -> None:  # fmt: skip
            if side == "memfs":
                runner.time(row, files, side, [[agents.memfs, row]], origin[side])
            elif git_command is not None:
                runner.time(row, files, side, [git_command], origin[side])

        interleaved(repeat, ("memfs", "git"), read)

    def commit(n: int, side: str) -> None:
        edit(agents, side, f"commit {n}")
        runner.time(COMMIT, files, side, commit_commands(agents, side), origin[side])

    interleaved(repeat, ("memfs", "git"), commit)


def push_command(agents: Agents, side: str, remote: str) -> list[str]:
    """A push of ``main`` to a remote; for memfs the remote is a name it was given."""
    if side == "memfs":
        return [agents.memfs, "push", remote]
    return ["git", "push", "-q", remote, "main"]


def remote_rows(runner: Runner, agents: Agents, repeat: int, sides: Sequence[str]) -> None:
    """First push, clone, then a one-file push and the pull of it on another clone."""
    origin, files = agents.origin, agents.files
    for side in sides:  # fresh remotes, prepared before anything is timed
        for n in range(repeat):
            if side == "memfs":
                add = [agents.memfs, "remote", "add", f"push-{n}", agents.remote(side, n)]
                runner.run(add, origin[side])
            elif side == "git":
                runner.run(["git", "init", "-q", "--bare", agents.remote(side, n)], agents.folder)

    def first_push(n: int, side: str) -> None:
        remote = f"push-{n}" if side == "memfs" else agents.remote(side, n)
        runner.time(FIRST_PUSH, files, side, [push_command(agents, side, remote)], origin[side])

    def clone(n: int, side: str) -> None:
        source = agents.remote(side, 0)
        if side == "git":  # file:// makes git use its transport, not hard links
            source = Path(source).as_uri()
        target = str(agents.clone_dir(side, n))
        command = [agents.memfs, "clone", source, target] if side == "memfs" else (
            ["git", "clone", "-q", source, target])  # fmt: skip
        runner.time(CLONE, files, side, [command], agents.folder)

    def one_file(n: int, side: str) -> None:
        edit(agents, side, f"push {n}")
        for command in commit_commands(agents, side):
            runner.run(command, origin[side])
        remote = "push-0" if side == "memfs" else agents.remote(side, 0)
        runner.time(PUSH_ONE, files, side, [push_command(agents, side, remote)], origin[side])
        pull = [agents.memfs, "pull"] if side == "memfs" else ["git", "pull", "-q"]
        runner.time(PULL_ONE, files, side, [pull], agents.clone_dir(side, 0))

    interleaved(repeat, sides, first_push)
    interleaved(repeat, sides, clone)
    interleaved(repeat, sides, one_file)
    for side in sides:  # keep the disk small: only clone 0 was pulled into
        for n in range(1, repeat):
            shutil.rmtree(agents.clone_dir(side, n), ignore_errors=True)


def measure_size(
    runner: Runner, folder: Path, files: int, repeat: int, sides: Sequence[str], memfs: str
) -> None:
    """Every row at one agent size."""
    agents = build(runner, folder, files, memfs)
    local_rows(runner, agents, repeat)
    remote_rows(runner, agents, repeat, sides)
    shutil.rmtree(folder, ignore_errors=True)
