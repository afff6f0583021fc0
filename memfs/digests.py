"""SHA-1, SHA-256 and HMAC-SHA256 without loading OpenSSL for small inputs.

``import hashlib`` (and ``import hmac``, which imports it) loads OpenSSL's libcrypto: ~2-3 ms
of every command, more on a busy machine, while a one-file commit, push or pull hashes a few
kilobytes (object ids, its pack's checksum, SigV4's payload and request hashes and its key
derivation). CPython's own SHA-1 and SHA-256 (``_sha1``, ``_sha256``; ``_sha2`` from 3.12)
load in ~0.1 ms and are slower per byte, so they serve inputs below ``SMALL`` while OpenSSL is
not loaded, and hashlib everything else, as ``memfs.parsecache`` does for its SHA-1. The HMAC
is RFC 2104 over that SHA-256, as the ``hmac`` module computes it (tests/test_digests.py holds
the two equal); it signs requests, it protects no secret at rest.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Hasher = Callable[[bytes], Any]

SMALL = 128 * 1024  # bytes: below, CPython's own hash is done before OpenSSL would be loaded
BLOCK = 64  # SHA-256's block size, HMAC's key length
_IPAD = bytes(x ^ 0x36 for x in range(256))  # as the hmac module pads the key
_OPAD = bytes(x ^ 0x5C for x in range(256))


def sha1_for(size: int) -> Hasher:
    """SHA-1's constructor (``hashlib.sha1``'s interface) for hashing about ``size`` bytes."""
    if size < SMALL and "_hashlib" not in sys.modules:
        try:
            from _sha1 import sha1
        except ImportError:  # a Python built without its own hashes
            pass
        else:
            return sha1  # type: ignore[no-any-return]
    import hashlib

    return hashlib.sha1


def sha256_for(size: int) -> Hasher:
    """SHA-256's constructor (``hashlib.sha256``'s interface) for hashing about ``size``
    bytes."""
    if size < SMALL and "_hashlib" not in sys.modules:
        try:
            from _sha256 import sha256  # CPython 3.11
        except ImportError:
            try:
                from _sha2 import sha256  # CPython 3.12 and later
            except ImportError:  # a Python built without its own hashes
                pass
            else:
                return sha256  # type: ignore[no-any-return]
        else:
            return sha256  # type: ignore[no-any-return]
    import hashlib

    return hashlib.sha256


def sha256_hex(data: bytes) -> str:
    return sha256_for(len(data))(data).hexdigest()  # type: ignore[no-any-return]


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``key`` (RFC 2104), as ``hmac.digest`` gives it."""
    sha256 = sha256_for(len(key) + len(message) + 2 * BLOCK)
    if len(key) > BLOCK:
        key = sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    inner = sha256(key.translate(_IPAD))
    inner.update(message)
    outer = sha256(key.translate(_OPAD))
    outer.update(inner.digest())
    return outer.digest()  # type: ignore[no-any-return]
