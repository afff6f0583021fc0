"""Access tokens for ``memfs serve``: created once, stored hashed, compared in constant time.

A token is ``memfs_`` + 32 random bytes (urlsafe base64). The token file keeps, per token, its
name, its SHA-256 and when it was created; never the token itself, which is printed once.

Why a plain SHA-256 and not a slow password hash (bcrypt, scrypt, argon2): a slow hash protects
secrets people choose, which are guessable; a token holds 256 random bits, so a stolen token
file gives an attacker nothing to guess from, and a fast hash lets the server check each request
in microseconds. Presented tokens are hashed and compared with ``hmac.compare_digest`` against
every stored hash, so the time taken says nothing about which bytes matched.

The file is written atomically (temp file, fsync, rename) under an ``fcntl`` lock on a sidecar
file, so several ``memfs token`` commands and several servers can share one file (``--token-file``).
A server re-reads it whenever its stat changes: a revoked token stops working at the next request.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from memfs.errors import MemfsError
from memfs.schema import is_valid_name
from memfs.util import atomic_write

PREFIX = "memfs_"
_SHA256 = re.compile(r"[0-9a-f]{64}")
FORMAT = 1


class TokenError(MemfsError):
    """A token command that cannot be done: unknown or duplicate name, unreadable file."""


class TokenFileError(TokenError):
    """The token file cannot be read as a token file (exit 2: bad config)."""

    exit_code = 2


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: its name and dates, never the secret or its hash."""

    name: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_token_file() -> Path:
    """Where tokens live unless ``--token-file`` says: beside memfs's user config."""
    from memfs.config import config_path

    return config_path().parent / "tokens.json"


def hash_token(token: str) -> str:
    """The hex SHA-256 of ``token`` (what the file stores)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _read(path: Path) -> list[dict[str, str]]:
    """The token records of ``path``; none when the file does not exist."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        raise TokenFileError(f"cannot read token file {path}: {error}") from error
    records = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("sha256"), str)
        for r in records
    ):
        raise TokenFileError(f"{path} is not a memfs token file (no 'tokens' list)")
    for record in records:  # a server would fail on it at its first request
        if not _SHA256.fullmatch(record["sha256"]):
            raise TokenFileError(
                f"cannot read token file {path}: token {record['name']!r} has no SHA-256"
            )
    return records


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[list[dict[str, str]]]:
    """The records of ``path`` to change in place, written back atomically, under a lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        records = _read(path)
        before = json.dumps(records)
        yield records
        if json.dumps(records) != before:
            body = {"format": FORMAT, "tokens": records}
            atomic_write(path, (json.dumps(body, indent=2) + "\n").encode(), mode=0o600)
    finally:
        os.close(fd)  # closing drops the lock


def create_token(path: Path, name: str | None = None) -> tuple[str, TokenInfo]:
    """A new token named ``name`` (default ``token-N``) added to ``path``: (secret, info).

    The secret is returned once and never stored."""
    if name is not None and not is_valid_name(name):
        raise TokenError(
            f"invalid token name {name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    secret = PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    created = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    with _locked(path) as records:
        names = {r["name"] for r in records}
        if name is None:
            name = next(f"token-{n}" for n in range(1, len(names) + 2) if f"token-{n}" not in names)
        elif name in names:
            raise TokenError(f"a token named {name!r} exists: revoke it or pick another name")
        records.append({"name": name, "sha256": hash_token(secret), "created_at": created})
    return secret, TokenInfo(name, created)


def list_tokens(path: Path) -> list[TokenInfo]:
    """The tokens of ``path`` by name and creation date (no secrets, no hashes)."""
    return [TokenInfo(r["name"], r.get("created_at", "")) for r in _read(path)]


def revoke_token(path: Path, name: str) -> TokenInfo:
    """Remove token ``name`` from ``path``; servers reading the file refuse it at once."""
    with _locked(path) as records:
        found = [r for r in records if r["name"] == name]
        if not found:
            known = ", ".join(r["name"] for r in records) or "none"
            raise TokenError(f"no token named {name!r} in {path} (tokens: {known})")
        records.remove(found[0])
    return TokenInfo(name, found[0].get("created_at", ""))


class TokenChecker:
    """Checks presented tokens against a token file, re-read whenever its stat changes.

    Thread-safe; a file that cannot be read admits nobody (and says so once per change)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int, int] | None = None
        self._hashes: list[bytes] = []
        self.problem: str | None = None

    def _stat(self) -> tuple[int, int, int, int]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return (0, 0, 0, 0)
        return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)

    def _refresh(self) -> list[bytes]:
        stamp = self._stat()
        with self._lock:
            if stamp != self._stamp:
                try:
                    records = _read(self.path)
                    self._hashes = [bytes.fromhex(r["sha256"]) for r in records]
                    self.problem = None
                except (TokenFileError, ValueError) as error:
                    self._hashes = []
                    self.problem = str(error)
                self._stamp = stamp
            return self._hashes

    def count(self) -> int:
        """How many tokens the file holds now."""
        return len(self._refresh())

    def check(self, token: str) -> bool:
        """True when ``token`` is one of the file's tokens (constant time per stored token)."""
        presented = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = False
        for stored in self._refresh():
            found |= hmac.compare_digest(presented, stored)
        return found
