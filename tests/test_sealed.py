"""The sealed remote (issue 14, docs/design-encryption.md §2-§5): an encrypted agent in an object
store, synced by two machines, read by none other; on moto's S3 and on file:// clouds.

A "machine" is its own MEMFS_CONFIG (its age identity and key cache live beside it); tests
switch between them in-process with ``on(machine)``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.cloud import add_cloud, checkout, list_agents
from memfs.errors import DowngradeError, NoKeyError, RemoteError
from memfs.remotes import get_remote, open_remote
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote
from memfs.remotes.storage import Storage

from .conftest import S3Bucket, git, run_cli, write
from .harness import fresh_python
from .test_sync import assert_converged, contents

MARKER = "zebracorn-marker-7f3a"  # in names and memory text: must never reach the store plain
PLAIN_OBJECTS = {"memfs.json", "keys.json", "manifest.json"}


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty agent location on a folder cloud and on moto's S3."""
    if request.param == "file":
        return f"memfs::{(tmp_path / 'cloud' / 'agent').as_uri()}"
    bucket: S3Bucket = request.getfixturevalue("s3")
    return bucket.url(f"agents/{uuid.uuid4().hex[:8]}")  # bucket names are cut at 50 chars


@contextmanager
def on(tmp_path: Path, machine: str) -> Iterator[None]:
    """Run as ``machine``: its own config folder, identity and key cache."""
    before = os.environ["MEMFS_CONFIG"]
    os.environ["MEMFS_CONFIG"] = str(tmp_path / "machines" / machine / "config.yaml")
    try:
        yield
    finally:
        os.environ["MEMFS_CONFIG"] = before


def recipient(tmp_path: Path, machine: str) -> str:
    from memfs.crypto.identity import ensure_identity

    with on(tmp_path, machine):
        return ensure_identity().recipient


def grant(tmp_path: Path, url: str, giver: str, taker: str) -> None:
    """``giver`` (who holds the key) adds a slot for ``taker``, through the keyring API."""
    from memfs.crypto.keyring import add_slot
    from memfs.keys import agent_keys

    who = recipient(tmp_path, taker)
    with on(tmp_path, giver):
        remote = open_remote(url)
        assert isinstance(remote, BucketRemote)
        add_slot(remote.raw, agent_keys(remote.raw), who, taker)


def stored(url: str) -> dict[str, bytes]:
    """Every object in the store, by key, as the store holds it."""
    remote = open_remote(url)
    assert isinstance(remote, BucketRemote)
    keys = remote.raw.list("")
    return {key: got[0] for key in keys if (got := remote.raw.get(key)) is not None}


def shared(tmp_path: Path, url: str) -> tuple[memfs.Agent, memfs.Agent]:
    """Machine A creates an encrypted agent and pushes it; machine B is given a key, clones."""
    with on(tmp_path, "a"):
        a = memfs.init(tmp_path / "a" / "agent", name=MARKER)
        write(a.root, "notes/secret-plan.md", f"the plan: {MARKER}\n")
        add_remote(a.history, "origin", url, encrypt=True)
        assert sync.push(a).ok
    grant(tmp_path, url, "a", "b")
    with on(tmp_path, "b"):
        b = sync.clone(url, tmp_path / "b" / "agent")
    return a, b


def assert_sealed(url: str) -> None:
    """Every object but the three plain ones is an envelope; no marker anywhere."""
    objects = stored(url)
    assert "manifest.json.enc" in objects and "keys.json" in objects
    assert not [key for key in objects if key.endswith((".idx", ".pack"))], sorted(objects)
    for key, data in objects.items():
        assert MARKER.encode() not in data, key
        if key not in PLAIN_OBJECTS:
            assert key.endswith(".enc") and data.startswith(b"MFE1"), key


def test_two_machines_sync_both_ways_and_the_store_sees_ciphertext(
    tmp_path: Path, store: str
) -> None:
    a, b = shared(tmp_path, store)
    assert get_remote(b.history, "origin").encrypt  # found from the stub, recorded
    assert contents(a) == contents(b)
    with on(tmp_path, "b"):
        write(b.root, "notes/from-b.md", f"b says {MARKER}\n")
        assert sync.sync(b).ok
    with on(tmp_path, "a"):
        assert sync.sync(a).ok
        write(a.root, "notes/secret-plan.md", f"the plan, revised: {MARKER}\n")
        assert sync.sync(a).ok
    with on(tmp_path, "b"):
        assert sync.sync(b).ok
    assert_converged(a, b)
    assert (b.root / "notes/secret-plan.md").read_text() == f"the plan, revised: {MARKER}\n"
    assert_sealed(store)
    git(b.root, "fsck", "--strict")


def test_a_machine_without_a_key_gets_exit_10_and_no_folder(tmp_path: Path, store: str) -> None:
    shared(tmp_path, store)
    target = tmp_path / "c" / "agent"
    with on(tmp_path, "c"):
        with pytest.raises(NoKeyError) as caught:
            sync.clone(store, target)
        assert recipient(tmp_path, "c") in str(caught.value)
        assert "memfs key add" in str(caught.value)
    assert not target.exists()
    with on(tmp_path, "c"):
        result = run_cli("clone", store, str(target))
    assert result.exit_code == 10, result.output
    assert "holds no key" in result.output and not target.exists()


def test_incremental_encrypted_push_is_three_requests(tmp_path: Path, s3: S3Bucket) -> None:
    url = s3.url("agents/big")
    with on(tmp_path, "a"):
        agent = memfs.init(tmp_path / "big")
        for i in range(200):
            write(agent.root, f"reference/topic-{i % 20:02d}/note-{i:04d}.md", f"fact {i}\n")
        agent.commit()
        add_remote(agent.history, "origin", url, encrypt=True)
        assert sync.push(agent).ok
        write(agent.root, "reference/topic-03/note-0003.md", "one changed fact\n")
        agent.commit()
        s3.server.requests.clear()
        assert sync.push(agent).ok
    writes = [path for method, path in s3.server.requests if method == "PUT"]
    assert len(writes) == 2 and writes[0].endswith(".pack.enc"), s3.server.requests
    assert writes[1].endswith("/manifest.json.enc")
    assert s3.server.by_method() == {"GET": 1, "PUT": 2}, s3.server.requests


def test_update_manifest_swaps_the_sealed_manifest(tmp_path: Path, store: str) -> None:
    """A manifest-only swap (what a secret push and a rotation do) on the sealed manifest; a
    key another memfs wrote is kept, sealed (the secrets' own blob: tests/test_secrets*)."""
    _, b = shared(tmp_path, store)
    with on(tmp_path, "a"):
        remote = open_remote(store)
        assert isinstance(remote, BucketRemote)
        blob = f"a newer memfs wrote this: {MARKER}"
        done = remote.update_manifest(lambda m: m._replace(extra={**m.extra, "newer": blob}))
        assert done.extra["newer"] == blob
    with on(tmp_path, "b"):
        remote = open_remote(store, encrypt=True)
        assert isinstance(remote, BucketRemote)
        manifest, _ = remote.read_manifest()
        assert manifest is not None and manifest.extra["newer"] == blob
        assert sync.sync(b).ok  # the swapped manifest follows from the one B saw
    assert_sealed(store)


def test_a_remote_configured_encrypted_refuses_a_plain_agent(tmp_path: Path, store: str) -> None:
    plain = memfs.init(tmp_path / "plain", name="plain")
    add_remote(plain.history, "origin", store)
    assert sync.push(plain).ok
    with pytest.raises(DowngradeError, match="plain, unencrypted manifest"):
        sync.clone(store, tmp_path / "sealed", encrypt=True)  # type: ignore[call-arg]
    assert not (tmp_path / "sealed").exists()


def test_encrypt_is_for_object_stores_only(tmp_path: Path) -> None:
    agent = memfs.init(tmp_path / "agent", name="agent")
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    for url in (str(bare), "https://example.com/a/b.git", "ssh://host/repo.git"):
        result = run_cli("-C", str(agent.root), "remote", "add", "origin", url, "--encrypt")
        assert result.exit_code == 2, result.output
        assert "--encrypt is for object stores" in result.output
    cloud = (tmp_path / "cloud" / "x").as_uri()
    result = run_cli("-C", str(agent.root), "remote", "add", "origin", cloud, "--encrypt")
    assert result.exit_code == 0 and "(encrypted)" in result.output
    assert get_remote(agent.history, "origin").url == f"memfs::{cloud}"
    listed = run_cli("-C", str(agent.root), "remote", "list")
    assert listed.output == f"origin\tmemfs::{cloud}  (encrypted)\n"


def test_an_encrypted_cloud_pushes_sealed_and_lists_what_it_cannot_open(
    tmp_path: Path, s3: S3Bucket
) -> None:
    with on(tmp_path, "a"):
        add_cloud("vault", s3.url("vault"), encrypt=True)
        result = run_cli("cloud", "default", "vault")
        assert result.exit_code == 0, result.output
        agent = memfs.init(tmp_path / "a" / MARKER, name=MARKER)
        assert sync.push(agent).ok  # no remote yet: origin in the default cloud, encrypted
        assert get_remote(agent.history, "origin").encrypt
        _, entries = list_agents("vault")
        assert [(e.name, e.encrypted, e.head) for e in entries] == [
            (MARKER, True, agent.history.head())
        ]
    assert_sealed(s3.url(f"vault/{MARKER}"))
    with on(tmp_path, "c"):
        add_cloud("vault", s3.url("vault"), encrypt=True)
        _, entries = list_agents("vault")
        assert [(e.name, e.encrypted, e.description, e.head, e.problem) for e in entries] == [
            (MARKER, True, "", None, None)
        ]
        result = run_cli("agents", "--cloud", "vault")
        assert result.exit_code == 0 and "encrypted (no key" in result.output
        with pytest.raises(NoKeyError):
            checkout(MARKER, tmp_path / "c" / "agent", "vault")
        assert not (tmp_path / "c" / "agent").exists()
    grant(tmp_path, s3.url(f"vault/{MARKER}"), "a", "c")
    with on(tmp_path, "c"):
        got = checkout(MARKER, tmp_path / "c" / "agent", "vault")
        assert get_remote(got.history, "origin").encrypt
        assert got.history.head() == agent.history.head()


def first_pack(store: str) -> tuple[BucketRemote, str, bytes]:
    """The shared agent's remote, its first pack's name and that pack's plaintext."""
    remote = open_remote(store)
    assert isinstance(remote, BucketRemote)
    manifest, _ = remote.read_manifest()
    assert manifest is not None
    name = f"packs/{manifest.packs[0]}.pack"
    got = remote.storage.get(name)
    assert got is not None
    return remote, name, got[0]


def test_a_pack_sealed_under_an_older_epoch_is_resealed_when_pushed_again(
    tmp_path: Path, store: str
) -> None:
    from memfs.crypto.envelope import peek
    from memfs.crypto.keyring import rotate
    from memfs.keys import agent_keys

    shared(tmp_path, store)
    with on(tmp_path, "a"):
        remote, name, plain = first_pack(store)
        assert peek(remote.raw.get(name + ".enc")[0])[1] == 1  # type: ignore[index]
        assert rotate(remote.raw, agent_keys(remote.raw)) == 2
        fresh = open_remote(store, encrypt=True)
        assert isinstance(fresh, BucketRemote)
        assert fresh.storage.put_if_absent(name, plain) is False
        resealed = fresh.raw.get(name + ".enc")
        assert resealed is not None and peek(resealed[0])[1] == 2
        assert fresh.storage.get(name) is not None and fresh.storage.get(name)[0] == plain  # type: ignore[index]


def test_a_pack_there_that_its_epochs_key_does_not_open_is_replaced_when_pushed_again(
    tmp_path: Path, store: str
) -> None:
    """A pack sealed under a wrong key (by a machine whose cached key was damaged, before
    that was caught: review10 F6) and named by its content is not left in place when a push
    sends the same pack: it is sealed again, so the manifest never lists one others cannot
    open."""
    from memfs.crypto.envelope import Role, peek, seal

    shared(tmp_path, store)
    with on(tmp_path, "a"):
        remote, name, plain = first_pack(store)
        repo = remote.storage.keys.repo_id  # type: ignore[attr-defined]
        wrong = seal(os.urandom(32), 1, Role.PACK, repo, name, plain)
        remote.raw.delete(name + ".enc")
        assert remote.raw.put_if_absent(name + ".enc", wrong)
        fresh = open_remote(store, encrypt=True)
        assert isinstance(fresh, BucketRemote)
        assert fresh.storage.put_if_absent(name, plain) is False
        resealed = fresh.raw.get(name + ".enc")
        assert resealed is not None and resealed[0] != wrong and peek(resealed[0])[1] == 1
        assert open_remote(store, encrypt=True).storage.get(name)[0] == plain  # type: ignore[index]


def test_the_owner_of_another_agent_cannot_push_over_it(tmp_path: Path, store: str) -> None:
    shared(tmp_path, store)
    with on(tmp_path, "a"):
        other = memfs.init(tmp_path / "other", name="other")
        add_remote(other.history, "origin", store, encrypt=True)
        report = sync.push(other)
    assert not report.ok
    assert "holds another agent" in (report.remotes[0].error or "")


def test_plain_remotes_load_no_crypto_and_keep_their_request_counts(
    tmp_path: Path, s3: S3Bucket
) -> None:
    """A plain push and pull through whole processes: no crypto module imported."""

    agent = memfs.init(tmp_path / "plain", name="plain")
    add_remote(agent.history, "origin", s3.url("agents/plain"))
    probe = (
        "import sys\n"
        "from memfs import sync; import memfs\n"
        f"agent = memfs.open({str(agent.root)!r})\n"
        "assert sync.push(agent).ok and sync.pull(agent).ok\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cryptography', 'nacl', 'pyrage')"
        " or m.startswith(('memfs.crypto', 'memfs.remotes.sealed'))))\n"
    )
    assert fresh_python(probe, os.environ) == "[]"
    with pytest.raises(RemoteError):  # sanity: the probe would have seen a failure
        open_remote("memfs::s3://").head("main")


def test_an_unchanged_sealed_manifest_is_polled_with_one_conditional_get(
    tmp_path: Path, s3: S3Bucket
) -> None:
    from memfs.remotes.storage import UNCHANGED

    url = s3.url("agents/polled")
    shared(tmp_path, url)
    with on(tmp_path, "b"):
        remote = open_remote(url, encrypt=True)
        assert isinstance(remote, BucketRemote)
        _, etag = remote.poll(None)  # type: ignore[misc]
        s3.server.requests.clear()
        assert remote.poll(etag) is UNCHANGED
    assert s3.server.requests == [("GET", f"/{s3.name}/agents/polled/manifest.json.enc")]


def test_an_encrypted_folder_cloud_reaches_the_watcher_by_inotify(tmp_path: Path) -> None:
    """Polls an hour apart: only the inotify watch on manifest.json.enc brings A's push."""
    import subprocess
    import sys

    from memfs.watcher import Watcher, WatchSettings

    from .servers import wait_for

    a, b = shared(tmp_path, f"memfs::{(tmp_path / 'cloud' / 'agent').as_uri()}")
    write(a.root, "from-a.md", "pushed by A\n")
    settings = WatchSettings(quiet_ms=100, poll_s=3600, poll_cold_s=3600, rescan_s=3600)
    with on(tmp_path, "b"), Watcher(b, settings) as watcher:
        assert watcher.state.remote_mode == "inotify"
        env = {**os.environ, "MEMFS_CONFIG": str(tmp_path / "machines" / "a" / "config.yaml")}
        pushed = subprocess.run(
            [sys.executable, "-m", "memfs", "-C", str(a.root), "sync"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert pushed.returncode == 0, pushed.stderr
        wait_for(lambda: (b.root / "from-a.md").exists(), timeout=10, what="A's push to reach B")
    assert (b.root / "from-a.md").read_text() == "pushed by A\n"


def test_a_remote_not_marked_encrypted_leaves_no_plain_pack_and_is_marked(
    tmp_path: Path, store: str
) -> None:
    """B's remote lost its memfs-encrypt mark (added again by hand, say): its next push
    overlaps a plain upload with the manifest read, which finds the agent encrypted; the
    plain pack is deleted, the push goes sealed, and the remote is marked again."""
    _, b = shared(tmp_path, store)
    git(b.root, "config", "--unset", "remote.origin.memfs-encrypt")
    assert not get_remote(b.history, "origin").encrypt
    with on(tmp_path, "b"):
        write(b.root, "notes/b.md", f"b {MARKER}\n")
        assert sync.push(b).ok
        assert get_remote(b.history, "origin").encrypt
        fresh = sync.clone(store, tmp_path / "b" / "fresh")
    assert (fresh.root / "notes/b.md").read_text() == f"b {MARKER}\n"
    assert_sealed(store)


def test_compaction_of_an_encrypted_remote_keeps_it_sealed(tmp_path: Path, store: str) -> None:
    a, _ = shared(tmp_path, store)
    with on(tmp_path, "a"):
        for i in range(3):
            write(a.root, f"notes/n{i}.md", f"{i} {MARKER}\n")
            assert sync.push(a).ok
        remote = open_remote(store, encrypt=True)
        assert isinstance(remote, BucketRemote)
        merged, _ = remote.compact(a.history, grace_s=3600)
        assert merged == 4
        assert remote.compact(a.history, grace_s=0)[1] == 4  # the retired ones go
    assert len([k for k in stored(store) if k.startswith("packs/")]) == 1
    assert_sealed(store)
    with on(tmp_path, "b"):
        fresh = sync.clone(store, tmp_path / "b" / "fresh")
    assert contents(fresh) == contents(a)


def test_presence_records_are_sealed_and_read_by_the_other_machine(
    tmp_path: Path, store: str
) -> None:
    from memfs.envs import environments

    a, b = shared(tmp_path, store)
    with on(tmp_path, "a"):
        assert sync.sync(a, announce=True, env_name=f"laptop-{MARKER}").ok
    envs = [key for key in stored(store) if key.startswith("envs/")]
    assert len(envs) == 1 and envs[0].endswith(".json.enc"), envs
    assert_sealed(store)
    with on(tmp_path, "b"):
        report = environments(b)
    [env] = report.environments
    assert env["name"] == f"laptop-{MARKER}" and env["problem"] is None
    assert env["local_head"] == a.history.head()


def test_an_agent_made_anew_at_the_same_url_is_followed(tmp_path: Path, store: str) -> None:
    """The remembered repo id (no memfs.json read per push) is read again once the manifest
    fails to open under it: the agent was deleted and made again there."""
    from memfs.crypto.identity import ensure_identity
    from memfs.crypto.keycache import KeyCache
    from memfs.keys import stored_repo_id

    a, _ = shared(tmp_path, store)
    url = get_remote(a.history, "origin").display_url
    with on(tmp_path, "a"):
        raw = store_raw(store)
        old = stored_repo_id(raw)
        assert old is not None
        for key in raw.list(""):
            raw.delete(key)
        again = memfs.init(tmp_path / "a" / "again", name="again")
        add_remote(again.history, "origin", store, encrypt=True)
        with pytest.raises(DowngradeError, match=r"manifest.json.enc is gone"):
            open_remote(store, encrypt=True).head("main")
        # what 'memfs key trust-rollback origin' does: forget the state seen there
        KeyCache.for_repo(old, ensure_identity().config_dir).forget_seen(url)
        assert sync.push(again).ok
        assert stored_repo_id(raw) != old
    grant(tmp_path, store, "a", "b")
    with on(tmp_path, "b"):
        fresh = sync.clone(store, tmp_path / "b" / "again")
    assert fresh.history.head() == again.history.head()


def store_raw(url: str) -> Storage:
    remote = open_remote(url)
    assert isinstance(remote, BucketRemote)
    return remote.raw


def test_an_encrypted_push_with_its_keys_cached_loads_no_pydantic(
    tmp_path: Path, s3: S3Bucket
) -> None:
    """keys.json's pydantic models cost ~0.1 s of a process: a push that holds its keys
    (every push but a machine's first) reads no keyring and must not load them."""

    url = s3.url("agents/cached")
    a, _ = shared(tmp_path, url)
    write(a.root, "notes/more.md", "one more line\n")
    probe = (
        "import sys\n"
        "from memfs import sync; import memfs\n"
        f"agent = memfs.open({str(a.root)!r})\n"
        "assert sync.push(agent).ok\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'"
        " or m == 'memfs.crypto.keymodels'))\n"
    )
    env = {**os.environ, "MEMFS_CONFIG": str(tmp_path / "machines" / "a" / "config.yaml")}
    assert fresh_python(probe, env) == "[]"
