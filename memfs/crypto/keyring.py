"""The operations on an agent's keyring: open it on this machine, create it, add a slot,
rotate, remove a slot (which rotates), unlock a passphrase slot (docs/design-encryption.md §4;
the format and its checks are memfs.crypto.keyfile).

Rotating (``rotate``, and ``remove_slot``, which rotates without the slot) makes K[n+1], seals
K1..Kn under it (history), seals a commitment to K[n+1] under K[n] (link: proof that the
rotation was made by a holder of K[n], without handing K[n+1] to a removed one) and wraps
K[n+1] for every remaining slot, a passphrase slot to its recovery recipient, without asking
for its passphrase. A removed machine keeps every key it held (its key cache): it can still
open everything sealed before its removal, never what is sealed after. Every change is a
compare-and-swap of keys.json, retried on a lost race. Limits, checked on every read and
write: 64 slots, 1 KiB per wrapped key or recovery identity, 256 KiB per file.
"""

from __future__ import annotations

import json
import os

from memfs.crypto.envelope import KEY_LEN, Role, seal
from memfs.crypto.identity import Identity, IdentityError, parse_recipient, wrap
from memfs.crypto.keycache import KeyCache
from memfs.crypto.keyfile import (
    HISTORY_NAME,
    KEYS_OBJECT,
    MAX_FILE,
    MAX_PASSPHRASE_SLOTS,
    MAX_SLOTS,
    b64,
    commitment,
    kid,
    link_name,
    open_ring,
    read_keyring,
    unb64,
)
from memfs.errors import (
    ConcurrentUpdateError,
    EncryptionError,
    KeyringError,
    NoKeyError,
    RollbackError,
)
from memfs.util import hostname, utc_now

TYPE_CHECKING = False  # typing (~2 ms of an encrypted first push) for types only
if TYPE_CHECKING:
    from typing import Any

    from memfs.crypto.keymodels import Keyring, Slot
    from memfs.remotes.storage import Storage

__all__ = [
    "KEYS_OBJECT",
    "RingKeys",
    "add_slot",
    "create_keyring",
    "describe",
    "open_keys",
    "read_keyring",
    "remove_slot",
    "rotate",
    "unlock_with_passphrase",
]

ATTEMPTS = 50
MAX_LABEL = 200  # a slot's name and host, as keys.json allows (memfs.crypto.keymodels)


class RingKeys:
    """The ``Keys`` of an encrypted agent on this machine: cached epoch keys first, keys.json
    read only for an epoch not held (one GET, then cached)."""

    def __init__(
        self, storage: Storage, repo_id: bytes, identity: Identity, cache: KeyCache
    ) -> None:
        self.storage = storage
        self.repo_id = repo_id
        self.identity = identity
        self.cache = cache
        self._keys = cache.epochs()
        self._ring_epoch = 0  # keys.json's epoch, once read: newer than any held, no slot here
        self._refused: EncryptionError | None = None  # what the check of keys.json raised

    @property
    def url(self) -> str:
        """The store, as errors name it."""
        return self.storage.url

    def current(self) -> tuple[int, bytes]:
        """The newest epoch held (reading keys.json only when none is). NoKeyError once
        keys.json was read at a newer epoch whose key this machine did not get: its slot is
        gone (``memfs key rm``), so nothing is sealed under an epoch the others left; what
        the check of keys.json raised (ForkError, ...) once it failed: nothing is sealed
        under keys the store disagrees with."""
        if self._refused is not None:  # keys.json and the keys held disagree: seal nothing
            raise self._refused
        if not self._keys:
            self.refresh()
        top = max(self._keys)
        if self._ring_epoch > top:
            raise NoKeyError(self.url, self.identity.recipient, epoch=self._ring_epoch)
        return top, self._keys[top]

    def key(self, epoch: int) -> bytes:
        """The key of ``epoch``: cached, or from keys.json; NoKeyError, RollbackError if not."""
        if epoch not in self._keys:
            self._keys.update(self.cache.epochs())  # another process may have fetched it
        if epoch not in self._keys:
            ring = self.refresh()
            if epoch > ring.epoch:
                raise RollbackError(
                    self.url,
                    f"keys.json is at epoch {ring.epoch}, objects are sealed under epoch {epoch}",
                )
        if epoch not in self._keys:
            raise NoKeyError(self.url, self.identity.recipient, epoch=epoch)
        return self._keys[epoch]

    def refresh(self) -> Keyring:
        """Read keys.json, open this machine's slot, check it and cache its keys."""
        ring, _ = self.read()
        return ring

    def read(self) -> tuple[Keyring, str]:
        """keys.json (opened, checked, its keys cached) and its etag, for a compare-and-swap."""
        ring, etag = read_keyring(self.storage, self.repo_id)
        self._ring_epoch = max(self._ring_epoch, ring.epoch)
        try:
            self.accept(ring)
        except EncryptionError as error:
            self._refused = error
            raise
        return ring, etag

    def accept(self, ring: Keyring) -> dict[int, bytes]:
        """Open and check ``ring`` against the keys held; cache and return its keys."""
        held = {**self.cache.epochs(), **self._keys}
        keys = open_ring(self.url, ring, self.repo_id, self.identity, held)
        self._keys = self.cache.add(keys, {e: kid(k, self.repo_id) for e, k in keys.items()})
        return keys

    def remember(self, epoch: int, key: bytes, *, durable: bool = True) -> None:
        """Hold a key this machine made itself (a new keyring, a rotation). ``durable=False``:
        cached with the process's next write of the key cache (``KeyCache.hold``)."""
        if durable:
            self._keys = self.cache.add({epoch: key}, {epoch: kid(key, self.repo_id)})
        else:
            self.cache.hold(epoch, key, kid(key, self.repo_id))
            self._keys = {**self._keys, epoch: key}


def open_keys(storage: Storage, repo_id: bytes, identity: Identity, cache: KeyCache) -> RingKeys:
    """The agent's keys for this machine; reads keys.json now only if none is cached (so a
    machine without a slot gets NoKeyError here, naming its recipient)."""
    keys = RingKeys(storage, repo_id, identity, cache)
    if not keys._keys:
        keys.refresh()
    return keys


def _new_slot_id(ring: Keyring | None) -> str:
    taken = {s.id for s in ring.slots} if ring else set()
    while True:
        candidate = "s-" + os.urandom(3).hex()
        if candidate not in taken:
            return candidate


def create_keyring(
    storage: Storage,
    repo_id: bytes,
    identity: Identity,
    name: str,
    cache: KeyCache | None = None,
    *,
    defer_cache: bool = False,
) -> RingKeys:
    """Make epoch 1 of a new encrypted agent, wrapped to ``identity`` (slot ``name``), and put
    keys.json if absent; if one is there already (a race lost, a second init), open it.
    ``defer_cache``: the key joins the key cache with the process's next write of it (an
    encrypted first push's rollback record), not in a write of its own."""
    cache = cache or KeyCache.for_repo(repo_id, identity.config_dir)
    key, data = new_keyring(repo_id, identity, name)
    if not storage.put_if_absent(KEYS_OBJECT, data):
        return open_keys(storage, repo_id, identity, cache)
    keys = RingKeys(storage, repo_id, identity, cache)
    keys.remember(1, key, durable=not defer_cache)
    return keys


def new_keyring(repo_id: bytes, identity: Identity, name: str) -> tuple[bytes, bytes]:
    """Epoch 1 of a new encrypted agent: its key, and keys.json's bytes with the key wrapped
    to ``identity`` (slot ``name``). Nothing is written: the caller puts keys.json if absent."""
    key = os.urandom(KEY_LEN)
    slot_id = _new_slot_id(None)
    # Written as JSON directly, in the models' own field order (memfs.crypto.keymodels
    # parses it): the first push of an encrypted agent loads no pydantic (~70 ms a process).
    ring = {
        "format": 1,
        "repo_id": repo_id.hex(),
        "epoch": 1,
        "kid": kid(key, repo_id),
        "slots": [
            {
                "id": slot_id,
                "kind": "x25519",
                "recipient": identity.recipient,
                "name": name[:MAX_LABEL],
                "host": hostname()[:MAX_LABEL],
                "added_at": _now(),
                "added_by": slot_id,
                "wrapped": b64(wrap(key, identity.recipient)),
            }
        ],
    }
    return key, json.dumps(ring, indent=1).encode() + b"\n"


def _now() -> str:
    return utc_now().isoformat().replace("+00:00", "Z")


def _own_slot_id(ring: Keyring, keys: RingKeys) -> str:
    own = ring.slot_of(keys.identity.recipient)
    return own.id if own else ""


def add_slot(
    storage: Storage,
    keys: RingKeys,
    recipient: str,
    name: str,
    kind: str = "x25519",
    *,
    passphrase: str | None = None,
    host: str = "",
) -> Slot:
    """Wrap the current epoch key for one more holder, without rotating.

    ``kind="x25519"``: ``recipient`` is a machine's ``age1…`` (a slot it already has is
    returned unchanged). ``kind="passphrase"``: ``recipient`` is ignored; a recovery identity
    is made, the key wrapped to it and the identity sealed with ``passphrase`` (age's scrypt).
    """
    target, sealed_identity = "", None
    if kind == "x25519":
        target = parse_recipient(recipient)
    elif kind != "passphrase":
        raise ValueError(f"unknown slot kind {kind!r}")
    elif not passphrase:
        raise ValueError("a passphrase slot needs the passphrase")
    for _ in range(ATTEMPTS):
        ring, etag = keys.read()
        existing = ring.slot_of(target)
        if existing is not None:
            return existing
        if len(ring.slots) >= MAX_SLOTS:
            raise KeyringError(
                keys.url,
                f"keys.json holds {MAX_SLOTS} slots, the most memfs allows; remove one "
                "first (memfs key rm)",
            )
        if kind == "passphrase" and (
            sum(s.kind == "passphrase" for s in ring.slots) >= MAX_PASSPHRASE_SLOTS
        ):
            raise KeyringError(
                keys.url,
                f"keys.json holds {MAX_PASSPHRASE_SLOTS} passphrase slots, the most memfs "
                "allows; remove one first (memfs key rm)",
            )
        if kind == "passphrase" and sealed_identity is None:  # one scrypt run, after the checks
            import pyrage

            assert passphrase is not None  # refused above when missing
            recovery = Identity.generate()
            target = recovery.recipient
            sealed_identity = b64(pyrage.passphrase.encrypt(recovery.secret.encode(), passphrase))
        current = keys.key(ring.epoch)
        from typing import cast  # loaded with pydantic, which the models bring

        from memfs.crypto.keymodels import Slot, SlotKind

        slot = Slot(
            id=_new_slot_id(ring),
            kind=cast(SlotKind, kind),
            recipient=target,
            name=name,
            host=host,
            added_at=_now(),
            added_by=_own_slot_id(ring, keys),
            wrapped=b64(wrap(current, target)),
            identity=sealed_identity,
        )
        changed = ring.model_copy(update={"slots": [*ring.slots, slot]})
        if _swap(storage, keys, changed, etag):
            return slot
    raise ConcurrentUpdateError(
        f"{keys.url}: keys.json kept changing; nothing was added, try again"
    )


def _swap(storage: Storage, keys: RingKeys, ring: Keyring, etag: str) -> bool:
    """Compare-and-swap keys.json; KeyringError if the new content breaks the limits."""
    data = ring.dump()
    if len(data) > MAX_FILE:
        raise KeyringError(keys.url, f"keys.json would be {len(data)} bytes, more than {MAX_FILE}")
    return storage.put_if_match(KEYS_OBJECT, data, etag)


def rotate(storage: Storage, keys: RingKeys) -> int:
    """A new epoch key for every slot, the old ones kept in its history; returns the epoch."""
    return _rotate(storage, keys, drop=None)


def remove_slot(storage: Storage, keys: RingKeys, slot_id: str) -> int:
    """Remove a slot by rotating to a new epoch without it; returns the new epoch. The holder
    removed keeps what it could already read, and cannot open what is sealed from now on."""
    return _rotate(storage, keys, drop=slot_id)


def _rotate(storage: Storage, keys: RingKeys, drop: str | None) -> int:
    for _ in range(ATTEMPTS):
        ring, etag = keys.read()
        remaining = [s for s in ring.slots if s.id != drop]
        if drop is not None and len(remaining) == len(ring.slots):
            raise KeyringError(keys.url, f"keys.json has no slot {drop!r}: see 'memfs key list'")
        if not remaining:
            raise KeyringError(
                keys.url,
                f"{drop} is the last slot of keys.json: nobody could open the agent "
                "without it; add another first",
            )
        n, new = ring.epoch, os.urandom(KEY_LEN)
        held = {e: keys.key(e) for e in range(1, n + 1)}
        history = {str(e): b64(k) for e, k in held.items()}
        rid = keys.repo_id
        changed = ring.model_copy(
            update={
                "epoch": n + 1,
                "kid": kid(new, rid),
                "slots": [
                    s.model_copy(update={"wrapped": b64(wrap(new, s.recipient))}) for s in remaining
                ],
                "history": b64(
                    seal(new, n + 1, Role.HISTORY, rid, HISTORY_NAME, json.dumps(history).encode())
                ),
                "link": b64(
                    seal(held[n], n, Role.LINK, rid, link_name(n + 1), commitment(new, rid))
                ),
            }
        )
        if _swap(storage, keys, changed, etag):
            if changed.slot_of(keys.identity.recipient) is not None:
                keys.remember(n + 1, new)
            return n + 1
    raise ConcurrentUpdateError(
        f"{keys.url}: keys.json kept changing; nothing was rotated, try again"
    )


def unlock_with_passphrase(storage: Storage, repo_id: bytes, passphrase: str) -> Identity:
    """The recovery identity a passphrase slot holds: ``open_keys`` with it reads the agent
    (then add this machine's own slot so later commands need no passphrase)."""
    import pyrage

    ring, _ = read_keyring(storage, repo_id)
    slots = [s for s in ring.slots if s.kind == "passphrase" and s.identity]
    if not slots:
        raise KeyringError(storage.url, "keys.json has no passphrase slot")
    for slot in slots:
        sealed = unb64(storage.url, f"keys.json slot {slot.id}", slot.identity)
        try:
            secret = pyrage.passphrase.decrypt(sealed, passphrase).decode()
        except (pyrage.DecryptError, UnicodeDecodeError):
            continue
        try:
            recovery = Identity.from_secret(secret)
        except IdentityError:  # a passphrase-sealed payload that is no identity: not this slot
            continue
        if recovery.recipient == slot.recipient:
            return recovery
    raise KeyringError(storage.url, "the passphrase opens no slot of keys.json")


def describe(ring: Keyring, identity: Identity | None) -> list[dict[str, Any]]:
    """The slots as ``memfs key list`` shows them (no wrapped keys), ``*`` for this machine."""
    return [
        {
            "id": s.id,
            "kind": s.kind,
            "name": s.name,
            "host": s.host,
            "added_at": s.added_at,
            "added_by": s.added_by,
            "recipient": s.recipient,
            "this_machine": identity is not None and s.recipient == identity.recipient,
            "epoch": ring.epoch,
        }
        for s in ring.slots
    ]
