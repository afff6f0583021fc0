"""On PYTHONPATH of a test's child process only: pyrage writes passphrase files at
agescrypt.FAST_LOG_N instead of its timed ~1 s work factor (why: agescrypt.py). Nothing in
memfs changes; its reader opens the file as it opens any age file."""

import pyrage
from agescrypt import encrypt


def _fast_encrypt(plaintext: bytes, passphrase: str, armored: bool = False) -> bytes:
    assert not armored, "memfs stores the binary form"
    return encrypt(plaintext, passphrase)


pyrage.passphrase.encrypt = _fast_encrypt
