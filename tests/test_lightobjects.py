"""The reads a push makes without dulwich (memfs/history/lightobjects.py) answer as dulwich
does, or leave the object to dulwich: every object of real repositories, loose, packed by
memfs and packed with deltas by ``git gc``; commits and trees of unusual shapes; a missing
object; a push and a clone of a repository git packed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from dulwich.objects import Commit, Tree
from dulwich.repo import Repo

import memfs
from memfs import sync
from memfs.errors import RepositoryDamagedError
from memfs.history.lightobjects import LightObjects, parse_commit, parse_tree
from memfs.remotes.configure import add_remote

from .conftest import git, write

TYPES = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}


def every_object(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch-check=%(objectname)"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.split()


def synced_agent(tmp_path: Path) -> memfs.Agent:
    """An agent with packs (its pushes kept) and loose objects (a commit not pushed)."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    add_remote(agent.history, "origin", "memfs::" + (tmp_path / "cloud").as_uri())
    for i in range(4):
        write(agent.root, f"notes/n{i % 2}.md", f"edit {i}\n" * (i + 1))
        write(agent.root, f"deep/a/b/c{i}.md", f"deep {i}\n")
        assert sync.push(agent).ok
    write(agent.root, "notes/loose.md", "only loose\n")
    agent.commit()
    return agent


def compare_with_dulwich(root: Path) -> tuple[int, int]:
    """Every object read both ways: (answered here, left to dulwich)."""
    light = LightObjects(root / ".git", plain=True)
    repo = Repo(str(root))
    answered = left = 0
    try:
        for sha in every_object(root):
            assert light.contains(sha) is True
            found = light.raw(sha)
            if found is None:
                left += 1
                continue
            answered += 1
            assert found == repo.object_store.get_raw(sha.encode()), sha
            if found[0] == 1:
                ours, theirs = parse_commit(sha.encode(), found[1]), repo[sha.encode()]
                assert isinstance(theirs, Commit) and ours is not None
                assert (ours.id, ours.tree, ours.parents, ours.commit_time) == (
                    theirs.id,
                    theirs.tree,
                    theirs.parents,
                    theirs.commit_time,
                )
            if found[0] == 2:
                tree = repo[sha.encode()]
                assert isinstance(tree, Tree)
                assert parse_tree(found[1]) == {e.path: (e.mode, e.sha) for e in tree.iteritems()}
    finally:
        light.close()
        repo.close()
    return answered, left


def test_loose_and_memfs_packed_objects_read_as_dulwich_reads_them(tmp_path: Path) -> None:
    agent = synced_agent(tmp_path)
    assert list((agent.root / ".git/objects/pack").glob("*.idx"))
    answered, left = compare_with_dulwich(agent.root)
    assert answered > 20 and left == 0  # memfs stores every object whole


def test_objects_git_packed_with_deltas_are_read_or_left_to_dulwich(tmp_path: Path) -> None:
    agent = synced_agent(tmp_path)
    for i in range(6):  # similar versions of one file: git stores most as deltas
        write(agent.root, "notes/big.md", "".join(f"line {n}\n" for n in range(200 + i)))
        agent.commit()
    git(agent.root, "gc", "--aggressive", "--prune=now")
    assert not list((agent.root / ".git/objects").glob("??/*"))
    answered, left = compare_with_dulwich(agent.root)
    assert answered > 0 and left > 0


def test_a_push_and_a_clone_of_a_repository_git_packed(tmp_path: Path) -> None:
    """After ``git gc`` (deltas), a first push to a new remote packs the whole history, read
    partly by dulwich: the clone has every file and git finds nothing wrong in either."""
    agent = synced_agent(tmp_path)
    for i in range(4):
        write(agent.root, "notes/big.md", "".join(f"line {n}\n" for n in range(100 + i)))
        agent.commit()
    git(agent.root, "gc", "--aggressive", "--prune=now")
    write(agent.root, "notes/after-gc.md", "written after gc\n")
    add_remote(agent.history, "second", "memfs::" + (tmp_path / "second").as_uri())
    assert sync.push(agent, "second").ok
    clone = sync.clone("memfs::" + (tmp_path / "second").as_uri(), tmp_path / "clone")
    assert clone.history.head() == agent.history.head()
    assert clone.history.tree_of(clone.history.head()) == agent.history.tree_of(
        agent.history.head()
    )
    assert (clone.root / "notes/after-gc.md").read_text() == "written after gc\n"
    git(agent.root, "fsck", "--strict")
    git(clone.root, "fsck", "--strict")


def test_a_missing_object_is_absent_and_a_read_of_it_is_damage(tmp_path: Path) -> None:
    agent = synced_agent(tmp_path)
    missing = "0123456789abcdef0123456789abcdef01234567"
    light = LightObjects(agent.root / ".git", plain=True)
    assert light.contains(missing) is False
    with pytest.raises(KeyError):
        light.raw(missing)
    assert light.contains("../../config" + "0" * 28) is None  # no path is built from it
    light.close()
    assert not agent.history.has_commit(missing)
    with pytest.raises(RepositoryDamagedError, match=f"object {missing} is missing"):
        agent.history.entries_at(missing, "notes/n0.md")


def test_a_store_with_alternates_is_left_to_dulwich(tmp_path: Path) -> None:
    agent = synced_agent(tmp_path)
    info = agent.root / ".git/objects/info"
    info.mkdir(exist_ok=True)
    (info / "alternates").write_text(str(tmp_path / "elsewhere") + "\n")
    light = LightObjects(agent.root / ".git", plain=True)
    head = agent.history.head()
    assert head is not None
    assert light.contains(head) is None and light.raw(head) is None


SHA = b"a" * 40
COMMITS = [
    b"tree " + SHA + b"\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 2 +0100\n\nmsg\n",
    b"tree "
    + SHA
    + b"\nparent "
    + SHA
    + b"\nparent "
    + b"b" * 40
    + b"\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 1700000000 -0230\nencoding latin-1\n\nm\n",
    b"tree "
    + SHA
    + b"\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 5 +0000\ngpgsig -----BEGIN PGP"
    + b" SIGNATURE-----\n \n iQEz\n -----END PGP SIGNATURE-----\n\nsigned\n",
    b"tree " + SHA + b"\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 3 +0000\n\n",
]


@pytest.mark.parametrize("content", COMMITS)
def test_a_commit_header_reads_as_dulwich_reads_it(content: bytes) -> None:
    commit = Commit.from_string(content)
    ours = parse_commit(commit.id, content)
    assert ours is not None
    assert (ours.tree, ours.parents, ours.commit_time) == (
        commit.tree,
        commit.parents,
        commit.commit_time,
    )


@pytest.mark.parametrize(
    "content",
    [
        b"tree " + SHA + b"\ncommitter C <c@x> 3 +0000\n",  # no blank line after the header
        b"author A <a@x> 1 +0000\ncommitter C <c@x> 3 +0000\n\nno tree\n",
        b"tree " + SHA + b"\ntree " + SHA + b"\ncommitter C <c@x> 3 +0000\n\ntwo trees\n",
        b"tree " + SHA + b"\nauthor A <a@x> 1 +0000\n\nno committer\n",
        b"tree xyz\ncommitter C <c@x> 3 +0000\n\nbad tree\n",
        b"tree " + SHA + b"\ncommitter C <c@x> soon +0000\n\nbad time\n",
    ],
)
def test_an_unusual_commit_is_left_to_dulwich(content: bytes) -> None:
    assert parse_commit(b"c" * 40, content) is None


def entry(mode: bytes, name: bytes, sha: bytes = b"\x11" * 20) -> bytes:
    return mode + b" " + name + b"\0" + sha


def test_a_tree_reads_as_dulwich_reads_it() -> None:
    content = (
        entry(b"100644", b"a.md")
        + entry(b"100755", b"a.sh")
        + entry(b"40000", b"a")  # a folder sorts as "a/": after "a.sh"
        + entry(b"120000", b"link")
        + entry(b"160000", b"sub")
    )
    tree = Tree.from_string(content)
    assert parse_tree(content) == {e.path: (e.mode, e.sha) for e in tree.iteritems()}


@pytest.mark.parametrize(
    "content",
    [
        entry(b"100644", b"b") + entry(b"100644", b"a"),  # out of git's order
        entry(b"100644", b"a") + entry(b"100644", b"a"),  # a name twice
        entry(b"100644", b"a") + entry(b"40000", b"a"),  # a file and a folder of one name
        entry(b"100644", b""),
        entry(b"10064x", b"a"),
        entry(b"100644", b"a")[:-3],  # truncated
    ],
)
def test_an_unusual_tree_is_left_to_dulwich(content: bytes) -> None:
    assert parse_tree(content) is None
