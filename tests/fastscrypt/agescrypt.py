"""Age passphrase files (C2SP age, the ``scrypt`` stanza) written with a chosen work factor.

Why, in tests only: pyrage (rage's ``age`` crate) picks the scrypt work factor by timing
scrypt on the machine, about one second of CPU per derive (log2 N = 18 or so); a passphrase
slot costs one derive to write and one per passphrase tried, several seconds a test on a
loaded machine. The reader (pyrage's decrypt, memfs's unlock) derives at whatever work
factor the file names and only bounds it from above, so a slot written here at log2 N = 10
is opened by the very same production code in milliseconds. memfs itself has no knob: what
it writes for users is pyrage's file, and tests/test_crypto_keys.py keeps one slot written
and opened at the real cost.

Built from the ``cryptography`` primitives the age spec names (scrypt, ChaCha20-Poly1305,
HKDF-SHA-256, HMAC-SHA-256); every file is checked by pyrage in tests/test_fastscrypt.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FAST_LOG_N = 10
CHUNK = 64 * 1024
SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def encrypt(plaintext: bytes, passphrase: str, log_n: int = FAST_LOG_N) -> bytes:
    """``plaintext`` as a binary age file for ``passphrase`` (what pyrage.passphrase.encrypt
    returns), its scrypt work factor ``2**log_n``."""
    file_key, salt, nonce = os.urandom(16), os.urandom(16), os.urandom(16)
    wrap_key = Scrypt(salt=SCRYPT_LABEL + salt, length=32, n=2**log_n, r=8, p=1).derive(
        passphrase.encode()
    )
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)  # 32 bytes: one line
    header = b"age-encryption.org/v1\n-> scrypt %s %d\n%s\n---" % (_b64(salt), log_n, _b64(body))
    mac = hmac.new(_hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest()
    stream = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    chunks = [plaintext[at : at + CHUNK] for at in range(0, len(plaintext), CHUNK)] or [b""]
    sealed = b"".join(
        stream.encrypt(
            counter.to_bytes(11, "big") + (b"\x01" if counter == len(chunks) - 1 else b"\x00"),
            chunk,
            None,
        )
        for counter, chunk in enumerate(chunks)
    )
    return header + b" " + _b64(mac) + b"\n" + nonce + sealed
