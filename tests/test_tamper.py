"""Every tamper case is refused (issue 14, docs/design-encryption.md §10): on moto's S3 and a
file:// cloud, someone with write access to the store changes it between two syncs; machine
B's next pull exits 10 naming the object, and B's repository is exactly as it was: refs, the
files under .git/objects, the index, the work tree, and ``git fsck --strict`` is clean.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.remotes import open_remote
from memfs.remotes.bucket import BucketRemote

from . import test_sealed
from .conftest import git, run_cli, write
from .harness import worktree_files
from .test_sealed import on, shared

store = test_sealed.store  # the fixture: an agent location on a folder cloud and on S3


class Store:
    """The store as someone with its credentials (and no key) sees it."""

    def __init__(self, url: str) -> None:
        remote = open_remote(url)
        assert isinstance(remote, BucketRemote)
        self.raw = remote.raw

    def read(self, key: str) -> bytes:
        got = self.raw.get(key)
        assert got is not None, key
        return got[0]

    def replace(self, key: str, data: bytes) -> None:
        got = self.raw.get(key)
        if got is None:
            assert self.raw.put_if_absent(key, data)
        else:
            assert self.raw.put_if_match(key, data, got[1])

    def flip(self, key: str, at: int) -> None:
        data = bytearray(self.read(key))
        data[at] ^= 0x01
        self.replace(key, bytes(data))

    def packs(self) -> set[str]:
        return {key for key in self.raw.list("packs") if key.endswith(".pack.enc")}


def push_one(tmp_path: Path, a: memfs.Agent, text: str) -> None:
    with on(tmp_path, "a"):
        write(a.root, "notes/more.md", text)
        assert sync.push(a).ok


def rotate_as_a(tmp_path: Path, url: str) -> None:
    from memfs.crypto.keyring import rotate
    from memfs.keys import agent_keys

    with on(tmp_path, "a"):
        raw = Store(url).raw
        assert rotate(raw, agent_keys(raw)) == 2


def state_of(root: Path) -> dict[str, object]:
    """What a refused pull must leave exactly as it was."""
    objects = sorted(
        str(p.relative_to(root)) for p in (root / ".git" / "objects").rglob("*") if p.is_file()
    )
    return {
        "refs": git(root, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": git(root, "rev-parse", "HEAD"),
        "objects": objects,
        "index": hashlib.sha256((root / ".git" / "index").read_bytes()).hexdigest(),
        "worktree": worktree_files(root),
    }


# Each case: (tmp_path, url, a, store) -> what the error must name; it pushes from A and
# changes the store, after B has synced once.
Case = Callable[[Path, str, memfs.Agent, Store], str]


def manifest_byte(tmp_path: Path, url: str, a: memfs.Agent, s: Store) -> str:
    push_one(tmp_path, a, "one\n")
    s.flip("manifest.json.enc", len(s.read("manifest.json.enc")) // 2)
    return "manifest.json"


def pack_byte(tmp_path: Path, url: str, a: memfs.Agent, s: Store) -> str:
    before = s.packs()
    push_one(tmp_path, a, "one\n")
    (new,) = s.packs() - before
    s.flip(new, len(s.read(new)) - 20)
    return new.removesuffix(".enc")


def header_epoch(tmp_path: Path, url: str, a: memfs.Agent, s: Store) -> str:
    before = s.packs()
    push_one(tmp_path, a, "one\n")
    (new,) = s.packs() - before
    s.flip(new, 5)  # the epoch's high byte: 1 -> 2**24 + 1
    return new.removesuffix(".enc")


def keys_wrapped(tmp_path: Path, url: str, a: memfs.Agent, s: Store) -> str:
    rotate_as_a(tmp_path, url)  # B must read keys.json to follow epoch 2
    push_one(tmp_path, a, "one\n")
    ring = json.loads(s.read("keys.json"))
    slot = next(slot for slot in ring["slots"] if slot["name"] == "b")
    wrapped = bytearray(base64.b64decode(slot["wrapped"]))
    wrapped[-5] ^= 0x01
    slot["wrapped"] = base64.b64encode(bytes(wrapped)).decode()
    s.replace("keys.json", json.dumps(ring).encode())
    return f"keys.json slot {slot['id']}"


def pack_swapped(tmp_path: Path, url: str, a: memfs.Agent, s: Store) -> str:
    before = s.packs()
    push_one(tmp_path, a, "one\n")
    (first,) = s.packs() - before
    push_one(tmp_path, a, "two\n")
    (second,) = s.packs() - before - {first}
    s.replace(second, s.read(first))
    return second.removesuffix(".enc")


def old_manifest(tmp_path: Path, url: str, a: memfs.Agent, s: Store) -> str:
    old = s.read("manifest.json.enc")
    push_one(tmp_path, a, "one\n")
    with on(tmp_path, "b"):
        assert sync.pull(memfs.open(tmp_path / "b" / "agent")).ok  # B sees the newer one
    push_one(tmp_path, a, "two\n")
    s.replace("manifest.json.enc", old)
    return "manifest.json"


def old_keys(tmp_path: Path, url: str, a: memfs.Agent, s: Store) -> str:
    old = s.read("keys.json")
    rotate_as_a(tmp_path, url)
    push_one(tmp_path, a, "one\n")
    s.replace("keys.json", old)
    return "keys.json"


def downgrade(tmp_path: Path, url: str, a: memfs.Agent, s: Store) -> str:
    push_one(tmp_path, a, "one\n")
    head = a.history.head()
    plain = {"format": 1, "generation": 9, "refs": {"main": head}, "packs": [], "name": "x"}
    s.raw.delete("manifest.json.enc")
    s.replace("manifest.json", json.dumps(plain).encode())
    return "manifest.json"


CASES: dict[str, Case] = {
    "manifest-byte": manifest_byte,
    "pack-byte": pack_byte,
    "header-epoch": header_epoch,
    "keys-wrapped": keys_wrapped,
    "pack-swapped": pack_swapped,
    "old-manifest": old_manifest,
    "old-keys": old_keys,
    "downgrade": downgrade,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_tamper_case_is_refused_and_nothing_local_changes(
    tmp_path: Path, store: str, case: str
) -> None:
    a, b = shared(tmp_path, store)
    named = CASES[case](tmp_path, store, a, Store(store))
    before = state_of(b.root)
    with on(tmp_path, "b"):
        result = run_cli("-C", str(b.root), "pull")
    assert result.exit_code == 10, result.output
    assert named in result.output, result.output
    assert "Traceback" not in result.output
    assert state_of(b.root) == before
    git(b.root, "fsck", "--strict")
