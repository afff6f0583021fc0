"""``keys.json``: an encrypted agent's key, one per epoch, wrapped for every machine that may
read it (docs/design-encryption.md §4).

```
{"format": 1, "repo_id": "<32 hex>", "epoch": 3, "kid": "<16 hex>",
 "slots": [{"id": "s-1f3a9c", "kind": "x25519", "recipient": "age1…", "name": "laptop",
            "host": "laptop.local", "added_at": "…Z", "added_by": "s-1f3a9c",
            "wrapped": "<b64 age file: K3 to recipient>"},
           {"id": "s-77b0e1", "kind": "passphrase", "recipient": "age1…(recovery)", …,
            "identity": "<b64 age scrypt file holding the recovery AGE-SECRET-KEY>"}],
 "history": "<b64 envelope HISTORY, epoch 3, name keys.json#history: {"1": b64 K1, "2": …}>",
 "link": "<b64 envelope LINK, epoch 2, name keys.json#link/3: commitment(K3)>"}
```
``kid = HKDF-SHA256(K, salt=repo_id, info="memfs-enc-1/kid")[:8]``. A machine finds its slot by
its recipient (no trial decryption), unwraps K[epoch] with its identity and accepts it only if
it follows from the keys it already holds: K for an epoch it holds must be the same; the history
must hold the same older keys; the link must open with K[epoch-1] and hold K[epoch]'s
commitment (ForkError otherwise: age has no sender authentication, so anyone who can write to
the store could wrap a key of their own to every recipient). A keys.json older than an epoch
held is RollbackError. A machine that holds no key yet trusts the first keys.json its slot
opens (TOFU).
"""

from __future__ import annotations

import binascii
import json

from memfs.crypto.envelope import KEY_LEN, Role, hkdf_sha256, open_sealed, peek
from memfs.crypto.identity import Identity, InvalidRecipientError, parse_recipient
from memfs.errors import ForkError, NoKeyError, RemoteCorruptError, RollbackError, TamperError

TYPE_CHECKING = False  # typing (~2 ms of an encrypted first push) for types only
if TYPE_CHECKING:
    from typing import Any

    from memfs.crypto.keymodels import Keyring
    from memfs.remotes.storage import Storage

KEYS_OBJECT = "keys.json"
IDENTITY_OBJECT = "memfs.json"
REPO_ID_BYTES = 16
HISTORY_NAME = "keys.json#history"
MAX_SLOTS = 64
# each costs a whole scrypt run to try (seconds, up to a GiB): a store cannot plant dozens
MAX_PASSPHRASE_SLOTS = 4
MAX_WRAPPED = 1024
MAX_FILE = 256 * 1024


def link_name(epoch: int) -> str:
    """The logical name of the link that seals K[epoch]'s commitment under K[epoch - 1]."""
    return f"keys.json#link/{epoch}"


def commitment(key: bytes, repo_id: bytes) -> bytes:
    """What a rotation's link seals under the previous epoch key: 32 bytes of HKDF that bind
    the new key without revealing it. Never the key itself: a machine removed by that very
    rotation holds the previous key, and would read the new one out of the link."""
    return hkdf_sha256(key, repo_id, b"memfs-enc-1/link", KEY_LEN)


def __getattr__(name: str) -> Any:
    """``Keyring`` and ``Slot``, the pydantic models of keys.json, loaded on first use
    (memfs.crypto.keymodels): a push with its keys cached parses no keys.json, and pydantic
    costs ~0.1 s of a process."""
    if name in ("Keyring", "Slot"):
        from memfs.crypto import keymodels

        return getattr(keymodels, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def kid(key: bytes, repo_id: bytes) -> str:
    """The key id of an epoch key: 8 bytes of HKDF, hex; names a key without revealing it."""
    return hkdf_sha256(key, repo_id, b"memfs-enc-1/kid", 8).hex()


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode()


def unb64(url: str, what: str, text: str | None) -> bytes:
    """Decoded base64 from keys.json; TamperError naming ``what`` if it is not."""
    import base64  # only where keys.json is read: ~0.3 ms a command with cached keys spares

    try:
        return base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError):
        raise TamperError(url, what, "is malformed: not base64") from None


def parse_keyring(url: str, data: bytes) -> Keyring:
    """keys.json as read from the store; TamperError if it breaks the format or the limits."""
    if len(data) > MAX_FILE:
        raise TamperError(url, KEYS_OBJECT, f"is {len(data)} bytes, more than {MAX_FILE} allowed")
    try:
        raw = json.loads(data)
    except ValueError:
        raise TamperError(url, KEYS_OBJECT, "is malformed: not JSON") from None
    count = len(raw["slots"]) if isinstance(raw, dict) and isinstance(raw.get("slots"), list) else 0
    if count > MAX_SLOTS:
        raise TamperError(url, KEYS_OBJECT, f"has {count} slots, more than {MAX_SLOTS} allowed")
    from pydantic import ValidationError

    from memfs.crypto.keymodels import Keyring

    try:
        ring = Keyring.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise TamperError(url, KEYS_OBJECT, f"is malformed: {where}: {first['msg']}") from None
    for slot in ring.slots:
        try:
            parse_recipient(slot.recipient)
        except InvalidRecipientError:
            raise TamperError(url, f"keys.json slot {slot.id}", "has no valid recipient") from None
        for field in ("wrapped", "identity"):
            value = getattr(slot, field)
            if value is not None and len(unb64(url, f"keys.json slot {slot.id}", value)) > (
                MAX_WRAPPED
            ):
                raise TamperError(url, f"keys.json slot {slot.id}", f"has an oversize {field}")
    if len({s.id for s in ring.slots}) != len(ring.slots):
        raise TamperError(url, KEYS_OBJECT, "is malformed: two slots share an id")
    if sum(s.kind == "passphrase" for s in ring.slots) > MAX_PASSPHRASE_SLOTS:
        raise TamperError(
            url, KEYS_OBJECT, f"has more than {MAX_PASSPHRASE_SLOTS} passphrase slots allowed"
        )
    return ring


def stored_repo_id(storage: Storage) -> bytes | None:
    """The repo id of the agent in ``storage``: memfs.json's ``encryption.repo_id`` (an
    encrypted agent), else keys.json's ``repo_id`` (a plain agent with secrets), else None."""
    for key, path in ((IDENTITY_OBJECT, ("encryption", "repo_id")), (KEYS_OBJECT, ("repo_id",))):
        got = storage.get(key)
        repo_id = None if got is None else repo_id_in(storage, key, got[0], path)
        if repo_id is not None:
            return repo_id
    return None


def repo_id_in(storage: Storage, key: str, data: bytes, path: tuple[str, ...]) -> bytes | None:
    """The repo id at ``path`` in object ``key``'s JSON ``data``, None if it holds none;
    RemoteCorruptError if it holds one that is not a repo id."""
    try:
        value: object = json.loads(data)
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return None
        repo_id = bytes.fromhex(str(value))
    except ValueError as error:
        raise RemoteCorruptError(storage.url, f"{key} has no valid repo id") from error
    if len(repo_id) != REPO_ID_BYTES:
        raise RemoteCorruptError(storage.url, f"{key} has no valid repo id")
    return repo_id


def check_ring(url: str, ring: Keyring, repo_id: bytes) -> None:
    """TamperError unless ``ring`` is the keyring of agent ``repo_id``."""
    if ring.repo_id != repo_id.hex():
        raise TamperError(url, KEYS_OBJECT, f"belongs to another agent (repo id {ring.repo_id})")


def read_keyring(storage: Storage, repo_id: bytes) -> tuple[Keyring, str]:
    """keys.json of the agent and its etag (not yet opened); TamperError if absent or bad."""
    got = storage.get(KEYS_OBJECT)
    if got is None:
        raise TamperError(storage.url, KEYS_OBJECT, "is missing from the store")
    ring = parse_keyring(storage.url, got[0])
    check_ring(storage.url, ring, repo_id)
    return ring, got[1]


def open_ring(
    url: str, ring: Keyring, repo_id: bytes, identity: Identity, held: dict[int, bytes]
) -> dict[int, bytes]:
    """Every epoch key ``ring`` gives ``identity``, checked against the keys ``held``."""
    check_ring(url, ring, repo_id)
    n = ring.epoch
    if held and max(held) > n:
        raise RollbackError(
            url, f"keys.json is at epoch {n}, older than epoch {max(held)} this machine holds"
        )
    slot = ring.slot_of(identity.recipient)
    if slot is None:
        raise NoKeyError(url, identity.recipient, epoch=n if held else None)
    key = identity.unwrap(unb64(url, f"keys.json slot {slot.id}", slot.wrapped))
    if key is None or len(key) != KEY_LEN:
        raise TamperError(url, f"keys.json slot {slot.id}")
    if kid(key, repo_id) != ring.kid:
        raise TamperError(url, f"keys.json slot {slot.id}", "holds a key that is not the kid's")
    if n in held and held[n] != key:
        raise ForkError(url, f"keys.json's epoch {n} key is not the one this machine holds")
    if n == 1:
        if ring.history is not None or ring.link is not None:
            raise TamperError(url, KEYS_OBJECT, "is malformed: epoch 1 with a history or link")
        return {1: key}
    older = _open_history(url, ring, repo_id, key)
    for epoch, value in held.items():
        if epoch < n and older[epoch] != value:
            raise ForkError(url, f"keys.json's history differs from epoch {epoch} held here")
    link = unb64(url, link_name(n), ring.link)
    try:
        if peek(link) != (Role.LINK, n - 1):
            raise TamperError("", link_name(n), f"is not sealed by epoch {n - 1}")
        linked = open_sealed(held.get(n - 1, older[n - 1]), repo_id, link_name(n), Role.LINK, link)
    except TamperError as error:
        if n - 1 in held:
            raise ForkError(
                url, f"the rotation to epoch {n} is not sealed by epoch {n - 1}"
            ) from None
        raise TamperError(url, link_name(n), error.why) from None
    if linked != commitment(key, repo_id):
        raise ForkError(url, f"the rotation to epoch {n} links another key")
    return {**older, n: key}


def _open_history(url: str, ring: Keyring, repo_id: bytes, key: bytes) -> dict[int, bytes]:
    """K1..K[n-1], sealed under K[n]; TamperError unless exactly those, 32 bytes each."""
    blob = unb64(url, HISTORY_NAME, ring.history)
    try:
        if peek(blob) != (Role.HISTORY, ring.epoch):
            raise TamperError("", HISTORY_NAME, f"is not sealed by epoch {ring.epoch}")
        plain = open_sealed(key, repo_id, HISTORY_NAME, Role.HISTORY, blob)
    except TamperError as error:
        raise TamperError(url, HISTORY_NAME, error.why) from None
    import base64

    try:
        older = {int(e): base64.b64decode(k, validate=True) for e, k in json.loads(plain).items()}
    except (ValueError, AttributeError, TypeError, binascii.Error):
        older = {}
    if set(older) != set(range(1, ring.epoch)) or any(len(k) != KEY_LEN for k in older.values()):
        raise TamperError(url, HISTORY_NAME, "is malformed: not the keys of every older epoch")
    return older
