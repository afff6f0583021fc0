"""An encrypted agent's first push (docs/design-encryption.md §2): ``memfs.json`` with its
``encryption`` block, then the stub ``manifest.json`` beside ``keys.json``, before anything
is sealed. Apart from ``memfs.remotes.sealedremote`` because a first push alone runs it:
an incremental push or pull loads none of it.
"""

from __future__ import annotations

import json
import os

from memfs.crypto.keyfile import KEYS_OBJECT
from memfs.errors import RemoteCorruptError
from memfs.remotes.bucket import stub_bytes
from memfs.remotes.guard import MANIFEST
from memfs.remotes.sealedremote import IDENTITY, Beside
from memfs.util import hostname, utc_now

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.crypto.keycache import KeyCache
    from memfs.remotes.sealedremote import SealedRemote

SCHEME = "memfs-enc-1"
REPO_ID_BYTES = 16


def first_claim(remote: SealedRemote, agent: dict[str, Any]) -> dict[str, Any]:
    """Write memfs.json (or use the repo id one already there names) and start putting the
    keyring, handing its key to ``remote``; what goes into the sealed manifest about the
    agent. keys.json and the stub manifest.json are still on their way when this returns:
    the push seals and uploads its pack beside them (one round trip fewer) and waits for
    them (``settle_claim``) before the manifest, which must not be there before keys.json."""
    # memfs.json's PUT waits on a thread while this one loads age (this machine's recipient,
    # for keys.json's slot); the AEAD's binding came with the remote (SealedRemote)
    claiming = Beside(lambda: claim_identity(remote), "memfs-claim")
    try:
        _ = remote.identity().recipient  # derived by age, once
    except BaseException:
        claiming.settle()
        raise
    repo_id: bytes = claiming.answer()
    remote.pins().pin(remote.url, repo_id)
    from memfs.crypto.keyring import RingKeys, new_keyring

    # memfs.json is there: the stub manifest.json (old memfs: "format 2, upgrade") goes
    # beside keys.json, one round trip for both; the sealed manifest follows them both
    stub = Beside(lambda: remote.raw.put_if_absent(MANIFEST, stub_bytes()), "memfs-stub")
    name = os.environ.get("MEMFS_ENV_NAME") or hostname()
    try:
        key, ring = new_keyring(repo_id, remote.identity(), name)
    except BaseException:
        stub.settle()
        raise
    landing = Beside(lambda: remote.raw.put_if_absent(KEYS_OBJECT, ring), "memfs-keys")
    cache = remote.key_cache(repo_id)
    keys = RingKeys(remote.raw, repo_id, remote.identity(), cache)
    # the key is cached with the manifest's rollback record (one key cache write)
    keys.remember(1, key, durable=False)
    remote.lazy.set(keys)
    remote.claiming = Claiming(stub, landing, cache)
    agent_id = str(agent.get("id", "") or "")
    return {"agent_id": agent_id, "created_at": str(agent.get("created_at", "") or "")}


class Claiming:
    """A first push's keys.json and stub manifest.json, put on threads while it uploads."""

    def __init__(self, stub: Beside, landing: Beside, cache: KeyCache) -> None:
        self.stub, self.landing, self.cache = stub, landing, cache

    def settle(self, remote: SealedRemote) -> bool:
        """Wait for both; True if keys.json is the one this push made. False: another first
        push of this agent put its keyring first, and the remote's keys are now that one's
        (opened with this machine's slot, or NoKeyError): what this push sealed under its own
        key must be sealed again."""
        try:
            self.stub.wait()
        finally:
            landed = self.landing.answer()
        remote.stubbed = True
        if landed:
            return True  # keys.json is this push's
        from memfs.crypto.keyring import open_keys

        self.cache.unhold(1)
        repo_id = remote.repo_id()
        assert repo_id is not None  # the claim pinned it
        remote.lazy.set(open_keys(remote.raw, repo_id, remote.identity(), self.cache))
        return False

    def abandon(self) -> None:
        """Join both threads, dropping what they raised: the push is failing for its own
        reason. The key it made is not cached by this process (a watcher's next write would):
        if keys.json holds it, the next command unwraps it from there."""
        self.stub.settle()
        self.landing.settle()
        self.cache.unhold(1)


def claim_identity(remote: SealedRemote) -> bytes:
    """memfs.json, written once: its repo id (one already there is used)."""
    from memfs.crypto.keyfile import stored_repo_id

    created = utc_now().isoformat().replace("+00:00", "Z")
    repo_id = os.urandom(REPO_ID_BYTES)
    record = {
        "format": 1,
        "name": "",
        "id": "",
        "created_at": created,
        "encryption": {"scheme": SCHEME, "repo_id": repo_id.hex()},
    }
    if remote.raw.put_if_absent(IDENTITY, json.dumps(record, indent=1).encode()):
        return repo_id
    found = stored_repo_id(remote.raw)
    if found is None:
        raise RemoteCorruptError(
            remote.url, "memfs.json holds an unencrypted agent; push to another URL or name"
        )
    return found
