"""An agent's keys as commands use them: which keyring a store holds, this machine's keys for it
(docs/design-encryption.md §4). The crypto is memfs.crypto; this module finds the repo id of an
agent in a store and opens (or, for a first secret on a plain cloud, creates) its keyring.

``agent_keys`` is the one way in, shared by the sealed remote (memfs.remotes.sealed), secrets
(memfs.secrets) and the ``memfs key`` commands.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from memfs.errors import NoKeyError, RemoteCorruptError

if TYPE_CHECKING:
    from memfs.crypto.keyring import RingKeys
    from memfs.remotes.storage import Storage

IDENTITY_OBJECT = "memfs.json"
KEYS_OBJECT = "keys.json"
REPO_ID_BYTES = 16


def stored_repo_id(storage: Storage) -> bytes | None:
    """The repo id of the agent in ``storage``: memfs.json's ``encryption.repo_id`` (an
    encrypted agent), else keys.json's ``repo_id`` (a plain agent with secrets), else None."""
    for key, path in ((IDENTITY_OBJECT, ("encryption", "repo_id")), (KEYS_OBJECT, ("repo_id",))):
        got = storage.get(key)
        if got is None:
            continue
        try:
            value: object = json.loads(got[0])
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                continue
            repo_id = bytes.fromhex(str(value))
        except ValueError as error:
            raise RemoteCorruptError(storage.url, f"{key} has no valid repo id") from error
        if len(repo_id) != REPO_ID_BYTES:
            raise RemoteCorruptError(storage.url, f"{key} has no valid repo id")
        return repo_id
    return None


def agent_keys(storage: Storage, *, create_name: str | None = None) -> RingKeys:
    """This machine's keys for the agent in ``storage`` (its identity made if missing).

    With ``create_name`` and no keyring in the store yet, one is made (epoch 1, one slot for
    this machine named ``create_name``): a plain cloud's first ``memfs secret set``.
    NoKeyError (exit 10, naming this machine's recipient) when this machine holds no slot.
    """
    from memfs.crypto.identity import ensure_identity
    from memfs.crypto.keycache import KeyCache
    from memfs.crypto.keyring import create_keyring, open_keys

    identity = ensure_identity()
    repo_id = stored_repo_id(storage)
    if repo_id is None:
        if create_name is None:
            raise NoKeyError(storage.url, identity.recipient)
        repo_id = os.urandom(REPO_ID_BYTES)
        return create_keyring(storage, repo_id, identity, create_name)
    cache = KeyCache.for_repo(repo_id, identity.config_dir)
    return open_keys(storage, repo_id, identity, cache)
