"""Secrets and the object store they live in (docs/design-encryption.md §6): which remote,
its keyring (a local one for an agent with no object-store remote yet, moved to the first
one it gets), the push of pending changes as a compare-and-swap of the manifest's ``secrets``
field, and taking a fetched blob as this machine's view.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from memfs.errors import RemoteError, RollbackError, TamperError
from memfs.secrets.hooks import FIELD, META_FILE, read_meta, secrets_dir
from memfs.secrets.store import (
    LOGICAL_NAME,
    Document,
    SecretStore,
    SecretUsageError,
    _write_local,
    blob_of,
    digest,
    env_name,
    open_doc,
    seal_doc,
)

if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.crypto.envelope import Keys
    from memfs.remotes import RemoteConfig
    from memfs.remotes.bucket import BucketRemote
    from memfs.remotes.manifest import BucketManifest
    from memfs.remotes.storage import Storage


LOCAL_URL = "this agent's local secrets"
LOCAL_KEYRING = "secrets-keyring"


def local_storage(agent: Agent) -> Storage:
    """A keyring for an agent with no object-store remote yet: ``.git/memfs/secrets-keyring``
    (its keys.json holds this machine's slot; the key itself is in the key cache)."""
    from memfs.remotes.storage import open_storage

    folder = secrets_dir(agent.history.state_dir) / LOCAL_KEYRING
    folder.mkdir(parents=True, exist_ok=True)
    return open_storage(folder.as_uri(), None, LOCAL_URL)


def has_store(agent: Agent) -> bool:
    """Whether the agent has an object-store remote its secrets can live in."""
    try:
        secrets_remote(agent)
    except SecretUsageError:
        return False
    return True


def move_to_store(agent: Agent, store: SecretStore) -> Keys:
    """Secrets kept locally (no object-store remote until now) go to the first one: every
    one of them is a pending change, re-sealed here under the store's keyring."""
    from memfs.keys import agent_keys

    config = secrets_remote(agent)
    keys = agent_keys(_open_bucket(agent, config).raw, create_name=env_name())
    drop = ("local", "generation", "digest")
    meta = {k: v for k, v in store.meta.items() if k not in drop}
    meta.update(remote=config.name, url=config.display_url, repo_id=keys.repo_id.hex())
    with agent.history.locked():
        _write_local(agent, meta, keys, store.doc, store.pending)
    store.meta = meta
    return keys


def secrets_remote(agent: Agent, name: str | None = None) -> RemoteConfig:
    """The object-store remote an agent's secrets live in: ``name``, else the first one."""
    from memfs.remotes import list_remotes

    remotes = [r for r in list_remotes(agent.history) if not r.mirror and r.kind == "bucket"]
    for config in remotes:
        if name is None or config.name == name:
            return config
    raise SecretUsageError(
        "secrets are kept in an object-store remote (memfs cloud add, memfs remote add) and "
        "this agent has none; nothing was changed"
    )


def _open_bucket(agent: Agent, config: RemoteConfig) -> BucketRemote:
    from memfs.incoming import open_for
    from memfs.remotes.bucket import BucketRemote

    remote = open_for(agent, config)
    assert isinstance(remote, BucketRemote)
    return remote


def open_store_blob(keys: Keys, url: str, blob: bytes) -> Document:
    """The store's secrets blob opened, refused (RollbackError) if sealed under an epoch
    before the keyring's current one (keys.json read once more): a machine removed from
    the keyring keeps the old epochs' keys, and with them could plant secrets (a PATH, an
    LD_PRELOAD) that every other machine would open and 'memfs run' would export."""
    from memfs.crypto.envelope import peek

    refresh = getattr(keys, "refresh", None)
    if refresh is not None:
        refresh()
    try:
        _, epoch = peek(blob)
    except TamperError:
        raise TamperError(url, LOGICAL_NAME) from None
    current, _ = keys.current()
    if epoch < current:
        raise RollbackError(
            url,
            f"{LOGICAL_NAME} is sealed under epoch {epoch}, before the keyring's epoch "
            f"{current}: written with the key of a machine since removed, or left by a key "
            "rotation that did not finish (if you stopped one: 'memfs key rotate')",
        )
    return Document.load(url, open_doc(keys, url, blob))


def blob_of_remote(remote: BucketRemote) -> bytes | None:
    manifest, _ = remote.read_manifest()
    return blob_of(manifest, remote.url)


def _read_remote_doc(remote: BucketRemote, keys: Keys, meta: dict[str, Any]) -> Document:
    manifest = remote._last_read[0] if remote._last_read else remote.read_manifest()[0]
    blob = blob_of(manifest, remote.url)
    if blob is None:
        return Document()
    doc = open_store_blob(keys, remote.url, blob)
    meta.update(generation=doc.generation, digest=digest(blob))
    return doc


def push(agent: Agent, remote: str | None = None) -> bool:
    """Send this machine's pending changes to the store; True once none is left. An agent
    never pushed to its store yet keeps them pending (False): the next sync sends them."""
    from memfs.keys import agent_keys

    store = SecretStore.load(agent)
    if not store.pending:
        return True
    if store.meta.get("local"):
        if not has_store(agent):
            return False  # kept here until the agent has an object-store remote
        move_to_store(agent, store)
    config = secrets_remote(agent, remote or store.meta.get("remote"))
    bucket = _open_bucket(agent, config)
    if bucket.read_manifest()[0] is None:
        return False  # nothing pushed there yet (or out of reach): sent by a later sync
    keys = agent_keys(bucket.raw)
    ops = list(store.pending)
    done: dict[str, Any] = {}

    def change(manifest: BucketManifest) -> BucketManifest:
        blob = blob_of(manifest, bucket.url)
        doc = Document()
        if blob is not None:
            doc = open_store_blob(keys, bucket.url, blob)
            _check_rollback(bucket.url, store.meta, doc)
        for op in ops:
            op.apply(doc)
        doc.generation += 1
        doc.prev = digest(blob) if blob is not None else ""
        sealed = seal_doc(keys, doc.dump())
        done.update(doc=doc, blob=sealed)
        extra = {**manifest.extra, FIELD: base64.b64encode(sealed).decode()}
        return manifest._replace(extra=extra)

    try:
        bucket.update_manifest(change)
    except RemoteError as error:
        if bucket.read_manifest()[0] is None:
            return False
        raise error
    with agent.history.locked():
        now = SecretStore._opened(agent, read_meta(agent.history.state_dir), keys)
        left = now.pending[len(ops) :] if now.pending[: len(ops)] == ops else now.pending
        doc = done["doc"]
        for op in left:
            op.apply(doc)
        meta = {**now.meta, "generation": done["doc"].generation, "digest": digest(done["blob"])}
        _write_local(agent, meta, keys, doc, left)
    return not left


def _check_rollback(url: str, meta: dict[str, Any], doc: Document) -> None:
    seen = meta.get("generation")
    if isinstance(seen, int) and doc.generation < seen:
        remote = meta.get("remote") or "REMOTE"
        raise RollbackError(
            url,
            f"{LOGICAL_NAME} is at generation {doc.generation}, this machine saw {seen} "
            f"(restored from a backup on purpose? 'memfs key trust-rollback {remote}')",
        )


def forget_seen(agent: Agent, remote: str) -> bool:
    """Forget the secrets generation seen from ``remote`` (``memfs key trust-rollback``), so
    the next fetch takes the blob the store holds now; True if one was recorded."""
    from memfs.util import atomic_write

    with agent.history.locked():
        meta = read_meta(agent.history.state_dir)
        if meta.get("remote") != remote or "generation" not in meta:
            return False
        kept = {k: v for k, v in meta.items() if k not in ("generation", "digest")}
        path = secrets_dir(agent.history.state_dir) / META_FILE
        atomic_write(path, json.dumps(kept, indent=1, sort_keys=True).encode(), 0o600)
    return True


def refresh(agent: Agent, config: RemoteConfig, blob: bytes) -> None:
    """Take the store's secrets blob (read from ``config``'s manifest) as this machine's
    view, with its pending changes on top. NoKeyError if this machine holds no slot."""
    from memfs.keys import agent_keys

    meta = read_meta(agent.history.state_dir)
    if meta.get("remote") not in (None, config.name):
        return  # the secrets of this agent live in another of its remotes
    bucket = _open_bucket(agent, config)
    keys = agent_keys(bucket.raw)
    doc = open_store_blob(keys, bucket.url, blob)
    with agent.history.locked():
        meta = read_meta(agent.history.state_dir)
        if meta.get("repo_id") not in (None, keys.repo_id.hex()):
            return
        _check_rollback(bucket.url, meta, doc)
        pending = SecretStore._opened(agent, meta, keys).pending if meta else []
        view = Document(doc.generation, doc.prev, dict(doc.secrets))
        for op in pending:
            op.apply(view)
        meta = {
            **meta,
            "remote": config.name,
            "url": config.display_url,
            "repo_id": keys.repo_id.hex(),
            "generation": doc.generation,
            "digest": digest(blob),
        }
        _write_local(agent, meta, keys, view, pending)
