"""A push's commit scan run in a child process (memfs/prescan.py).

The child's answer is used only against the record it compared, an edit it did not see is
the next commit's and never lost, and a child whose answer is not taken is killed and
reaped. Every test ends with the real git CLI agreeing with the files on disk
(``assert_head_is_disk``), or saying what is not committed yet.
"""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import memfs
from memfs import commitrecord, fastcommit, prescan, statusrecord, sync
from memfs.errors import MemfsError
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote

from .conftest import git, write
from .test_fastcommit import EDITED, assert_head_is_disk, fast_commit, make_agent, settle, shown

OTHER = "reference/t2/n002.md"
FORKS_AT = prescan.MIN_BYTES  # the size of record a process of its own scans in a child at


@pytest.fixture(autouse=True)
def any_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child for every record, on any machine (the limits are about cost, not meaning)."""
    monkeypatch.setattr(prescan, "MIN_BYTES", 1)
    monkeypatch.setattr(prescan, "MIN_CORES", 1)
    monkeypatch.setattr(prescan, "MIN_IDLE", float("-inf"))


def children() -> set[int]:
    """The processes this one started and has not reaped."""
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def pushed(tmp_path: Path) -> tuple[memfs.Agent, str]:
    """An agent on record, pushed to a file:// cloud; the remote's URL."""
    agent = make_agent(tmp_path)
    url = f"memfs::{(tmp_path / 'cloud' / 'agent').as_uri()}"
    add_remote(agent.history, "origin", url)
    assert sync.push(agent).ok
    settle_git(agent)
    assert agent.commit() is None  # a record for the new config, trusting every file
    assert commitrecord.read(agent) is not None
    return agent, url


def settle_git(agent: memfs.Agent) -> None:
    """``settle``, and wait for the git config the remote was added to (a file of the
    record's key) to be older than the racy window too."""
    settle(agent.root)
    config = agent.history.control_dir / "config"
    deadline = time.monotonic() + 5
    while time.time_ns() <= config.stat().st_ctime_ns + statusrecord.RACY_NS + 20_000_000:
        assert time.monotonic() < deadline, "the clock does not advance"
        time.sleep(0.005)


def test_a_push_commits_what_the_child_found(tmp_path: Path) -> None:
    agent, url = pushed(tmp_path)
    write(agent.root, EDITED, "---\ndescription: n1\n---\nedited before the push\n")
    before, taken, was = children(), prescan.answers_taken, fastcommit.commits_fast
    report = sync.push(agent, prescan=True)
    assert report.ok and report.committed is not None
    assert prescan.answers_taken == taken + 1  # the child's answer made the commit
    assert fastcommit.commits_fast == was + 1
    assert shown(agent, EDITED).endswith(b"edited before the push\n")
    assert BucketRemote(url).head("main") == agent.history.head()
    assert_head_is_disk(agent)
    assert children() <= before and agent.prescan is None


def test_an_edit_the_child_did_not_see_is_the_next_commits(tmp_path: Path) -> None:
    agent, _ = pushed(tmp_path)
    early = prescan.start(agent)
    assert early is not None and early.answer() is not None
    assert early.answer()[1] == []  # type: ignore[index]
    target = agent.root / EDITED
    was = target.stat()
    target.write_text(target.read_text().replace("f\n", "g\n"))  # same size, same second
    os.utime(target, ns=(was.st_atime_ns, was.st_mtime_ns))
    agent.prescan = early
    assert agent.commit() is None  # after the child saw the file: not this commit's
    assert git(agent.root, "status", "--porcelain").split() == ["M", EDITED]
    assert fast_commit(agent)  # the record did not learn the new stat: read, committed
    assert shown(agent, EDITED).endswith(b"g\n")
    assert_head_is_disk(agent)


def test_a_record_rewritten_since_the_child_began_is_not_its_answer(tmp_path: Path) -> None:
    agent, _ = pushed(tmp_path)
    write(agent.root, EDITED, "---\ndescription: n1\n---\nfresh\n")
    assert fast_commit(agent)  # a moment ago: the record does not trust it yet
    early = prescan.start(agent)
    assert early is not None
    answer = early.answer()
    record = commitrecord.parse(early.data)
    assert record is not None
    row = commitrecord.Table.loads(record["files"]).paths.index(EDITED)
    assert answer is not None and answer[1] == [row]
    settle(agent.root)
    assert agent.commit() is None  # nothing new: the record is written trusting it
    assert commitrecord.read(agent) != early.data
    write(agent.root, OTHER, "---\ndescription: n2\n---\nafter\n")
    agent.prescan, taken = early, prescan.answers_taken
    assert fast_commit(agent)  # scanned here: the record read under the lock decides
    assert prescan.answers_taken == taken
    assert shown(agent, OTHER).endswith(b"after\n")
    assert_head_is_disk(agent)


def test_a_child_that_fails_leaves_the_scan_to_the_commit(tmp_path: Path) -> None:
    agent, _ = pushed(tmp_path)
    (agent.root / OTHER).unlink()
    before = children()
    report = sync.push(agent, prescan=True)
    assert report.ok and report.committed is not None  # the full commit, after the child
    assert OTHER not in git(agent.root, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert_head_is_disk(agent)
    assert children() <= before


def test_a_remote_that_fails_while_the_child_scans(tmp_path: Path) -> None:
    agent, _ = pushed(tmp_path)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cloud's folder would be\n")
    add_remote(agent.history, "broken", f"memfs::{(blocked / 'agent').as_uri()}")
    write(agent.root, EDITED, "---\ndescription: n1\n---\nkept\n")
    before = children()
    report = sync.push(agent, "broken", prescan=True)
    assert not report.ok and report.remotes[0].error
    assert report.committed is not None  # the edit is committed all the same
    assert shown(agent, EDITED).endswith(b"kept\n")
    assert_head_is_disk(agent)
    assert children() <= before and agent.prescan is None


def test_a_commit_that_fails_while_the_child_scans(tmp_path: Path) -> None:
    agent, _ = pushed(tmp_path)
    git(agent.root, "checkout", "-q", "--detach")
    write(agent.root, EDITED, "---\ndescription: n1\n---\nheld\n")
    before = children()
    with pytest.raises(MemfsError):
        sync.push(agent, prescan=True)
    assert children() <= before and agent.prescan is None  # killed and reaped
    assert (agent.root / EDITED).read_text().endswith("held\n")  # nothing lost


def test_a_child_whose_answer_is_not_taken_is_reaped(tmp_path: Path) -> None:
    agent, _ = pushed(tmp_path)
    before = children()
    early = prescan.start(agent)
    assert early is not None and early.pid in children()
    early.discard()
    assert children() <= before
    early.discard()  # twice: nothing more


def test_memfs_push_as_a_process_scans_in_a_child(tmp_path: Path) -> None:
    """The CLI's push at the size it forks at: the edit is pushed, nothing on stderr."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    for i in range(1000):
        write(agent.root, f"reference/t{i % 10}/n{i:04d}.md", f"note {i}\n")
    url = f"memfs::{(tmp_path / 'cloud' / 'agent').as_uri()}"
    add_remote(agent.history, "origin", url)
    assert sync.push(agent).ok
    settle_git(agent)
    assert agent.commit() is None
    assert len(commitrecord.read(agent) or b"") >= FORKS_AT
    write(agent.root, "reference/t3/n0003.md", "edited, then pushed by the CLI\n")
    done = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(agent.root), "push"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert shown(agent, "reference/t3/n0003.md") == b"edited, then pushed by the CLI\n"
    assert BucketRemote(url).head("main") == agent.history.head()
    assert_head_is_disk(agent)


def test_a_record_that_is_not_sound_gets_no_answer(tmp_path: Path) -> None:
    """The child checks the record it parses (the commit then trusts those bytes): a planted
    path leaving the agent gets no answer, and the commit checks and refuses it too."""
    agent, _ = pushed(tmp_path)
    (tmp_path / "outside.md").write_text("not the agent's\n")
    record = commitrecord.load(agent)
    assert record is not None
    paths = list(record["files"][0])
    paths[paths.index(EDITED)] = "../outside.md"
    planted = {**record, "files": (paths, *record["files"][1:])}
    path = agent.history.state_dir / commitrecord.RECORD
    path.write_bytes(marshal.dumps(planted))
    early = prescan.start(agent)
    assert early is not None and early.answer() is None
    write(agent.root, EDITED, "---\ndescription: n1\n---\nmine\n")
    agent.prescan, taken = early, prescan.answers_taken
    assert agent.commit() is not None  # the full commit: the record is not one
    assert prescan.answers_taken == taken
    assert "outside.md" not in git(agent.root, "ls-tree", "-r", "--name-only", "HEAD")
    assert_head_is_disk(agent)


def test_a_pull_commits_what_the_child_found_and_merges(tmp_path: Path) -> None:
    agent, url = pushed(tmp_path)
    other = sync.clone(url, tmp_path / "other")
    write(other.root, OTHER, "---\ndescription: n2\n---\nfrom the other machine\n")
    assert sync.push(other).ok
    write(agent.root, EDITED, "---\ndescription: n1\n---\nedited before the pull\n")
    taken = prescan.answers_taken
    report = sync.pull(agent, prescan=True)
    assert report.ok and report.committed is not None
    assert prescan.answers_taken == taken + 1
    assert shown(agent, EDITED).endswith(b"edited before the pull\n")
    assert shown(agent, OTHER).endswith(b"from the other machine\n")
    assert_head_is_disk(agent)
    assert agent.prescan is None
