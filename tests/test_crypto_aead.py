"""The AEAD under every sealed object (memfs/crypto/aead.py): libsodium's ChaCha20-Poly1305
through PyNaCl gives, byte for byte, what RFC 8439 and cryptography's ChaCha20Poly1305 give, so
stores sealed by either open with the other; anything changed does not authenticate."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from memfs.crypto import aead

from .harness import fresh_python

# RFC 8439 §2.8.2: the AEAD_CHACHA20_POLY1305 test vector
RFC_KEY = bytes(range(0x80, 0xA0))
RFC_NONCE = bytes.fromhex("070000004041424344454647")
RFC_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
RFC_PLAIN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    b"future, sunscreen would be it."
)
RFC_SEALED = bytes.fromhex(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69"
    "da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945"
    "585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
    "1ae10b594f09e26a7e902ecbd0600691"
)


def test_the_rfc_8439_vector() -> None:
    assert aead.encrypt(RFC_KEY, RFC_NONCE, RFC_PLAIN, RFC_AAD) == RFC_SEALED
    assert aead.decrypt(RFC_KEY, RFC_NONCE, RFC_SEALED, RFC_AAD) == RFC_PLAIN


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=12, max_size=12),
    plaintext=st.binary(max_size=3000),
    associated=st.binary(max_size=100),
)
def test_the_same_bytes_as_cryptographys_chacha20poly1305(
    key: bytes, nonce: bytes, plaintext: bytes, associated: bytes
) -> None:
    """Either library opens what the other sealed: stores written before the switch to
    libsodium (with cryptography) open unchanged."""
    theirs = ChaCha20Poly1305(key).encrypt(nonce, plaintext, associated)
    assert aead.encrypt(key, nonce, plaintext, associated) == theirs
    assert aead.decrypt(key, nonce, theirs, associated) == plaintext
    assert aead.decrypt(key, nonce, memoryview(b"xx" + theirs)[2:], associated) == plaintext


def test_anything_changed_does_not_authenticate() -> None:
    key, nonce, associated = bytes(range(32)), bytes(12), b"header"
    sealed = aead.encrypt(key, nonce, b"memory", associated)
    for at in range(len(sealed)):
        flipped = bytearray(sealed)
        flipped[at] ^= 0x01
        assert aead.decrypt(key, nonce, bytes(flipped), associated) is None
    assert aead.decrypt(bytes(32), nonce, sealed, associated) is None
    assert aead.decrypt(key, b"\1" + bytes(11), sealed, associated) is None
    assert aead.decrypt(key, nonce, sealed, b"other") is None
    assert aead.decrypt(key, nonce, sealed[:-1], associated) is None
    assert aead.decrypt(key, nonce, sealed[:15], associated) is None
    assert aead.decrypt(key, nonce, b"", associated) is None


def test_empty_plaintext_and_associated_data() -> None:
    key, nonce = bytes(range(32)), bytes(12)
    sealed = aead.encrypt(key, nonce, b"", b"")
    assert sealed == ChaCha20Poly1305(key).encrypt(nonce, b"", b"")
    assert aead.decrypt(key, nonce, sealed, b"") == b""


def test_wrong_key_or_nonce_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="key is 32 bytes"):
        aead.encrypt(bytes(31), bytes(12), b"x", b"")
    with pytest.raises(ValueError, match="nonce is 12 bytes"):
        aead.decrypt(bytes(32), bytes(16), bytes(20), b"")


def test_pynacls_public_wrappers_give_the_same_bytes() -> None:
    """The fallback for a PyNaCl that moved its compiled module: same bytes, same refusals."""
    compiled, public = aead._compiled(), aead._public()
    key, nonce = bytes(range(32)), bytes(range(12))
    sealed = compiled[0](key, nonce, b"memory", b"ad", b"")
    assert public[0](key, nonce, b"memory", b"ad", b"") == sealed
    assert public[0](key, nonce, b"memory", b"ad", b"hdr") == b"hdr" + sealed
    assert public[1](key, nonce, sealed, b"ad") == b"memory"
    assert public[1](key, nonce, sealed, b"other") is None


def test_sealing_loads_neither_cryptography_nor_nacl_bindings() -> None:
    """PyNaCl's compiled module only: its public package costs ~13 ms, cryptography ~4.5 ms."""
    loaded = fresh_python(
        "import sys\n"
        "from memfs.crypto import aead\n"
        "aead.encrypt(bytes(32), bytes(12), b'x', b'')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('cryptography', 'nacl'))))\n"
    )
    assert loaded.strip() == "['nacl', 'nacl._sodium']"


def test_a_prefix_goes_in_front_of_the_ciphertext() -> None:
    key, nonce = bytes(range(32)), bytes(12)
    sealed = aead.encrypt(key, nonce, b"pack", b"ad")
    assert aead.encrypt(key, nonce, b"pack", b"ad", b"MFE1 header") == b"MFE1 header" + sealed
