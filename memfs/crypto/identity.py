"""This machine's age X25519 identity: the private key every keyring slot of it is wrapped to.

One per machine (config folder), shared by all its checkouts: ``<config dir>/identity``, the
folder of the user config file (``~/.config/memfs``, or beside ``MEMFS_CONFIG``, so two test
"machines" have two). The file is in age-keygen's format (``# comments`` and one
``AGE-SECRET-KEY-1…`` line), so stock ``age -d -i <file>`` opens a slot for disaster recovery.

Like ssh with its keys, memfs refuses an identity file that group or others can read or write
(``chmod 600``), one it does not own, a symlink, or one in a folder others can write to. It is
created whole or not at all: written to a private temp file, fsync'd, then hard-linked to its
name, which fails if another process created it meanwhile (that one is then used).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from memfs.crypto.keycache import (  # the private-file rules, kept beside the key cache
    IdentityError,
    check_private_file,
    config_dir,
    private_folder,
)
from memfs.errors import KeyringError
from memfs.util import fsync_dir, utc_now

TYPE_CHECKING = False
if TYPE_CHECKING:
    import pyrage

IDENTITY_FILE = "identity"
MAX_FILE = 4096
SECRET_PREFIX = "AGE-SECRET-KEY-1"


class InvalidRecipientError(KeyringError):
    """A recipient string that is not an age X25519 recipient (``age1…``): bad usage."""

    exit_code = 2

    def __init__(self, text: str) -> None:
        if text.strip().upper().startswith("AGE-SECRET-KEY-"):  # never echo a private key
            what = "that is a private key (AGE-SECRET-KEY-…), keep it secret: a recipient"
        else:
            shown = text if len(text) <= 80 else text[:77] + "..."
            what = f"{shown!r} is not an age recipient: one"
        super().__init__("", f"{what} is the age1… that 'memfs key id' prints")


class Identity:
    """An age X25519 identity: the machine's own, or a recovery one opened by passphrase.

    Its recipient (the public key) is computed by pyrage on first use: a command that finds
    its keys in the key cache loads nothing of age (tests/test_imports.py). The secret is
    checked when the identity is made (its bech32 checksum and length), so a garbled file is
    refused at load as before.
    """

    __slots__ = ("_recipient", "path", "secret")

    def __init__(self, secret: str, recipient: str | None = None, path: Path | None = None) -> None:
        self.secret = secret
        self.path = path
        self._recipient = recipient

    def __repr__(self) -> str:
        return f"Identity(recipient={self.recipient!r}, path={self.path!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return (self.secret, self.path) == (other.secret, other.path)

    def __hash__(self) -> int:
        return hash((self.secret, self.path))

    @property
    def recipient(self) -> str:
        """The ``age1…`` recipient of this identity (derived with pyrage, once)."""
        if self._recipient is None:
            self._recipient = str(self.age().to_public())
        return self._recipient

    @classmethod
    def generate(cls) -> Identity:
        """A fresh identity held in memory only."""
        from pyrage import x25519

        age = x25519.Identity.generate()
        return cls(secret=str(age), recipient=str(age.to_public()))

    @classmethod
    def from_secret(cls, secret: str, path: Path | None = None) -> Identity:
        """The identity of an ``AGE-SECRET-KEY-1…`` string; IdentityError if it is not one."""
        if not is_secret_key(secret.strip()):
            raise IdentityError(path or Path("<identity>"), "not an age X25519 identity")
        return cls(secret=secret.strip(), path=path)

    @property
    def config_dir(self) -> Path | None:
        """The folder this identity's file is in (its machine's config folder), if any."""
        return self.path.parent if self.path else None

    def age(self) -> pyrage.x25519.Identity:
        """The pyrage object, for ``pyrage.decrypt``."""
        from pyrage import x25519

        return x25519.Identity.from_str(self.secret)

    def unwrap(self, wrapped: bytes) -> bytes | None:
        """The payload of an age file addressed to this identity, None if it is not (or is
        damaged: age authenticates its header and payload)."""
        import pyrage

        try:
            return pyrage.decrypt(wrapped, [self.age()])
        except pyrage.DecryptError:
            return None


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_SECRET_HRP = "age-secret-key-"


def _polymod(values: list[int]) -> int:
    """BIP 173's bech32 checksum function (what age's key strings use)."""
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            check ^= gen if (top >> i) & 1 else 0
    return check


def is_secret_key(text: str) -> bool:
    """Whether ``text`` is an age X25519 secret key: bech32 (one case), prefix
    ``AGE-SECRET-KEY-1``, valid checksum, 32 bytes. Any 32 bytes are an X25519 scalar, so this
    accepts what pyrage's ``Identity.from_str`` accepts (tested), without loading pyrage."""
    if text not in (text.upper(), text.lower()):
        return False
    hrp, sep, data = text.lower().rpartition("1")
    if hrp != _SECRET_HRP or not sep or len(data) != 58 or not set(data) <= set(_BECH32):
        return False
    values = [_BECH32.index(c) for c in data]
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    return _polymod(expanded + values) == 1  # 52 characters of key (32 bytes), 6 of checksum


def parse_recipient(text: str) -> str:
    """``text`` as a canonical age X25519 recipient; InvalidRecipientError if it is not one."""
    import pyrage

    try:
        return str(pyrage.x25519.Recipient.from_str(text.strip()))
    except pyrage.RecipientError:
        raise InvalidRecipientError(text) from None


def wrap(payload: bytes, recipient: str) -> bytes:
    """``payload`` as an age file (binary) to one X25519 recipient: what a keyring slot holds."""
    import pyrage

    return pyrage.encrypt(payload, [pyrage.x25519.Recipient.from_str(recipient)])


def identity_path(folder: Path | None = None) -> Path:
    """Where the machine identity lives (in ``folder``, default the config folder)."""
    return (folder or config_dir()) / IDENTITY_FILE


def load_identity(folder: Path | None = None) -> Identity | None:
    """This machine's identity, None if it has none yet; IdentityError if unsafe or garbled."""
    path = identity_path(folder)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as error:
        if path.is_symlink():
            raise IdentityError(path, "it is a symlink") from None
        raise IdentityError(path, error.strerror or str(error)) from None
    with os.fdopen(fd, "rb") as handle:
        check_private_file(path, os.fstat(handle.fileno()))
        data = handle.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise IdentityError(path, f"more than {MAX_FILE} bytes: not an identity file")
    keys = [
        line.strip()
        for line in data.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if len(keys) != 1 or not keys[0].startswith(SECRET_PREFIX):
        raise IdentityError(path, "it must hold exactly one AGE-SECRET-KEY-1… line")
    return Identity.from_secret(keys[0], path=path)


def ensure_identity(folder: Path | None = None) -> Identity:
    """This machine's identity, created (0600, in a 0700 folder) if it has none."""
    existing = load_identity(folder)
    if existing is not None:
        return existing
    path = identity_path(folder)
    private_folder(path.parent)
    fresh = Identity.generate()
    text = (
        "# memfs machine identity (age-keygen format): keep it secret, keep it 0600\n"
        f"# created: {utc_now().isoformat().replace('+00:00', 'Z')}\n"
        f"# public key: {fresh.recipient}\n"
        f"{fresh.secret}\n"
    )
    temp = path.with_name(f".{IDENTITY_FILE}-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode())
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made one: use it
            os.link(temp, path)
    finally:
        os.unlink(temp)
    fsync_dir(path.parent)
    loaded = load_identity(folder)
    assert loaded is not None  # just linked, or linked by the process that won
    return loaded
