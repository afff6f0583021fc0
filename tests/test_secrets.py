"""Secrets (docs/design-encryption.md §6, §6.2): names, values never on the command line or
in output, the store in the manifest shared by machines (changes from two machines both kept,
removal carried, a rolled-back or tampered blob refused, a machine without a slot told how to
get one), a local keyring before any object-store remote, the commit guard, and Letta Agent
File import and export."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import memfs
from memfs.remotes.configure import add_remote
from memfs.secrets.store import SecretStore, SecretValue

from .conftest import memfs_process, write
from .harness import Machine, setup_two_machines
from .secretsfix import agent_with_secrets
from .test_secrets_e2e import give_b_a_slot, python_on

VALUE = "sk-test-4c1d9e0f7a2b5c8d"


def memfs_in(machine: Machine, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(machine.root), *args],
        env=machine.env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def names_on(machine: Machine) -> list[str]:
    listed = json.loads(ok(memfs_in(machine, "secret", "list", "--json")))["secrets"]
    return [row["name"] for row in listed if not row.get("removed")]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Machine, Machine, str]:
    url = f"memfs::{(tmp_path / 'cloud' / 'shared').as_uri()}"
    a, b = setup_two_machines(tmp_path, url)
    return a, b, url


def manifest_of(tmp_path: Path) -> Path:
    return tmp_path / "cloud" / "shared" / "manifest.json"


# -- names, the command line, what is printed ---------------------------------------------


def test_names_and_values_are_checked_and_never_taken_from_argv(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {})
    done = memfs_process("-C", str(root), "secret", "set", "api_key", "--", env=None)
    assert done.returncode == 2 and "API_KEY" in done.stderr  # the uppercase hint
    done = memfs_process("-C", str(root), "secret", "set", "API_KEY", VALUE)
    assert done.returncode == 2 and "never from the command line" in done.stderr
    assert VALUE not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(root), "secret", "set", "API_KEY"],
        input="\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "empty" in done.stderr
    with memfs.open(root) as agent:
        assert SecretStore.load(agent).names() == []


def test_values_never_show_in_listings_reprs_or_errors(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE, "PIN": "1234"})
    listed = memfs_process("-C", str(root), "secret", "list", "--json")
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)["secrets"]
    assert [(r["name"], r["set_by"], r["pending"]) for r in rows] == [
        ("API_KEY", "test-host", False),
        ("PIN", "test-host", False),
    ]
    assert VALUE not in listed.stdout and "1234" not in listed.stdout
    with memfs.open(root) as agent:
        values = SecretStore.load(agent).values()
    assert repr(values) == "{'API_KEY': <secret API_KEY>, 'PIN': <secret PIN>}"
    assert str(values["API_KEY"]) == "<secret API_KEY>"
    assert isinstance(values["API_KEY"], SecretValue) and values["API_KEY"].reveal() == VALUE
    done = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(root), "secret", "set", "SHORT"],
        input="abc",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "shorter than 8 bytes" in done.stderr
    assert memfs_process("-C", str(root), "secret", "rm", "NOPE").returncode == 2


# -- the store, shared -------------------------------------------------------------------


def test_two_machines_change_secrets_without_syncing_and_both_changes_stay(
    pair: tuple[Machine, Machine, str], tmp_path: Path
) -> None:
    """B sets its secret from a view that lacks A's (a lost race, in slow motion): the push
    applies B's change to the store's newer blob, so neither is lost; a removal travels."""
    a, b, url = pair
    ok(memfs_in(a, "secret", "set", "FROM_A", stdin="value-from-machine-a"))
    give_b_a_slot(a, b, url)
    ok(memfs_in(b, "secret", "set", "FROM_B", stdin="value-from-machine-b"))
    assert names_on(b) == ["FROM_A", "FROM_B"]  # B read A's before adding its own
    ok(memfs_in(a, "secret", "set", "ALSO_A", stdin="another-value-from-a"))
    ok(memfs_in(b, "secret", "rm", "FROM_A"))
    for machine in (a, b):
        ok(memfs_in(machine, "sync"))
    assert names_on(a) == names_on(b) == ["ALSO_A", "FROM_B"]
    blob = json.loads(manifest_of(tmp_path).read_text())["secrets"]
    assert b"value-from" not in base64.b64decode(blob)


def test_a_machine_without_a_slot_syncs_memory_and_is_told_how_to_get_one(
    pair: tuple[Machine, Machine, str],
) -> None:
    a, b, _ = pair
    ok(memfs_in(a, "secret", "set", "API_KEY", stdin=VALUE))
    ok(memfs_in(a, "sync"))
    ok(memfs_in(b, "sync"))  # memory syncs; the secrets stay unreadable here
    assert names_on(b) == []
    recipient = python_on(
        b, "from memfs.crypto.identity import ensure_identity; print(ensure_identity().recipient)"
    )
    done = memfs_in(b, "secret", "set", "OTHER", stdin="some-other-value")
    assert done.returncode == 10
    assert f"memfs key add {recipient}" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_rolled_back_or_tampered_blob_is_refused(
    pair: tuple[Machine, Machine, str], tmp_path: Path
) -> None:
    a, b, url = pair
    ok(memfs_in(a, "secret", "set", "API_KEY", stdin=VALUE))
    give_b_a_slot(a, b, url)
    old = json.loads(manifest_of(tmp_path).read_text())["secrets"]
    ok(memfs_in(a, "secret", "set", "API_KEY", stdin=VALUE + "-rotated"))
    ok(memfs_in(b, "sync"))
    assert names_on(b) == ["API_KEY"]
    manifest = json.loads(manifest_of(tmp_path).read_text())
    manifest["secrets"] = old  # the older blob put back
    manifest_of(tmp_path).write_text(json.dumps(manifest))
    done = memfs_in(b, "pull")
    assert done.returncode == 10 and "older copy" in done.stderr, done.stderr
    flipped = bytearray(base64.b64decode(old))
    flipped[-5] ^= 1
    manifest["secrets"] = base64.b64encode(bytes(flipped)).decode()
    manifest_of(tmp_path).write_text(json.dumps(manifest))
    done = memfs_in(b, "pull")
    assert done.returncode == 10 and "manifest.json#secrets" in done.stderr, done.stderr
    assert VALUE not in done.stderr


def test_secrets_before_any_object_store_go_to_the_first_one(tmp_path: Path) -> None:
    root = tmp_path / "solo"
    with memfs.init(root, name="solo"):
        pass
    done = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(root), "secret", "set", "API_KEY"],
        input=VALUE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "kept here only" in done.stdout, done.stderr
    assert "Secrets: 1 change not pushed yet" in memfs_process("-C", str(root), "status").stdout
    cloud = tmp_path / "cloud"
    with memfs.open(root) as agent:
        add_remote(agent.history, "origin", "memfs::" + cloud.as_uri())
    assert memfs_process("-C", str(root), "push").returncode == 0
    blob = json.loads((cloud / "manifest.json").read_text()).get("secrets")
    assert blob and VALUE.encode() not in base64.b64decode(blob)
    listed = json.loads(memfs_process("-C", str(root), "secret", "list", "--json").stdout)
    assert listed["secrets"][0]["pending"] is False
    assert json.loads((cloud / "keys.json").read_text())["slots"][0]["name"] == "test-host"


# -- the commit guard --------------------------------------------------------------------


def test_a_file_holding_a_value_is_held_and_a_message_holding_one_refused(
    tmp_path: Path,
) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    encoded = base64.b64encode(VALUE.encode()).decode()
    write(root, "system/notes.md", f"---\ndescription: notes\n---\nuse {encoded} here\n")
    write(root, "system/fine.md", "---\ndescription: fine\n---\nuse $API_KEY here\n")
    done = memfs_process("-C", str(root), "commit")
    assert VALUE not in done.stdout + done.stderr and encoded not in done.stdout + done.stderr
    with memfs.open(root) as agent:
        tree = agent.history.tree_of(agent.history.head())
        assert "system/fine.md" in tree and "system/notes.md" not in tree
        reason = agent.left_out_reason("system/notes.md")
        assert reason is not None and "secret API_KEY" in reason
    assert (root / "system/notes.md").exists()
    shown = memfs_process("-C", str(root), "status").stdout
    assert "hold a secret's value" in shown and "system/notes.md:4:" in shown
    status = json.loads(memfs_process("-C", str(root), "status", "--json").stdout)
    assert status["secrets_pending"] == 0
    assert [(p["path"], p["line"]) for p in status["held"]] == [("system/notes.md", 4)]
    assert "holds the value of secret API_KEY" in status["held"][0]["message"]
    (root / "system/notes.md").unlink()
    write(root, "system/fine.md", "---\ndescription: fine\n---\nchanged\n")
    done = memfs_process("-C", str(root), "commit", "-m", f"rotate to {VALUE}")
    assert done.returncode == 1 and "secret API_KEY" in done.stderr
    assert VALUE not in done.stderr
    log = subprocess.run(
        ["git", "log", "--format=%B"], cwd=root, capture_output=True, text=True, check=True
    )
    assert VALUE not in log.stdout


# -- Letta Agent Files -------------------------------------------------------------------


def test_import_keeps_secret_values_and_export_writes_them_back_when_asked(
    tmp_path: Path,
) -> None:
    document = {
        "agents": [
            {
                "name": "helper",
                "block_ids": ["block-0"],
                "secrets": [
                    {"key": "OPENAI_API_KEY", "value": VALUE},
                    {"key": "bad-name", "value": "x" * 9},
                ],
                "tool_exec_environment_variables": {"TOOL_TOKEN": "tool-token-value-1"},
            }
        ],
        "blocks": [{"id": "block-0", "label": "human", "value": "Ada", "limit": 5000}],
    }
    (tmp_path / "in.af").write_text(json.dumps(document))
    done = memfs_process("import-af", "in.af", "helper", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "kept the value of secret agent 'helper' secrets.OPENAI_API_KEY" in done.stderr
    assert "left out the value of secret agent 'helper' secrets.bad-name" in done.stderr
    root = tmp_path / "helper"
    with memfs.open(root) as agent:
        values = SecretStore.load(agent).plain_values()
    assert values == {"OPENAI_API_KEY": VALUE, "TOOL_TOKEN": "tool-token-value-1"}
    plain = memfs_process("-C", str(root), "export-af", "-o", "plain.af", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert VALUE not in (tmp_path / "plain.af").read_text()
    assert "OPENAI_API_KEY" in plain.stderr and "--with-secrets" in plain.stderr
    full = memfs_process(
        "-C", str(root), "export-af", "-o", "full.af", "--with-secrets", cwd=tmp_path
    )
    assert full.returncode == 0, full.stderr
    exported = json.loads((tmp_path / "full.af").read_text())["agents"][0]
    assert exported["secrets"] == [
        {"key": "OPENAI_API_KEY", "value": VALUE},
        {"key": "bad-name", "value": ""},
    ]
    assert exported["tool_exec_environment_variables"] == {"TOOL_TOKEN": "tool-token-value-1"}
    assert os.stat(tmp_path / "full.af").st_mode & 0o777 == 0o600


def test_a_change_made_offline_stays_pending_and_the_next_sync_sends_it(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    cloud = tmp_path / "cloud" / "keeper"
    away = cloud.rename(tmp_path / "away")  # the store out of reach
    done = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(root), "secret", "set", "NEW_KEY"],
        input="set-while-offline-1",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "not pushed yet" in done.stdout, done.stderr
    listed = json.loads(memfs_process("-C", str(root), "secret", "list", "--json").stdout)
    assert [(r["name"], r["pending"]) for r in listed["secrets"]] == [
        ("API_KEY", False),
        ("NEW_KEY", True),
    ]
    away.rename(cloud)
    assert memfs_process("-C", str(root), "sync").returncode == 0
    listed = json.loads(memfs_process("-C", str(root), "secret", "list", "--json").stdout)
    assert [r["pending"] for r in listed["secrets"]] == [False, False]
    assert not (root / ".git" / "memfs" / "secrets.pending.enc").exists()
