"""The test-only cheap age scrypt (tests/fastscrypt/): its files are real age files that
pyrage, the reader memfs uses, opens with the right passphrase and refuses with a wrong one,
and the child-process hook really makes pyrage write them."""

from __future__ import annotations

import os
from pathlib import Path

import pyrage
import pytest

from .fastscrypt import agescrypt
from .harness import fresh_python

FAST = Path(__file__).resolve().parent / "fastscrypt"


@pytest.mark.parametrize("size", [0, 5, 64 * 1024, 64 * 1024 + 1, 200_000])
def test_pyrage_opens_what_agescrypt_writes(size: int) -> None:
    data = os.urandom(size)
    sealed = agescrypt.encrypt(data, "correct horse")
    assert sealed.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert sealed.split(b"\n")[1].endswith(b" %d" % agescrypt.FAST_LOG_N)
    assert pyrage.passphrase.decrypt(sealed, "correct horse") == data
    with pytest.raises(pyrage.DecryptError):
        pyrage.passphrase.decrypt(sealed, "wrong horse")


def test_the_child_hook_makes_pyrage_write_the_cheap_work_factor() -> None:
    code = "import pyrage; print(pyrage.passphrase.encrypt(b'x', 'pw').split(b'\\n')[1].decode())"
    env = dict(os.environ, PYTHONPATH=str(FAST))
    stanza = fresh_python(code, env=env)
    assert stanza.startswith("-> scrypt ") and stanza.endswith(f" {agescrypt.FAST_LOG_N}")
