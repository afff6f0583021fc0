"""A hostile store in front of an encrypted agent (issue 14): objects a store could send that
no honest memfs wrote. Whole memfs processes on separate machines, moto S3 over HTTP and
folder clouds, the store changed behind memfs's back.

Every case must end in one clear line and exit 10 (7 where it is not a key or integrity
matter), nothing imported (refs, packs, index and work tree as they were), nothing written
outside the agent, and, once the store is honest again, a pull that works: no state left
behind that blocks the machine. One shared agent per store serves every case in turn, so
the many cases cost one setup.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .harness import committed_files, fsck, git
from .machines import (
    CLOUD,
    KEY_EXIT,
    Box,
    Store,
    absent_or_empty,
    assert_one_clear_line,
    box,
    make_store,
    repo_state,
    share_encrypted,
    snapshot,
    start_encrypted_agent,
)

HUGE = 24 << 20  # bytes: large enough to hurt if read carelessly, small enough to stay fast
MAGIC = b"MFE1"


def huge(_: bytes) -> bytes:
    """A sealed-looking object of HUGE bytes: the envelope's magic, then noise."""
    return MAGIC + b"\x01\x00\x00\x00\x01" + os.urandom(1 << 16) * (HUGE >> 16)


def truncated(blob: bytes) -> bytes:
    return blob[: len(blob) // 2]


def header_only(blob: bytes) -> bytes:
    return blob[:20]


def json_in_the_clear(blob: bytes) -> bytes:
    """A well-formed plain format-1 manifest, as an old store or a downgrade would hold."""
    return json.dumps(
        {"format": 1, "generation": 99, "refs": {"main": "0" * 40}, "packs": []}
    ).encode()


def plain_pack(root: Path) -> Callable[[bytes], bytes]:
    """A real git pack in the clear (the agent's own history), valid for any git reader."""

    def replace(_: bytes) -> bytes:
        pack = sorted((root / ".git" / "objects" / "pack").glob("*.pack"))
        return pack[0].read_bytes()

    return replace


def new_pack(store: Store, name: str, before: set[str]) -> str:
    """The one pack object a push added to the store (not in ``before``)."""
    added = [key for key in store.keys(name) if key.startswith("packs/") and key not in before]
    assert len(added) == 1, added
    return added[0]


@pytest.mark.timeout(240)
def test_hostile_objects_are_refused(s3: object, tmp_path: Path) -> None:
    """The manifest and a pack b still needs, each replaced in turn by a huge, a truncated, a
    header-only and a plain (valid in the clear) object: b's pull refuses every one. On moto
    S3 (objects over HTTP); a folder cloud's own hazards are the symlink test's."""
    store = make_store("s3", tmp_path, s3)
    shared = share_encrypted(store, tmp_path)
    a, b, name = shared.a, shared.b, shared.name
    packs_before = set(store.keys(name))
    (a.root / "reference" / "later.md").write_text("---\ndescription: l\n---\nCONTENT-later\n")
    a.at("sync")
    pack = new_pack(store, name, packs_before)
    cases: list[tuple[str, Callable[[bytes], bytes]]] = [
        ("manifest.json.enc", huge),
        ("manifest.json.enc", truncated),
        ("manifest.json.enc", header_only),
        ("manifest.json.enc", json_in_the_clear),
        (pack, huge),
        (pack, truncated),
        (pack, header_only),
        (pack, plain_pack(a.root)),
    ]
    # the agent and b's key cache (it may note the genuine manifest it read)
    outside = [b.root, b.config_dir / "keys"]
    for key, change in cases:
        what = f"b: pull with {key} replaced by {change.__name__}"
        original = store.read(name, key)
        store.write(name, key, change(original))
        state, files = repo_state(b.root), snapshot(tmp_path, outside)
        started = time.monotonic()
        done = b.run("-C", str(b.root), "pull")
        line = assert_one_clear_line(done, KEY_EXIT, what)
        named = "manifest" if key.startswith("manifest") else key.split("pack-")[1][:4]
        assert named in line, f"{what}: the line does not name the object: {line}"
        assert time.monotonic() - started < 30, f"{what}: took too long"
        assert repo_state(b.root) == state, f"{what}: something was imported"
        after = snapshot(tmp_path, outside)
        changed = sorted(p for p in set(after) | set(files) if after.get(p) != files.get(p))
        assert changed == [], f"{what}: written outside the agent: {changed}"
        store.write(name, key, original)
    b.at("pull")  # the store is honest again: nothing left behind blocks b
    assert b"CONTENT-later" in (b.root / "reference" / "later.md").read_bytes()
    assert committed_files(b.root) == committed_files(a.root)
    assert fsck(b.root) == ""
    presence_records_are_listed_not_trusted(store, b, name)


def presence_records_are_listed_not_trusted(store: Store, b: Box, name: str) -> None:
    """Planted presence records (huge, truncated, plain JSON under a sealed name, plain JSON
    under a plain name claiming to be online): `memfs envs` lists each with a problem, none
    online, and exits 0; `memfs agents` still lists the agent."""
    online = {"format": 1, "name": "evil", "state": "running", "heartbeat_s": 300}
    planted = {
        "envs/e-1111111111111111.json.enc": huge(b""),
        "envs/e-2222222222222222.json.enc": MAGIC + b"\x04\x00\x00\x00\x01" + b"x" * 10,
        "envs/e-3333333333333333.json.enc": json.dumps(online).encode(),
        "envs/e-4444444444444444.json": json.dumps(online).encode(),
    }
    for key, data in planted.items():
        store.write(name, key, data)
    done = b.run("-C", str(b.root), "envs", "--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    listed = {env["env_id"]: env for env in json.loads(done.stdout)["environments"]}
    assert not any(env["online"] for env in listed.values()), listed
    for key in planted:
        env_id = key.split("/")[1].split(".")[0]
        if env_id in listed:
            assert listed[env_id].get("problem"), f"{key} listed as sound: {listed[env_id]}"
        else:
            assert key.endswith(".json"), f"{key} is not listed at all"
    agents = b.run("agents", "--cloud", CLOUD)
    assert agents.returncode == 0 and name in agents.stdout, agents.stderr


def many_slots(blob: bytes) -> bytes:
    """keys.json with 10,000 slots (each a copy of a real one under another id)."""
    ring = json.loads(blob)
    slot = ring["slots"][0]
    ring["slots"] = [dict(slot, id=f"s-{i:06x}", name=f"m{i}") for i in range(10_000)]
    return json.dumps(ring).encode()


def huge_keyring(_: bytes) -> bytes:
    return b'{"format": 1, "slots": [' + b'"' + b"A" * HUGE + b'"]}'


def wrapped_garbage(blob: bytes) -> bytes:
    """Every slot's wrapped key replaced by noise of the same length."""
    ring = json.loads(blob)
    for slot in ring["slots"]:
        slot["wrapped"] = base64.b64encode(os.urandom(len(slot["wrapped"]) * 3 // 4)).decode()
    return json.dumps(ring).encode()


def other_repo_id(blob: bytes) -> bytes:
    """memfs.json naming another repo id (another agent's, or one the store made up)."""
    record = json.loads(blob)
    record["encryption"]["repo_id"] = os.urandom(16).hex()
    return json.dumps(record).encode()


def bad_repo_id(blob: bytes) -> bytes:
    record = json.loads(blob)
    record["encryption"]["repo_id"] = "zz"
    return json.dumps(record).encode()


def huge_json(_: bytes) -> bytes:
    return b'{"format": 1, "name": "' + b"A" * HUGE + b'"}'


@pytest.mark.timeout(240)
def test_hostile_keyring_is_refused(tmp_path: Path) -> None:
    """A machine that must read keys.json and memfs.json (a new one with a slot, nothing
    cached or pinned yet) meets a keyring of 10,000 slots, a huge one, or one whose wrapped
    keys are noise: exit 10, its target folder left empty. A memfs.json malformed, huge or naming
    another repo id is refused (7 or 10) or ignored (the genuine agent checked out). Then each
    machine clones once the store is honest again (nothing hostile was pinned). These
    objects are read as any object is: a folder cloud is enough (S3 is tried above)."""
    store = make_store("file", tmp_path)
    shared = share_encrypted(store, tmp_path)
    cases: list[tuple[str, Callable[[bytes], bytes], tuple[int, ...]]] = [
        ("keys.json", many_slots, (KEY_EXIT,)),
        ("keys.json", huge_keyring, (KEY_EXIT,)),
        ("keys.json", wrapped_garbage, (KEY_EXIT,)),
        # memfs.json is a hint (keys.json names the repo id too): refused, or the genuine agent
        ("memfs.json", bad_repo_id, (0, 7, KEY_EXIT)),
        ("memfs.json", huge_json, (0, 7, KEY_EXIT)),
        ("memfs.json", other_repo_id, (0, KEY_EXIT)),
    ]
    machines: list[Box] = []
    for n, (key, change, codes) in enumerate(cases):
        if key == "keys.json" and machines:
            d = machines[0]  # a machine reads keys.json until it holds the key
        else:  # a machine remembers an agent's repo id from its first memfs.json: a new one
            d = box(tmp_path, f"d{n}", store)
            shared.a.at("key", "add", d.recipient(), "--name", d.name)
            machines.append(d)
        what = f"{d.name}: clone with {key} replaced by {change.__name__}"
        original = store.read(shared.name, key)
        store.write(shared.name, key, change(original))
        target = tmp_path / f"target-{change.__name__}"
        started = time.monotonic()
        done = d.run("clone", store.agent_url(shared.name), str(target))
        assert done.returncode in codes, f"{what}: exit {done.returncode}: {done.stderr}"
        assert time.monotonic() - started < 30, f"{what}: took too long"
        if done.returncode == 0:
            assert committed_files(target) == committed_files(shared.a.root), what
        else:
            assert_one_clear_line(done, done.returncode, what)
            assert absent_or_empty(target), what
        store.write(shared.name, key, original)
    for d in machines:  # the store is honest again: nothing hostile was remembered
        d.ok("clone", store.agent_url(shared.name), str(d.root))
        assert committed_files(d.root) == committed_files(shared.a.root)


@pytest.mark.timeout(180)
def test_plain_agent_planted_under_an_encrypted_name(tmp_path: Path) -> None:
    """The store swaps an encrypted agent for a plain one of the same name (its own history,
    unencrypted): the machine that pushed it refuses to pull (downgrade, exit 10), and a new
    machine checking it out of a cloud it added with --encrypt refuses too, target left empty."""
    store = make_store("file", tmp_path)
    a = box(tmp_path, "a", store)
    name = "zebu-planted"
    start_encrypted_agent(store, a, name, "DESCR-planted")
    evil = box(tmp_path, "evil", store)
    evil.ok("init", str(evil.root), "--name", name)
    (evil.root / "system" / "evil.md").write_text("---\ndescription: e\n---\nEVIL\n")
    evil.at("remote", "add", "origin", store.agent_url("planted-elsewhere"))
    evil.at("push")
    store.replace_agent(name, store.objects("planted-elsewhere"))

    state = repo_state(a.root)
    done = a.run("-C", str(a.root), "pull")
    assert_one_clear_line(done, KEY_EXIT, "a: pull of a plain agent planted under its name")
    assert repo_state(a.root) == state
    d = box(tmp_path, "d", store)
    d.ok("cloud", "add", CLOUD, store.cloud_url, "--encrypt")
    target = tmp_path / "d-checkout"
    done = d.run("checkout", name, str(target), "--cloud", CLOUD)
    assert_one_clear_line(done, KEY_EXIT, "d: checkout of a plain agent from an encrypted cloud")
    assert absent_or_empty(target)


@pytest.mark.timeout(180)
def test_symlinks_in_a_folder_cloud(tmp_path: Path) -> None:
    """Folder clouds: a cloud folder that is a symlink works (a user's own link, e.g. to a
    mounted share); an object the store links to a file outside it is refused (exit 10) and
    that file is left as it was; a cloud folder that leads into the agent is refused (2)."""
    real = tmp_path / "real-cloud"
    real.mkdir()
    (tmp_path / "cloud").symlink_to(real, target_is_directory=True)
    store = make_store("file", tmp_path)
    shared = share_encrypted(store, tmp_path)
    assert (real / shared.name / "manifest.json.enc").is_file()

    secret = tmp_path / "outside" / "private.txt"
    secret.parent.mkdir()
    secret.write_text("PRIVATE-outside-the-store\n")
    stat = secret.stat()
    assert store.folder is not None
    target = store.folder / shared.name / "manifest.json.enc"
    original = target.read_bytes()
    target.unlink()
    target.symlink_to(secret)
    state = repo_state(shared.b.root)
    done = shared.b.run("-C", str(shared.b.root), "pull")
    line = assert_one_clear_line(done, KEY_EXIT, "b: pull with manifest.json.enc a symlink")
    assert "PRIVATE" not in line and "PRIVATE" not in done.stdout
    assert repo_state(shared.b.root) == state
    assert secret.read_text() == "PRIVATE-outside-the-store\n"
    assert (secret.stat().st_mtime_ns, secret.stat().st_size) == (stat.st_mtime_ns, stat.st_size)
    target.unlink()
    target.write_bytes(original)
    shared.b.at("pull")

    e = box(tmp_path, "e", store)
    e.ok("init", str(e.root), "--name", "eve")
    (e.root / "stash").mkdir()
    link = tmp_path / "e-cloud"  # outside the agent, leading into it
    link.symlink_to(e.root / "stash", target_is_directory=True)
    done = e.run(
        "-C", str(e.root), "remote", "add", "x", f"memfs::{link.as_uri()}/eve", "--encrypt"
    )  # fmt: skip
    assert_one_clear_line(done, 2, "e: remote add --encrypt into the agent's own folder")
    assert not any((e.root / "stash").iterdir())
    assert "x" not in git(e.root, "remote").split()


@pytest.mark.timeout(120)
def test_encrypt_refused_for_a_git_remote(tmp_path: Path) -> None:
    """`memfs remote add --encrypt` takes object stores only: a git URL is exit 2."""
    store = make_store("file", tmp_path)
    m: Box = box(tmp_path, "m", store)
    m.ok("init", str(m.root), "--name", "gitty")
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    done = m.run("-C", str(m.root), "remote", "add", "origin", str(bare), "--encrypt")
    assert_one_clear_line(done, 2, "remote add --encrypt with a git URL")
    assert "origin" not in git(m.root, "remote").split()
