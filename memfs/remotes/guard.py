"""What this machine trusts about an encrypted remote: the agent a URL holds and the newest
manifest it has accepted from it (docs/design-encryption.md §5).

A sealed manifest opens only for holders of the agent's key, but the store can still show an
old one (a rollback), show two machines two different ones (a fork), or drop the encryption
(a downgrade). ``ManifestGuard`` compares every manifest read against the ``seen`` record of
the machine's key cache (``memfs.crypto.keycache``) before anything is imported:

- an epoch or generation below the one seen: RollbackError;
- the generation seen, other bytes; or the next generation, whose ``prev`` is not the digest
  seen: ForkError (the store equivocates: it forked the history);
- a remote known as encrypted that now has no ``manifest.json.enc``, or a plain format-1
  ``manifest.json``: DowngradeError.

Two processes of one machine (a watcher and a CLI push) share the record: a manifest is
checked against the record as it was *before* it was requested, so a newer state another
process accepted meanwhile is no false alarm, and the record only ever moves forward.

``RepoPins`` remembers the repo id of each encrypted remote's agent on this machine
(``<config dir>/keys/remotes.json``), so a normal push or pull needs no read of
``memfs.json``. A manifest that fails to open under the remembered id makes the remote read
``memfs.json`` once: an agent deleted and made again at the URL is then followed (a store
that swaps in another agent this machine holds keys for gains nothing by it: the guard
starts over for that agent, and a fetch refuses another agent's id).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from memfs.crypto.keycache import KeyCache, Seen, private_folder
from memfs.errors import DowngradeError, ForkError, RollbackError
from memfs.remotes.bucket import is_stub
from memfs.util import replace_unsynced

MANIFEST = "manifest.json"
PINS_FILE = "remotes.json"
TRUST = "restored from a backup on purpose? 'memfs key trust-rollback REMOTE'"


class ManifestGuard:
    """Rollback, fork and downgrade checks of one remote's manifest on this machine."""

    def __init__(self, url: str, cache: KeyCache | None) -> None:
        self.url = url
        self.cache = cache

    def before(self) -> Seen | None:
        """The record as it is now: what a manifest requested after this is checked against."""
        return self.cache.seen(self.url) if self.cache is not None else None

    def check(
        self, seen: Seen | None, generation: int, digest: str, epoch: int, prev: str | None
    ) -> None:
        """Refuse a manifest that is older than, or does not follow from, ``seen``."""
        if seen is None:
            return  # first contact: trusted (TOFU), like gcrypt's Remote ID
        if epoch < seen.epoch:
            raise RollbackError(
                self.url,
                f"{MANIFEST} is sealed under epoch {epoch}, older than epoch {seen.epoch} "
                f"this machine has seen ({TRUST})",
            )
        if generation < seen.generation:
            raise RollbackError(
                self.url,
                f"{MANIFEST} is at generation {generation}, older than generation "
                f"{seen.generation} this machine has seen ({TRUST})",
            )
        if generation == seen.generation and digest != seen.digest:
            raise ForkError(
                self.url,
                f"{MANIFEST} at generation {generation} is not the one this machine saw",
                manifest=True,
            )
        if generation == seen.generation + 1 and prev != seen.digest:
            raise ForkError(
                self.url,
                f"{MANIFEST} generation {generation} does not follow generation "
                f"{seen.generation} this machine saw",
                manifest=True,
            )

    def accept(self, generation: int, digest: str, epoch: int, seen: Seen | None = None) -> None:
        """Record a manifest read (after ``check``) or written; the record only moves forward.
        ``seen``, the record as read before (``before``): at or past ``generation`` already,
        nothing is locked, read or written (a push's read of the manifest it last wrote)."""
        if seen is not None and seen.generation >= generation:
            return
        # the time as datetime's isoformat() gave it, without loading datetime (~1-3 ms)
        new = Seen(generation, digest, epoch, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

        def change(current: Seen | None) -> Seen | None:
            if current is not None and current.generation >= generation:
                return None
            kept = current.secrets_generation if current is not None else None
            return Seen(new.generation, new.digest, new.epoch, new.at, kept)

        if self.cache is not None:
            self.cache.update_seen(self.url, change)

    def missing(self, seen: Seen | None, plain: bytes | None, expected: bool) -> None:
        """No ``manifest.json.enc``: DowngradeError if this machine has seen one here, or if
        a plain format-1 ``manifest.json`` stands where the remote is ``expected`` encrypted
        (its config says so). ``plain`` is manifest.json's bytes, None if absent."""
        planted = plain is not None and not is_stub(plain)
        if planted and (expected or seen is not None):
            raise DowngradeError(self.url, f"{MANIFEST} is a plain, unencrypted manifest")
        if seen is not None:
            raise DowngradeError(
                self.url,
                f"{MANIFEST}.enc is gone (this machine saw generation {seen.generation})",
            )


class RepoPins:
    """URL -> repo id of the encrypted remotes this machine has used."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "keys" / PINS_FILE

    def get(self, url: str) -> bytes | None:
        """The repo id pinned for ``url``, None if none is."""
        value = self._read().get(url)
        try:
            return bytes.fromhex(value) if isinstance(value, str) else None
        except ValueError:
            return None

    def pin(self, url: str, repo_id: bytes) -> None:
        """Remember ``repo_id`` for ``url`` (replacing another: the agent was made anew)."""
        with self._locked() as pins:
            pins[url] = repo_id.hex()

    def forget(self, url: str) -> None:
        """Forget ``url``'s repo id."""
        with self._locked() as pins:
            pins.pop(url, None)

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        private_folder(self.path.parent)
        lock = os.open(self.path.with_name(PINS_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            pins = self._read()
            before = dict(pins)
            yield pins
            if pins != before:
                # a cache of what each store's memfs.json says: lost or torn by a crash, the
                # pins read as empty (``_read``) and the next command reads memfs.json again
                replace_unsynced(self.path, _flat_json(pins))
        finally:
            os.close(lock)


def _flat_json(pins: dict[str, str]) -> bytes:
    """``json.dumps(pins, indent=1)`` + newline, byte for byte, from the C encoder's strings:
    with ``indent`` json encodes in Python, ~2 ms for a machine that has used a few hundred
    encrypted remotes (a CI runner), on every first push."""
    if not pins:
        return b"{}\n"
    lines = ",\n".join(f" {json.dumps(url)}: {json.dumps(repo)}" for url, repo in pins.items())
    return ("{\n" + lines + "\n}\n").encode()
