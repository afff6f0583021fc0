"""A damaged repository, a stale git lock, an agent the user cannot write.

Each damage is one clear line on stderr and exit 9, and nothing is written outside the
agent's .git (issue 10). A git lock file left by a killed process is cleared, never a
wedge (issue 10, item 8). ``status`` reads: it works on an agent nobody may write.
The table rows are self-contained, to be folded into the general bad-input table.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.remotes.configure import add_remote, remove_remote

from .conftest import _git_env, git, run_cli, write
from .servers import bare_repo


def make_agent(tmp_path: Path) -> Path:
    """An agent with a pushed commit, a git remote, and one uncommitted edit."""
    hub = bare_repo(tmp_path / "hub.git")
    with memfs.init(tmp_path / "agent", name="agent") as agent:
        add_remote(agent.history, "origin", str(hub))
        assert sync.push(agent).ok
    write(tmp_path / "agent", "system/human.md", "---\ndescription: h\n---\nedited\n")
    return tmp_path / "agent"


def loose_object(root: Path, rev: str) -> Path:
    sha = git(root, "rev-parse", rev).strip()
    return root / ".git/objects" / sha[:2] / sha[2:]


def overwrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


def garbled_head(root: Path) -> None:
    (root / ".git/HEAD").write_bytes(b"garbage\n")


def index_cut_short(root: Path) -> None:
    git(root, "status")  # git writes a full index first
    index = root / ".git/index"
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])


def corrupt_head_tree(root: Path) -> None:
    overwrite(loose_object(root, "HEAD^{tree}"), b"not zlib at all")


def corrupt_head_commit(root: Path) -> None:
    overwrite(loose_object(root, "HEAD"), zlib.compress(b"commit 3\0bad"))


def corrupt_blob(root: Path) -> None:
    """A blob only a push reads (persona.md is unchanged on disk, the index vouches for it),
    and a new empty remote the next sync has to send everything to."""
    with memfs.open(root) as agent:
        remove_remote(agent.history, "origin")
        add_remote(agent.history, "origin", str(bare_repo(root.parent / "second.git")))
    overwrite(loose_object(root, "HEAD:system/persona.md"), b"x\x9c not a deflate stream")


def garbled_branch(root: Path) -> None:
    (root / ".git/refs/heads/main").write_bytes(b"zzzz\n")


def missing_head_tree(root: Path) -> None:
    loose_object(root, "HEAD^{tree}").unlink()


def gitdir_pointing_nowhere(root: Path) -> None:
    subprocess.run(["rm", "-rf", str(root / ".git")], check=True)
    (root / ".git").write_text(f"gitdir: {root.parent / 'elsewhere' / 'deep' / 'git'}\n")


def objects_missing(root: Path) -> None:
    subprocess.run(["rm", "-rf", str(root / ".git/objects")], check=True)


@dataclass(frozen=True)
class Case:
    """One damage, one command, what the user sees."""

    name: str
    damage: Callable[[Path], None]
    command: tuple[str, ...]
    exit_code: int
    stderr: str  # a part of the one line on stderr ("" when the command succeeds)


HEAD_TEXT = "HEAD names neither a branch nor a commit"
GITDIR_TEXT = "elsewhere/deep/git does not exist"
OBJECTS_TEXT = ".git/objects is missing"
DAMAGED = "is damaged"
COMMANDS = (("status",), ("commit",), ("log",), ("context",), ("sync",))

CASES = [
    *(Case("garbled HEAD", garbled_head, cmd, 9, HEAD_TEXT) for cmd in COMMANDS),
    # the index is a stat cache: cut short, it is ignored (everything re-hashed) and rewritten
    *(Case("index cut short", index_cut_short, cmd, 0, "") for cmd in COMMANDS),
    Case("corrupt tree", corrupt_head_tree, ("status",), 9, DAMAGED),
    Case("corrupt tree", corrupt_head_tree, ("commit",), 9, DAMAGED),
    Case("corrupt tree", corrupt_head_tree, ("log",), 0, ""),  # log reads commits only
    Case("corrupt tree", corrupt_head_tree, ("context",), 9, DAMAGED),
    Case("corrupt tree", corrupt_head_tree, ("sync",), 9, DAMAGED),
    *(Case("corrupt commit", corrupt_head_commit, cmd, 9, DAMAGED) for cmd in COMMANDS),
    Case("corrupt blob", corrupt_blob, ("status",), 0, ""),  # reads no blob
    Case("corrupt blob", corrupt_blob, ("commit",), 0, ""),  # commits human.md only
    Case("corrupt blob", corrupt_blob, ("log",), 0, ""),
    Case("corrupt blob", corrupt_blob, ("context",), 0, ""),  # reads the files on disk
    Case("corrupt blob", corrupt_blob, ("sync",), 9, "zlib.error"),  # the push reads it
    *(
        Case("garbled branch", garbled_branch, cmd, 9, "refs/heads/main holds no")
        for cmd in COMMANDS
    ),
    Case("missing tree", missing_head_tree, ("status",), 9, "is missing"),
    Case("missing tree", missing_head_tree, ("sync",), 9, "is missing"),
    *(Case("gitdir missing", gitdir_pointing_nowhere, cmd, 9, GITDIR_TEXT) for cmd in COMMANDS),
    *(Case("objects missing", objects_missing, cmd, 9, OBJECTS_TEXT) for cmd in COMMANDS),
]


def snapshot(folder: Path, skip: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` but ``skip``: path -> content hash."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if path == skip or skip in path.parents:
            continue
        is_file = path.is_file() and not path.is_symlink()
        found[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest() if is_file else "dir"
    return found


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.name}-{case.command[0]}")
def test_a_damaged_repository_is_one_clear_line(tmp_path: Path, case: Case) -> None:
    root = make_agent(tmp_path)
    case.damage(root)
    git_dir = root / ".git"
    before = snapshot(tmp_path, git_dir)
    result = run_cli("-C", str(root), *case.command)
    assert result.exit_code == case.exit_code, result.output
    lines = result.stderr.splitlines()
    if case.exit_code == 0:
        assert "internal error" not in result.stderr
        return
    assert len(lines) == 1 and lines[0].startswith("memfs: "), result.stderr
    assert case.stderr in lines[0]
    assert snapshot(tmp_path, git_dir) == before  # nothing written, no folder created
    assert not (tmp_path / "elsewhere").exists()


def test_a_commit_after_the_index_was_cut_short_repairs_it(tmp_path: Path) -> None:
    root = make_agent(tmp_path)
    index_cut_short(root)
    assert run_cli("-C", str(root), "commit").exit_code == 0
    git(root, "fsck", "--strict")
    assert git(root, "status", "--porcelain") == ""  # the index was written whole again


# -- stale git locks (issue 10, item 8) -------------------------------------------------

LEAVE_A_LOCK = """
import os, signal, sys
from dulwich.file import GitFile
lock = GitFile(sys.argv[1], "wb")  # dulwich's own ref write: <ref>.lock, created exclusively
lock.write(sys.argv[2].encode() + b"\\n")
lock.flush()
os.kill(os.getpid(), signal.SIGKILL)  # killed before the rename, as a kill -9 mid-push
"""


def leave_dulwich_lock(ref_file: Path, sha: str) -> Path:
    """Run dulwich's ref write in a child and SIGKILL it while it holds ``<ref>.lock``."""
    child = subprocess.run([sys.executable, "-c", LEAVE_A_LOCK, str(ref_file), sha])
    assert child.returncode == -9
    lock = ref_file.with_name(ref_file.name + ".lock")
    assert lock.exists()
    return lock


@pytest.mark.parametrize(
    ("ref", "aged"),
    [("refs/remotes/origin/main", False), ("refs/heads/main", True)],
)
def test_a_git_lock_left_by_a_killed_process_is_cleared(
    tmp_path: Path, ref: str, aged: bool
) -> None:
    """Left just now (the next sync waits for it to age) or long ago: sync clears it."""
    root = make_agent(tmp_path)
    head = git(root, "rev-parse", "HEAD").strip()
    lock = leave_dulwich_lock(root / ".git" / ref, head)
    if aged:
        os.utime(lock, (lock.stat().st_atime - 60, lock.stat().st_mtime - 60))
    result = run_cli("-C", str(root), "sync")
    assert result.exit_code == 0, result.output
    assert not lock.exists()
    new_head = git(root, "rev-parse", "HEAD").strip()
    assert new_head != head  # the edit was committed ...
    assert git(tmp_path / "hub.git", "rev-parse", "main").strip() == new_head  # ... and pushed
    assert git(root, "rev-parse", "refs/remotes/origin/main").strip() == new_head
    git(root, "fsck", "--strict")
    assert git(root, "status", "--porcelain") == ""


# -- an agent the user cannot write --------------------------------------------------------

PR_CAPBSET_DROP = 24


def _without_privileges() -> None:
    """In the child before exec: drop every capability, so root obeys permission bits
    (as uid 0 it can still run the interpreter installed under /root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in range(64):
        libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)


def _can_drop_privileges(probe: Path) -> bool:
    probe.mkdir()
    probe.chmod(0o555)
    attempt = subprocess.run(
        ["sh", "-c", f"touch {probe}/x"], preexec_fn=_without_privileges, capture_output=True
    )
    return attempt.returncode != 0


def test_status_works_on_an_agent_the_user_cannot_write(tmp_path: Path) -> None:
    root = make_agent(tmp_path)
    state = root / ".git/memfs"
    subprocess.run(["rm", "-rf", str(state)], check=True)  # as a git clone would have none
    if not _can_drop_privileges(tmp_path / "probe"):
        pytest.skip("cannot run a process that obeys permission bits here")
    subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
    try:
        outputs = {}
        for args in (("status",), ("status", "--json"), ("log",), ("context",)):
            result = subprocess.run(
                [sys.executable, "-m", "memfs", "-C", str(root), *args],
                preexec_fn=_without_privileges,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert (result.returncode, result.stderr) == (0, ""), args
            outputs[args] = result.stdout
        assert "modified:  system/human.md" in outputs[("status",)]
        assert '"running": false' in outputs[("status", "--json")]
        assert not state.exists()  # nothing written
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)


def test_a_ref_lock_left_in_a_local_git_remote_is_named_not_retried(tmp_path: Path) -> None:
    """The remote's lock is not the agent's to clear: one line naming it, exit 7, at once."""
    root = make_agent(tmp_path)
    hub = tmp_path / "hub.git"
    lock = leave_dulwich_lock(hub / "refs/heads/main", git(hub, "rev-parse", "main").strip())
    os.utime(lock, (lock.stat().st_atime - 60, lock.stat().st_mtime - 60))
    result = run_cli("-C", str(root), "sync")
    assert result.exit_code == 7
    assert f"its branch is locked by {lock}" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    lock.unlink()  # what the message says to do
    assert run_cli("-C", str(root), "sync").exit_code == 0
    assert git(hub, "rev-parse", "main") == git(root, "rev-parse", "HEAD")


def test_an_index_lock_left_by_a_killed_process_is_cleared(tmp_path: Path) -> None:
    """Skipping the index while locked is right for a live git; a stale lock would keep it,
    and 'git status', out of date for good."""
    root = make_agent(tmp_path)
    lock = leave_dulwich_lock(root / ".git/index", "not an index")
    os.utime(lock, (lock.stat().st_atime - 60, lock.stat().st_mtime - 60))
    assert run_cli("-C", str(root), "commit").exit_code == 0
    assert not lock.exists()
    assert git(root, "status", "--porcelain") == ""
    git(root, "fsck", "--strict")


def test_deleting_a_ref_clears_a_stale_lock(tmp_path: Path) -> None:
    """History.delete_ref (for 'memfs remote remove') goes through the same lock handling."""
    root = make_agent(tmp_path)
    lock = leave_dulwich_lock(root / ".git/refs/remotes/origin/main", "0" * 40)
    os.utime(lock, (lock.stat().st_atime - 60, lock.stat().st_mtime - 60))
    with memfs.open(root) as agent:
        agent.history.delete_ref("refs/remotes/origin/main")
        assert agent.history.ref("refs/remotes/origin/main") is None
    assert not lock.exists()
    git(root, "fsck", "--strict")


def test_removing_a_remote_clears_a_stale_lock_of_its_tracking_ref(tmp_path: Path) -> None:
    root = make_agent(tmp_path)
    assert run_cli("-C", str(root), "sync").exit_code == 0
    tracking = root / ".git/refs/remotes/origin/main"
    lock = leave_dulwich_lock(tracking, tracking.read_text().strip())
    os.utime(lock, (lock.stat().st_atime - 60, lock.stat().st_mtime - 60))
    result = run_cli("-C", str(root), "remote", "remove", "origin")
    assert (result.exit_code, result.output) == (0, "Removed remote origin\n")
    assert not lock.exists() and not tracking.exists()
    git(root, "fsck", "--strict")


def test_a_lock_held_by_a_live_git_command_is_never_removed(tmp_path: Path) -> None:
    """'git commit -a' keeps index.lock while its editor is open, for minutes: however old
    the lock, memfs leaves it (and skips its own index write) while git works there."""
    root = make_agent(tmp_path)
    (root / "system/human.md").write_text("edited for git\n")
    editor = tmp_path / "editor.sh"
    release = tmp_path / "release"
    editor.write_text(
        f'#!/bin/sh\nwhile [ ! -e {release} ]; do sleep 0.05; done\necho msg > "$1"\n'
    )
    editor.chmod(0o755)
    lock = root / ".git/index.lock"
    committing = subprocess.Popen(
        ["git", "commit", "-qa"],
        cwd=root,
        env={**_git_env(), "GIT_EDITOR": str(editor)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not lock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lock.exists(), "git commit never took index.lock"
        os.utime(lock, (time.time() - 600, time.time() - 600))  # old, and still live
        (root / "system/persona.md").write_text("edited for memfs\n")
        result = run_cli("-C", str(root), "commit")
        assert result.exit_code == 0, result.stderr
        assert lock.exists(), "memfs removed the lock of a running git commit"
    finally:
        release.touch()
        _, git_stderr = committing.communicate(timeout=30)
    # memfs committed meanwhile, so git's commit finds HEAD moved and refuses, as it does
    # between two git commands: its lock was never taken from it, and nothing is lost
    assert "lock" not in git_stderr.replace("cannot lock ref", ""), git_stderr
    assert git(root, "show", "HEAD:system/human.md") == "edited for git\n"
    git(root, "fsck", "--strict")


def test_a_pack_lock_left_by_a_killed_fetch_does_not_stop_the_next_pull(tmp_path: Path) -> None:
    """A fetch from a git remote killed while dulwich stored its pack leaves
    ``objects/pack/pack-<name>.idx.lock``; the same pack fetched again met it, and every later
    pull ended in an internal error (found by test_crash's random kills)."""
    root = make_agent(tmp_path)  # pushed to a bare repo as origin
    other = tmp_path / "other"
    assert run_cli("clone", str(tmp_path / "hub.git"), str(other)).exit_code == 0
    write(other, "reference/elsewhere.md", "written elsewhere\n")
    assert run_cli("-C", str(other), "sync").exit_code == 0
    # learn the pack this pull stores, in a copy, then leave its lock in the real one
    rehearsal = tmp_path / "rehearsal"
    subprocess.run(["cp", "-a", str(root), str(rehearsal)], check=True)
    before = set((root / ".git/objects/pack").glob("pack-*.idx"))
    assert run_cli("-C", str(rehearsal), "pull").exit_code == 0
    stored = {p.name for p in (rehearsal / ".git/objects/pack").glob("pack-*.idx")}
    new = sorted(stored - {p.name for p in before})
    assert new, "the pull stored no pack"
    locks = [root / ".git/objects/pack" / f"{name}.lock" for name in new]
    for lock in locks:
        lock.write_bytes(b"")
        os.utime(lock, (time.time() - 60, time.time() - 60))
    result = run_cli("-C", str(root), "pull")
    assert result.exit_code == 0, result.output
    assert (root / "reference/elsewhere.md").read_text() == "written elsewhere\n"
    git(root, "fsck", "--strict")
