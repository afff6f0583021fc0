"""This machine's copy of an encrypted agent's epoch keys, and what it has seen of its remotes.

``<config dir>/keys/<repo_id hex>.json``, 0600 in a 0700 folder:
``{"epochs": {"3": "<b64 key>"}, "kids": {"3": "9a41…"}, "seen": {"<remote url>":
{"generation": 57, "digest": "<sha256 hex>", "epoch": 3, "at": "…", "secrets_generation": 12}}}``.

Keys are cached so a normal push or fetch reads no keyring: keys.json is read only for an epoch
not held here. Epoch keys are only ever added, never replaced (a different key for a held epoch
is a fork, which the keyring refuses before it gets here), so a machine removed from an agent
keeps opening what was sealed while it was a member, and only that. A key is held only while it
is the one its kid names (``kid = HKDF(K, repo_id)[:8]``, checked at every read, ~6 us a key):
one damaged on disk (a bad restore, a half-written copy) is not held, so the keyring is opened
for its epoch as if it were not cached, and its key written over the damaged one; a damaged
cache never seals a push and is never taken for a tampered store. ``seen`` is the last
manifest state accepted per remote, what the rollback guard compares a fetched manifest with;
``update_seen`` runs its check and the write under one lock, so two processes of this machine
cannot both accept and then overwrite each other's newer state.

Writes are read-modify-write under an ``flock`` on a sidecar ``.lock`` file, replacing the file
atomically (temp, fsync, rename); reads need no lock. A key this process made itself and
wrapped into keys.json already (an encrypted first push's) may be ``hold``-ed instead of
added: it joins the file with this process's next write (the first push's rollback record),
one write and two fsyncs fewer; lost in a crash before that, it is read from keys.json again.

The rules of this machine's private files (the identity file and these: 0600, in a 0700
folder, ours, no symlink) are here, where the commonest command needs them: a push or pull
with its keys cached loads nothing of ``identity`` (age's side).
"""

from __future__ import annotations

import binascii
import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from memfs.errors import EncryptionError
from memfs.util import atomic_write

TYPE_CHECKING = False  # typing (~1.5 ms of an encrypted command) for types only
if TYPE_CHECKING:
    from typing import Any

MAX_FILE = 1 << 20
KEY_LEN = 32
KID_INFO = b"memfs-enc-1/kid"  # keyfile.kid's, without importing keyfile (identity, age)
# (repo id, b64 key, kid) found to agree in this process: each is checked once
_AGREED: set[tuple[bytes, str, str]] = set()
# epoch -> (key, kid) per cache file, held by this process until its next write of the file
_HELD: dict[Path, dict[str, tuple[str, str]]] = {}


class IdentityError(EncryptionError):
    """A private file of this machine (its identity, a key cache) cannot be used safely (mode,
    owner, content)."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        super().__init__("", f"{path}: {what}; memfs refuses to use it")


def config_dir() -> Path:
    """This machine's memfs config folder: the folder of the user config file."""
    from memfs.config import config_path

    return config_path().parent


def private_folder(folder: Path) -> None:
    """Make ``folder`` exist with mode 0700 (tightening memfs's own config folder if needed)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
        folder.chmod(0o700)


def check_private_file(path: Path, info: os.stat_result) -> None:
    """Refuse what ssh refuses: a file others could read or swap, or not ours."""
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        raise IdentityError(path, "not a regular file")
    if info.st_uid != os.geteuid():
        raise IdentityError(path, "owned by another user")
    if mode & 0o077:
        raise IdentityError(path, f"mode {mode:04o} lets others read it: run chmod 600 {path}")
    folder = path.parent.stat()
    if stat.S_IMODE(folder.st_mode) & 0o022 and not folder.st_mode & stat.S_ISVTX:
        raise IdentityError(path, f"its folder lets others replace it: run chmod 700 {path.parent}")


class Seen:
    """The last manifest state of one remote this machine accepted (immutable; a plain class,
    not a dataclass: building one at import costs every encrypted command ~0.5 ms)."""

    __slots__ = ("at", "digest", "epoch", "generation", "secrets_generation")
    _FIELDS = ("generation", "digest", "epoch", "at", "secrets_generation")

    generation: int
    digest: str
    epoch: int
    at: str
    secrets_generation: int | None

    def __init__(
        self,
        generation: int,
        digest: str,
        epoch: int,
        at: str,
        secrets_generation: int | None = None,
    ) -> None:
        for name, value in zip(
            self._FIELDS, (generation, digest, epoch, at, secrets_generation), strict=True
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Seen is immutable: cannot set {name}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        return self._values() == other._values() if isinstance(other, Seen) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"Seen({shown})"

    def to_json(self) -> dict[str, Any]:
        """The record as stored (a field that is None is left out)."""
        values = zip(self._FIELDS, self._values(), strict=True)
        return {name: value for name, value in values if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Seen:
        """A record as stored (unknown fields ignored)."""
        return cls(
            generation=int(data["generation"]),
            digest=str(data["digest"]),
            epoch=int(data["epoch"]),
            at=str(data.get("at", "")),
            secrets_generation=(
                None if data.get("secrets_generation") is None else int(data["secrets_generation"])
            ),
        )


def _b64(key: bytes) -> str:
    return binascii.b2a_base64(key, newline=False).decode()


def _unb64(text: str) -> bytes:
    """A key as the cache holds it (binascii: the base64 module costs ~0.3 ms to import)."""
    return binascii.a2b_base64(text)


class KeyCache:
    """The key cache file of one agent (``repo_id``) on this machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: dict[str, str] | None = None  # the epochs of this object's last read
        try:  # the file is named by the repo id its keys' kids are derived with
            self._repo_id: bytes | None = bytes.fromhex(path.stem)
        except ValueError:
            self._repo_id = None

    @classmethod
    def for_repo(cls, repo_id: bytes, folder: Path | None = None) -> KeyCache:
        """The cache of ``repo_id`` in config folder ``folder`` (default this machine's)."""
        return cls((folder or config_dir()) / "keys" / f"{repo_id.hex()}.json")

    def epochs(self) -> dict[int, bytes]:
        """Every epoch key held, by epoch."""
        return {int(e): _unb64(k) for e, k in self._read()["epochs"].items()}

    def held(self) -> dict[int, bytes]:
        """The epoch keys as this object last read the file (read now if it never did): a
        command asks the file once for its keys and its ``seen`` record together. Keys are
        only ever added, so an older answer can only lack a key, and a caller that misses
        one asks ``epochs`` again (``RingKeys.key``)."""
        if self._last is None:
            self._read()
        assert self._last is not None
        return {int(e): _unb64(k) for e, k in self._last.items()}

    def key(self, epoch: int) -> bytes | None:
        """The key of ``epoch``, None if not held."""
        value = self._read()["epochs"].get(str(epoch))
        return None if value is None else _unb64(value)

    def kids(self) -> dict[int, str]:
        """The key ids of the held epochs."""
        return {int(e): str(k) for e, k in self._read()["kids"].items()}

    def newest(self) -> tuple[int, bytes] | None:
        """The highest epoch held and its key, None if none is."""
        epochs = self.epochs()
        if not epochs:
            return None
        top = max(epochs)
        return top, epochs[top]

    def add(self, keys: dict[int, bytes], kids: dict[int, str]) -> dict[int, bytes]:
        """Hold ``keys`` (and their ``kids``) too; epochs already held keep their key.

        Returns every key held afterwards. The caller has checked that the keys it adds agree
        with those held (keyring.py refuses a fork first).
        """
        with self._locked() as data:
            for epoch, key in sorted(keys.items()):
                data["epochs"].setdefault(str(epoch), _b64(key))
                data["kids"].setdefault(str(epoch), kids.get(epoch) or self._kid(key))
            return {int(e): _unb64(k) for e, k in data["epochs"].items()}

    def hold(self, epoch: int, key: bytes, kid: str) -> None:
        """Hold a key this process made and put in keys.json (wrapped to this machine) as if
        added, writing it with the next write of the file (``_locked``): a crash before that
        loses only the cached copy."""
        _HELD.setdefault(self.path, {})[str(epoch)] = (_b64(key), kid)

    def unhold(self, epoch: int) -> None:
        """Forget a key ``hold`` kept for the next write: keys.json it was made for lost the
        race to another's, so it wraps no key of this agent."""
        _HELD.get(self.path, {}).pop(str(epoch), None)

    def seen(self, url: str) -> Seen | None:
        """What this machine last accepted from remote ``url``."""
        record = self._read()["seen"].get(url)
        return None if record is None else Seen.from_json(record)

    def update_seen(self, url: str, change: Callable[[Seen | None], Seen | None]) -> Seen | None:
        """Replace ``url``'s record by ``change(current)`` under the lock, and return it.

        ``change`` may raise (RollbackError) to refuse, leaving the record as it was; returning
        None keeps it unchanged.
        """
        with self._locked() as data:
            current = data["seen"].get(url)
            new = change(None if current is None else Seen.from_json(current))
            if new is not None:
                data["seen"][url] = new.to_json()
            return new

    def forget_seen(self, url: str) -> None:
        """Drop ``url``'s record (an explicit, user-confirmed reset of the rollback guard)."""
        with self._locked() as data:
            data["seen"].pop(url, None)

    def _read(self) -> dict[str, Any]:
        """The file's content, empty if it does not exist; IdentityError if unsafe or garbled."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            data = self._with_held({"epochs": {}, "kids": {}, "seen": {}})
            self._last = dict(data["epochs"])
            return data
        except OSError as error:
            raise IdentityError(self.path, error.strerror or str(error)) from None
        with os.fdopen(fd, "rb") as handle:
            check_private_file(self.path, os.fstat(handle.fileno()))
            raw = handle.read(MAX_FILE + 1)
        try:
            data = json.loads(raw) if len(raw) <= MAX_FILE else None
        except ValueError:
            data = None
        if not (
            isinstance(data, dict)
            and all(isinstance(data.get(k, {}), dict) for k in ("epochs", "kids", "seen"))
        ):
            raise IdentityError(
                self.path, "it is damaged; move it away (keys are fetched again from keys.json)"
            )
        for name in ("epochs", "kids", "seen"):
            data.setdefault(name, {})
        self._drop_unsound(data)
        data = self._with_held(data)
        self._last = dict(data["epochs"])
        return data

    def _drop_unsound(self, data: dict[str, Any]) -> None:
        """Drop each epoch key that is not the one its kid names (or is no key at all), and
        that kid: the epoch is then not held, so its key is fetched from keys.json again and
        written in its place (``add``), as for an epoch never cached."""
        epochs, kids = data["epochs"], data["kids"]
        for epoch in [e for e in epochs if not self._sound(e, epochs[e], kids.get(e))]:
            del epochs[epoch]
        for epoch in [e for e in kids if e not in epochs]:
            del kids[epoch]

    def _kid(self, key: bytes) -> str:
        """``keyfile.kid`` of ``key`` (what a key without one is cached with)."""
        from memfs.crypto.envelope import hkdf_sha256

        return hkdf_sha256(key, self._repo_id or b"", KID_INFO, 8).hex()

    def _sound(self, epoch: object, key: object, named: object) -> bool:
        """Whether ``key`` (base64) is a key of an epoch and the one ``named`` (its kid) names."""
        if not (isinstance(epoch, str) and epoch.isdigit() and isinstance(key, str)):
            return False
        if not isinstance(named, str) or self._repo_id is None:
            return False
        if (self._repo_id, key, named) in _AGREED:
            return True
        try:
            raw = _unb64(key)
        except (binascii.Error, ValueError):
            return False
        if len(raw) != KEY_LEN or self._kid(raw) != named:
            return False
        _AGREED.add((self._repo_id, key, named))
        return True

    def _with_held(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with the keys this process holds for the file (a key held keeps its own)."""
        for epoch, (key, kid) in _HELD.get(self.path, {}).items():
            data["epochs"].setdefault(epoch, key)
            data["kids"].setdefault(epoch, kid)
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The content, to change in place; written back (0600, atomically) on a clean exit."""
        private_folder(self.path.parent)
        lock = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:  # held keys go with a change
                after = json.dumps(data, sort_keys=True, indent=1)
                atomic_write(self.path, after.encode() + b"\n", mode=0o600)
                _HELD.pop(self.path, None)
        finally:
            os.close(lock)
