"""An encrypted push uploads what is committed already before its own commit runs, as a plain
one does (memfs.outgoing.upload_ahead), sealing it once the manifest's read has opened the
manifest (memfs.remotes.sealedremote.UploadingSealed): a key cached here but rotated since
is replaced by the newer one first, and a machine removed from the agent uploads nothing.
A pull downloads the packs it lacks beside its commit, as for a plain remote. The keys of a
push or pull come from the key cache, read once; the keyring is opened only for an epoch
the cache lacks (issue 14's fixed cost of an encrypted command)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memfs
from memfs import sync
from memfs.crypto.envelope import peek
from memfs.keys import storage_for_url
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote
from memfs.remotestate import tracking_ref

from .conftest import S3Bucket, git, write
from .servers import wait_for
from .test_keys import KEY_EXIT, cached_keys, encrypted_agent, ok, run


def sealed_packs(url: str) -> dict[str, int]:
    """The sealed packs in the store at ``url``: name -> the epoch their header names."""
    storage = storage_for_url(url)
    found = {}
    for key in storage.list("packs"):
        assert not key.endswith(".idx")  # an encrypted store holds no index
        got = storage.get(key)
        assert got is not None and key.endswith(".pack.enc")
        found[key.removesuffix(".pack.enc").removeprefix("packs/")] = peek(got[0])[1]
    return found


def test_a_committed_pack_is_sealed_and_uploaded_before_the_push_reads_the_head(
    tmp_path: Path, s3: S3Bucket
) -> None:
    """The steps of a push on one remote: the manifest's read and the early upload start
    together; the pack lands in the store (sealed, no index) before the push asks for the
    head, and the push that follows uploads nothing more."""
    url = "memfs::" + s3.url("agents/ahead")
    agent = memfs.init(tmp_path / "a", name="ahead")
    write(agent.root, "reference/x.md", "---\ndescription: x\n---\nfirst\n")
    add_remote(agent.history, "origin", url, encrypt=True)
    assert sync.push(agent).ok
    guess = agent.history.head()
    before = sealed_packs(url)
    write(agent.root, "reference/x.md", "---\ndescription: x\n---\nsecond\n")
    assert agent.commit() is not None
    new = agent.history.head()
    assert new is not None and guess is not None

    s3.server.requests.clear()
    remote = BucketRemote(url, encrypt=True)
    remote.prefetch()
    remote.upload_ahead(agent.history, new, guess)
    wait_for(lambda: len(sealed_packs(url)) == len(before) + 1, timeout=30)
    early = set(sealed_packs(url)) - set(before)
    assert remote.head_while_uploading(agent.history, "main", new, guess) == guess
    remote.push(agent.history, "main", new, guess)
    assert s3.server.count("PUT", "/packs/") == 1  # the early pack, once; no index
    assert sealed_packs(url) == {**before, **dict.fromkeys(early, 1)}

    clone = sync.clone(url, tmp_path / "clone")
    assert clone.history.head() == new
    assert (clone.root / "reference/x.md").read_text().endswith("second\n")
    git(clone.root, "fsck", "--strict", "--no-progress")


def test_a_stale_cached_key_is_replaced_before_sealing_and_a_removed_machine_uploads_nothing(
    tmp_path: Path, s3: S3Bucket
) -> None:
    """B and C hold epoch 1 in their key caches when A removes C (a rotation to epoch 2, the
    manifest sealed again). B's next push of a commit made before it seals its early pack
    under epoch 2, uploaded once; C's is refused (no key) and puts no pack in the store."""
    url = s3.url("agents/stale")
    a, b, c = encrypted_agent(tmp_path, url, "b", "c")
    assert set(cached_keys(b)) == set(cached_keys(c)) == {1}
    ok(a, "key", "rm", "c")
    before = sealed_packs(url)
    assert set(before.values()) == {2}  # the rotation sealed the packs again

    (b.root / "reference/from-b.md").write_text("---\ndescription: b\n---\nfrom b\n")
    ok(b, "commit")
    s3.server.requests.clear()
    ok(b, "push")
    assert set(cached_keys(b)) == {1, 2}  # the manifest's epoch, fetched from keys.json
    added = {name: epoch for name, epoch in sealed_packs(url).items() if name not in before}
    assert list(added.values()) == [2]
    assert s3.server.count("PUT", "/packs/") == 1  # sealed once, under the newest epoch
    ok(a, "pull")
    assert (a.root / "reference/from-b.md").read_text().endswith("from b\n")

    (c.root / "reference/from-c.md").write_text("---\ndescription: c\n---\nfrom c\n")
    ok(c, "commit")
    s3.server.requests.clear()
    done = run(c, "push")
    assert done.returncode == KEY_EXIT and "holds no key for it" in done.stderr, done.stderr
    assert s3.server.count("PUT", "/packs/") == 0
    assert set(sealed_packs(url)) == set(before) | set(added)


def test_a_push_and_pull_with_cached_keys_read_the_key_cache_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the keys in the key cache, an encrypted push opens the cache file once for the
    keys and the guard's record together, and once more under its lock to write the record
    of the manifest it swapped in (the file is replaced whole: opened only to be read). A
    pull on the same machine (a clone beside the agent) finds the record at the generation
    it reads already: it reads the file once and writes nothing."""
    cloud = "memfs::" + (tmp_path / "cloud").as_uri()
    a = memfs.init(tmp_path / "a", name="a")
    add_remote(a.history, "origin", cloud, encrypt=True)
    assert sync.push(a).ok
    b = sync.clone(cloud, tmp_path / "b")
    (a.root / "notes.md").write_text("one more line\n")
    keys = Path(os.environ["MEMFS_CONFIG"]).parent / "keys"
    cache = next(p for p in keys.glob("*.json") if len(p.stem) == 32)  # not remotes.json
    opened: list[str] = []
    real_open = os.open

    def counting_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path) == str(cache):
            opened.append("write" if flags & (os.O_WRONLY | os.O_RDWR) else "read")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    assert sync.push(memfs.open(a.root)).ok
    pushed, opened[:] = list(opened), []
    assert sync.pull(memfs.open(b.root)).ok
    pulled = list(opened)
    monkeypatch.undo()
    assert pushed == ["read", "read"] and pulled == ["read"]
    assert json.loads(cache.read_text())["seen"]
    assert (b.root / "notes.md").read_text() == "one more line\n"


def test_an_encrypted_pull_downloads_the_new_pack_beside_its_commit(
    tmp_path: Path, s3: S3Bucket
) -> None:
    """As for a plain remote: once the manifest's read (started before the pull's commit) has
    opened the manifest, the pack it lists and this clone lacks is downloaded and opened on
    the same thread; the fetch imports it without asking again."""
    url = "memfs::" + s3.url("agents/down")
    agent = memfs.init(tmp_path / "a", name="down")
    write(agent.root, "reference/x.md", "---\ndescription: x\n---\nfirst\n")
    add_remote(agent.history, "origin", url, encrypt=True)
    assert sync.push(agent).ok
    other = memfs.open(sync.clone(url, tmp_path / "other").root)
    write(agent.root, "reference/x.md", "---\ndescription: x\n---\nfrom a\n")
    assert sync.push(agent).ok

    remote = BucketRemote(url, encrypt=True)
    seen = other.history.ref(tracking_ref("origin", "main"))
    remote.prefetch((other.history, "main", seen))
    manifest, _ = remote.read_manifest()
    assert manifest is not None
    lacking = [name for name in manifest.packs if not other.history.has_pack(name)]
    downloaded = remote.take_downloaded(lacking)
    assert len(lacking) == 1 and set(downloaded) == set(lacking)
    assert all(pack.startswith(b"PACK") for pack in downloaded.values())  # opened

    write(other.root, "reference/y.md", "---\ndescription: y\n---\nlocal\n")  # a commit
    s3.server.requests.clear()
    report = sync.pull(other)
    assert report.ok and report.committed is not None
    assert s3.server.count("GET", ".pack") == 1 and s3.server.count("GET", "keys.json") == 0
    assert (other.root / "reference/x.md").read_text().endswith("from a\n")
    assert (other.root / "reference/y.md").read_text().endswith("local\n")
    git(other.root, "fsck", "--strict", "--no-progress")


def test_a_push_whose_read_is_refused_uploads_nothing_ahead(tmp_path: Path) -> None:
    """A flipped byte in the sealed manifest: the read fails authentication, the early upload
    waiting on it sends nothing, and the push says why (exit 10), its commit kept locally."""
    cloud = tmp_path / "cloud"
    url = "memfs::" + cloud.as_uri()
    agent = memfs.init(tmp_path / "a", name="refused")
    write(agent.root, "reference/x.md", "---\ndescription: x\n---\nfirst\n")
    add_remote(agent.history, "origin", url, encrypt=True)
    assert sync.push(agent).ok
    before = sealed_packs(url)
    manifest = cloud / "manifest.json.enc"
    blob = bytearray(manifest.read_bytes())
    blob[-1] ^= 1
    manifest.write_bytes(bytes(blob))
    write(agent.root, "reference/x.md", "---\ndescription: x\n---\nsecond\n")
    assert agent.commit() is not None
    report = sync.push(agent)
    (outcome,) = report.remotes
    assert outcome.exit_code == 10 and "manifest.json" in (outcome.error or ""), outcome.error
    assert sealed_packs(url) == before
    assert (agent.root / "reference/x.md").read_text().endswith("second\n")


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(), st.text(max_size=40), max_size=30))
def test_the_pins_file_is_written_as_json_indent_1_writes_it(pins: dict[str, str]) -> None:
    """remotes.json is written from the C encoder's strings (with ``indent`` json encodes in
    Python: ~2 ms a first push on a machine with a few hundred encrypted remotes), the same
    bytes as before, so older memfs reads it as it did."""
    from memfs.remotes.guard import _flat_json

    assert _flat_json(pins) == json.dumps(pins, indent=1).encode() + b"\n"
    assert json.loads(_flat_json(pins)) == pins
