"""An agent's keys as commands use them: which keyring a store holds, this machine's keys for it
(docs/design-encryption.md §4). The crypto is memfs.crypto; this module finds the repo id of an
agent in a store and opens (or, for a first secret on a plain cloud, creates) its keyring, and
holds the library side of every ``memfs key`` command: id, add (a machine, a passphrase),
list, rm and rotate (with the re-seal that follows a rotation), unlock, trust-rollback.

``agent_keys`` is the one way in, shared by the sealed remote (memfs.remotes.sealed), secrets
(memfs.secrets) and the ``memfs key`` commands.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memfs.errors import (
    KeyringError,
    MemfsError,
    NoKeyError,
)
from memfs.util import hostname

if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.crypto.keyfile import Keyring, Slot
    from memfs.crypto.keyring import RingKeys
    from memfs.remotes.storage import Storage

IDENTITY_OBJECT = "memfs.json"
KEYS_OBJECT = "keys.json"
REPO_ID_BYTES = 16


def stored_repo_id(storage: Storage) -> bytes | None:
    """The repo id of the agent in ``storage``: memfs.json's ``encryption.repo_id`` (an
    encrypted agent), else keys.json's ``repo_id`` (a plain agent with secrets), else None
    (memfs.crypto.keyfile, where an encrypted first push finds it without importing this
    module's command classes)."""
    from memfs.crypto.keyfile import stored_repo_id as find

    return find(storage)


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


# -- the ``memfs key`` commands -------------------------------------------------------------


class StoreChoiceError(MemfsError):
    """No object store for the key commands to use (none, several, a git host): exit 2."""

    exit_code = 2


class UnknownSlotError(KeyringError):
    """``memfs key rm`` named no slot, or a name several slots share: bad usage (exit 2)."""

    exit_code = 2


class OwnSlotError(KeyringError):
    """``memfs key rm`` of this machine's own slot without ``--force``: bad usage (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class KeyStore:
    """The object store of one of an agent's remotes, as the key commands use it: the raw
    storage (keys.json and memfs.json are plain objects, never sealed)."""

    remote: str
    url: str
    storage: Storage
    encrypted: bool


@dataclass
class KeyList:
    """``memfs key list``: the slots of an agent's keyring on one remote."""

    remote: str
    url: str
    epoch: int
    verified: bool  # this machine holds a slot and opened the keyring: its links checked
    slots: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Rotation:
    """What a ``key rm`` or ``key rotate`` did: the new epoch and what was re-sealed."""

    remote: str
    epoch: int
    removed: str | None = None
    manifest: bool = False  # the manifest (and its secrets) re-sealed under the new epoch
    presence: bool = False
    packs: tuple[int, int] | None = None  # (merged, deleted) by the compaction, None if skipped
    pending: list[str] = field(default_factory=list)  # what is left to re-seal, and how

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def key_id() -> str:
    """This machine's ``age1…`` recipient (its identity is made if it has none)."""
    from memfs.crypto.identity import ensure_identity

    return ensure_identity().recipient


def slot_name() -> str:
    """The name this machine gives its own slot: its environment name, else its host name."""
    return os.environ.get("MEMFS_ENV_NAME") or hostname()


def storage_for_url(url: str) -> Storage:
    """The raw storage of an object-store URL (with its cloud's options); exit 2 for a git
    host: keys live only in object stores."""
    from memfs.config import storage_options_for
    from memfs.remotes import BUCKET_PREFIX, normalize_url, redact, url_kind
    from memfs.remotes.storage import open_storage

    if url_kind(url) != "bucket":
        raise StoreChoiceError(f"{redact(url)} is a git host: keys are kept only in object stores")
    url = normalize_url(url)
    return open_storage(url.removeprefix(BUCKET_PREFIX), storage_options_for(url), redact(url))


def key_store(agent: Agent, remote: str | None = None) -> KeyStore:
    """The store the key commands of ``agent`` act on: remote ``remote``, else its one
    encrypted object-store remote, else its one object-store remote (exit 2 if none or
    several: name one with --remote)."""
    from memfs.remotes import get_remote, list_remotes, redact, url_kind

    history = agent.history
    if remote is not None:
        configs = [get_remote(history, remote)]
        if url_kind(configs[0].url) != "bucket":
            raise StoreChoiceError(
                f"remote {remote} is a git host: keys are kept only in object stores"
            )
    else:
        stores = [c for c in list_remotes(history) if url_kind(c.url) == "bucket"]
        sealed = [c for c in stores if c.encrypt]
        configs = sealed or stores
        if not configs:
            raise StoreChoiceError(
                "the agent has no object-store remote: keys are kept only in object stores"
            )
        if len(configs) > 1:
            names = ", ".join(c.name for c in configs)
            raise StoreChoiceError(
                f"the agent has several object-store remotes ({names}): pass --remote"
            )
    config = configs[0]
    return KeyStore(
        config.name,
        redact(config.url),
        storage_for_url(config.url),
        config.encrypt,
    )


def list_keys(agent: Agent, remote: str | None = None) -> KeyList:
    """The slots of the agent's keyring. A machine without a slot sees them too (keys.json is
    plain), unverified; one with a slot opens it first, so a forged keyring is refused."""
    from memfs.crypto.identity import ensure_identity
    from memfs.crypto.keyring import describe, read_keyring

    store = key_store(agent, remote)
    repo_id = _repo_id(store)
    identity = ensure_identity()
    ring, _ = read_keyring(store.storage, repo_id)
    verified = ring.slot_of(identity.recipient) is not None
    if verified:
        ring, _ = agent_keys(store.storage).read()
    return KeyList(store.remote, store.url, ring.epoch, verified, describe(ring, identity))


def _repo_id(store: KeyStore) -> bytes:
    repo_id = stored_repo_id(store.storage)
    if repo_id is None:
        raise KeyringError(
            store.url,
            "holds no keyring: it is not encrypted and has no secrets "
            "(memfs remote add NAME URL --encrypt, or memfs secret set)",
        )
    return repo_id


def add_key(agent: Agent, recipient: str, name: str, remote: str | None = None) -> Slot:
    """Let the machine of ``recipient`` (its ``memfs key id``) read the agent: a slot wrapping
    the current key for it, no rotation. A recipient that has a slot already keeps it."""
    from memfs.crypto.keyring import add_slot

    store = key_store(agent, remote)
    _repo_id(store)
    return add_slot(store.storage, agent_keys(store.storage), recipient, name)


def add_passphrase(
    agent: Agent, passphrase: str, name: str = "passphrase", remote: str | None = None
) -> Slot:
    """A recovery slot opened by ``passphrase`` (age scrypt): a machine with nothing else can
    then join with ``memfs clone --passphrase`` or ``memfs key unlock --passphrase``."""
    from memfs.crypto.keyring import add_slot

    store = key_store(agent, remote)
    _repo_id(store)
    keys = agent_keys(store.storage)
    return add_slot(store.storage, keys, "", name, "passphrase", passphrase=passphrase)


def join_with_passphrase(storage: Storage, passphrase: str, name: str | None = None) -> Slot:
    """Open the store's passphrase slot and give this machine its own x25519 slot, so later
    commands need no passphrase. Its slot, if it had one already, is returned unchanged."""
    from memfs.crypto.identity import ensure_identity
    from memfs.crypto.keycache import KeyCache
    from memfs.crypto.keyring import add_slot, open_keys, unlock_with_passphrase

    repo_id = stored_repo_id(storage)
    if repo_id is None:
        raise KeyringError(storage.url, "holds no keyring: there is nothing to unlock")
    identity = ensure_identity()
    recovery = unlock_with_passphrase(storage, repo_id, passphrase)
    cache = KeyCache.for_repo(repo_id, identity.config_dir)
    keys = open_keys(storage, repo_id, recovery, cache)
    slot = add_slot(storage, keys, identity.recipient, name or slot_name(), host=hostname())
    agent_keys(
        storage
    ).refresh()  # this machine's own slot opens: later commands need no passphrase
    return slot


def unlock(agent: Agent, passphrase: str, remote: str | None = None) -> Slot:
    """``memfs key unlock --passphrase``: join the agent's keyring by its passphrase slot."""
    store = key_store(agent, remote)
    return join_with_passphrase(store.storage, passphrase)


def find_slot(ring: Keyring, ref: str) -> Slot:
    """The slot ``ref`` names: its id, else its name (exit 2 if none or several)."""
    for slot in ring.slots:
        if slot.id == ref:
            return slot
    named = [s for s in ring.slots if s.name == ref]
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(s.id for s in named)
        raise UnknownSlotError("", f"several slots are named {ref!r} ({ids}): name one by its id")
    raise UnknownSlotError("", f"no slot {ref!r}: 'memfs key list' shows the ids and names")


def remove_key(
    agent: Agent,
    ref: str,
    *,
    force: bool = False,
    reseal: bool = True,
    remote: str | None = None,
) -> Rotation:
    """Remove a slot by its id or name: a rotation to a new epoch without it, then the re-seal
    (manifest, presence, packs by a compaction unless ``reseal`` is False), so the removed
    holder cannot read anything pushed from now on. Refuses the last slot, and this machine's
    own without ``force``."""
    from memfs.crypto.keyring import remove_slot

    store = key_store(agent, remote)
    _repo_id(store)
    keys = agent_keys(store.storage)
    ring, _ = keys.read()
    slot = find_slot(ring, ref)
    if len(ring.slots) == 1:
        raise KeyringError(
            store.url,
            f"{slot.id} ({slot.name}) is the last slot of keys.json: nobody could open the "
            "agent without it; add another first",
        )
    if slot.recipient == keys.identity.recipient and not force:
        raise OwnSlotError(
            "",
            f"{slot.id} ({slot.name}) is this machine's own slot: it could no longer read the "
            "agent; pass --force to remove it anyway",
        )
    from memfs.reseal import check_before_rotation, mark_rotation

    check_before_rotation(agent, store, keys)
    mark_rotation(agent, store, ring.epoch + 1)
    epoch = remove_slot(store.storage, keys, slot.id)
    rotation = Rotation(store.remote, epoch, removed=slot.id)
    if slot.recipient == keys.identity.recipient:
        rotation.pending.append(
            "this machine no longer holds the key: another member re-seals with 'memfs key rotate'"
        )
        return rotation
    from memfs.faults import crash_point
    from memfs.reseal import reseal as run

    crash_point("key.rotated")
    return run(agent, store, keys, rotation, reseal)


def rotate_keys(agent: Agent, remote: str | None = None, reseal: bool = True) -> Rotation:
    """A new epoch key for every slot (none removed), then the re-seal as ``remove_key``."""
    from memfs.crypto.keyring import rotate

    store = key_store(agent, remote)
    _repo_id(store)
    keys = agent_keys(store.storage)
    from memfs.reseal import check_before_rotation, mark_rotation

    check_before_rotation(agent, store, keys)
    mark_rotation(agent, store, keys.refresh().epoch + 1)
    epoch = rotate(store.storage, keys)
    from memfs.reseal import reseal as run

    return run(agent, store, keys, Rotation(store.remote, epoch), reseal)


def trust_rollback(agent: Agent, remote: str) -> bool:
    """Forget what this machine has seen of ``remote``'s manifest (after a deliberate restore
    of the store from a backup), so the rollback guard accepts its state; True if it had."""
    from memfs.crypto.identity import ensure_identity
    from memfs.crypto.keycache import KeyCache

    store = key_store(agent, remote)
    repo_id = _repo_id(store)
    cache = KeyCache.for_repo(repo_id, ensure_identity().config_dir)
    had = any(cache.seen(url) is not None for url in _seen_urls(agent, store))
    for url in _seen_urls(agent, store):
        cache.forget_seen(url)
    from memfs.secrets.hooks import read_meta

    if read_meta(agent.history.state_dir).get("remote") == store.remote:  # its secrets too
        from memfs.secrets.sharing import forget_seen

        had = forget_seen(agent, store.remote) or had
    return had


def _seen_urls(agent: Agent, store: KeyStore) -> list[str]:
    """The names the rollback guard may keep a remote's state under: its URL as stored."""
    from memfs.remotes import get_remote

    config = get_remote(agent.history, store.remote)
    return sorted({store.url, store.storage.url, config.url})
