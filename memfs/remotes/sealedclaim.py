"""An encrypted agent's first push (docs/design-encryption.md §2): ``memfs.json`` with its
``encryption`` block, then the stub ``manifest.json`` beside ``keys.json``, before anything
is sealed. Apart from ``memfs.remotes.sealedremote`` because a first push alone runs it:
an incremental push or pull loads none of it.
"""

from __future__ import annotations

import json
import os

from memfs.errors import RemoteCorruptError
from memfs.remotes.bucket import stub_bytes
from memfs.remotes.guard import MANIFEST
from memfs.remotes.sealedremote import IDENTITY, Beside
from memfs.util import hostname, utc_now

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.remotes.sealedremote import SealedRemote

SCHEME = "memfs-enc-1"
REPO_ID_BYTES = 16


def first_claim(remote: SealedRemote, agent: dict[str, Any]) -> dict[str, Any]:
    """Write memfs.json (or use the repo id one already there names) and the keyring, and
    hand the keys to ``remote``; what goes into the sealed manifest about the agent."""
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
    from memfs.crypto.keyring import create_keyring

    # memfs.json is there: the stub manifest.json (old memfs: "format 2, upgrade") goes
    # beside keys.json, one round trip for both; the sealed manifest follows them both
    stub = Beside(lambda: remote.raw.put_if_absent(MANIFEST, stub_bytes()), "memfs-stub")
    name = os.environ.get("MEMFS_ENV_NAME") or hostname()
    try:
        # the key is cached with the manifest's rollback record (one key cache write)
        keys = create_keyring(remote.raw, repo_id, remote.identity(), name, defer_cache=True)
    except BaseException:  # a race lost to another machine: NoKeyError, not the stub's
        stub.settle()
        raise
    stub.wait()
    remote.stubbed = True
    remote.lazy.set(keys)
    agent_id = str(agent.get("id", "") or "")
    return {"agent_id": agent_id, "created_at": str(agent.get("created_at", "") or "")}


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
