"""Nothing outside the agent is read or written, after full symlink resolution (issue 10, 4).

Two symlinks that each look harmless can reach outside together: ``system/d/l2 ->
../../reference`` and ``system/d/l1.md -> l2/../../../SECRET.txt``. A remote made with the
real git CLI sends them; memfs must refuse the tree, and whatever links are on disk, no
memory read (context, ls, conflicts) and no commit follows them out.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.errors import UnsafePathError
from memfs.remotes.configure import add_remote

from .conftest import git, memfs_process, run_cli, write
from .servers import bare_repo

SECRET = "the neighbour's wifi password"


def _hostile_push(tmp_path: Path, hub: Path) -> None:
    """An attacker with push access adds the two links with plain git."""
    work = tmp_path / "attacker"
    git(tmp_path, "clone", "-q", str(hub), str(work))
    (work / "system/d").mkdir(parents=True)
    write(work, "reference/x.md", "x\n")
    os.symlink("../../reference", work / "system/d/l2")
    os.symlink("l2/../../../SECRET.txt", work / "system/d/l1.md")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "two harmless-looking links")
    git(work, "push", "-q", "origin", "HEAD:main")


def test_a_symlink_chain_out_of_the_agent_is_refused_by_pull_and_clone(tmp_path: Path) -> None:
    (tmp_path / "SECRET.txt").write_text(SECRET)
    hub = bare_repo(tmp_path / "hub.git")
    a = memfs.init(tmp_path / "a" / "agent", name="shared")
    add_remote(a.history, "origin", str(hub))
    assert sync.push(a).ok
    b = sync.clone(str(hub), tmp_path / "b" / "agent")  # l1.md would reach tmp_path/SECRET.txt
    _hostile_push(tmp_path, hub)

    result = run_cli("-C", str(b.root), "pull")
    assert result.exit_code == 1
    assert result.stderr == (
        "memfs: refusing unsafe path 'system/d/l1.md': its symlinks lead outside the agent\n"
    )
    assert not os.path.lexists(b.root / "system/d")
    assert not (b.root / "reference").exists()

    with pytest.raises(UnsafePathError, match="lead outside the agent"):
        sync.clone(str(hub), tmp_path / "c" / "agent")
    assert not (tmp_path / "c" / "agent").exists()


def test_reads_never_follow_links_out_of_the_agent(agent: memfs.Agent, tmp_path: Path) -> None:
    """Links in history and on disk (here committed with plain git, as an older memfs took
    them from a remote): context, ls, check and conflicts never read out through them."""
    outside = agent.root.parent
    (outside / "SECRET.txt").write_text(SECRET + "\n<<<<<<< x\n=======\n>>>>>>> y\n")
    (agent.root / "system/d").mkdir()
    (agent.root / "reference").mkdir()
    os.symlink("../../reference", agent.root / "system/d/l2")
    os.symlink("l2/../../SECRET.txt", agent.root / "system/d/l1.md")
    os.symlink("../../SECRET.txt", agent.root / "system/direct.md")
    git(agent.root, "add", "-A")
    git(agent.root, "commit", "-qm", "links")
    for args in (["context"], ["context", "--format", "json"], ["ls"], ["conflicts"]):
        result = run_cli("-C", str(agent.root), *args)
        assert SECRET not in result.output + result.stderr, args
    status = run_cli("-C", str(agent.root), "status").output
    assert "system/d/l1.md" in status and "system/direct.md" in status
    assert SECRET not in str({label: m.value for label, m in agent.memory.items()})


def test_the_watchers_commit_never_reads_beneath_a_symlinked_folder(
    agent: memfs.Agent, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.md").write_text(SECRET)
    os.symlink(str(elsewhere), agent.root / "reference")  # skipped: absolute, leaves the agent
    assert agent.commit_paths(["reference/x.md"]) is None
    tree = agent.history.tree_of(agent.history.head())
    assert "reference/x.md" not in tree


def test_read_inside_checks_the_file_the_kernel_opened(agent: memfs.Agent) -> None:
    """A folder link in the middle of a path (followed by open) and a link as the last part
    (O_NOFOLLOW refuses it, realpath decides): both are checked where they end."""
    from memfs.pathcheck import read_inside

    (agent.root.parent / "SECRET.txt").write_text(SECRET)
    os.symlink("..", agent.root / "up")
    os.symlink("up/SECRET.txt", agent.root / "last.md")
    os.symlink("system", agent.root / "pinned")
    for path in ("up/SECRET.txt", "last.md", f"up/{agent.root.name}/.git/HEAD", ".git/HEAD"):
        with pytest.raises(UnsafePathError):
            read_inside(agent.root, path)
    assert (
        read_inside(agent.root, "pinned/human.md") == (agent.root / "system/human.md").read_bytes()
    )


@pytest.mark.parametrize("how", ["fifo", "symlink-to-fifo"])
def test_a_memory_file_become_a_named_pipe_never_hangs_a_command(
    agent: memfs.Agent, how: str
) -> None:
    """A tracked memory file replaced by a FIFO (or a link to one inside the agent): the
    file is kept at its committed version, as any file memfs will not read, and ``memfs
    context`` (what a harness calls every turn) hung forever opening it for reading."""
    human = agent.root / "system" / "human.md"
    human.unlink()
    if how == "fifo":
        os.mkfifo(human)
    else:
        os.mkfifo(agent.root / "pipe")
        human.symlink_to("../pipe")
    for command in ("context", "status", "ls", "check"):
        done = memfs_process(command, cwd=agent.root, timeout=10)
        assert done.returncode in (0, 1), (command, done.stderr)
        assert "Traceback" not in done.stderr


def test_a_tree_entry_named_with_a_slash_is_refused_by_pull(tmp_path: Path) -> None:
    """A hand-made tree naming an entry ``a/b.md`` inside ``system`` (git fsck --strict:
    fullPathname) would be written as system/a/b.md and the invalid tree carried on: refused
    as an unsafe path, nothing written (found from outside)."""
    hub = bare_repo(tmp_path / "hub.git")
    a = memfs.init(tmp_path / "a" / "agent", name="shared")
    add_remote(a.history, "origin", str(hub))
    assert sync.push(a).ok
    b = sync.clone(str(hub), tmp_path / "b" / "agent")

    def hub_git(*args: str, data: bytes | None = None) -> str:
        run = subprocess.run(
            ["git", "-c", "user.name=attacker", "-c", "user.email=a@example.org", "-C", str(hub),
             *args],
            input=data, capture_output=True, check=True,
        )  # fmt: skip
        return run.stdout.decode().strip()

    blob = hub_git("hash-object", "-w", "--stdin", data=b"---\ndescription: x\n---\nx\n")
    top = hub_git("rev-parse", "main^{tree}")
    system = hub_git("rev-parse", "main:system")
    listing = subprocess.run(
        ["git", "-C", str(hub), "cat-file", "tree", system], capture_output=True, check=True
    ).stdout
    evil = hub_git(
        "hash-object", "-w", "-t", "tree", "--literally", "--stdin",
        data=listing + b"100644 a/b.md\0" + bytes.fromhex(blob),
    )  # fmt: skip
    entries = subprocess.run(
        ["git", "-C", str(hub), "ls-tree", top], capture_output=True, text=True, check=True
    ).stdout.replace(system, evil)
    tree = hub_git("mktree", data=entries.encode())
    commit = hub_git("commit-tree", tree, "-p", "main", "-m", "a slash in a name")
    hub_git("update-ref", "refs/heads/main", commit)

    result = run_cli("-C", str(b.root), "pull")
    assert result.exit_code == 1
    assert result.stderr.startswith("memfs: refusing unsafe path 'a/b.md': tree ")
    assert not (b.root / "system" / "a").exists()
    assert git(b.root, "rev-parse", "HEAD") != commit
