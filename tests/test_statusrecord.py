"""The remembered status (memfs/statusrecord.py): the same answer as a walk, and a walk
whenever anything the answer was made from may have changed.

Each test compares with the answer worked out from scratch (the record removed) and counts
the answers the record gave, so a fast path that should have given way is caught.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

import memfs
from memfs import statusrecord

from .conftest import git, write

RECORD = Path(".git/memfs") / statusrecord.RECORD


def make_agent(tmp_path: Path, files: int = 12) -> memfs.Agent:
    agent = memfs.init(tmp_path / "agent", name="agent")
    for i in range(files):
        write(agent.root, f"reference/t{i % 3}/n{i:03d}.md", f"---\ndescription: n{i}\n---\nf\n")
    write(agent.root, "reference/broken.md", "---\ndescription: [unclosed\n---\nbody\n")
    agent.commit()
    return agent


def settle(root: Path) -> None:
    """Wait until every entry of the tree is older than the racy window: a status now may be
    recorded. (A wait on the clocks, with a deadline, not on another process.)"""
    stats = [os.lstat(path) for path in [root, *root.rglob("*")]
             if ".git" not in path.relative_to(root).parts]  # fmt: skip
    stats.append(os.lstat(root / ".git/config"))
    wait_past(max(st.st_ctime_ns + statusrecord.window(st.st_ctime_ns) for st in stats), root)


def wait_past(until_ns: int, root: Path) -> None:
    """Wait, with a deadline, until both clocks a record is judged by are 20 ms past
    ``until_ns``: this machine's (``time.time_ns``) and the file system's (a new file's mtime,
    made beside the agent ``root``), which can lag the first by more than a clock tick: file
    times come from the kernel's coarse clock, advanced by a timer tick that a busy virtual
    machine may run late. A status's record is refused if either says an entry is fresh."""
    until_ns += 20_000_000
    deadline = time.monotonic() + 5
    while time.time_ns() <= until_ns or fs_clock(root.parent) <= until_ns:
        assert time.monotonic() < deadline, "the clock does not advance"
        time.sleep(0.005)


def fs_clock(folder: Path) -> int:
    """The file system's clock now: the mtime of a file created in ``folder`` now."""
    probe = folder / f".clock.{os.getpid()}.{time.monotonic_ns()}"
    with open(probe, "xb") as handle:
        now = os.fstat(handle.fileno()).st_mtime_ns
    probe.unlink()
    return now


def still_fresh(path: Path, folder: Path, mtime: bool = False) -> bool:
    """Whether ``path`` (its ctime; with ``mtime``, the later of the two) is still within
    the racy window of the file system's clock now. Asked after a record was written: then
    its temp file, made before now, was made within the window too, and the record must
    have left ``path`` untrusted. If not (a busy machine took longer than the window between
    the write and the record), the attempt proves nothing either way and is made again."""
    st = os.lstat(path)
    changed = max(st.st_ctime_ns, st.st_mtime_ns) if mtime else st.st_ctime_ns
    return fs_clock(folder) - changed < statusrecord.window(st.st_ctime_ns)


def fresh(agent: memfs.Agent) -> dict[str, object]:
    """The status worked out from the tree, with no record to lean on."""
    (agent.root / RECORD).unlink(missing_ok=True)
    before = statusrecord.records_used
    answer = agent.status().to_dict()
    assert statusrecord.records_used == before
    return answer


def served(agent: memfs.Agent) -> tuple[dict[str, object], bool]:
    """The status as a command gets it, and whether the record gave it."""
    before = statusrecord.records_used
    answer = agent.status().to_dict()
    return answer, statusrecord.records_used > before


def recorded_clean(tmp_path: Path) -> memfs.Agent:
    """An agent whose status is on record."""
    agent = make_agent(tmp_path)
    settle(agent.root)
    first, used = served(agent)
    assert not used
    assert (agent.root / RECORD).exists(), f"not recorded: {ages(agent.root)}"
    again, used = served(agent)
    assert used and again == first
    return agent


def ages(root: Path) -> str:
    """How long ago, on each clock, the newest entry of the tree (or a file of the record's
    key) changed: what says why a settled tree was not recorded."""
    control = root / ".git"
    paths = [root, *(p for p in root.rglob("*") if ".git" not in p.relative_to(root).parts)]
    paths += [control / name for name in statusrecord.OUTSIDE if (control / name).exists()]
    newest = max(paths, key=lambda path: os.lstat(path).st_ctime_ns)
    ctime = os.lstat(newest).st_ctime_ns
    machine, files = time.time_ns() - ctime, fs_clock(root.parent) - ctime
    return f"{newest.name} changed {machine / 1e6:.1f} ms ago, {files / 1e6:.1f} ms on the fs clock"


def test_an_unchanged_tree_is_answered_from_the_record_alike(tmp_path: Path) -> None:
    agent = recorded_clean(tmp_path)
    answer, used = served(agent)
    assert used and answer == fresh(agent)
    problems = [p["path"] for p in answer["problems"]]  # type: ignore[attr-defined]
    assert "reference/broken.md" in problems


@pytest.mark.parametrize(
    "change",
    [
        "edit-same-size",
        "edit-restoring-mtime",
        "new-file",
        "new-folder",
        "delete",
        "chmod",
        "gitignore",
        "rename",
    ],
)
def test_any_change_to_the_tree_gives_way_to_a_walk(tmp_path: Path, change: str) -> None:
    agent = recorded_clean(tmp_path)
    note = agent.root / "reference/t1/n004.md"
    if change == "edit-same-size":
        note.write_text(note.read_text().replace("f\n", "g\n"))
    elif change == "edit-restoring-mtime":  # a clock-skewed or restored mtime: ctime tells
        st = note.stat()
        future = time.time_ns() + 3600 * 10**9
        os.utime(note, ns=(future, future))
        settle(agent.root)
        served(agent)
        assert served(agent)[1]
        note.write_text(note.read_text().replace("f\n", "g\n"))
        os.utime(note, ns=(future, future))
        assert st.st_size == note.stat().st_size
    elif change == "new-file":
        write(agent.root, "reference/t1/new.md", "---\ndescription: new\n---\nx\n")
    elif change == "new-folder":
        write(agent.root, "reference/t9/deep/new.md", "---\ndescription: new\n---\nx\n")
    elif change == "delete":
        note.unlink()
    elif change == "chmod":
        note.chmod(0o755)
    elif change == "gitignore":
        write(agent.root, ".gitignore", "reference/t1/\n")
    elif change == "rename":
        note.rename(agent.root / "reference/t1/renamed.md")
    answer, used = served(agent)
    assert not used
    assert answer == fresh(agent)
    assert answer["changes"], change


def test_head_moved_by_git_behind_memfs_gives_way(tmp_path: Path) -> None:
    agent = recorded_clean(tmp_path)
    git(agent.root, "rm", "-q", "--cached", "reference/t0/n000.md")
    git(agent.root, "commit", "-qm", "by git")
    answer, used = served(agent)
    assert not used
    assert answer["changes"] == [{"path": "reference/t0/n000.md", "status": "added"}]
    assert answer == fresh(agent)


def test_a_fresh_change_is_not_recorded(tmp_path: Path) -> None:
    """A file changed within the racy window may change again unseen in the same clock
    tick (a racing writer): the answer is not recorded, the next status walks again."""
    agent = make_agent(tmp_path)
    settle(agent.root)
    note = agent.root / "reference/t2/n005.md"
    deadline = time.monotonic() + 60
    for attempt in itertools.count():
        (agent.root / RECORD).unlink(missing_ok=True)  # an attempt that proved nothing
        write(agent.root, "reference/t2/n005.md", f"---\ndescription: racing\n---\n{attempt}\n")
        served(agent)
        if still_fresh(note, tmp_path):
            break
        assert time.monotonic() < deadline, "never within the racy window: the machine is busy"
    assert not (agent.root / RECORD).exists()
    assert not served(agent)[1]


def test_files_outside_the_tree_are_part_of_the_key(tmp_path: Path) -> None:
    agent = recorded_clean(tmp_path)
    hook = agent.root / ".git/hooks/pre-commit"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\nexit 0\n")
    assert not served(agent)[1]


def test_a_garbled_or_foreign_record_is_ignored(tmp_path: Path) -> None:
    agent = recorded_clean(tmp_path)
    expected = fresh(agent)
    (agent.root / RECORD).write_bytes(b"\x80\x05garbage")
    answer, used = served(agent)
    assert not used and answer == expected
    settle(agent.root)
    served(agent)  # recorded again
    assert served(agent)[1]
    (agent.root / RECORD).write_bytes(b"")
    assert served(agent) == (expected, False)


def test_live_fields_are_read_each_time(tmp_path: Path) -> None:
    agent = recorded_clean(tmp_path)
    journal = agent.root / ".git/memfs/update.json"
    journal.write_text("{}")
    try:
        answer, used = served(agent)
        assert used and answer["update_pending"] is True
    finally:
        journal.unlink()


def test_a_skipped_file_that_changes_gives_way(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    manifest = agent.root / "agent.yaml"
    manifest.write_text(manifest.read_text() + "max_file_size: 2000\n")
    big = write(agent.root, "reference/big.md", "x" * 5000)
    settle(agent.root)
    served(agent)
    answer, used = served(agent)
    skipped = [s["path"] for s in answer["skipped"]]  # type: ignore[attr-defined]
    assert used and skipped == ["reference/big.md"]
    big.write_text("small\n")
    answer, used = served(agent)
    assert not used and not answer["skipped"]
    assert answer == fresh(agent)


def test_the_cli_status_uses_the_record(tmp_path: Path) -> None:
    agent = recorded_clean(tmp_path)
    from .conftest import run_cli

    result = run_cli("-C", str(agent.root), "status")
    assert result.exit_code == 0 and "Nothing to commit" in result.output


def test_a_status_from_its_record_loads_no_hashing_and_no_index_reader(tmp_path: Path) -> None:
    """The whole point at 100 files is start-up: OpenSSL (hashlib) and the readers of the
    index, the parse cache and conflict markers stay unloaded while the record answers."""
    from .test_cli_startup import HARNESS_PATH, heavy_in, loaded_by

    agent = make_agent(tmp_path)
    settle(agent.root)
    agent.status()  # recorded
    agent.close()
    loaded = loaded_by(agent.root, ["status"])
    unused = ("hashlib", "_hashlib", "memfs.conflicts", "memfs.merge")
    assert heavy_in(loaded, HARNESS_PATH) == []
    assert sorted(m for m in unused if m in loaded) == []


def _reads(agent: memfs.Agent) -> tuple[object, ...]:
    """What ``ls`` and ``context`` report, and whether the record gave their snapshot."""
    from memfs.context import build_context

    before = statusrecord.records_used
    snapshot = agent.snapshot()
    parsed = agent.parsed_memory(snapshot, agent.layout, kept=True)
    listing = [(path, found.description, found.size) for path, found in parsed.items()]
    rendered = build_context(agent).render()
    return listing, rendered, sorted(snapshot.files.items()), statusrecord.records_used > before


def test_ls_and_context_take_their_snapshot_from_the_record(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    big = write(agent.root, "reference/big.md", "---\ndescription: big\n---\n" + "x" * 3000)
    agent.commit()
    manifest = agent.root / "agent.yaml"  # big.md is now over the cap: kept as committed
    manifest.write_text(manifest.read_text() + "max_file_size: 2000\n")
    agent.commit()
    settle(agent.root)
    served(agent)
    *from_record, used = _reads(agent)
    assert used
    (agent.root / RECORD).unlink()
    *walked, used = _reads(agent)
    assert not used and from_record == walked
    assert "reference/big.md" in dict(from_record[2])
    served(agent)  # recorded again, then an edit: the snapshot is walked, not recorded
    big.write_text("---\ndescription: smaller\n---\nx\n")
    *after, used = _reads(agent)
    assert not used and after != from_record


def test_ahead_and_behind_are_counted_once_per_pair_of_commits(tmp_path: Path) -> None:
    """status with a remote behind HEAD remembers the count by the two shas: the next
    status loads no object store; a commit moves HEAD and the count is made anew."""
    from memfs.remotes.configure import add_remote
    from memfs.remotestate import remote_states

    from .test_cli_startup import loaded_by

    agent = make_agent(tmp_path)
    add_remote(agent.history, "cloud", "memfs::" + (tmp_path / "cloud").as_uri())
    first = agent.history.head()
    assert first is not None
    agent.history.set_ref("refs/remotes/cloud/main", first, "pushed")
    for i in range(2):
        write(agent.root, f"reference/more{i}.md", f"---\ndescription: m{i}\n---\nx\n")
        agent.commit()
    assert [(s.ahead, s.behind) for s in remote_states(agent)] == [(2, 0)]
    settle(agent.root)
    agent.status()
    agent.close()
    loaded = loaded_by(agent.root, ["status"])
    assert not {"dulwich.walk", "dulwich.object_store", "dulwich.repo"} & loaded
    with memfs.open(agent.root) as again:
        write(again.root, "reference/more9.md", "---\ndescription: m9\n---\nx\n")
        again.commit()
        assert [(s.ahead, s.behind) for s in remote_states(again)] == [(3, 0)]
        again.history.set_ref("refs/remotes/cloud/main", again.history.head() or "", "pushed")
        assert [(s.ahead, s.behind) for s in remote_states(again)] == [(0, 0)]


def test_a_tree_holding_a_symlink_is_walked_every_time(tmp_path: Path) -> None:
    """Whether a link leads out of the agent depends on entries elsewhere (maybe in a folder
    no walk lists): such a tree is never recorded."""
    agent = make_agent(tmp_path)
    os.symlink("t0/n000.md", agent.root / "reference/link.md")
    settle(agent.root)
    served(agent)
    assert not (agent.root / RECORD).exists()
    assert not served(agent)[1]


def _stat(ctime_ns: int) -> os.stat_result:
    """A regular file's stat data with this ctime (os.stat_result is built from its fields)."""
    return os.stat_result((0o100644, 1, 1, 1, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, ctime_ns))


@pytest.mark.parametrize(
    ("ctime_before_walk_ns", "recorded"),
    [
        (200_000_000 + 123_457, True),  # fine-grained times, well before the walk
        (1_000_000_000, False),  # whole seconds: may stand for a change up to 2 s later
        (3_000_000_000, True),  # whole seconds, older than that
    ],
)
def test_coarse_file_times_widen_the_racy_window(
    tmp_path: Path, ctime_before_walk_ns: int, recorded: bool
) -> None:
    from memfs.agent import Snapshot
    from memfs.worktree import Scan

    agent = make_agent(tmp_path)
    # a walk "began" a minute ago, in whole seconds; the files were changed before (not in
    # the future on the file system's clock either: the record's own mtime is checked too)
    started = (time.time_ns() // 10**9 - 60) * 10**9
    st = _stat(started - ctime_before_walk_ns)
    scan = Scan(files={"reference/a.md": st}, folders={"": st})
    status = agent.status()
    made_for = (*statusrecord.key(agent, agent.history.head())[:3], ())
    (agent.root / RECORD).unlink(missing_ok=True)
    statusrecord.save(agent, made_for, status, Snapshot({}, {}, scan), started)
    assert (agent.root / RECORD).exists() is recorded


def test_status_of_an_agent_without_remotes_loads_no_remote_rules(tmp_path: Path) -> None:
    from .test_cli_startup import loaded_by

    agent = make_agent(tmp_path)
    settle(agent.root)
    agent.status()
    agent.close()
    assert "memfs.remotes" not in loaded_by(agent.root, ["status"])
    from memfs.remotes.configure import add_remote
    from memfs.remotestate import remote_states

    with memfs.open(agent.root) as again:
        add_remote(again.history, "cloud", "memfs::" + (tmp_path / "cloud").as_uri())
        assert [state.name for state in remote_states(again)] == ["cloud"]
