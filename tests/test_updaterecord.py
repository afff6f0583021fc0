"""The commit record carried across a pull's merge (memfs/updaterecord.py): the next commit
is made from the record, and still commits every edit made before, during or after the pull.

Every test ends as test_fastcommit's do: HEAD's tree compared with the work tree as the real
git CLI hashes it, ``git fsck --strict`` and ``git status`` clean.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import memfs
from memfs import commitrecord, fastcommit, statusrecord, sync
from memfs.remotes.configure import add_remote

from .conftest import write
from .test_fastcommit import assert_head_is_disk, settle

DEEP = "reference/a/b/c"


def two_agents(tmp_path: Path) -> tuple[memfs.Agent, memfs.Agent]:
    """Machine A with files in a deep folder, pushed to a bare folder; B cloned from it,
    with its last commit on record (every entry older than the racy window)."""
    url = f"memfs::file://{tmp_path / 'cloud'}"
    a = memfs.init(tmp_path / "a" / "agent", name="shared")
    for name in ("x", "y", "z"):
        write(a.root, f"{DEEP}/{name}.md", f"---\ndescription: {name}\n---\n{name}\n")
    write(a.root, "reference/other.md", "---\ndescription: o\n---\no\n")
    add_remote(a.history, "origin", url)
    assert sync.push(a).ok
    root = sync.clone(url, tmp_path / "b" / "agent").root
    b = memfs.open(root)  # as the next command would
    assert b.commit() is None  # the first writes .git/info/exclude: too fresh for a record
    settle_all(b)
    assert b.commit() is None
    assert _record_head(b) == b.history.head()
    return a, b


def settle_all(agent: memfs.Agent) -> None:
    """``settle`` the work tree and the git folder's files the record is keyed by."""
    settle(agent.root)
    control = agent.history.control_dir
    keyed = [os.lstat(p) for p in (control / n for n in statusrecord.OUTSIDE) if p.exists()]
    until = max(max(st.st_ctime_ns, st.st_mtime_ns) + statusrecord.window(st.st_ctime_ns)
                for st in keyed)  # fmt: skip
    deadline = time.monotonic() + 5
    while time.time_ns() <= until + 20_000_000:
        assert time.monotonic() < deadline, "the clock does not advance"
        time.sleep(0.005)


def _record_head(agent: memfs.Agent) -> str | None:
    record = commitrecord.load(agent)
    return None if record is None else record["key"][2]


def _from_record(agent: memfs.Agent) -> bool:
    before = fastcommit.commits_fast
    assert agent.commit() is not None
    return fastcommit.commits_fast > before


def test_a_fast_forward_carries_the_record_and_the_next_commit_uses_it(tmp_path: Path) -> None:
    a, b = two_agents(tmp_path)
    write(a.root, f"{DEEP}/x.md", "---\ndescription: x\n---\nfrom a\n")
    assert sync.push(a).ok
    outcome = sync.pull(b).remotes[0]
    assert outcome.integrated == "fast-forward"
    assert _record_head(b) == b.history.head() == a.history.head()
    settle_all(b)
    write(b.root, f"{DEEP}/y.md", "---\ndescription: y\n---\nedited on b\n")
    assert _from_record(b)
    assert (b.root / DEEP / "x.md").read_text().endswith("from a\n")
    assert_head_is_disk(b)


def test_a_merge_keeps_a_local_edit_in_the_same_deep_folder(tmp_path: Path) -> None:
    a, b = two_agents(tmp_path)
    write(a.root, f"{DEEP}/x.md", "---\ndescription: x\n---\nfrom a\n")
    assert sync.push(a).ok
    write(b.root, f"{DEEP}/y.md", "---\ndescription: y\n---\nedited on b\n")  # not committed
    assert sync.pull(b).remotes[0].integrated == "merged"
    assert (b.root / DEEP / "x.md").read_text().endswith("from a\n")
    assert (b.root / DEEP / "y.md").read_text().endswith("edited on b\n")
    assert _record_head(b) == b.history.head()  # carried to the merge commit
    assert_head_is_disk(b)
    write(b.root, f"{DEEP}/z.md", "---\ndescription: z\n---\nnext\n")  # the record sees it
    assert _from_record(b)
    assert_head_is_disk(b)


def test_an_edit_after_the_pull_to_the_file_it_rewrote_is_committed(tmp_path: Path) -> None:
    a, b = two_agents(tmp_path)
    write(a.root, f"{DEEP}/x.md", "---\ndescription: x\n---\nfrom a\n")
    assert sync.push(a).ok
    assert sync.pull(b).ok
    # at once, in the same clock tick as the pull's write, and of the same size
    write(b.root, f"{DEEP}/x.md", "---\ndescription: x\n---\nfrom b\n")
    b.commit()
    assert_head_is_disk(b)
    assert b.history.blob(b.history.tree_of(b.history.head())[f"{DEEP}/x.md"].sha).endswith(
        b"from b\n"
    )


def test_a_collision_with_an_uncommitted_edit_keeps_the_edit(tmp_path: Path) -> None:
    a, b = two_agents(tmp_path)
    write(a.root, f"{DEEP}/x.md", "---\ndescription: x\n---\nfrom a\n")
    assert sync.push(a).ok
    write(b.root, f"{DEEP}/x.md", "---\ndescription: x\n---\nunsaved b\n")  # not committed
    report = sync.pull(b)
    assert report.ok and report.remotes[0].conflicts
    texts = [p.read_text() for p in (b.root / DEEP).iterdir() if p.name.startswith("x")]
    assert any(t.endswith("unsaved b\n") for t in texts)
    assert any(t.endswith("from a\n") for t in texts)
    assert_head_is_disk(b)


@pytest.mark.parametrize("change", ["added", "removed"])
def test_a_path_added_or_removed_by_the_pull_drops_the_record(tmp_path: Path, change: str) -> None:
    a, b = two_agents(tmp_path)
    if change == "added":
        write(a.root, f"{DEEP}/new.md", "---\ndescription: n\n---\nnew\n")
    else:
        (a.root / DEEP / "z.md").unlink()
    assert sync.push(a).ok
    assert sync.pull(b).ok
    assert _record_head(b) != b.history.head()  # none, or stale: the next commit walks
    write(b.root, f"{DEEP}/y.md", "---\ndescription: y\n---\nedited on b\n")
    assert not _from_record(b)
    assert_head_is_disk(b)
