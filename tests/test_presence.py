"""Presence: the Storage primitives it writes and lists with (``put``, ``list_stamped``) on
every adapter, the record and Heartbeat cadence (memfs/presence.py), and the hooks in sync,
watch, mount and serve (design-encryption.md §7)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.presence import DEFAULT_HEARTBEAT_S, ENV_ID, Heartbeat, env_id
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote
from memfs.remotes.s3fsstorage import open_s3fs
from memfs.remotes.storage import Storage, open_storage

from .conftest import S3Bucket

# --- Storage primitives: put and list_stamped on every adapter ------------------------------

Opener = Callable[[], Storage]


@pytest.fixture(params=["file", "memory", "s3", "s3fs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """One agent folder on each kind of store memfs writes to."""
    if request.param == "file":
        return open_storage(f"file://{tmp_path}/agent")
    if request.param == "memory":
        return open_storage(f"memory://presence-{time.monotonic_ns()}/agent")
    bucket: S3Bucket = request.getfixturevalue("s3")
    if request.param == "s3":
        return open_storage(bucket.url("cloud/agent"))
    return open_s3fs(bucket.url("cloud/agent"), {})


def test_put_overwrites_and_list_stamped_gives_times_sizes_and_the_store_clock(
    store: Storage,
) -> None:
    store.put_if_absent("manifest.json", b"{}")
    store.put("envs/e-1.json", b"first")
    store.put("envs/e-1.json", b"second!")  # one writer: a plain overwrite, no condition
    store.put("envs-not/x.json", b"x")  # a sibling whose name starts like the prefix
    got = store.get("envs/e-1.json")
    assert got is not None and got[0] == b"second!"
    entries, store_now = store.list_stamped("envs")
    assert [(key, size) for key, _, size in entries] == [("envs/e-1.json", 7)]
    mtime = entries[0][1]
    # the store's clock and the object's time agree to within S3's one-second Date precision
    assert abs(store_now - mtime) < 5 and abs(store_now - time.time()) < 60
    assert store.list_stamped("nothing-here") == ([], pytest.approx(store_now, abs=60))
    everything, _ = store.list_stamped()
    assert {key for key, _, _ in everything} == {
        "envs/e-1.json", "manifest.json", "envs-not/x.json"
    }  # fmt: skip


def test_a_folder_put_never_creates_the_agent_folder(tmp_path: Path) -> None:
    """A cloud folder moved away (or a drive not mounted) is not re-created by presence."""
    from memfs.errors import RemoteNotFoundError

    with pytest.raises(RemoteNotFoundError, match="the folder is missing"):
        open_storage(f"file://{tmp_path}/gone/agent").put("envs/e-1.json", b"{}")
    assert not (tmp_path / "gone").exists()


def test_put_is_refused_where_memfs_cannot_write(tmp_path: Path) -> None:
    import fsspec

    from memfs.errors import UnsupportedURLError
    from memfs.remotes.storage import ReadOnlyStorage

    storage = ReadOnlyStorage(fsspec.filesystem("file"), str(tmp_path), "zip://x")
    with pytest.raises(UnsupportedURLError):
        storage.put("envs/e-1.json", b"{}")


def test_s3_dates_parse() -> None:
    from memfs.remotes.s3http import http_date, iso_date

    assert http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert http_date("garbage") is None
    assert iso_date("1994-11-06T08:49:37.000Z") == 784111777.0
    assert iso_date("") is None


# --- Heartbeat: the record and its cadence, on a real folder store, with an injected clock ---


class Clock:
    """A monotonic clock the test moves by hand (the cadence is pure logic over it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cloud_agent(tmp_path: Path, name: str = "agent") -> tuple[memfs.Agent, Path]:
    agent = memfs.init(tmp_path / name, name=name)
    folder = tmp_path / "cloud" / name
    add_remote(agent.history, "origin", f"memfs::file://{folder}")
    assert sync.push(agent).ok
    return agent, folder


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((folder / "envs").glob("*.json"))]


def test_the_cadence_start_coalesced_changes_idle_heartbeat_and_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEMFS_HEARTBEAT", raising=False)
    agent, folder = _cloud_agent(tmp_path)
    clock = Clock()
    beat = Heartbeat(agent, "watch", "laptop", clock=clock)
    assert beat.heartbeat_s == 300 and beat.coalesce_s == 60
    assert beat.next_due() == clock.now, "due at once: on start"
    assert beat.beat(force=True)
    [first] = _records(folder)
    assert (first["name"], first["mode"], first["state"], first["seq"]) == (
        "laptop", "watch", "running", 1
    )  # fmt: skip
    assert first["env_id"] == env_id(agent) and ENV_ID.match(first["env_id"])
    assert first["local_head"] == agent.history.head() == first["remote_head"]
    assert (first["ahead"], first["behind"], first["dirty"]) == (0, 0, 0)
    assert not beat.beat(), "nothing due, nothing changed"
    # a sync that changed something, 10 s later: held back until 60 s after the last write
    (agent.root / "new.md").write_text("---\ndescription: d\n---\nnew\n")
    report = sync.push(agent)
    clock.now += 10
    assert not beat.beat(report)
    assert beat.next_due() == pytest.approx(clock.now + 50)
    clock.now += 50
    assert beat.beat(), "the coalesced change, written at the end of the window"
    [second] = _records(folder)
    assert second["local_head"] == agent.history.head() != first["local_head"]
    assert second["seq"] == 2
    # idle: nothing until the heartbeat, then one write
    assert beat.next_due() == pytest.approx(clock.now + 300)
    clock.now += 299
    assert not beat.beat()
    clock.now += 1
    assert beat.beat()
    # a sync that changed nothing, past the window: no write
    clock.now += 61
    assert not beat.beat(sync.push(agent))
    assert beat.next_due() == pytest.approx(clock.now - 61 + 300)
    assert beat.stop()
    [last] = _records(folder)
    assert last["state"] == "stopped" and last["seq"] == 4 and beat.writes == 4


def test_a_one_shot_sync_writes_one_stopped_cli_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMFS_ENV_NAME", "ci-runner")
    agent, folder = _cloud_agent(tmp_path)
    assert _records(folder) == [], "a library sync announces nothing unless asked"
    assert sync.sync(agent, announce=True).ok
    [record] = _records(folder)
    assert (record["name"], record["mode"], record["state"]) == ("ci-runner", "cli", "stopped")
    assert sync.push(agent, announce=True, env_name="named").ok
    [record] = _records(folder)  # the same checkout: the same environment, overwritten
    assert record["name"] == "named" and record["seq"] == 1
    monkeypatch.setenv("MEMFS_PRESENCE", "0")
    (folder / "envs" / f"{record['env_id']}.json").unlink()
    assert sync.pull(agent, announce=True).ok
    assert _records(folder) == [], "MEMFS_PRESENCE=0: no presence"
    assert Heartbeat(agent, "watch").next_due() is None


def test_a_failed_presence_write_never_fails_the_sync_and_is_retried(tmp_path: Path) -> None:
    agent, folder = _cloud_agent(tmp_path)
    (folder / "envs").write_text("a file where the envs folder should be")
    logged: list[str] = []
    clock = Clock()
    beat = Heartbeat(agent, "watch", log=logged.append, clock=clock)
    assert not beat.beat(force=True)
    assert len(logged) == 1 and "presence not written" in logged[0], logged
    assert sync.sync(agent, announce=True).ok, "the sync itself is untouched"
    (folder / "envs").unlink()
    assert beat.next_due() == pytest.approx(clock.now + 60), "retried at the next beat"
    clock.now += 60
    assert beat.beat()
    assert len(_records(folder)) == 1


def test_a_git_host_gets_no_presence(tmp_path: Path) -> None:
    from .servers import bare_repo

    agent = memfs.init(tmp_path / "agent", name="agent")
    add_remote(agent.history, "origin", str(bare_repo(tmp_path / "hub.git")))
    assert sync.sync(agent, announce=True).ok
    assert not Heartbeat(agent, "watch").beat(force=True)
    assert not (tmp_path / "hub.git" / "envs").exists()


@pytest.mark.parametrize("remote", ["none", "git host"])
def test_with_nowhere_to_write_the_next_beat_is_a_window_away(tmp_path: Path, remote: str) -> None:
    """No object store to write presence to: ``next_due()`` said "now" for ever, and a watcher
    that trusted it spun at 100% of a core (found this session); asked again 60 s later."""
    from .servers import bare_repo

    agent = memfs.init(tmp_path / "agent", name="agent")
    if remote == "git host":
        add_remote(agent.history, "origin", str(bare_repo(tmp_path / "hub.git")))
    clock = Clock()
    beat = Heartbeat(agent, "watch", clock=clock)
    assert beat.next_due() == clock.now, "due at once: on start"
    assert not beat.beat()
    assert beat.next_due() == pytest.approx(clock.now + 60)


def test_an_incremental_cli_push_costs_one_presence_put_more(s3: S3Bucket, tmp_path: Path) -> None:
    """push = 4 requests (GET manifest, PUT pack, PUT idx, CAS manifest) + 1 presence PUT."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    add_remote(agent.history, "origin", s3.url("agent"))
    assert sync.push(agent, announce=True).ok
    for round_ in range(2):
        (agent.root / "note.md").write_text(f"---\ndescription: d\n---\nround {round_}\n")
        s3.server.requests.clear()
        assert sync.push(agent, announce=True).ok
        assert s3.server.by_method() == {"GET": 1, "PUT": 4}, s3.server.requests
        envs = [path for method, path in s3.server.requests if "/envs/" in path]
        assert envs == [f"/{s3.name}/agent/envs/{env_id(agent)}.json"]


def test_an_idle_watcher_hour_stays_within_issue_12s_budget() -> None:
    """Issue 12: <= 120 requests per idle hour per agent. The idle poll schedule and the
    heartbeat, driven over an hour of their own clocks (a seeded jitter): polls + presence
    PUTs. (Every jitter at its fastest would be 120 polls + 12 PUTs: see the benchmark.)"""
    import random

    from memfs.pollschedule import PollSchedule, ScheduleSettings

    clock = Clock()
    schedule = PollSchedule(ScheduleSettings(), clock=clock, rand=random.Random(12).random)
    clock.now += ScheduleSettings().hot_for_s + 600  # idle: long past the last activity
    schedule.polled(clock.now)
    start, polls = clock.now, 0
    while clock.now < start + 3600:
        clock.now = schedule.due
        schedule.polled(clock.now)
        polls += 1
    beats = int(3600 // DEFAULT_HEARTBEAT_S)
    assert polls + beats <= 120, (polls, beats)


def test_a_server_announces_the_agents_it_serves_and_stops_cleanly(tmp_path: Path) -> None:
    from memfs.server.agents import AgentCache

    agent, folder = _cloud_agent(tmp_path, "alpha")
    cache = AgentCache(f"file://{tmp_path / 'cloud'}", {}, tmp_path / "cache")
    with cache.reading("alpha"):
        pass
    served = [r for r in _records(folder) if r["mode"] == "serve"]
    assert [(r["state"], r["local_head"]) for r in served] == [
        ("running", agent.history.head())
    ]  # fmt: skip
    cache.write("alpha", lambda a: (a.root / "new.md").write_text("x\n"), "new")
    cache.stop_presence()
    [served] = [r for r in _records(folder) if r["mode"] == "serve"]
    assert served["state"] == "stopped"
    assert served["local_head"] == BucketRemote(f"memfs::file://{folder}").head("main")


def test_a_watcher_of_a_mount_announces_mode_mount_under_its_env_name(tmp_path: Path) -> None:
    from memfs.watcher import Watcher, WatchSettings

    agent, folder = _cloud_agent(tmp_path)
    (agent.history.state_dir / "mount.json").write_text("{}")  # memfs/mount.py's marker
    settings = WatchSettings(poll_s=3600, poll_cold_s=3600, rescan_s=3600, env_name="sandbox-3")
    with Watcher(agent, settings):
        [running] = _records(folder)
        assert (running["name"], running["mode"], running["state"]) == (
            "sandbox-3", "mount", "running"
        )  # fmt: skip
    [stopped] = _records(folder)
    assert stopped["state"] == "stopped" and stopped["env_id"] == running["env_id"]
