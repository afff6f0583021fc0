"""memfs.digests gives what hashlib and hmac give, with OpenSSL loaded or not: CPython's own
SHA-1 and SHA-256 below its size threshold, hashlib's above, and RFC 2104's HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from memfs import digests

from .harness import fresh_python


@given(data=st.binary(max_size=300), size=st.sampled_from([0, 10, digests.SMALL]))
def test_the_hashes_are_hashlibs(data: bytes, size: int) -> None:
    assert digests.sha1_for(size)(data).digest() == hashlib.sha1(data).digest()
    assert digests.sha256_for(size)(data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert digests.sha256_hex(data) == hashlib.sha256(data).hexdigest()


@given(key=st.binary(max_size=200), message=st.binary(max_size=300))
def test_the_hmac_is_the_hmac_modules(key: bytes, message: bytes) -> None:
    assert digests.hmac_sha256(key, message) == hmac.digest(key, message, "sha256")


def test_rfc_4231_case_2() -> None:
    """HMAC-SHA256 test case 2 of RFC 4231 (a key shorter than the block)."""
    mac = digests.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert mac.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_small_inputs_load_no_openssl_and_hash_alike() -> None:
    """Without OpenSSL loaded (a fresh interpreter), CPython's own hashes answer the same."""
    key, message, long_key = b"k" * 20, b"m" * 1000, b"L" * 100
    probe = (
        "import sys\n"
        "from memfs import digests\n"
        f"print(digests.sha1_for(10)({message!r}).hexdigest(), digests.sha256_hex({message!r}),\n"
        f"      digests.hmac_sha256({key!r}, {message!r}).hex(),\n"
        f"      digests.hmac_sha256({long_key!r}, {message!r}).hex(),\n"
        "      '_hashlib' in sys.modules, 'hashlib' in sys.modules)\n"
    )
    assert fresh_python(probe).split() == [
        hashlib.sha1(message).hexdigest(),
        hashlib.sha256(message).hexdigest(),
        hmac.digest(key, message, "sha256").hex(),
        hmac.digest(long_key, message, "sha256").hex(),
        "False",
        "False",
    ]
