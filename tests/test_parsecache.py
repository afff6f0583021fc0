"""The per-command snapshot and its caches: parsed memory files (memfs/parsecache.py), the git
index read as a stat cache and as HEAD's tree (memfs/gitindex.py, memfs/indexfile.py).

Every cache is only an optimisation: each test checks outcomes (what status, check and
context report, what git sees) with the cache present, missing, garbled or stale; counters
(files parsed, files hashed) show the work is proportional to what changed.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import time
from pathlib import Path

import pytest

import memfs
from memfs import faults, gitindex, parsecache, statusrecord, sync, worktree
from memfs.context import build_context
from memfs.remotes.configure import add_remote

from .conftest import assert_git_agrees, git, write
from .servers import bare_repo

PARSED = Path(".git/memfs/parsed.bin")
DAY_NS = 86_400 * 1_000_000_000


@pytest.fixture(autouse=True)
def no_status_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every status here works from the tree: these tests count what the caches beneath
    it save (a status answered from memfs.statusrecord parses and hashes nothing)."""
    monkeypatch.setattr(statusrecord, "RACY_NS", 10**18)  # no tree is old enough to record


def make_agent(tmp_path: Path, files: int = 20) -> memfs.Agent:
    """An agent with ``files`` notes (one broken, one over its limit), all in the past: a
    file modified in the last moments is never cached (racy), so its stat must be older."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    for i in range(files):
        write(
            agent.root,
            f"reference/t{i % 4}/n{i:03d}.md",
            f"---\ndescription: note {i}\n---\nfact\n",
        )
    write(agent.root, "reference/broken.md", "---\ndescription: [unclosed\n---\nbody\n")
    write(agent.root, "system/tight.md", "---\nlimit: 3\n---\nmore than three\n")
    agent.commit()
    age_everything(agent.root)
    return agent


def age_everything(root: Path) -> None:
    """Move every work-tree file's mtime a day back (its ctime stays now)."""
    past = time.time_ns() - DAY_NS
    for path in root.rglob("*"):
        if ".git" not in path.parts and path.is_file():
            os.utime(path, ns=(past, past))


def outcomes(agent: memfs.Agent) -> tuple[object, ...]:
    """What status, check and context report: must not depend on any cache."""
    status = agent.status().to_dict()
    return status, [p.to_dict() for p in agent.check()], build_context(agent).render()


def with_checksum(data: bytes) -> bytes:
    return data + hashlib.sha1(data).digest()


def read_cache(cache: Path) -> tuple[int, dict[str, tuple[object, ...]]]:
    """The parse cache's format and entries (marshal, then the SHA-1 of the rest)."""
    raw = cache.read_bytes()
    assert hashlib.sha1(raw[:-20]).digest() == raw[-20:]
    return marshal.loads(raw[:-20])  # type: ignore[no-any-return]


def parsed_during(action: object) -> int:
    before = parsecache.files_parsed
    action()  # type: ignore[operator]
    return parsecache.files_parsed - before


def test_results_are_the_same_with_the_cache_missing_garbled_or_of_another_format(
    tmp_path: Path,
) -> None:
    agent = make_agent(tmp_path)
    cache = agent.root / PARSED
    fresh = outcomes(agent)
    assert "invalid YAML" in json.dumps(fresh[0]) and "over its limit" in json.dumps(fresh[0])
    assert cache.exists()
    assert outcomes(agent) == fresh  # from the cache
    format_, entries = read_cache(cache)
    garbage_files = [
        b"", b"{not json", b"\xff\xfe", *map(marshal.dumps, ([], (2, [1]), (2,), 7)),
        with_checksum(marshal.dumps([])), with_checksum(marshal.dumps((2, [1]))),
        with_checksum(marshal.dumps((2, {"a.md": None}))), with_checksum(b"\x00garbage"),
        cache.read_bytes()[:-1],  # cut short
        # entries of the wrong type without a checksum vouching for them
        marshal.dumps((format_, {p: (*e[:6], 5, *e[7:]) for p, e in entries.items()})),
    ]  # fmt: skip
    for garbage in garbage_files:
        cache.write_bytes(garbage)
        assert outcomes(agent) == fresh, garbage
    # a well-formed file of the right format whose entries are nonsense is ignored per entry
    cache.write_bytes(with_checksum(marshal.dumps((format_, {p: (1, "x") for p in entries}))))
    assert outcomes(agent) == fresh
    cache.write_bytes(with_checksum(marshal.dumps((99, read_cache(cache)[1]))))
    assert parsed_during(agent.status) == len(entries)  # another format: nothing trusted
    # the JSON file of format 1 goes once the new one is written
    old = agent.root / ".git/memfs/parsed.json"
    old.write_text(json.dumps({"format": 1, "entries": {}}))
    cache.unlink()
    agent.status()
    assert cache.exists() and not old.exists()
    cache.unlink()
    assert outcomes(agent) == fresh


def test_an_unchanged_agent_parses_nothing_and_one_edit_parses_one_file(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    agent.status()  # fills the cache
    assert parsed_during(agent.status) == 0
    assert parsed_during(lambda: build_context(agent)) == 0
    note = agent.root / "reference/t1/n005.md"
    note.write_text("---\ndescription: edited\nlimit: x\n---\nfact\n")
    past = time.time_ns() - DAY_NS
    os.utime(note, ns=(past, past))
    assert parsed_during(agent.status) == 1
    assert any(p.path == "reference/t1/n005.md" for p in agent.status().problems)


def test_an_edit_keeping_size_and_mtime_is_parsed_again(tmp_path: Path) -> None:
    """touch -d back after an edit of the same size: only ctime (in place) or the inode
    (replaced, as editors save) tells the file changed; both are in the key."""
    agent = make_agent(tmp_path)
    note = agent.root / "reference/t2/n006.md"
    agent.status()
    original = note.stat()
    assert not [p for p in agent.check() if p.path == "reference/t2/n006.md"]
    # in place: same inode, same size, mtime put back; ctime moves
    note.write_text(
        "---\ndescription: [note 6\n---\nfact\n"[: original.st_size].ljust(original.st_size)
    )
    os.utime(note, ns=(original.st_atime_ns, original.st_mtime_ns))
    edited = note.stat()
    assert (edited.st_size, edited.st_mtime_ns, edited.st_ino) == (
        original.st_size, original.st_mtime_ns, original.st_ino,
    )  # fmt: skip
    assert [p.path for p in agent.check() if "invalid YAML" in p.message].count(
        "reference/t2/n006.md"
    ) == 1
    # replaced by a new file (new inode), size and mtime as before
    replacement = note.with_name("n006.md.new")
    replacement.write_text(f"---\ndescription: note 6\n---\n{'y' * 4}\n"[: original.st_size])
    os.utime(replacement, ns=(original.st_atime_ns, original.st_mtime_ns))
    os.replace(replacement, note)
    assert not [p for p in agent.check() if p.path == "reference/t2/n006.md"]
    assert "n006.md: note 6" in build_context(agent).render()


def test_a_racily_clean_entry_is_not_trusted(tmp_path: Path) -> None:
    """An entry whose file was modified no earlier than the cache was written may hide a
    second edit in the same timestamp tick: git's rule, it is parsed again."""
    agent = make_agent(tmp_path)
    agent.status()
    cache = agent.root / PARSED
    note = agent.root / "reference/t3/n007.md"
    assert parsed_during(agent.status) == 0
    racy = note.stat().st_mtime_ns
    os.utime(cache, ns=(racy, racy))  # the cache "written" in the file's own tick
    assert parsed_during(agent.status) >= 1
    # and a file modified in the moments before it is read is not kept at all
    fresh = write(agent.root, "reference/fresh.md", "---\ndescription: new\n---\nx\n")
    soon = time.time_ns() + 10 * 1_000_000_000
    os.utime(fresh, ns=(soon, soon))  # "now", as seen by a slow status, deterministically
    agent.status()
    assert "reference/fresh.md" not in read_cache(cache)[1]


def test_a_commit_after_one_edit_hashes_one_file_and_git_agrees(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    agent.refresh_index()  # the index vouches for every file again (their stat moved back)
    write(agent.root, "reference/t0/n004.md", "---\ndescription: changed\n---\nnew fact\n")
    before = gitindex.files_hashed
    info = agent.commit()
    assert info is not None and info.summary == "memfs: update reference/t0/n004.md"
    assert gitindex.files_hashed - before == 1
    assert_git_agrees(agent.root)
    before = gitindex.files_hashed
    assert agent.status().clean
    assert gitindex.files_hashed - before <= 1  # the edited file may be racy, nothing else


def test_head_tree_from_the_index_gives_way_when_git_changes_the_index(tmp_path: Path) -> None:
    """The index stands for HEAD's tree only while memfs's record of it holds: a `git add`
    of an edit (HEAD unchanged) must not make memfs think HEAD holds the edit."""
    agent = make_agent(tmp_path)
    write(agent.root, "reference/t1/n001.md", "staged by git\n")
    git(agent.root, "add", "reference/t1/n001.md")
    assert [(c.status, c.path) for c in agent.status().changes] == [
        ("modified", "reference/t1/n001.md")
    ]
    git(agent.root, "commit", "-qm", "by git")
    assert agent.status().clean
    write(agent.root, "reference/t1/n001.md", "after git's commit\n")
    assert agent.commit() is not None
    assert agent.history.read_file("HEAD", "reference/t1/n001.md") == b"after git's commit\n"
    assert_git_agrees(agent.root)


def test_a_deleted_or_garbled_index_and_record_cost_only_time(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    expected = outcomes(agent)
    record = agent.root / ".git/memfs/index-tree"
    assert record.exists()
    record.write_text("0" * 40 + " 1 2 3 4\n")
    assert outcomes(agent) == expected
    (agent.root / ".git/index").write_bytes(b"DIRC garbage")
    assert outcomes(agent) == expected
    write(agent.root, "reference/t2/n002.md", "edited\n")
    assert agent.commit() is not None
    assert_git_agrees(agent.root)


def test_a_pull_walks_the_tree_once_and_keeps_edits_landing_during_its_fetch(
    tmp_path: Path,
) -> None:
    """One snapshot per pull: its commit's. The merge takes none of its own (an edit landing
    after that commit is protected by the update, which replaces a file only while it holds
    its committed version) and the index after it is written for the changed paths only."""
    a = memfs.init(tmp_path / "machine-a" / "agent", name="shared")
    add_remote(a.history, "origin", str(bare_repo(tmp_path / "hub.git")))
    assert sync.push(a).ok
    b = sync.clone(str(tmp_path / "hub.git"), tmp_path / "machine-b" / "agent")
    write(a.root, "system/human.md", "from A\n")
    write(a.root, "reference/only-a.md", "new on A\n")
    assert sync.push(a).ok

    walks = worktree.scans
    assert sync.pull(b).ok  # a fast-forward
    assert worktree.scans - walks == 1
    assert (b.root / "system/human.md").read_text() == "from A\n"
    assert b.status().clean
    assert_git_agrees(b.root)

    write(a.root, "system/human.md", "from A, again\n")
    assert sync.push(a).ok

    def edits_land() -> None:  # while B fetches: the file the remote changed, and another
        write(b.root, "system/human.md", "typed on B during the fetch\n")
        write(b.root, "reference/b-note.md", "also typed during the fetch\n")

    with faults.at("fetch.import", edits_land):
        report = sync.pull(b)
    assert report.ok
    tree = {path: b.history.blob(e.sha) for path, e in b.history.tree_of(b.history.head()).items()}
    versions = {data for path, data in tree.items() if path.startswith("system/human")}
    assert versions == {b"from A, again\n", b"typed on B during the fetch\n"}
    assert (b.root / "reference/b-note.md").read_text() == "also typed during the fetch\n"
    assert sync.sync(b).ok
    assert b.status().clean
    assert_git_agrees(b.root)


def test_a_commit_says_what_its_snapshot_left_out(tmp_path: Path) -> None:
    """``Agent.skipped`` after a commit is what ``status().skipped`` says: a command that
    reports it needs no second walk of the work tree."""
    agent = make_agent(tmp_path, files=4)
    (agent.root / "reference/outside.md").symlink_to("/etc/hostname")
    write(agent.root, "reference/t0/n000.md", "edited\n")
    assert agent.commit() is not None
    assert [s.path for s in agent.skipped] == ["reference/outside.md"]
    assert agent.skipped == agent.status().skipped


@pytest.mark.parametrize(
    "size", [0, 1, parsecache.SMALL - 1, parsecache.SMALL, 3 * parsecache.SMALL]
)
def test_the_checksum_is_sha1_at_every_size(size: int) -> None:
    """The cache's checksum is SHA-1 whichever implementation computes it (CPython's own for
    a small file, OpenSSL's for a large one): caches written either way stay readable."""
    data = os.urandom(size)
    assert parsecache._sha1(data) == hashlib.sha1(data).digest()
