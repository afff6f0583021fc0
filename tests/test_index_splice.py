"""The index written by splicing the changed entries into the one there (memfs/gitindexwrite.py,
memfs/indexfile.py): byte for byte the index written in full, and whatever git wrote
meanwhile (its own index, version 4, extensions, a split index, a conflict) either spliced
soundly or written in full. The real git CLI is the oracle.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import memfs
from memfs import gitindexwrite, indexfile
from memfs.trees import Files, TreeEntry

from .conftest import assert_git_agrees, git, write
from .test_statusrecord import settle


def settled_agent(tmp_path: Path, files: int = 30) -> memfs.Agent:
    """An agent of ``files`` notes, committed with every entry older than the racy window
    (no entry of its index smudged)."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    for i in range(files):
        write(agent.root, f"notes/d{i % 3}/n{i:02d}.md", f"---\ndescription: n{i}\n---\nf{i}\n")
    settle(agent.root)
    agent.commit()
    settle(agent.root)
    return agent


def change(agent: memfs.Agent, kind: str) -> list[str]:
    """Make one kind of change (or several, "+"-joined); the paths changed."""
    root, changed = agent.root, []
    for one in kind.split("+"):
        if one == "edit":
            write(root, "notes/d1/n04.md", "---\ndescription: edited\n---\nlonger than before\n")
            changed.append("notes/d1/n04.md")
        elif one == "touch":  # same content, new stat: rewritten so it is not hashed again
            os.utime(root / "notes/d2/n05.md", ns=(10**18, 10**18))
        elif one == "add":
            write(root, "notes/d0/a-new.md", "---\ndescription: new\n---\nx\n")
            changed.append("notes/d0/a-new.md")
        elif one == "delete":
            (root / "notes/d0/n03.md").unlink()
            changed.append("notes/d0/n03.md")
    settle(root)
    return changed


def on_disk(agent: memfs.Agent) -> tuple[Files, dict[str, os.stat_result]]:
    """HEAD's tree as git lists it, and each of its files' stat now."""
    tree: Files = {}
    for line in git(agent.root, "ls-tree", "-r", "HEAD").splitlines():
        meta, path = line.split("\t", 1)
        mode, _, sha = meta.split()
        tree[path] = TreeEntry(int(mode, 8), sha)
    return tree, {
        path: os.lstat(agent.root / path) for path in tree if (agent.root / path).exists()
    }


def full_commit(agent: memfs.Agent) -> None:
    """A commit down the full path (no commit record): the index is spliced or rewritten."""
    (agent.root / ".git/memfs/commit.bin").unlink(missing_ok=True)
    assert agent.commit() is not None


def assert_index_clean(agent: memfs.Agent) -> None:
    assert_git_agrees(agent.root)
    assert git(agent.root, "diff-index", "--cached", "HEAD") == ""
    assert git(agent.root, "diff-files") == ""


KINDS = ["edit", "touch+edit", "add", "delete", "edit+touch+add+delete"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_spliced_index_is_the_index_written_in_full(tmp_path: Path, kind: str) -> None:
    agent = settled_agent(tmp_path)
    changed = change(agent, kind)
    full_commit(agent)
    tree, stats = on_disk(agent)
    data = (agent.root / ".git/index").read_bytes()
    assert data == indexfile.serialize(tree, stats)
    assert_index_clean(agent)
    # the splice itself, from the index before the commit: the same bytes
    again = settled_agent(tmp_path / "again")
    changed = change(again, kind)
    tree, _ = on_disk(again)  # HEAD's, then the changes: what a commit would store
    for path in changed:
        if (again.root / path).exists():
            sha = git(again.root, "hash-object", path).strip()
            tree[path] = TreeEntry(0o100644, sha)
        else:
            del tree[path]
    stats = {path: os.lstat(again.root / path) for path in tree}
    spliced = gitindexwrite._spliced_for(again.history.control_dir, tree, stats, changed)
    assert spliced is not None and spliced == indexfile.serialize(tree, stats)


def test_an_index_git_rewrote_is_spliced_soundly(tmp_path: Path) -> None:
    agent = settled_agent(tmp_path)
    os.utime(agent.root / "notes/d2/n05.md", ns=(10**18, 10**18))
    git(agent.root, "add", "-A")  # git's own index, with its stat for the touched file
    git(agent.root, "status", "--porcelain")
    settle(agent.root)
    change(agent, "edit+add")
    full_commit(agent)
    tree, stats = on_disk(agent)
    assert (agent.root / ".git/index").read_bytes() == indexfile.serialize(tree, stats)
    assert_index_clean(agent)


@pytest.mark.parametrize(
    "how",
    [
        ["update-index", "--index-version", "4"],
        ["update-index", "--untracked-cache"],
        ["update-index", "--split-index"],
        ["write-tree"],  # a TREE extension
    ],
)
def test_an_index_of_another_form_is_written_soundly(tmp_path: Path, how: list[str]) -> None:
    agent = settled_agent(tmp_path)
    git(agent.root, *how)
    git(agent.root, "status", "--porcelain")  # fills the untracked cache, refreshes
    settle(agent.root)
    change(agent, "edit+delete")
    full_commit(agent)
    assert_index_clean(agent)
    change(agent, "edit+add")
    assert agent.commit() is not None  # the fast path after it
    assert_index_clean(agent)


def test_a_conflicted_index_is_written_in_full(tmp_path: Path) -> None:
    agent = settled_agent(tmp_path)
    sha = git(agent.root, "rev-parse", "HEAD:notes/d1/n04.md").strip()
    git(agent.root, "update-index", "--force-remove", "notes/d1/n04.md")
    info = "".join(f"100644 {sha} {stage}\tnotes/d1/n04.md\n" for stage in (1, 2, 3))
    subprocess.run(
        ["git", "update-index", "--index-info"], cwd=agent.root, input=info.encode(), check=True
    )
    tree, stats = on_disk(agent)
    assert gitindexwrite._spliced_for(agent.history.control_dir, tree, stats, []) is None
    change(agent, "edit")
    full_commit(agent)
    assert_index_clean(agent)


def test_racily_clean_entries_copied_are_smudged_in_either_order(tmp_path: Path) -> None:
    """An entry modified no earlier than the old index was written is copied with its size
    zeroed (git's smudging), whether the splice keeps the order or sorts a new name in."""
    agent = settled_agent(tmp_path, files=6)
    tree, stats = on_disk(agent)
    data = indexfile.serialize(tree, stats)
    entries, raw = indexfile.read(data)
    assert raw is not None
    newest = max(entry[1] for entry in entries.values() if entry is not None)
    edited = "notes/d1/n04.md"
    replaced = indexfile.pack_entry(edited, tree[edited], None)
    added = indexfile.pack_entry("notes/d0/a.md", tree[edited], None)
    for replacements in ({edited: replaced}, {edited: replaced, "notes/d0/a.md": added}):
        spliced, _ = indexfile.read(indexfile.splice(raw, entries, newest, replacements))
        assert list(spliced) == sorted(spliced, key=indexfile.git_order)
        assert set(spliced) == set(tree) | set(replacements)
        for path, entry in spliced.items():
            assert entry is not None
            smudged = path not in replacements and entries[path][1] >= newest - 50_000_000
            assert (entry[3] == 0) == (smudged or path in replacements), path
