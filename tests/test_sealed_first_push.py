"""An encrypted agent's first push, whose steps overlap (issue 14): memfs.json first, then the
stub manifest.json beside keys.json, then the pack, then the sealed manifest. A push killed
between any two of them, or a store left in any state they can leave, is completed by the
next push; two pushers racing a first push lose nothing: one wins, the other is rejected,
merges and pushes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.errors import PushRejectedError
from memfs.remotes.bucket import BucketRemote, stub_bytes
from memfs.remotes.configure import add_remote

from .conftest import S3Bucket, git, memfs_process, write


def agent_with_notes(root: Path, name: str = "sealed") -> memfs.Agent:
    """A committed agent of a few notes."""
    agent = memfs.init(root, name=name)
    for i in range(3):
        write(agent.root, f"reference/note-{i}.md", f"---\ndescription: n{i}\n---\nfact {i}\n")
    agent.commit()
    return agent


def assert_clones_whole(url: str, where: Path, agent: memfs.Agent) -> None:
    """A clone of ``url`` holds ``agent``'s head and files, and git finds nothing wrong."""
    fresh = sync.clone(url, where)
    assert fresh.history.head() == agent.history.head()
    for i in range(3):
        assert (fresh.root / f"reference/note-{i}.md").read_text().endswith(f"fact {i}\n")
    git(fresh.root, "fsck", "--strict")


@pytest.mark.parametrize("crash_at", ["push.pack", "push.manifest"])
def test_a_first_push_killed_midway_is_completed_by_the_next(
    tmp_path: Path, s3: S3Bucket, crash_at: str
) -> None:
    url = s3.url(f"agents/killed-{crash_at}")
    agent = agent_with_notes(tmp_path / "a")
    add_remote(agent.history, "origin", url, encrypt=True)
    killed = memfs_process("push", cwd=agent.root, crash_at=crash_at)
    assert killed.returncode == -9, killed.stderr
    raw = BucketRemote("memfs::" + url).raw
    assert raw.get("memfs.json") is not None
    if crash_at == "push.manifest":  # keys.json and the stub land beside the pack, before it
        assert raw.get("keys.json") is not None
        assert json.loads(raw.get("manifest.json")[0]) == json.loads(stub_bytes())  # type: ignore[index]
    assert raw.get("manifest.json.enc") is None
    assert sync.push(agent).ok
    assert_clones_whole(url, tmp_path / "fresh", agent)


@pytest.mark.parametrize(
    "left",
    [
        "memfs.json",
        "memfs.json+stub",
        "memfs.json+keys.json",
        "memfs.json+keys.json uncached",
        "memfs.json+pack",
    ],
)
def test_what_a_first_push_can_leave_is_completed(tmp_path: Path, s3: S3Bucket, left: str) -> None:
    """memfs.json alone (killed before keys.json and the stub), with the stub only (keys.json
    lost, the stub beside it landed), with keys.json only (the stub lost); uncached: another
    first push of this machine is between its keys.json and its key cache write, so this push
    seals its pack under a key of its own, loses keys.json's race, and must seal it again
    under the key there (and cache that one, not its own); pack: killed after its pack landed
    (sealed under the key it made) and before its keys.json did, so no key opens that pack."""
    url = s3.url(f"agents/left-{left}")
    agent = agent_with_notes(tmp_path / "a")
    add_remote(agent.history, "origin", url, encrypt=True)
    crashed = BucketRemote("memfs::" + url, encrypt=True)
    assert crashed.sealed is not None
    from memfs.remotes.sealedclaim import claim_identity

    repo_id = claim_identity(crashed.sealed)
    crashed.sealed.pins().pin(crashed.url, repo_id)
    if "stub" in left:
        assert crashed.raw.put_if_absent("manifest.json", stub_bytes())
    theirs = None
    if left == "memfs.json+keys.json":
        from memfs.crypto.keyring import create_keyring

        create_keyring(crashed.raw, repo_id, crashed.sealed.identity(), "crashed")
    elif left == "memfs.json+pack":
        import os

        from memfs.crypto.envelope import StaticKeys
        from memfs.remotes.sealed import SealedStorage

        pack = agent.history.pack_between([agent.history.head()], [])
        assert pack is not None
        lost = SealedStorage(crashed.raw, StaticKeys(repo_id, {1: os.urandom(32)}))
        assert lost.put_if_absent(f"packs/{pack.name}.pack", pack.pack)
    elif left == "memfs.json+keys.json uncached":
        from memfs.crypto.keyring import new_keyring

        theirs, ring = new_keyring(repo_id, crashed.sealed.identity(), "crashed")
        assert crashed.raw.put_if_absent("keys.json", ring)
    assert sync.push(agent).ok
    assert crashed.raw.get("manifest.json.enc") is not None
    if theirs is not None:
        from memfs.crypto.keycache import KeyCache

        assert KeyCache.for_repo(repo_id).epochs() == {1: theirs}
    assert_clones_whole(url, tmp_path / "fresh", agent)


def test_two_first_pushes_racing_lose_nothing(tmp_path: Path, s3: S3Bucket) -> None:
    """A reads the empty store, B's first push lands, A's swap is refused (the sealed
    manifest is created if absent); A's sync then merges and pushes both."""
    url = s3.url("agents/race")
    a = agent_with_notes(tmp_path / "a")
    b = memfs.open(shutil.copytree(a.root, tmp_path / "b", symlinks=True))
    write(a.root, "reference/from-a.md", "---\ndescription: a\n---\nfrom a\n")
    write(b.root, "reference/from-b.md", "---\ndescription: b\n---\nfrom b\n")
    a.commit()
    b.commit()
    add_remote(a.history, "origin", url, encrypt=True)
    add_remote(b.history, "origin", url, encrypt=True)
    racing = BucketRemote("memfs::" + url, encrypt=True)
    assert racing.read_manifest() == (None, None)
    assert sync.push(b).ok
    with pytest.raises(PushRejectedError):
        racing.push(a.history, "main", a.history.head(), None)
    assert sync.sync(a).ok
    fresh = sync.clone(url, tmp_path / "fresh")
    assert (fresh.root / "reference/from-a.md").read_text().endswith("from a\n")
    assert (fresh.root / "reference/from-b.md").read_text().endswith("from b\n")
    git(fresh.root, "fsck", "--strict")


def test_a_first_push_asks_the_store_once_before_it_writes(tmp_path: Path, s3: S3Bucket) -> None:
    """The first read at a URL this machine knows no repo id for asks manifest.json.enc,
    manifest.json and memfs.json at once and nothing else: no keys.json GET (an agent with
    a keyring has a manifest), no memfs.json read again by the claim."""
    url = s3.url("agents/counted")
    agent = agent_with_notes(tmp_path / "a")
    add_remote(agent.history, "origin", url, encrypt=True)
    before = len(s3.server.requests)
    assert sync.push(agent).ok
    asked = [
        (method, path.rsplit("/counted/", 1)[1]) for method, path in s3.server.requests[before:]
    ]
    gets = sorted(path for method, path in asked if method == "GET")
    assert gets == ["manifest.json", "manifest.json.enc", "memfs.json"]
    puts = [path for method, path in asked if method == "PUT" and not path.startswith("envs/")]
    assert sorted(puts[:3]) == ["keys.json", "manifest.json", "memfs.json"]
    assert puts[0] == "memfs.json"  # the repo id is there before anything is sealed with it
    assert puts[3].startswith("packs/") and puts[4:] == ["manifest.json.enc"]


def test_a_first_push_racing_another_machines_gets_a_clear_error(
    tmp_path: Path, s3: S3Bucket
) -> None:
    """Machine A reads the empty store; machine B's first push lands (its memfs.json and
    keys.json); A's push then finds B's repo id and a keyring with no slot of A's: NoKeyError
    naming A's recipient, and B's agent stays whole."""
    from memfs.errors import NoKeyError

    from .test_sealed import on, recipient

    url = s3.url("agents/two-machines")
    a = agent_with_notes(tmp_path / "a", "a")
    b = agent_with_notes(tmp_path / "b", "b")
    add_remote(a.history, "origin", url, encrypt=True)
    add_remote(b.history, "origin", url, encrypt=True)
    with on(tmp_path, "a"):
        racing = BucketRemote("memfs::" + url, encrypt=True)
        assert racing.read_manifest() == (None, None)
    with on(tmp_path, "b"):
        assert sync.push(b).ok
    with on(tmp_path, "a"), pytest.raises(NoKeyError) as refused:
        racing.push(a.history, "main", a.history.head(), None)
    assert recipient(tmp_path, "a") in str(refused.value)
    with on(tmp_path, "b"):
        assert_clones_whole(url, tmp_path / "fresh", b)


def test_a_first_push_failing_midway_leaves_no_key_of_its_own_to_cache(
    tmp_path: Path, s3: S3Bucket
) -> None:
    """keys.json and the stub land on threads while the pack uploads: a push failing there
    joins them and keeps no key for a later write of the key cache in this process (a
    watcher's): had keys.json lost a race, that key would seal what no other machine opens.
    The next push finds its key in keys.json and completes the agent."""
    from memfs import faults
    from memfs.crypto import keycache

    url = s3.url("agents/failing")
    agent = agent_with_notes(tmp_path / "a")
    add_remote(agent.history, "origin", url, encrypt=True)

    def fail() -> None:
        raise OSError("the network went away")

    with faults.at("push.pack", fail), pytest.raises(OSError, match="network"):
        sync.push(agent)
    raw = BucketRemote("memfs::" + url).raw
    identity = json.loads(raw.get("memfs.json")[0])  # type: ignore[index]
    repo_id = bytes.fromhex(identity["encryption"]["repo_id"])
    assert not keycache._HELD.get(keycache.KeyCache.for_repo(repo_id).path)
    assert raw.get("keys.json") is not None and raw.get("manifest.json.enc") is None
    assert sync.push(agent).ok
    assert_clones_whole(url, tmp_path / "fresh", agent)
