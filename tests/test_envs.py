"""``memfs envs`` and ``memfs agents``' online count, whole ``memfs`` processes on moto S3 and
file:// clouds (design-encryption.md §7): environments show with the right mode, state, head
and behind; a clean stop says ``stopped``; a killed watcher goes offline once its heartbeat
is overdue; ``--online`` filters; a damaged record is listed with its problem; "last seen"
is the store's clock, whatever the writer's clock said."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from memfs.remotes.storage import open_storage

from .conftest import S3Bucket
from .harness import Machine, setup_two_machines, start_watcher, stop_watcher
from .servers import bare_repo, wait_for

pytestmark = pytest.mark.timeout(180)
# small heartbeats (MEMFS_HEARTBEAT_MIN lowers the 60 s floor): coalesce = heartbeat, offline
# after 2.5 heartbeats. STEADY is wide enough that a loaded machine's watcher stays online
# through a dozen commands; FAST is only waited on (a late beat delays the wait, never fails
# it), so it can be short: the killed watcher is offline 2.5 s after its last beat.
STEADY = {"MEMFS_HEARTBEAT": "3", "MEMFS_HEARTBEAT_MIN": "0.5"}
FAST = {"MEMFS_HEARTBEAT": "1", "MEMFS_HEARTBEAT_MIN": "0.5"}


@pytest.fixture(params=["s3", "file"])
def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(cloud URL for 'memfs cloud add', the URL of its agent 'shared')."""
    if request.param == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3")
        return bucket.url("cloud"), bucket.url("cloud/shared")
    return f"file://{tmp_path}/cloud", f"memfs::file://{tmp_path}/cloud/shared"


def envs(machine: Machine, *args: str) -> dict[str, Any]:
    done = machine.memfs("envs", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def by_name(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {env["name"]: env for env in listing["environments"] if env.get("name")}


def storage_of(url: str) -> Any:
    return open_storage(url.removeprefix("memfs::"))


def test_a_watcher_and_a_cli_sync_show_with_mode_state_head_and_behind(
    cloud: tuple[str, str], tmp_path: Path
) -> None:
    cloud_url, url = cloud
    a, b = setup_two_machines(tmp_path, url, STEADY)
    a.extra_env["MEMFS_ENV_NAME"] = "laptop"
    done = b.memfs("sync", "--env-name", "ci-runner")
    assert done.returncode == 0, done.stderr
    old = b.head()
    start_watcher(a)
    try:
        (a.root / "news.md").write_text("---\ndescription: news\n---\nfrom the laptop\n")
        wait_for(lambda: a.head() != old and a.clean(), what="the watcher to commit")
        new = a.head()
        wait_for(
            lambda: by_name(envs(a)).get("laptop", {}).get("local_head") == new,
            timeout=30,
            what="the watcher's record to show its new head",
        )
        listing = envs(a)
        assert listing["remote_head"] == new
        assert abs(time.time() - _epoch(listing["store_now"])) < 60
        laptop, ci = by_name(listing)["laptop"], by_name(listing)["ci-runner"]
        assert (laptop["mode"], laptop["state"], laptop["online"]) == ("watch", "running", True)
        assert (laptop["behind_remote"], laptop["problem"]) == (0, None)
        assert (ci["mode"], ci["state"], ci["online"]) == ("cli", "stopped", False)
        assert ci["local_head"] == old and ci["host"] == "machine-b"
        assert ci["behind_remote"] == int(_git(a.root, "rev-list", "--count", f"{old}..{new}"))
        assert ci["behind_remote"] >= 1
        assert len(listing["environments"]) == 2, "one environment per checkout"
        online = envs(a, "--online")
        assert [env["name"] for env in online["environments"]] == ["laptop"]
        text = a.memfs("envs")
        assert text.returncode == 0, text.stderr
        assert "1 of 2 online" in text.stdout and "laptop" in text.stdout, text.stdout
        # memfs agents: how many are online
        assert a.memfs("cloud", "add", "c", cloud_url, agent=False).returncode == 0
        agents = a.memfs("agents", "--cloud", "c", "--json", agent=False)
        assert agents.returncode == 0, agents.stderr
        assert [(x["name"], x["online"]) for x in json.loads(agents.stdout)] == [("shared", 1)]
        line = a.memfs("agents", "--cloud", "c", agent=False).stdout
        assert "1 online" in line, line
        # the cloud agent by name, with no checkout
        named = a.memfs("envs", "shared", "--cloud", "c", "--json", agent=False)
        assert named.returncode == 0, named.stderr
        assert set(by_name(json.loads(named.stdout))) == {"laptop", "ci-runner"}
    finally:
        stopped = stop_watcher(a)
    assert stopped.returncode == 0, stopped.stderr
    laptop = by_name(envs(a))["laptop"]
    assert (laptop["state"], laptop["online"]) == ("stopped", False), "a clean stop says so"


def test_a_killed_watcher_goes_offline_once_its_heartbeat_is_overdue(
    cloud: tuple[str, str], tmp_path: Path
) -> None:
    _, url = cloud
    a, _ = setup_two_machines(tmp_path, url, FAST)
    a.extra_env["MEMFS_ENV_NAME"] = "sandbox"
    start_watcher(a)
    pid = json.loads((a.root / ".git/memfs/watch.json").read_text())["pid"]
    try:
        # idle heartbeats keep it online: three records written, the last one recent
        def beating() -> bool:
            sandbox = by_name(envs(a)).get("sandbox") or {}
            return sandbox.get("seq", 0) >= 3 and sandbox["online"] is True

        wait_for(beating, timeout=30, what="idle heartbeats keeping it online")
    finally:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _alive(pid), timeout=10, what="the watcher to die")
    wait_for(
        lambda: by_name(envs(a))["sandbox"]["online"] is False,
        timeout=30,
        what="the killed watcher to go offline",
    )
    sandbox = by_name(envs(a))["sandbox"]
    assert sandbox["state"] == "running", "no clean exit: it never said stopped"
    assert sandbox["last_seen_s"] > 2.5 * sandbox["heartbeat_s"]
    text = a.memfs("envs").stdout
    assert "offline" in text and "no heartbeat for" in text, text


def test_damaged_records_are_listed_with_a_problem_and_last_seen_is_the_stores_clock(
    cloud: tuple[str, str], tmp_path: Path
) -> None:
    _, url = cloud
    a, _ = setup_two_machines(tmp_path, url)
    storage = storage_of(url)
    [(key, _, _)] = storage.list_stamped("envs")[0]
    mine = json.loads(storage.get(key)[0])
    skewed = {**mine, "env_id": "e-00000000000000cc", "name": "skewed", "state": "running"}
    skewed |= {"at": "2001-01-01T00:00:00+00:00", "started_at": "2001-01-01T00:00:00+00:00"}
    storage.put("envs/e-00000000000000cc.json", json.dumps(skewed).encode())
    storage.put("envs/e-00000000000000aa.json", b"{not json")
    storage.put("envs/e-00000000000000bb.json", json.dumps(mine).encode())  # swapped in
    listing = envs(a)
    found = {env["env_id"]: env for env in listing["environments"]}
    assert set(found) == {mine["env_id"], "e-00000000000000aa", "e-00000000000000bb",
                          "e-00000000000000cc"}  # fmt: skip
    assert found["e-00000000000000aa"]["problem"] == "not a presence record (not a JSON object)"
    assert "another environment" in found["e-00000000000000bb"]["problem"]
    assert not found["e-00000000000000aa"]["online"] and not found["e-00000000000000bb"]["online"]
    # written "in 2001" by its clock, seen just now by the store's
    assert found["e-00000000000000cc"]["last_seen_s"] < 60
    assert found["e-00000000000000cc"]["online"] is True
    text = a.memfs("envs")
    assert text.returncode == 0 and "not a presence record" in text.stdout, text
    if url.startswith("memfs::file://"):  # a folder store's clock: the file's mtime
        path = Path(url.removeprefix("memfs::file://")) / "envs/e-00000000000000cc.json"
        hour_ago = time.time() - 3600
        os.utime(path, (hour_ago, hour_ago))
        old = {e["env_id"]: e for e in envs(a)["environments"]}["e-00000000000000cc"]
        assert 3500 < old["last_seen_s"] < 3700 and old["online"] is False
    # envs rm: a gone environment's record goes; unknown and malformed ids are one line
    done = a.memfs("envs", "rm", "e-00000000000000aa")
    assert done.returncode == 0, done.stderr
    assert "e-00000000000000aa" not in {e["env_id"] for e in envs(a)["environments"]}
    again = a.memfs("envs", "rm", "e-00000000000000aa")
    assert again.returncode == 1 and "no environment e-00000000000000aa" in again.stderr
    bad = a.memfs("envs", "rm", "../manifest")
    assert bad.returncode == 2 and "not an environment id" in bad.stderr, bad.stderr
    assert storage.get("manifest.json") is not None


def test_a_git_host_holds_no_presence(tmp_path: Path) -> None:
    a = Machine.create(tmp_path, "a")
    hub = bare_repo(tmp_path / "hub.git")
    for args in (("init", str(a.root), "--name", "solo"), ("-C", str(a.root), "remote", "add",
                 "origin", str(hub))):  # fmt: skip
        assert a.memfs(*args, agent=False).returncode == 0
    done = a.memfs("envs")
    assert done.returncode == 0 and "git hosts hold no presence" in done.stdout, done
    assert envs(a)["environments"] == []


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of a daemon whose parent has gone is reaped by init; look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
