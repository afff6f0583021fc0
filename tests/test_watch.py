"""The watcher: debouncing, event filtering, and real watchers syncing real work trees."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.errors import WatcherError
from memfs.remotes.bucket import BucketRemote
from memfs.watcher import Debouncer, EventFilter, Watcher, WatchSettings, is_running, read_state

from .conftest import git, run_cli, write
from .servers import bare_repo, wait_for
from .test_sync import contents, two_machines

FAST = WatchSettings(quiet_ms=100, max_delay_ms=1000, poll_s=0.2, rescan_s=3600, backoff_max_s=1.0)


def watch_commits(agent: memfs.Agent) -> list[str]:
    return [entry.summary for entry in agent.log() if entry.origin == "watch"]


# -- pieces, without threads ---------------------------------------------------------------


def test_debouncer_waits_for_quiet_but_not_forever() -> None:
    bouncer = Debouncer(quiet_s=0.3, max_delay_s=2.0)
    assert bouncer.take(0.0) == [] and bouncer.deadline() is None
    bouncer.add("a.md", 10.0)
    assert bouncer.deadline() == pytest.approx(10.3)
    bouncer.add("b.md", 10.2)
    assert bouncer.take(10.4) == []  # still busy
    assert bouncer.take(10.5) == ["a.md", "b.md"]
    for step in range(30):  # a steady stream of writes
        bouncer.add("c.md", 20.0 + step * 0.1)
    assert bouncer.deadline() == pytest.approx(22.0), "the max delay caps the wait"
    assert bouncer.take(22.0) == ["c.md"]


class Event:
    def __init__(self, src: str, dest: str = "", event_type: str = "modified") -> None:
        self.src_path, self.dest_path, self.event_type = src, dest, event_type


def test_event_filter_translates_and_drops_litter(tmp_path: Path) -> None:
    seen: list[str] = []
    events = EventFilter(tmp_path, seen.append)
    for name in (".git/index", ".git/objects/ab/cd", "notes.md.swp", "4913", ".#notes.md",
                 "notes.md~", "x.tmp", ".memfs-tmp-abc"):  # fmt: skip
        events.dispatch(Event(str(tmp_path / name)))
    events.dispatch(Event(str(tmp_path / "system/human.md")))
    events.dispatch(
        Event(str(tmp_path / ".h.md.swp"), str(tmp_path / "system/persona.md"), "moved")
    )
    events.dispatch(Event(str(tmp_path / "system/human.md"), event_type="opened"))
    events.dispatch(Event("/elsewhere/file.md"))
    assert seen == ["system/human.md", "system/persona.md"]


# -- a real watcher on one machine ---------------------------------------------------------


@pytest.fixture
def watched(agent: memfs.Agent) -> Iterator[Watcher]:
    watcher = Watcher(agent, FAST).start()
    try:
        yield watcher
    finally:
        watcher.stop()


def test_an_edit_becomes_one_commit(watched: Watcher) -> None:
    agent = watched.agent
    write(agent.root, "system/human.md", "Name: Ada\n")
    wait_for(lambda: watch_commits(agent) == ["memfs: update system/human.md"], what="the commit")
    assert agent.status().clean
    # the index is brought in line once edits pause, so the real git agrees too
    wait_for(lambda: git(agent.root, "status", "--porcelain") == "", what="git status clean")


def test_editor_saves_commit_only_real_files(watched: Watcher) -> None:
    agent = watched.agent
    root = agent.root
    write(root, "system/.human.md.swp", "vim swap")  # vim: swap file, write test, backup
    write(root, "system/4913", "")
    (root / "system/4913").unlink()
    write(root, "system/human.md~", "backup")
    os.symlink("user@host.1234", root / "system/.#persona.md")  # emacs lock
    temp = write(root, "system/.persona.md.tmp", "atomic save\n")  # write temp + rename
    os.replace(temp, root / "system/persona.md")
    with open(root / "system/human.md", "w") as handle:  # written in chunks
        for chunk in ("one\n", "two\n", "three\n"):
            handle.write(chunk)
            handle.flush()
            time.sleep(0.02)
    wait_for(lambda: len(watch_commits(agent)) >= 1, what="a commit")
    wait_for(lambda: agent.status().clean, what="everything committed")
    assert len(watch_commits(agent)) == 1
    files = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert files == ["system/human.md", "system/persona.md"]
    assert git(root, "show", "HEAD:system/human.md") == "one\ntwo\nthree\n"
    assert git(root, "show", "HEAD:system/persona.md") == "atomic save\n"


def test_a_burst_of_100_files_is_one_commit(watched: Watcher) -> None:
    agent = watched.agent
    for i in range(100):
        write(agent.root, f"reference/burst/note-{i:03d}.md", f"note {i}\n")
    wait_for(lambda: agent.status().clean, what="the burst committed")
    assert watch_commits(agent) == [
        "memfs: 100 files changed: reference/burst/note-000.md, reference/burst/note-001.md, "
        "reference/burst/note-002.md and 97 more"
    ]


def test_one_watcher_per_agent(watched: Watcher) -> None:
    with pytest.raises(WatcherError, match="a watcher already runs"):
        Watcher(watched.agent, FAST).start()
    assert is_running(watched.agent)
    assert read_state(watched.agent)["pid"] == os.getpid()


# -- two machines --------------------------------------------------------------------------


@pytest.fixture(params=["s3", "file-bucket", "git"])
def remote_for_two(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "s3":
        return request.getfixturevalue("s3").url("agents/shared")
    if request.param == "file-bucket":
        return f"memfs::{(tmp_path / 'cloud' / 'shared').as_uri()}"
    return str(bare_repo(tmp_path / "hub.git"))


def test_two_watched_machines_sync_and_converge(tmp_path: Path, remote_for_two: str) -> None:
    a, b = two_machines(tmp_path, remote_for_two)
    with Watcher(a, FAST), Watcher(b, FAST):
        write(a.root, "notes/from-a.md", "written on A\n")
        wait_for(lambda: (b.root / "notes/from-a.md").exists(), what="A's edit on B")
        write(a.root, "system/human.md", "---\ndescription: h\n---\nA line\nshared\nB line\n")
        # B's watcher applies A's version by moving the old file aside and linking the new one
        # in (memfs/apply.py: never over an edit), so for an instant the path is absent
        wait_for(lambda: b"A line" in read_if_there(b.root / "system/human.md"), what="A's file")
        # both edit at once: different lines of one file, and one file each
        write(
            a.root, "system/human.md", "---\ndescription: h\n---\nA line edited\nshared\nB line\n"
        )
        write(
            b.root, "system/human.md", "---\ndescription: h\n---\nA line\nshared\nB line edited\n"
        )
        write(b.root, "notes/from-b.md", "written on B\n")

        def converged() -> bool:
            if a.history.head() != b.history.head() or not (a.status().clean and b.status().clean):
                return False
            text = (a.root / "system/human.md").read_text()
            return "A line edited" in text and "B line edited" in text

        wait_for(converged, timeout=30, what="both machines to converge")
    assert contents(a) == contents(b)
    assert (a.root / "notes/from-b.md").read_text() == "written on B\n"
    merges = [e for e in a.log() if e.origin == "merge"]
    own_writes = [
        e
        for e in b.log()
        if e.origin == "watch" and e.summary.startswith("memfs: update notes/from-a")
    ]
    assert merges, "the concurrent edits were merged"
    assert not own_writes, "a file memfs wrote while pulling must not become a commit"


def test_offline_commits_continue_and_push_when_back(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    a, b = two_machines(tmp_path, str(hub))
    away = tmp_path / "hub-away.git"
    with Watcher(a, FAST) as watcher:
        hub.rename(away)  # the remote disappears
        write(a.root, "offline.md", "made offline\n")
        wait_for(lambda: watch_commits(a) != [], what="a local commit while offline")
        wait_for(lambda: watcher.state.last_error is not None, what="the error to show")
        status = run_cli("-C", str(a.root), "status")
        assert "Watcher: running" in status.output and "last error" in status.output
        away.rename(hub)  # back again: no restart needed
        wait_for(lambda: not watcher.state.pending_push, timeout=30, what="the push after recovery")
    assert sync.sync(b).ok
    assert (b.root / "offline.md").read_text() == "made offline\n"


# -- the daemon ----------------------------------------------------------------------------


def test_daemon_survives_sigkill_and_picks_up_where_it_was(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    a, b = two_machines(tmp_path, str(hub))
    options = ["--quiet-ms", "100", "--max-delay-ms", "1000", "--poll-s", "0.2"]
    started = run_cli("watch", "--daemon", str(a.root), *options)
    assert started.exit_code == 0, started.stderr
    pid = read_state(a)["pid"]
    try:
        again = run_cli("watch", "--daemon", str(a.root))
        assert again.exit_code == 8 and "a watcher already runs" in again.stderr
        write(a.root, "first.md", "first\n")
        wait_for(
            lambda: "first.md" in git(hub, "ls-tree", "-r", "--name-only", "main"), what="a push"
        )
        os.kill(pid, signal.SIGKILL)
        # the kernel releases the watch lock when the last thread of the killed process exits
        wait_for(lambda: not is_running(a), what="the killed watcher's lock to be released")
        write(a.root, "while-dead.md", "edited while no watcher ran\n")
        assert run_cli("watch", "--daemon", str(a.root), *options).exit_code == 0
        wait_for(
            lambda: "while-dead.md" in git(hub, "ls-tree", "-r", "--name-only", "main"),
            what="the edit made while dead to be committed and pushed on restart",
        )
        status = run_cli("watch", "--status", "--json", str(a.root))
        assert '"running": true' in status.output
    finally:
        stopped = run_cli("watch", "--stop", str(a.root))
    assert stopped.exit_code == 0 and "Stopped the watcher" in stopped.output
    assert not is_running(a)
    assert run_cli("watch", "--stop", str(a.root)).exit_code == 8
    assert sync.sync(b).ok and (b.root / "while-dead.md").exists()


def test_periodic_rescan_commits_what_no_event_reported(agent: memfs.Agent) -> None:
    watcher = Watcher(agent, WatchSettings(push=False, poll_s=3600, rescan_s=3600))
    write(agent.root, "missed.md", "no event was seen for this\n")
    watcher.step([])
    assert watch_commits(agent) == [], "not yet: the rescan is not due"
    watcher._next_rescan = 0.0  # the rescan falls due
    watcher.step([])
    assert watch_commits(agent) == ["memfs: add missed.md"]
    assert watcher.state.pending_push


MAX_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")


def _can_lower_watch_limit() -> bool:
    try:
        MAX_WATCHES.write_text(MAX_WATCHES.read_text())
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _can_lower_watch_limit(), reason="needs a writable fs.inotify limit")
def test_inotify_limit_falls_back_to_polling_and_says_so(agent: memfs.Agent) -> None:
    saved = MAX_WATCHES.read_text()
    messages: list[str] = []
    MAX_WATCHES.write_text("1")  # no new inotify watch can be added now
    try:
        watcher = Watcher(agent, FAST, messages.append).start()
    finally:
        MAX_WATCHES.write_text(saved)
    try:
        assert watcher.state.mode == "polling"
        assert any("inotify watch limit reached" in m for m in messages)
        write(agent.root, "polled.md", "seen by polling\n")
        wait_for(lambda: "memfs: add polled.md" in watch_commits(agent), what="a polled commit")
    finally:
        watcher.stop()


def test_python_api_and_no_push(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    a, b = two_machines(tmp_path, str(hub))
    remote_head = git(hub, "rev-parse", "main")
    write(b.root, "from-b.md", "b\n")
    assert sync.sync(b).ok
    settings = WatchSettings(quiet_ms=50, max_delay_ms=500, push=False)
    with memfs.watch(a, settings) as handle:
        write(a.root, "local-only.md", "not pushed\n")
        wait_for(lambda: watch_commits(a) == ["memfs: add local-only.md"], what="a local commit")
        handle.flush()
    assert git(hub, "rev-parse", "main") != remote_head  # B's push, and nothing from A
    assert "local-only.md" not in git(hub, "ls-tree", "-r", "--name-only", "main")
    assert not (a.root / "from-b.md").exists(), "--no-push neither pushes nor pulls"


def test_a_commit_made_with_git_beside_the_watcher_is_pushed(tmp_path: Path) -> None:
    """``git commit`` (or Letta Code's own commit) while the watcher runs: the watcher finds
    nothing to commit itself, and pushed it only with its next own commit or at stop."""
    url = f"memfs::{(tmp_path / 'cloud' / 'shared').as_uri()}"
    a, _ = two_machines(tmp_path, url)
    with Watcher(a, FAST):
        write(a.root, "by-git.md", "committed with git\n")
        git(a.root, "add", "by-git.md")
        git(a.root, "commit", "-q", "-m", "by git")
        wait_for(
            lambda: BucketRemote(url).head("main") == a.history.head(),
            timeout=10,
            what="the git commit on the remote",
        )


def test_a_detached_head_beside_the_watcher_is_not_pushed_in_a_loop(tmp_path: Path) -> None:
    """``git checkout <sha>`` beside the watcher: noticing HEAD moved must not start a push
    that is refused at once and retried at once (a busy loop logging thousands of errors)."""
    url = f"memfs::{(tmp_path / 'cloud' / 'shared').as_uri()}"
    a, _ = two_machines(tmp_path, url)
    write(a.root, "second.md", "2\n")
    assert sync.push(a).ok
    watcher = Watcher(a, FAST)  # not started: its turns are taken here, one by one
    git(a.root, "checkout", "-q", "--detach", "HEAD~1")
    for _ in range(3):
        watcher.step([])
    assert not watcher.state.pending_push and watcher.state.last_error is None
    git(a.root, "checkout", "-q", "main")
    write(a.root, "by-git.md", "committed with git\n")
    git(a.root, "add", "by-git.md")
    git(a.root, "commit", "-q", "-m", "by git")
    watcher.step([])
    assert BucketRemote(url).head("main") == a.history.head()


def read_if_there(path: Path) -> bytes:
    """The file's bytes, or nothing while it is absent."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
