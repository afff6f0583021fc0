"""Outside review of session 7's status record and presence (session 8, /tmp/p8/findings.md).

Each test is a finding: what an attacker or an unlucky user did, and what must hold. Presence
records are planted in a folder cloud the way another machine sharing it (or a folder-syncing
tool) would write them; the CLI runs in-process. The status-record findings F1-F3 (a planted
pickle, a `gitdir:` agent, a symlinked ignore file) and their fixes are in tests/test_records.py.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import memfs
from memfs import presence, sync
from memfs.envs import environments, online_count
from memfs.remotes.configure import add_remote
from memfs.remotes.storage import open_storage

from .conftest import git, run_cli

PLANTED = "e-00000000000000aa"


def cloud_agent(tmp_path: Path) -> tuple[memfs.Agent, Path]:
    """An agent pushed to a folder cloud: its own presence record is there."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    folder = tmp_path / "cloud" / "agent"
    add_remote(agent.history, "origin", f"memfs::file://{folder}")
    assert sync.push(agent).ok
    assert presence.once(agent, None)  # what a CLI push writes after it
    return agent, folder


def own_record(folder: Path) -> dict[str, Any]:
    [path] = (folder / "envs").glob("*.json")
    return dict(json.loads(path.read_text()))


def plant(folder: Path, body: bytes | dict[str, Any], age_s: float = 0.0) -> Path:
    """A record under the planted id, ``age_s`` old by its file's time (negative: future)."""
    path = folder / "envs" / f"{PLANTED}.json"
    path.write_bytes(body if isinstance(body, bytes) else json.dumps(body).encode())
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def listed(agent: memfs.Agent) -> tuple[str, dict[str, dict[str, Any]]]:
    """``memfs envs`` as text, and ``memfs envs --json``'s environments by id (parsed strictly:
    NaN or Infinity in the output fails)."""
    text = run_cli("-C", str(agent.root), "envs")
    assert text.exit_code == 0, text.output
    as_json = run_cli("-C", str(agent.root), "envs", "--json")
    assert as_json.exit_code == 0, as_json.output

    def strict(name: str) -> Any:
        raise AssertionError(f"{name} in 'memfs envs --json'")

    report = json.loads(as_json.output, parse_constant=strict)
    return text.output, {env["env_id"]: env for env in report["environments"]}


def test_a_deeply_nested_record_is_listed_with_its_problem(tmp_path: Path) -> None:
    """`[[[[...` within the 64 KiB a record may have raised RecursionError: `memfs envs` and
    `memfs agents` (every agent of the cloud) died with an internal error (exit 70)."""
    agent, folder = cloud_agent(tmp_path)
    for deep in (b"[" * 60_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
        plant(folder, deep)
        text, found = listed(agent)
        assert found[PLANTED]["problem"] == "not a presence record (not a JSON object)"
        assert "not a presence record" in text
        assert online_count(open_storage(f"file://{folder}")) == 0


def test_a_record_of_wrong_types_is_shown_without_crashing(tmp_path: Path) -> None:
    """A heartbeat that is not a number made `memfs envs` die on float() (exit 70) once the
    environment was overdue; a list for a name or a dict for a head showed as Python reprs."""
    agent, folder = cloud_agent(tmp_path)
    mine = own_record(folder)
    odd = {**mine, "env_id": PLANTED, "state": "running", "heartbeat_s": "soon"}
    odd |= {"name": ["x"], "local_head": {"sha": 1}, "ahead": "many", "dirty": True}
    plant(folder, odd, age_s=10_000)
    text, found = listed(agent)
    env = found[PLANTED]
    assert (env["online"], env["problem"], env["heartbeat_s"]) == (False, None, None)
    assert (env["name"], env["local_head"], env["ahead"], env["dirty"]) == (None, None, None, None)
    assert "offline" in text and "['x']" not in text and "{'sha'" not in text


def test_no_record_is_online_forever_and_json_stays_json(tmp_path: Path) -> None:
    """`"heartbeat_s": Infinity` (Python's json reads it) kept a dead environment online for
    ever and put `Infinity` into `memfs envs --json`, which strict JSON parsers refuse; a
    heartbeat of 1e300 s did the first alone."""
    agent, folder = cloud_agent(tmp_path)
    mine = own_record(folder)
    year = 365 * 86_400
    for heartbeat in ("Infinity", "NaN", "1e300"):
        body = json.dumps({**mine, "env_id": PLANTED, "state": "running", "heartbeat_s": 1.5})
        plant(folder, body.replace("1.5", heartbeat).encode(), age_s=year)
        _, found = listed(agent)
        assert found[PLANTED]["online"] is False, heartbeat


def test_a_head_that_is_not_a_sha_is_never_looked_up(tmp_path: Path) -> None:
    """A record's local_head went to the object store as it was: a path-like string made
    dulwich assert (exit 70) with packs present, and is a path to stat outside .git without."""
    agent, folder = cloud_agent(tmp_path)
    git(agent.root, "repack", "-a", "-d", "-q")
    agent.close()
    mine = own_record(folder)
    for head in ("../../../../../../etc/passwd", "/etc/passwd", "HEAD", "0" * 39 + "G"):
        plant(folder, {**mine, "env_id": PLANTED, "local_head": head})
        _, found = listed(agent)
        assert (found[PLANTED]["local_head"], found[PLANTED]["behind_remote"]) == (None, None)
    assert found[mine["env_id"]]["behind_remote"] == 0  # a real head still counts


def test_a_record_dated_in_the_future_does_not_age_the_others(tmp_path: Path) -> None:
    """A folder cloud's "store clock" was the newest file time: one record written by a
    machine whose clock runs two hours fast (or copied with its time by a syncing tool)
    made every other environment look two hours old, and so offline."""
    agent, folder = cloud_agent(tmp_path)
    mine = own_record(folder)
    plant(folder, {**mine, "env_id": PLANTED, "state": "running"}, age_s=-7_200)
    _, found = listed(agent)
    assert found[mine["env_id"]]["last_seen_s"] < 60
    assert found[PLANTED]["last_seen_s"] == 0 and found[PLANTED]["online"] is True
    report = environments(agent)
    assert report.store_now is not None and abs(report.store_now - time.time()) < 60


def test_names_from_the_store_reach_the_terminal_without_control_characters(
    tmp_path: Path,
) -> None:
    """Held: escapes, newlines and bidi controls in a record's name and host are shown as '?'."""
    agent, folder = cloud_agent(tmp_path)
    mine = own_record(folder)
    evil = {**mine, "env_id": PLANTED, "name": "\x1b[2J\x1b]0;t\x07\nx\u202ey", "host": "\r\x1b[K"}
    plant(folder, evil)
    text, found = listed(agent)
    assert found[PLANTED]["name"] == evil["name"]  # --json escapes it
    assert not any(ch in text for ch in "\x1b\x07\r\u202e")
    assert len(text.splitlines()) == 4  # header, two environments, summary: no injected line


@pytest.mark.parametrize("chosen", ["nan", "inf", "-inf"])
def test_a_heartbeat_setting_that_is_no_number_of_seconds_is_the_default(
    chosen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MEMFS_HEARTBEAT=nan beat never (NaN won every max()) and wrote NaN into the record,
    which is not JSON; inf wrote Infinity and beat never."""
    monkeypatch.setenv("MEMFS_HEARTBEAT", chosen)
    assert presence.heartbeat_interval() == presence.DEFAULT_HEARTBEAT_S
    monkeypatch.setenv("MEMFS_HEARTBEAT", "120")
    monkeypatch.setenv("MEMFS_HEARTBEAT_MIN", chosen)
    assert presence.heartbeat_interval() == 120
