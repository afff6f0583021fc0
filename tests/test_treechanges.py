"""What changed between two commits, read from their tree objects with equal subtrees skipped
(History.tree_changes, tree_after), agrees with flattening both trees; and a fetched commit is
still refused for a submodule that arrives deep in a folder since the last fetch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dulwich.objects import Commit, Tree
from dulwich.repo import Repo

import memfs
from memfs import sync
from memfs.errors import RemoteError
from memfs.remotes.configure import add_remote
from memfs.trees import compare_trees

from .conftest import write
from .servers import bare_repo


def history_of_changes(tmp_path: Path) -> tuple[memfs.Agent, list[str]]:
    """An agent whose commits add, edit, delete, turn a file into a folder and back, change
    a mode, and touch deep and shallow folders."""
    agent = memfs.init(tmp_path / "agent", name="changes")
    root = agent.root
    steps = [
        lambda: write(root, "reference/a/b/c/deep.md", "---\ndescription: d\n---\n1\n"),
        lambda: write(root, "reference/a/b/c/deep.md", "---\ndescription: d\n---\n2\n"),
        lambda: write(root, "reference/a/x.md", "---\ndescription: x\n---\nx\n"),
        lambda: shutil.rmtree(root / "reference/a/b"),
        lambda: write(root, "reference/a/b", "---\ndescription: b\n---\nnow a file\n"),
        lambda: ((root / "reference/a/b").unlink(), write(root, "reference/a/b/n.md", "n\n")),
        lambda: (root / "reference/a/x.md").chmod(0o755),
        lambda: write(root, "notes.md", "---\ndescription: top\n---\ntop\n"),
    ]
    shas = [agent.history.head()]
    for step in steps:
        step()
        assert agent.commit() is not None
        shas.append(agent.history.head())
    return agent, [sha for sha in shas if sha is not None]


def test_tree_changes_agree_with_flattened_trees(tmp_path: Path) -> None:
    agent, shas = history_of_changes(tmp_path)
    history = agent.history
    for a in shas:
        for b in shas:
            old, new = history.tree_of(a), history.tree_of(b)
            changes = history.tree_changes(a, b)
            assert changes is not None
            expected = {c.path: (c.old, c.new) for c in compare_trees(old, new)}
            assert changes == expected, (a[:7], b[:7])
            assert history.tree_after(old, a, b) == new


def _deep_gitlink(hub: Path) -> None:
    """A commit on the hub's main adding a submodule entry three folders deep."""
    repo = Repo(str(hub))
    head = repo[repo.refs[b"refs/heads/main"]]
    assert isinstance(head, Commit)
    inner = Tree()
    inner.add(b"vendor", 0o160000, b"1" * 40)
    repo.object_store.add_object(inner)
    middle = Tree()
    middle.add(b"c", 0o040000, inner.id)
    repo.object_store.add_object(middle)
    top = repo[head.tree]
    assert isinstance(top, Tree)
    outer = Tree()
    outer.add(b"b", 0o040000, middle.id)
    repo.object_store.add_object(outer)
    top.add(b"deep", 0o040000, outer.id)
    repo.object_store.add_object(top)
    commit = Commit()
    commit.tree, commit.parents = top.id, [head.id]
    commit.author = commit.committer = b"someone <someone@example.com>"
    commit.author_time = commit.commit_time = head.commit_time + 1
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"a submodule, deep"
    repo.object_store.add_object(commit)
    repo.refs[b"refs/heads/main"] = commit.id
    repo.close()


def test_a_submodule_deep_in_a_changed_folder_is_refused(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    a = memfs.init(tmp_path / "a", name="deep")
    add_remote(a.history, "origin", str(hub))
    assert sync.push(a).ok
    b = sync.clone(str(hub), tmp_path / "b")
    before = b.history.head()
    _deep_gitlink(hub)
    with pytest.raises(RemoteError, match="holds a submodule at 'deep/b/c/vendor'"):
        sync.fetch_remote(b, next(iter(sync.list_remotes(b.history))))
    assert b.history.head() == before
