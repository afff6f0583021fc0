"""What an idle watcher costs: the hot/cold poll schedule, conditional manifest reads, and
folder clouds followed by inotify instead of polling."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

import memfs
from memfs import sync
from memfs.pollschedule import PollSchedule, ScheduleSettings
from memfs.remotes import open_remote
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote
from memfs.remotes.storage import UNCHANGED
from memfs.watcher import Watcher, WatchSettings, read_state, start_daemon, stop_daemon

from .conftest import S3Bucket, write
from .s3 import CREDENTIALS
from .s3meter import MeteredServer, metered_moto_s3
from .servers import wait_for
from .test_sync import two_machines


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def poll_until(schedule: PollSchedule, clock: Clock, until: float) -> list[float]:
    """Run polls as they fall due until ``until``; the intervals chosen."""
    intervals = []
    while schedule.due <= until:
        clock.now = schedule.due
        intervals.append(round(schedule.polled(), 6))
    return intervals


# -- the schedule, pure logic ----------------------------------------------------------------


def test_schedule_polls_hot_then_backs_off_to_cold_when_idle() -> None:
    clock = Clock()
    settings = ScheduleSettings(hot_s=1.0, cold_s=40.0, hot_for_s=5.0, jitter=0.0)
    schedule = PollSchedule(settings, clock=clock, rand=lambda: 0.5)
    assert schedule.due == clock.now, "a new watcher polls at once"
    intervals = poll_until(schedule, clock, clock.now + 300)
    assert intervals[:5] == [1.0] * 5, "hot while the start is recent"
    assert intervals[5:11] == [2.0, 4.0, 8.0, 16.0, 32.0, 40.0], "then step by step"
    assert set(intervals[11:]) == {40.0}, "and cold from there on"
    assert 3600 / 40 <= 120, "the cold interval meets the requests-per-idle-hour target"


@pytest.mark.parametrize("cause", ["local edit", "remote change"])
def test_schedule_goes_hot_at_once_on_activity(cause: str) -> None:
    clock = Clock()
    settings = ScheduleSettings(hot_s=1.0, cold_s=40.0, hot_for_s=5.0, jitter=0.0)
    schedule = PollSchedule(settings, clock=clock, rand=lambda: 0.5)
    poll_until(schedule, clock, clock.now + 300)
    assert schedule.due - clock.now == 40.0 and not schedule.hot
    clock.now += 3  # 37 s before the next cold poll
    schedule.activity()  # the watcher calls this for a local edit and for a remote change
    assert schedule.hot
    assert schedule.due == clock.now + 1.0, f"a {cause} brings the next poll within hot_s"
    assert poll_until(schedule, clock, clock.now + 5.5) == [1.0] * 4 + [2.0], "hot for 5 s"
    assert poll_until(schedule, clock, clock.now + 10)[:2] == [4.0, 8.0], "then backs off again"


def test_schedule_jitter_stays_within_bounds_and_spreads_watchers() -> None:
    settings = ScheduleSettings()  # the defaults: hot 1 s, cold 45 s +- 1/3, hot for 30 s
    for rand in (lambda: 0.0, lambda: 0.999999):
        clock = Clock()
        schedule = PollSchedule(settings, clock=clock, rand=rand)
        intervals = poll_until(schedule, clock, clock.now + 1800)
        cold = intervals[-10:]
        assert all(30.0 <= interval <= 60.0 for interval in cold), cold
        assert intervals[:30] == [1.0] * 30, "hot: 1 s exactly, the latency a user waits"
    import random

    dues = set()
    for seed in range(20):  # 20 watchers started at the same instant
        clock = Clock()
        schedule = PollSchedule(settings, clock=clock, rand=random.Random(seed).random)
        poll_until(schedule, clock, clock.now + 600)
        dues.add(schedule.due)
    assert len(dues) == 20 and max(dues) - min(dues) > 10, "watchers do not poll in lockstep"


def test_an_explicit_poll_interval_stays_fixed() -> None:
    clock = Clock()
    schedule = PollSchedule(ScheduleSettings.fixed(0.2), clock=clock)
    assert set(poll_until(schedule, clock, clock.now + 120)) == {0.2}


def test_a_local_edit_makes_the_watcher_poll_hot(agent: memfs.Agent, tmp_path: Path) -> None:
    add_remote(agent.history, "origin", f"memfs::file://{tmp_path / 'cloud'}")
    watcher = Watcher(agent, WatchSettings(poll_cold_s=45.0, poll_hot_for_s=5.0))
    watcher._poller.schedule.due = time.monotonic() + 45.0  # cold: next poll far away
    watcher.notify("system/human.md")
    assert watcher._poller.schedule.due <= time.monotonic() + 1.0


# -- conditional reads -------------------------------------------------------------------------


@pytest.fixture
def metered(monkeypatch: pytest.MonkeyPatch) -> Iterator[MeteredServer]:
    """A moto S3 of this test's own that records status and body size of each response."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with metered_moto_s3() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1").create_bucket(
            Bucket="idle-watch"
        )
        yield server


def test_a_poll_answers_unchanged_until_the_manifest_moves(tmp_path: Path) -> None:
    url = f"memfs::file://{tmp_path / 'cloud'}"
    a, _ = two_machines(tmp_path, url)
    remote = open_remote(url)
    assert isinstance(remote, BucketRemote)
    manifest, etag = remote.poll(None)  # type: ignore[misc]
    assert manifest is not None and manifest.refs["main"] == a.history.head()
    assert remote.poll(etag) is UNCHANGED
    write(a.root, "news.md", "moved on\n")
    assert sync.sync(a).ok
    moved, new_etag = remote.poll(etag)  # type: ignore[misc]
    assert new_etag != etag and moved is not None and moved.refs["main"] == a.history.head()


def test_a_poll_of_an_unchanged_s3_manifest_transfers_no_body(
    metered: MeteredServer, tmp_path: Path
) -> None:
    a = memfs.init(tmp_path / "a", name="polled")
    add_remote(a.history, "origin", "s3://idle-watch/polled")
    assert sync.push(a).ok
    remote = open_remote("memfs::s3://idle-watch/polled")
    assert isinstance(remote, BucketRemote)
    _, etag = remote.poll(None)  # type: ignore[misc]
    metered.served.clear()
    assert remote.poll(etag) is UNCHANGED
    [request] = metered.served
    assert request.method == "GET" and request.path.endswith("/manifest.json")
    assert (request.status, request.body_bytes) == (304, 0), request


# -- whole processes ----------------------------------------------------------------------------


def test_an_idle_watcher_backs_off_on_s3(
    s3: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real ``memfs watch --daemon`` on moto, with the schedule scaled down (hot for 0.5 s,
    cold 4 s): over 8 idle seconds it polls at most 5 times, where 1 s polling made 8+."""
    monkeypatch.setenv("MEMFS_WATCH_HOT_FOR_S", "0.5")
    monkeypatch.setenv("MEMFS_WATCH_COLD_S", "4")
    agent = memfs.init(tmp_path / "idle", name="idle")
    add_remote(agent.history, "origin", s3.url("idle"))
    assert sync.push(agent).ok
    start_daemon(agent, [])
    try:
        before = len(s3.server.requests)
        time.sleep(8.0)  # the window being measured, not synchronisation
        window = s3.server.requests[before:]
    finally:
        stop_daemon(agent)
    assert read_state(agent).get("last_error") is None
    polls = [r for r in window if r == ("GET", f"/{s3.name}/idle/manifest.json")]
    assert polls == window, f"an idle watcher only reads the manifest: {window}"
    assert 1 <= len(polls) <= 5, f"{len(polls)} polls in 8 s: no backoff"


def test_a_folder_cloud_change_reaches_the_watcher_by_inotify(tmp_path: Path) -> None:
    """With polling an hour apart, only the inotify watch on the cloud folder can bring A's
    push to B within the deadline."""
    a, b = two_machines(tmp_path, f"memfs::file://{tmp_path / 'cloud'}")
    settings = WatchSettings(quiet_ms=100, poll_s=3600, poll_cold_s=3600, rescan_s=3600)
    with Watcher(b, settings) as watcher:
        assert watcher.state.remote_mode == "inotify"
        assert read_state(b)["remote_mode"] == "inotify"
        write(a.root, "from-a.md", "pushed by A\n")
        assert sync.sync(a).ok
        wait_for(lambda: (b.root / "from-a.md").exists(), timeout=10, what="A's push to reach B")
    assert (b.root / "from-a.md").read_text() == "pushed by A\n"


def test_a_folder_cloud_that_cannot_be_watched_is_polled(tmp_path: Path) -> None:
    a, b = two_machines(tmp_path, f"memfs::file://{tmp_path / 'cloud'}")
    settings = WatchSettings(pull_only=True, poll_s=0.2, rescan_s=3600)  # pushes nothing
    watcher = Watcher(b, settings)
    os.rename(tmp_path / "cloud", tmp_path / "cloud-moved")  # gone when the watch is set
    with watcher:
        assert watcher.state.remote_mode == "polling"
        os.rename(tmp_path / "cloud-moved", tmp_path / "cloud")
        write(a.root, "from-a.md", "pushed by A\n")
        assert sync.sync(a).ok
        wait_for(lambda: (b.root / "from-a.md").exists(), timeout=10, what="a poll to find it")


def test_a_poll_that_finds_a_change_pulls_with_the_manifest_it_read(
    s3: S3Bucket, tmp_path: Path
) -> None:
    """One manifest read per remote change: the pull's fetch reuses what the poll read."""
    a, b = two_machines(tmp_path, s3.url("shared"))
    watcher = Watcher(b, WatchSettings(poll_s=3600, rescan_s=3600))
    assert watcher._poll() is False  # nothing moved: one read, the ETag kept
    write(a.root, "news.md", "from A\n")
    assert sync.sync(a).ok
    s3.server.requests.clear()
    assert watcher._poll() is True
    assert (b.root / "news.md").read_text() == "from A\n"
    manifest = f"/{s3.name}/shared/manifest.json"
    assert s3.server.count("GET", manifest) == 1, s3.server.requests
    assert s3.server.count("GET", "/packs/") == 1, s3.server.requests
    s3.server.requests.clear()
    assert watcher._poll() is False
    assert s3.server.requests == [("GET", manifest)], "then one read per poll, nothing else"


def test_a_followed_folder_is_read_once_as_soon_as_it_is_watched(
    agent: memfs.Agent, tmp_path: Path
) -> None:
    """A push between the watcher's catch-up sync and its inotify watch is not left waiting
    for the cold safety read."""
    from watchdog.observers import Observer

    from memfs.remotepoll import RemotePoller

    add_remote(agent.history, "origin", f"memfs::file://{tmp_path / 'cloud'}")
    assert sync.push(agent).ok
    errors: list[str] = []
    poller = RemotePoller(agent, ScheduleSettings.fixed(3600), 3600, errors.append, errors.append)
    observer = Observer()
    observer.start()
    try:
        assert poller.follow_folders(observer, lambda: None) == "inotify"
        now = time.monotonic()
        poller.finished(now, scheduled=True, moved=False)  # the first scheduled poll is done
        assert poller.due(now) == (False, True), "the folder is read at once"
        assert poller.due(now) == (False, False), "then on events and every cold interval"
    finally:
        observer.stop()
        observer.join(timeout=10)
    assert errors == []
