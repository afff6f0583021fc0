"""ChaCha20-Poly1305 (RFC 8439, the IETF variant: 32-byte key, 12-byte nonce, 16-byte tag), the
AEAD every sealed object uses (``memfs.crypto.envelope``), from libsodium through PyNaCl.

Why libsodium and not ``cryptography``: the construction is the same, byte for byte (the
tests hold the two to each other and to the envelope's known-answer vectors), but loading
cryptography's compiled binding and OpenSSL's first cipher fetch cost every encrypted command
~4.5 ms, while PyNaCl's compiled module loads in ~1 ms (measured whole-process, see
benchmarks/bench_crypto.py). ``nacl.bindings``, PyNaCl's public face, imports ~40 modules
(~13 ms): the two libsodium functions are called through the compiled module it wraps, with the
same buffers and checks as PyNaCl's own ``crypto_aead_chacha20poly1305_ietf_*`` wrappers; a
PyNaCl that moved its module falls back to those public wrappers.
"""

from __future__ import annotations

KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Buffer = bytes | bytearray | memoryview

_BOUND: list[tuple[Callable[..., bytes], Callable[..., bytes | None]]] = []


def load() -> None:
    """Load libsodium now (~1 ms, once per process); sealing and opening load it when needed."""
    _functions()


def encrypt(
    key: bytes, nonce: bytes, plaintext: Buffer, associated: bytes, prefix: bytes = b""
) -> bytes:
    """``plaintext`` encrypted and authenticated with ``associated``: ``prefix`` || ciphertext
    || tag (a sealed object's header goes in front without copying a pack once more)."""
    _check(key, nonce)
    return _functions()[0](key, nonce, plaintext, associated, prefix)


def decrypt(key: bytes, nonce: bytes, sealed: Buffer, associated: bytes) -> bytes | None:
    """The plaintext of ``sealed`` (ciphertext || tag), or None if it does not authenticate
    under ``key``, ``nonce`` and ``associated``."""
    _check(key, nonce)
    if len(sealed) < TAG_LEN:
        return None
    return _functions()[1](key, nonce, sealed, associated)


def _check(key: bytes, nonce: bytes) -> None:
    if len(key) != KEY_LEN:
        raise ValueError(f"a ChaCha20-Poly1305 key is {KEY_LEN} bytes, not {len(key)}")
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"a ChaCha20-Poly1305 nonce is {NONCE_LEN} bytes, not {len(nonce)}")


def _functions() -> tuple[Callable[..., bytes], Callable[..., bytes | None]]:
    if not _BOUND:
        try:
            _BOUND.append(_compiled())
        except (ImportError, AttributeError):  # a PyNaCl that moved its compiled module
            _BOUND.append(_public())
    return _BOUND[0]


def _compiled() -> tuple[Callable[..., bytes], Callable[..., bytes | None]]:
    """The two functions over ``nacl._sodium`` (PyNaCl's cffi module of libsodium)."""
    from nacl._sodium import ffi, lib

    # as nacl.bindings.sodium_core.sodium_init: 0 = done now, 1 = already, -1 = failed
    if lib.sodium_init() == -1:
        raise RuntimeError("libsodium could not be initialised")
    seal_c = lib.crypto_aead_chacha20poly1305_ietf_encrypt
    open_c = lib.crypto_aead_chacha20poly1305_ietf_decrypt
    null = ffi.NULL
    # every byte of an output buffer is written before it is read: no memset of a whole pack
    buffer = ffi.new_allocator(should_clear_after_alloc=False)

    def encrypt_c(
        key: bytes, nonce: bytes, plaintext: Buffer, associated: bytes, prefix: bytes
    ) -> bytes:
        size, start = len(plaintext), len(prefix)
        out = buffer("unsigned char[]", start + size + TAG_LEN)
        out[0:start] = prefix
        written = ffi.new("unsigned long long *")
        data = ffi.from_buffer(plaintext)
        if seal_c(out + start, written, data, size, associated, len(associated), null, nonce, key):
            raise RuntimeError("libsodium could not encrypt")  # it never fails for these sizes
        return ffi.buffer(out, start + written[0])[:]

    def decrypt_c(key: bytes, nonce: bytes, sealed: Buffer, associated: bytes) -> bytes | None:
        size = len(sealed)
        out = buffer("unsigned char[]", max(size - TAG_LEN, 1))
        written = ffi.new("unsigned long long *")
        data = ffi.from_buffer(sealed)
        if open_c(out, written, null, data, size, associated, len(associated), nonce, key):
            return None  # -1: forged, damaged, or another key / nonce / associated data
        return ffi.buffer(out, written[0])[:]

    return encrypt_c, decrypt_c


def _public() -> tuple[Callable[..., bytes], Callable[..., bytes | None]]:
    """The same two functions through ``nacl.bindings`` (slower to import, same bytes)."""
    from nacl.bindings import (
        crypto_aead_chacha20poly1305_ietf_decrypt as open_public,
    )
    from nacl.bindings import (
        crypto_aead_chacha20poly1305_ietf_encrypt as seal_public,
    )
    from nacl.exceptions import CryptoError

    def encrypt_p(
        key: bytes, nonce: bytes, plaintext: Buffer, associated: bytes, prefix: bytes
    ) -> bytes:
        return prefix + seal_public(bytes(plaintext), associated, nonce, key)  # type: ignore[no-any-return]

    def decrypt_p(key: bytes, nonce: bytes, sealed: Buffer, associated: bytes) -> bytes | None:
        try:
            return open_public(bytes(sealed), associated, nonce, key)  # type: ignore[no-any-return]
        except CryptoError:
            return None

    return encrypt_p, decrypt_p
