"""The envelope every sealed object in an encrypted store has (docs/design-encryption.md §3).

```
off len field
0   4   magic  b"MFE1"
4   1   role   1 manifest | 2 pack | 3 secrets | 4 presence | 5 key-history | 6 epoch-link
5   4   epoch  uint32 big-endian, >= 1 (which key sealed it)
9   16  nonce  os.urandom(16)
25  n   ChaCha20-Poly1305 ciphertext || 16-byte tag                   overhead: 41 bytes
subkey = HKDF-SHA256(ikm=K[epoch], salt=nonce, info=b"memfs-enc-1/" + role name, length=32)
AEAD nonce = 12 zero bytes (each subkey seals one message, as age's payload key)
AD     = header[0:25] || repo_id (16 bytes) || utf-8 logical name
```
Role names in ``info`` are the lowercase ``Role`` names (``b"memfs-enc-1/pack"``). Logical
names say what an object is, whatever key the store holds it under: ``manifest.json``,
``packs/pack-<hex>.pack``, ``envs/<id>.json``, ``manifest.json#secrets``,
``keys.json#history``, ``keys.json#link/<epoch>``; the role a name implies must be the
header's. So a flipped byte anywhere, a pack copied under another name, an object of another
agent (``repo_id``) or of another role, a header epoch changed: all fail ``open_sealed`` with
TamperError. Malformed headers are refused before any cryptography runs.

The AEAD (``memfs.crypto.aead``: libsodium's ChaCha20-Poly1305 through PyNaCl) is loaded on
the first seal or open, not with this module: ``Role``, ``peek`` and ``HEADER_LEN`` cost
nothing to import. HKDF (RFC 5869) is two HMAC-SHA256 calls (``memfs.digests``: RFC 2104 over
CPython's own SHA-256, as the ``hmac`` module computes it, so ``import hmac`` does not load
OpenSSL's libcrypto: ~2 ms), proven against RFC 5869's test vectors and cryptography's HKDF
(tests/test_crypto_envelope.py) and against ``hmac`` (tests/test_digests.py).
"""

from __future__ import annotations

import os
import struct
from enum import IntEnum

from memfs.errors import NoKeyError, TamperError

TYPE_CHECKING = False  # typing costs an encrypted command ~1.5 ms: used for types only
if TYPE_CHECKING:
    from typing import Protocol

MAGIC = b"MFE1"
HEADER_LEN = 25
TAG_LEN = 16
OVERHEAD = HEADER_LEN + TAG_LEN
KEY_LEN = 32
NONCE_LEN = 16
AEAD_NONCE = bytes(12)  # each subkey seals one message (as age's payload key)
REPO_ID_LEN = 16
MAX_EPOCH = 2**32 - 1
INFO_PREFIX = b"memfs-enc-1/"
_HEADER = struct.Struct(">4sBI16s")


class Role(IntEnum):
    """What a sealed object is; part of the header, the subkey and the associated data."""

    MANIFEST = 1
    PACK = 2
    SECRETS = 3
    PRESENCE = 4
    HISTORY = 5
    LINK = 6


_EXACT = {
    "manifest.json": Role.MANIFEST,
    "manifest.json#secrets": Role.SECRETS,
    "keys.json#history": Role.HISTORY,
}
_HEX = frozenset("0123456789abcdef")
_ENV_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ENV_REST = _ENV_FIRST | frozenset("_.-")
_LINK = "keys.json#link/"


def role_for_name(name: str) -> Role | None:
    """The role the logical ``name`` implies, None for a name no sealed object has.

    ``manifest.json``, ``packs/pack-<40 or 64 lowercase hex>.pack``, ``manifest.json#secrets``,
    ``envs/<[A-Za-z0-9][A-Za-z0-9_.-]{0,99}>.json``, ``keys.json#history``,
    ``keys.json#link/<1-9 then up to 9 digits>``: string checks, not regexes, whose compiling
    would cost every encrypted command ~0.5 ms.
    """
    exact = _EXACT.get(name)
    if exact is not None:
        return exact
    if name.startswith("packs/pack-") and name.endswith(".pack"):
        digest = name[11:-5]
        return Role.PACK if len(digest) in (40, 64) and _HEX.issuperset(digest) else None
    if name.startswith("envs/") and name.endswith(".json"):
        env = name[5:-5]
        ok = 1 <= len(env) <= 100 and env[0] in _ENV_FIRST and _ENV_REST.issuperset(env)
        return Role.PRESENCE if ok else None
    if name.startswith(_LINK):
        epoch = name[len(_LINK) :]
        ok = 1 <= len(epoch) <= 10 and epoch.isascii() and epoch.isdigit() and epoch[0] != "0"
        return Role.LINK if ok else None
    return None


def _check_name(name: str, role: Role) -> None:
    """Refuse sealing or opening under a name that does not imply ``role`` (a caller's bug)."""
    implied = role_for_name(name)
    if implied is not role:
        what = f"the name of a {implied.name.lower()}" if implied else "no sealed object's name"
        raise ValueError(f"{name!r} is {what}, not of a {role.name.lower()}")


def _check_inputs(key: bytes, epoch: int, repo_id: bytes) -> None:
    if len(key) != KEY_LEN:
        raise ValueError(f"an epoch key is {KEY_LEN} bytes, not {len(key)}")
    if not 1 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch {epoch} is outside 1..{MAX_EPOCH}")
    if len(repo_id) != REPO_ID_LEN:
        raise ValueError(f"a repo id is {REPO_ID_LEN} bytes, not {len(repo_id)}")


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract then expand, over HMAC-SHA256 (``memfs.digests``)."""
    if not 0 < length <= 255 * 32:
        raise ValueError(f"HKDF-SHA256 gives 1..{255 * 32} bytes, not {length}")
    from memfs.digests import hmac_sha256

    prk = hmac_sha256(salt or bytes(32), ikm)
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac_sha256(prk, block + info + bytes([counter]))
        okm += block
    return okm[:length]


def subkey(key: bytes, nonce: bytes, role: Role) -> bytes:
    """The one-message key of an object: HKDF-SHA256 of the epoch key, salted by its nonce."""
    return hkdf_sha256(key, nonce, INFO_PREFIX + role.name.lower().encode(), KEY_LEN)


def load_cipher() -> None:
    """Load the AEAD's compiled binding now (~1 ms): an encrypted remote does it as it is
    opened, on the thread that opens it, not on a thread reading beside that one's work."""
    from memfs.crypto import aead

    aead.load()


def _associated(header: bytes, repo_id: bytes, name: str) -> bytes:
    return header + repo_id + name.encode("utf-8")


def seal(key: bytes, epoch: int, role: Role, repo_id: bytes, name: str, plaintext: bytes) -> bytes:
    """``plaintext`` sealed under epoch key ``key``, bound to ``repo_id``, ``role``, ``name``."""
    return seal_with_nonce(key, epoch, role, repo_id, name, plaintext, os.urandom(NONCE_LEN))


def seal_with_nonce(
    key: bytes, epoch: int, role: Role, repo_id: bytes, name: str, plaintext: bytes, nonce: bytes
) -> bytes:
    """``seal`` with a given nonce: for the test vectors only (a nonce must never repeat)."""
    _check_inputs(key, epoch, repo_id)
    _check_name(name, role)
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"a nonce is {NONCE_LEN} bytes, not {len(nonce)}")
    from memfs.crypto import aead

    header = _HEADER.pack(MAGIC, int(role), epoch, nonce)
    associated = _associated(header, repo_id, name)
    return aead.encrypt(subkey(key, nonce, role), AEAD_NONCE, plaintext, associated, header)


def peek(blob: bytes) -> tuple[Role, int]:
    """The role and epoch a sealed object's header claims (not yet authenticated).

    TamperError (naming no object: the caller's ``.at(url)`` adds where) if the header is
    malformed: too short, bad magic, unknown role, epoch 0.
    """
    if len(blob) < OVERHEAD:
        raise TamperError("", "", f"is malformed: {len(blob)} bytes, fewer than {OVERHEAD}")
    magic, role, epoch, _ = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise TamperError("", "", "is malformed: bad magic")
    if role not in Role._value2member_map_:
        raise TamperError("", "", f"is malformed: unknown role {role}")
    if epoch == 0:
        raise TamperError("", "", "is malformed: epoch 0")
    return Role(role), epoch


def open_sealed(key: bytes, repo_id: bytes, name: str, role: Role, blob: bytes) -> bytes:
    """The plaintext of ``blob``, if it was sealed as ``role`` under ``name`` for ``repo_id``
    with ``key`` (the key of the epoch its header names: ``peek`` first); else TamperError."""
    _check_name(name, role)
    try:
        found, epoch = peek(blob)
    except TamperError as error:
        raise TamperError("", name, error.why) from None
    if found is not role:
        raise TamperError(
            "", name, f"is sealed as a {found.name.lower()}, not a {role.name.lower()}"
        )
    _check_inputs(key, epoch, repo_id)
    from memfs.crypto import aead

    header, nonce = blob[:HEADER_LEN], blob[9:HEADER_LEN]
    sealed = memoryview(blob)[HEADER_LEN:]
    opened = aead.decrypt(
        subkey(key, nonce, role), AEAD_NONCE, sealed, _associated(header, repo_id, name)
    )
    if opened is None:
        raise TamperError("", name)
    return opened


if TYPE_CHECKING:  # a Protocol class costs every encrypted command ~0.1 ms to build

    class Keys(Protocol):
        """The epoch keys of one encrypted agent, as a sealing layer needs them."""

        repo_id: bytes

        def current(self) -> tuple[int, bytes]:
            """The newest epoch this machine knows and its key: what new objects are sealed
            under."""
            ...

        def key(self, epoch: int) -> bytes:
            """The key of ``epoch`` (may read keys.json from the store); NoKeyError if not
            held."""
            ...


class StaticKeys:
    """Fixed keys for tests and benchmarks: epoch -> key, no keyring, no store."""

    def __init__(
        self,
        repo_id: bytes = b"\x11" * REPO_ID_LEN,
        epochs: dict[int, bytes] | None = None,
        url: str = "static-keys",
    ) -> None:
        self.repo_id = repo_id
        self.epochs = {1: b"\x22" * KEY_LEN} if epochs is None else epochs
        self.url = url

    def current(self) -> tuple[int, bytes]:
        """The highest epoch held."""
        if not self.epochs:
            raise NoKeyError(self.url)
        epoch = max(self.epochs)
        return epoch, self.epochs[epoch]

    def key(self, epoch: int) -> bytes:
        """The key of ``epoch``; NoKeyError if it is not held."""
        try:
            return self.epochs[epoch]
        except KeyError:
            raise NoKeyError(self.url, epoch=epoch) from None
