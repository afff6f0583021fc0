"""Applying a merge to the work tree: edits landing mid-way, and kills between its writes.

Issue 10, items 2 and 3: an edit that lands while a merge rewrites the work tree was lost,
and a merge stopped between two writes was committed half-applied as a local edit, dropping
one side of a conflict. Each test puts an edit (or a SIGKILL) at an exact point of the write
path (memfs/faults.py) and then checks that every version anyone wrote is still in the tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import memfs
from memfs import faults, sync
from memfs.remotes.configure import add_remote

from .conftest import assert_git_agrees, git, write
from .servers import bare_repo

BASE = {
    "notes/todo": "todo: base\n",  # no extension: its conflict copy sorts after it
    "system/human.md": "human: base\n",
    "reference/x.md": "x: base\n",
    "reference/y.md": "y: base\n",
    "reference/z.md": "z: base\n",
}
ON_A = {
    "notes/todo": "todo: from A\n",
    "system/human.md": "human: from A\n",
    "reference/z.md": "z: from A\n",
    "ref/new-a.md": "a\n",
}
ON_B = {
    "notes/todo": "todo: from B\n",
    "system/human.md": "human: from B\n",
    "reference/x.md": "x B\n",
}
EVERY_VERSION = [
    *("todo: from A", "todo: from B", "human: from A", "human: from B"),
    *("x B", "z: from A", "a\n"),
]


def committed(agent: memfs.Agent) -> dict[str, bytes]:
    history = agent.history
    return {p: history.blob(e.sha) for p, e in history.tree_of(history.head()).items()}


def diverged(tmp_path: Path) -> tuple[memfs.Agent, memfs.Agent]:
    """A and B share BASE through a bare repo, then both change it; A has pushed.

    A commits a second later than B, so A's side is the newer one: the merge on B rewrites
    B's conflicting files in place and writes B's versions as copies that sort after them.
    """
    url = str(bare_repo(tmp_path / "hub.git"))
    a = memfs.init(tmp_path / "a" / "agent", name="shared")
    add_remote(a.history, "origin", url)
    for path, text in BASE.items():
        write(a.root, path, text)
    assert sync.push(a).ok
    b = sync.clone(url, tmp_path / "b" / "agent")
    for path, text in ON_B.items():
        write(b.root, path, text)
    b.commit()
    second = int(time.time())
    deadline = time.monotonic() + 3
    while int(time.time()) == second and time.monotonic() < deadline:
        time.sleep(0.01)  # commit times are whole seconds: A's must be the later one
    for path, text in ON_A.items():
        write(a.root, path, text)
    (a.root / "reference/y.md").unlink()
    assert sync.push(a).ok
    return a, b


def assert_nothing_lost(
    a: memfs.Agent, b: memfs.Agent, extra: tuple[str, ...] = (), replaced: str = ""
) -> None:
    """Both converge on one tree holding every version written; the deleted file is gone."""
    for _ in range(2):
        assert sync.sync(b).ok
        assert sync.sync(a).ok
    assert a.history.head() == b.history.head()
    tree = committed(b)
    text = b"\n".join(tree.values()).decode()
    for version in (*EVERY_VERSION, *extra):
        if version == replaced:
            continue
        assert version in text, f"{version!r} was lost: {sorted(tree)}"
    assert "reference/y.md" not in tree
    leftovers = [
        os.path.join(folder, name)
        for folder, dirs, names in os.walk(b.root)
        if ".git" not in folder.split(os.sep)
        for name in dirs + names
        if name.startswith(".memfs-tmp-")
    ]
    assert not leftovers, leftovers
    for agent in (a, b):
        assert agent.status().clean
        assert_git_agrees(agent.root)


def once_moved_aside(path: Path, action: Callable[[], None]) -> Callable[[], None]:
    """``action``, the first time the merge has just moved ``path`` aside."""
    done: list[bool] = []

    def run() -> None:
        if not done and not path.exists():
            done.append(True)
            action()

    return run


def test_a_merge_writes_every_version_and_leaves_no_journal(tmp_path: Path) -> None:
    a, b = diverged(tmp_path)
    report = sync.pull(b)
    assert report.ok and len(report.conflicts) == 2
    assert not (b.history.state_dir / "update.json").exists()
    assert_nothing_lost(a, b)


def test_an_append_through_a_handle_opened_before_the_merge_is_kept(tmp_path: Path) -> None:
    a, b = diverged(tmp_path)
    z = b.root / "reference/z.md"
    with open(z, "a") as handle:  # an editor holding the file open

        def append() -> None:
            handle.write("appended during the merge\n")
            handle.flush()

        # the append lands after the merge moved z.md aside, through the old handle
        with faults.at("apply.moved", once_moved_aside(z, append)):
            assert sync.pull(b).ok
    assert_nothing_lost(a, b, extra=("appended during the merge",))


def test_a_save_landing_while_a_file_is_moved_aside_is_kept(tmp_path: Path) -> None:
    a, b = diverged(tmp_path)

    human = b.root / "system/human.md"

    def editor_save() -> None:  # write a temp file, rename it over the path (vim, VS Code)
        temp = b.root / "system/.human.md.swp-save"
        temp.write_text("human: from B\nsaved during the merge\n")
        os.replace(temp, human)

    with faults.at("apply.moved", once_moved_aside(human, editor_save)):
        assert sync.pull(b).ok
    assert_nothing_lost(a, b, extra=("saved during the merge",))


def test_an_edit_of_a_later_file_rolls_the_whole_merge_back_first(tmp_path: Path) -> None:
    """The merge meets an edit on its third write: the two files it already wrote go back to
    B's versions before B's edit is committed, so the re-merge still sees both conflicts."""
    a, b = diverged(tmp_path)
    seen: list[int] = []

    def edit_on_third_write() -> None:  # human.md sorts last: the merge has not reached it
        seen.append(1)
        if len(seen) == 3:
            human = b.root / "system/human.md"
            assert human.read_text() == "human: from B\n"
            human.write_text("human: from B\nedited mid-merge\n")

    with faults.at("apply.write", edit_on_third_write):
        assert sync.pull(b).ok
    assert_nothing_lost(a, b, extra=("edited mid-merge",))


def test_an_append_to_a_written_file_before_a_roll_back_keeps_the_version_it_replaced(
    tmp_path: Path,
) -> None:
    """stress/watchers.py lost a token this way (folder store, sealed, --pause 0.05): the
    merge wrote A's version of a conflicting file (B's moved aside), an editor appended to
    it, then a later file's edit rolled the merge back. The append made the file an edit,
    left as it was, and the moved-aside version was dropped as "committed already": the next
    commit recorded A's version plus the append as B's own edit, and B's lines were gone."""
    a, b = diverged(tmp_path)
    todo = b.root / "notes/todo"
    seen: list[int] = []

    def append_then_edit_a_later_file() -> None:
        seen.append(1)
        if len(seen) == 3:  # todo.md and its copy are written; human.md is not reached yet
            assert todo.read_text() == "todo: from A\n"
            with open(todo, "a") as handle:  # an editor appending to what it finds there
                handle.write("appended after the merge wrote it\n")
            human = b.root / "system/human.md"
            human.write_text("human: from B\nedited mid-merge\n")

    with faults.at("apply.write", append_then_edit_a_later_file):
        assert sync.pull(b).ok
    assert len(seen) >= 3
    assert_nothing_lost(a, b, extra=("edited mid-merge", "appended after the merge wrote it"))


def test_an_append_landing_while_a_roll_back_moves_a_file_keeps_the_version_it_replaced(
    tmp_path: Path,
) -> None:
    """stress/watchers.py (s3, plain, seed 24, --pause 0.05): the roll-back moved the merge's
    version of a file aside to put the replaced one back, an append landed at the path in
    between, and the swap gave up, deleting what it was putting back: B's lines were gone."""
    a, b = diverged(tmp_path)
    todo = b.root / "notes/todo"
    seen: list[int] = []

    def edit_a_later_file() -> None:
        seen.append(1)
        if len(seen) == 3:  # todo.md and its copy are written: roll the merge back
            (b.root / "system/human.md").write_text("human: from B\nedited mid-merge\n")

    def append_as_the_roll_back_moves_it() -> None:  # the merge's version just moved aside
        if len(seen) >= 3 and not todo.exists() and not appended:
            appended.append(True)
            with open(todo, "a") as handle:  # an editor's append: a new file at the path
                handle.write("appended during the roll-back\n")

    appended: list[bool] = []
    with (
        faults.at("apply.write", edit_a_later_file),
        faults.at("apply.moved", append_as_the_roll_back_moves_it),
    ):
        assert sync.pull(b).ok
    assert appended, "the append landed while the roll-back had the file moved aside"
    assert_nothing_lost(a, b, extra=("edited mid-merge", "appended during the roll-back"))


def _kill_points() -> list[str]:
    writes = 6  # todo, its copy, human.md, its copy, new-a.md, y.md deleted
    return [
        *(f"apply.write:{n}" for n in range(1, writes + 1)),
        *(f"apply.moved:{n}" for n in range(1, 4)),
        *(f"apply.linked:{n}" for n in range(1, writes)),
        "apply.commit",
        "commit.objects",
    ]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("point", _kill_points())
def test_a_merge_killed_between_any_two_writes_loses_nothing(tmp_path: Path, point: str) -> None:
    a, b = diverged(tmp_path)
    b_root = b.root
    b.close()
    killed = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(b_root), "pull"],
        env={**os.environ, faults.ENV: point},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    with memfs.open(b_root) as b:
        if point.startswith("apply.") and point != "apply.write:1":
            status = b.status()  # read-only: shows the stopped merge, undoes nothing yet
            assert status.update_pending and not status.clean
            assert (b.history.state_dir / "update.json").exists()
        assert_nothing_lost(a, b)


def test_the_hooks_above_fire_where_the_tests_say(tmp_path: Path) -> None:
    """Guards the tests' own premise: the merge on B rewrites z.md and human.md in place."""
    _, b = diverged(tmp_path)
    moved: list[str] = []

    def note() -> None:
        moved.extend(p for p in ("reference/z.md", "system/human.md") if not (b.root / p).exists())

    with faults.at("apply.moved", note):
        assert sync.pull(b).ok
    assert set(moved) == {"reference/z.md", "system/human.md"}


def test_a_commit_killed_before_its_index_write_is_repaired_by_the_next(tmp_path: Path) -> None:
    """Branch moved, index still the old tree: git status would show the edit reverted as
    staged (a plain 'git commit' there would undo it). The next memfs commit rewrites it."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    write(agent.root, "system/human.md", "committed, then killed\n")
    killed = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(agent.root), "commit"],
        env={**os.environ, faults.ENV: "commit.index"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -9
    assert git(agent.root, "status", "--porcelain") != ""  # the premise: the index is behind
    with memfs.open(agent.root) as reopened:
        assert reopened.commit() is None  # nothing to commit: the edit is in HEAD
    assert_git_agrees(agent.root)
    assert git(agent.root, "show", "HEAD:system/human.md") == "committed, then killed\n"


def test_a_folder_that_becomes_a_file_is_replaced(tmp_path: Path) -> None:
    """Deletions empty the folder first: nothing of the update may stay inside it."""
    a, b = diverged(tmp_path)
    (a.root / "reference/topic").mkdir()
    write(a.root, "reference/topic/b.md", "in a folder\n")
    assert sync.sync(a).ok and sync.sync(b).ok
    import shutil

    shutil.rmtree(a.root / "reference/topic")
    write(a.root, "reference/topic", "now a file\n")
    assert sync.sync(a).ok
    assert sync.pull(b).ok
    assert (b.root / "reference/topic").read_text() == "now a file\n"
    assert_nothing_lost(a, b)


def test_a_filesystem_without_hard_links_still_merges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vfat, exFAT and some FUSE or SMB mounts refuse link(): memfs falls back to rename."""
    a, b = diverged(tmp_path)

    def no_links(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    assert sync.pull(b).ok
    assert_nothing_lost(a, b)


def test_an_append_that_creates_the_file_while_it_is_moved_aside_keeps_the_rest(
    tmp_path: Path,
) -> None:
    """``open(path, "a")`` in the instant the file is moved aside makes a new file holding
    only the appended line: the lines before it must not leave the tree."""
    a, b = diverged(tmp_path)
    z = b.root / "reference/z.md"

    def append_to_missing_file() -> None:
        with open(z, "a") as handle:
            handle.write("appended into a new file\n")

    with faults.at("apply.moved", once_moved_aside(z, append_to_missing_file)):
        assert sync.pull(b).ok
    assert_nothing_lost(a, b, extra=("appended into a new file", "z: base"))


def test_a_local_file_memfs_cannot_commit_stops_the_merge_with_a_reason(tmp_path: Path) -> None:
    """B's tracked file grew past the size cap (kept at its committed version) and A changed
    it: the merge must not overwrite it, and must say why instead of retrying for ever."""
    a, b = diverged(tmp_path)
    assert sync.pull(b).ok and sync.sync(b).ok and sync.sync(a).ok
    write(b.root, "reference/z.md", "z" * (11 * 1024 * 1024))  # over the 10 MiB cap
    write(a.root, "reference/z.md", "z: changed again on A\n")
    assert sync.push(a).ok
    result = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(b.root), "sync"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 6, result.stderr
    assert result.stderr.startswith("memfs: reference/z.md changed on the remote, and its local")
    assert "size cap" in result.stderr
    assert (b.root / "reference/z.md").stat().st_size == 11 * 1024 * 1024
    (b.root / "reference/z.md").rename(tmp_path / "big.md")  # the user moves it away
    assert_nothing_lost(a, b, extra=("z: changed again on A",), replaced="z: from A")


def test_a_save_during_a_merge_in_a_letta_repo_is_kept_where_letta_never_loads_it(
    tmp_path: Path,
) -> None:
    """The copy of an edit that cannot stay at its path is no new block in a Letta repo: it
    goes to .memfs-conflicts/ (no .md ending), never beside the file under system/."""
    url = str(bare_repo(tmp_path / "hub.git"))
    root = tmp_path / "a" / "memory"
    write(root, "system/human.md", "---\ndescription: the human\n---\nhuman: base\n")
    a = memfs.init(root, name="letta")
    assert a.layout.is_letta
    add_remote(a.history, "origin", url)
    assert sync.push(a).ok
    b = sync.clone(url, tmp_path / "b" / "memory")
    human = b.root / "system/human.md"
    write(b.root, "system/human.md", "---\ndescription: the human\n---\nhuman: from B\n")
    b.commit()
    second = int(time.time())
    deadline = time.monotonic() + 3
    while int(time.time()) == second and time.monotonic() < deadline:
        time.sleep(0.01)  # A's commit must be the later one, so the merge rewrites B's file
    write(a.root, "system/human.md", "---\ndescription: the human\n---\nhuman: from A\n")
    assert sync.push(a).ok
    saved: list[bool] = []

    def editor_save() -> None:
        saved.append(True)
        temp = b.root / "system/.human.md.swp-save"
        temp.write_text("---\ndescription: the human\n---\nsaved during the merge\n")
        os.replace(temp, human)

    with faults.at("apply.moved", once_moved_aside(human, editor_save)):
        assert sync.pull(b).ok
    assert saved, "the save landed while the merge had the file moved aside"
    for _ in range(2):
        assert sync.sync(b).ok and sync.sync(a).ok
    tree = committed(b)
    assert [p for p in tree if p.startswith("system/")] == ["system/human.md"], sorted(tree)
    text = b"\n".join(tree.values()).decode()
    for version in ("human: from A", "human: from B", "saved during the merge"):
        assert version in text, f"{version!r} was lost: {sorted(tree)}"
    assert all(p.startswith(".memfs-conflicts/") for p in tree if "conflict" in p)
