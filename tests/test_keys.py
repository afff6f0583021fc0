"""``memfs key``: machines join, leave and recover an agent's keyring (issue 14, design §4).

Every "machine" is its own HOME and config folder (its identity and key cache beside the
config file), running whole ``memfs`` processes (tests/harness.py), on file:// stores and on
moto's S3 over HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from memfs.crypto.envelope import Role, seal
from memfs.crypto.keyfile import commitment, link_name
from memfs.keys import storage_for_url

from .harness import Machine, assert_exit_is_documented, memfs_command

KEY_EXIT = 10
USAGE_EXIT = 2
SLOT_FIELDS = {
    "id", "kind", "name", "host", "added_at", "added_by", "recipient", "this_machine", "epoch",
}  # fmt: skip
KEYRING = """
import sys
from memfs.keys import agent_keys, storage_for_url
agent_keys(storage_for_url(sys.argv[1]), create_name=sys.argv[2])
"""


def run(
    machine: Machine, *args: str, stdin: str = "", agent: bool = True
) -> subprocess.CompletedProcess[str]:
    """``memfs [-C root] ARGS`` on ``machine``, ``stdin`` piped in (passphrases)."""
    command = memfs_command(*((("-C", str(machine.root)) if agent else ()) + args))
    done = subprocess.run(
        command,
        env=machine.env(),
        cwd=machine.home,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_exit_is_documented(done, f"{machine.name}: memfs {' '.join(args)}")
    return done


def ok(machine: Machine, *args: str, stdin: str = "", agent: bool = True) -> str:
    done = run(machine, *args, stdin=stdin, agent=agent)
    assert done.returncode == 0, f"{machine.name}: memfs {' '.join(args)}: {done.stderr}"
    return done.stdout


def key_id(machine: Machine) -> str:
    return ok(machine, "key", "id", agent=False).strip()


def slots(machine: Machine) -> list[dict]:
    return json.loads(ok(machine, "key", "list", "--json"))["slots"]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return "memfs::" + (tmp_path / "cloud" / "agent").as_uri()


def machine(tmp_path: Path, name: str) -> Machine:
    made = Machine.create(tmp_path, name)
    for setting in (("user.name", name), ("user.email", f"{name}@x.org")):
        subprocess.run(["git", "config", "--file", str(made.home / ".gitconfig"), *setting])
    return made


def keyed_agent(tmp_path: Path, url: str) -> Machine:
    """Machine a: an agent pushed to ``url`` with a keyring whose one slot is a's."""
    a = machine(tmp_path, "a")
    ok(a, "init", str(a.root), "--name", "shared", agent=False)
    ok(a, "remote", "add", "origin", url)
    ok(a, "push")
    subprocess.run([*memfs_command()[:1], "-c", KEYRING, url, "a"], env=a.env(), check=True)
    return a


def join(a: Machine, other: Machine, url: str) -> None:
    """``other`` is added by a, then clones the agent."""
    ok(a, "key", "add", key_id(other), "--name", other.name)
    ok(other, "clone", url, str(other.root), agent=False)


# -- id, add, list -------------------------------------------------------------------------


def test_key_id_needs_no_agent_and_is_this_machines_for_good(tmp_path: Path) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    first = key_id(a)
    assert first.startswith("age1") and key_id(a) == first
    assert key_id(b) != first
    identity = a.home / ".config/memfs/identity"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    assert first not in identity.read_text() or "AGE-SECRET-KEY-1" in identity.read_text()


def test_add_and_list_show_every_slot_and_this_machine(tmp_path: Path, url: str) -> None:
    a = keyed_agent(tmp_path, url)
    b = machine(tmp_path, "b")
    added = ok(a, "key", "add", key_id(b), "--name", "laptop-b")
    assert "Added slot s-" in added
    listed = slots(a)
    assert [s["name"] for s in listed] == ["a", "laptop-b"]
    assert all(set(s) == SLOT_FIELDS for s in listed)
    assert [s["this_machine"] for s in listed] == [True, False]
    assert listed[1]["recipient"] == key_id(b) and listed[1]["added_by"] == listed[0]["id"]
    assert {s["epoch"] for s in listed} == {1} and {s["kind"] for s in listed} == {"x25519"}
    again = ok(a, "key", "add", key_id(b), "--name", "other-name")  # no second slot
    assert listed[1]["id"] in again and len(slots(a)) == 2

    ok(b, "clone", url, str(b.root), agent=False)
    on_b = json.loads(ok(b, "key", "list", "--json"))
    assert on_b["verified"] and on_b["epoch"] == 1 and on_b["remote"] == "origin"
    assert [s["this_machine"] for s in on_b["slots"]] == [False, True]
    text = ok(b, "key", "list")
    assert "* s-" in text and "laptop-b" in text and "epoch 1, 2 slots" in text


def test_bad_input_gets_one_line_and_its_exit_code(tmp_path: Path, url: str) -> None:
    a = keyed_agent(tmp_path, url)
    cases = [
        (("key", "add", "age1notarecipient", "--name", "x"), USAGE_EXIT, "not an age recipient"),
        (("key", "add", "--name", "x"), USAGE_EXIT, "RECIPIENT"),
        (("key", "rm", "s-nothere"), USAGE_EXIT, "no slot 's-nothere'"),
        (("key", "rm", "a", "--force"), KEY_EXIT, "last slot"),
        (("key", "list", "--remote", "nope"), USAGE_EXIT, "nope"),
        (("key", "add", "--passphrase"), USAGE_EXIT, "passphrases differ"),
    ]
    for args, code, words in cases:
        stdin = "one\ntwo\n" if "--passphrase" in args else ""
        done = run(a, *args, stdin=stdin)
        assert done.returncode == code, (args, done.stderr)
        assert words in done.stderr, done.stderr
        if "Usage:" not in done.stderr:  # click's own usage errors show the usage line too
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    ok(a, "remote", "add", "hub", str(tmp_path / "hub.git"))
    done = run(a, "key", "list", "--remote", "hub")
    assert done.returncode == USAGE_EXIT and "git host" in done.stderr
    assert [s["name"] for s in slots(a)] == ["a"]  # nothing was changed
    ok(a, "key", "add", key_id(machine(tmp_path, "b")), "--name", "b")
    ok(a, "key", "add", key_id(machine(tmp_path, "c")), "--name", "b")
    for args, code, words in [
        (("key", "rm", "a"), USAGE_EXIT, "this machine's own slot: it could no longer read"),
        (("key", "rm", "b"), USAGE_EXIT, "several slots are named 'b'"),
    ]:
        done = run(a, *args)
        assert done.returncode == code and words in done.stderr, done.stderr
    assert [s["epoch"] for s in slots(a)] == [1, 1, 1]


def test_a_machine_without_a_slot_lists_unverified_and_cannot_add(tmp_path: Path, url: str) -> None:
    a = keyed_agent(tmp_path, url)
    c = machine(tmp_path, "c")
    ok(c, "clone", url, str(c.root), agent=False)  # a plain agent: its memory needs no key
    listing = json.loads(ok(c, "key", "list", "--json"))
    assert not listing["verified"] and not any(s["this_machine"] for s in listing["slots"])
    done = run(c, "key", "add", key_id(c), "--name", "c")
    assert done.returncode == KEY_EXIT and key_id(c) in done.stderr
    assert [s["name"] for s in slots(a)] == ["a"]


# -- rotation ------------------------------------------------------------------------------


def test_rm_rotates_and_the_removed_machine_gets_no_new_key(tmp_path: Path, url: str) -> None:
    a = keyed_agent(tmp_path, url)
    b, c = machine(tmp_path, "b"), machine(tmp_path, "c")
    join(a, b, url)
    join(a, c, url)
    ok(c, "key", "list")  # c holds epoch 1
    c_slot = next(s["id"] for s in slots(a) if s["name"] == "c")
    out = ok(a, "key", "rm", "c")
    assert f"Removed slot {c_slot}" in out and "epoch 2" in out
    assert [s["name"] for s in slots(b)] == ["a", "b"]  # b opens epoch 2
    done = run(c, "key", "list", "--json")
    assert done.returncode == 0 and not json.loads(done.stdout)["verified"]
    cache = c.home / ".config/memfs/keys"
    held = [json.loads(p.read_text())["epochs"] for p in cache.glob("*.json")]
    assert [sorted(h) for h in held] == [["1"]]
    ring = json.loads(storage_for_url(url).get("keys.json")[0])  # type: ignore[index]
    # the link proves the rotation without giving epoch 2's key to a holder of epoch 1
    assert base64.b64decode(held[0]["1"]) not in base64.b64decode(ring["link"])


def test_forged_rotation_refused(tmp_path: Path, url: str) -> None:
    """keys.json rewritten by someone with the store's credentials and no key: a new epoch of
    their own, wrapped to every real recipient, its link sealed under a wrong key."""
    import pyrage

    a = keyed_agent(tmp_path, url)
    b = machine(tmp_path, "b")
    join(a, b, url)
    ok(b, "key", "list")  # b holds epoch 1
    storage = storage_for_url(url)
    data, etag = storage.get("keys.json")  # type: ignore[misc]
    ring = json.loads(data)
    repo = bytes.fromhex(ring["repo_id"])
    own, wrong = os.urandom(32), os.urandom(32)
    from memfs.crypto.keyfile import kid

    for slot in ring["slots"]:
        wrapped = pyrage.encrypt(own, [pyrage.x25519.Recipient.from_str(slot["recipient"])])
        slot["wrapped"] = base64.b64encode(wrapped).decode()
    history = json.dumps({"1": base64.b64encode(wrong).decode()}).encode()
    ring.update(
        epoch=2,
        kid=kid(own, repo),
        history=base64.b64encode(
            seal(own, 2, Role.HISTORY, repo, "keys.json#history", history)
        ).decode(),
        link=base64.b64encode(
            seal(wrong, 1, Role.LINK, repo, link_name(2), commitment(own, repo))
        ).decode(),
    )
    assert storage.put_if_match("keys.json", json.dumps(ring).encode(), etag)
    for who in (a, b):
        done = run(who, "key", "list")
        assert done.returncode == KEY_EXIT, done.stderr
        assert "keys.json" in done.stderr and "does not hold the agent's key" in done.stderr
    done = run(a, "key", "add", key_id(machine(tmp_path, "d")), "--name", "d")
    assert done.returncode == KEY_EXIT


def test_trust_rollback_forgets_what_was_seen(tmp_path: Path, url: str) -> None:
    a = keyed_agent(tmp_path, url)
    assert "nothing was recorded" in ok(a, "key", "trust-rollback", "origin")
    done = run(a, "key", "trust-rollback", "nope")
    assert done.returncode == USAGE_EXIT
