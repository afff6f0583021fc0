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

``cryptography`` is imported on the first seal or open, not with this module: ``Role``,
``peek`` and ``HEADER_LEN`` cost nothing to import.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from memfs.errors import NoKeyError, TamperError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

MAGIC = b"MFE1"
HEADER_LEN = 25
TAG_LEN = 16
OVERHEAD = HEADER_LEN + TAG_LEN
KEY_LEN = 32
NONCE_LEN = 16
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


_NAMES: list[tuple[re.Pattern[str], Role]] = [
    (re.compile(r"manifest\.json"), Role.MANIFEST),
    (re.compile(r"packs/pack-[0-9a-f]{40}(?:[0-9a-f]{24})?\.pack"), Role.PACK),
    (re.compile(r"manifest\.json#secrets"), Role.SECRETS),
    (re.compile(r"envs/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.json"), Role.PRESENCE),
    (re.compile(r"keys\.json#history"), Role.HISTORY),
    (re.compile(r"keys\.json#link/[1-9][0-9]{0,9}"), Role.LINK),
]


def role_for_name(name: str) -> Role | None:
    """The role the logical ``name`` implies, None for a name no sealed object has."""
    for pattern, role in _NAMES:
        if pattern.fullmatch(name):
            return role
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


def subkey(key: bytes, nonce: bytes, role: Role) -> bytes:
    """The one-message key of an object: HKDF-SHA256 of the epoch key, salted by its nonce."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = INFO_PREFIX + role.name.lower().encode()
    return HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=nonce, info=info).derive(key)


def _aead(key: bytes, nonce: bytes, role: Role) -> ChaCha20Poly1305:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    return ChaCha20Poly1305(subkey(key, nonce, role))


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
    header = _HEADER.pack(MAGIC, int(role), epoch, nonce)
    sealed = _aead(key, nonce, role).encrypt(
        b"\0" * 12, plaintext, _associated(header, repo_id, name)
    )
    return header + sealed


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
    from cryptography.exceptions import InvalidTag

    header, nonce = blob[:HEADER_LEN], blob[9:HEADER_LEN]
    try:
        return _aead(key, nonce, role).decrypt(
            b"\0" * 12, memoryview(blob)[HEADER_LEN:], _associated(header, repo_id, name)
        )
    except InvalidTag:
        raise TamperError("", name) from None


class Keys(Protocol):
    """The epoch keys of one encrypted agent, as a sealing layer needs them."""

    repo_id: bytes

    def current(self) -> tuple[int, bytes]:
        """The newest epoch this machine knows and its key: what new objects are sealed under."""
        ...

    def key(self, epoch: int) -> bytes:
        """The key of ``epoch`` (may read keys.json from the store); NoKeyError if not held."""
        ...


@dataclass
class StaticKeys:
    """Fixed keys for tests and benchmarks: epoch -> key, no keyring, no store."""

    repo_id: bytes = b"\x11" * REPO_ID_LEN
    epochs: dict[int, bytes] = field(default_factory=lambda: {1: b"\x22" * KEY_LEN})
    url: str = "static-keys"

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
