"""An encrypted agent's store: a Storage over a Storage that seals what it writes and opens
what it reads (docs/design-encryption.md §2, §3, §5).

``SealedStorage`` maps logical names to what the store holds: ``manifest.json`` ->
``manifest.json.enc``, ``packs/<name>.pack`` -> ``packs/<name>.pack.enc``, ``envs/<id>.json`` ->
``envs/<id>.json.enc``; each sealed (``memfs.crypto.envelope``) with the role and logical name
the name implies, so a byte changed, a pack copied under another pack's name, an object of
another agent all fail to open: TamperError naming the object. ``memfs.json`` and
``keys.json`` pass through in the clear. An encrypted store holds no pack index (``.idx``):
the fetch rebuilds every index from the pack it opened, so index reads answer "absent"
without a request and index writes are skipped. ``digest(key)`` is the sha256 of the last
ciphertext seen under a name, what a sealed manifest's ``prev`` and the rollback guard use.

``SealedRemote`` is what ``BucketRemote`` needs beyond storage: the agent's keys (opened
lazily, from the repo id pinned for the URL: no ``memfs.json`` read on a normal push), the
sealed manifest read and written with the rollback guard (``memfs.remotes.guard``), and the
first push's ``memfs.json`` (with its ``encryption`` block) and keyring.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memfs.crypto.envelope import Keys, Role, open_sealed, peek, role_for_name, seal
from memfs.errors import (
    NoKeyError,
    RemoteCorruptError,
    RemoteError,
    RollbackError,
    TamperError,
)
from memfs.remotes.bucket import stub_bytes
from memfs.remotes.guard import MANIFEST, ManifestGuard, RepoPins
from memfs.remotes.storage import Storage, Unchanged
from memfs.util import hostname, utc_now

if TYPE_CHECKING:
    from memfs.crypto.identity import Identity
    from memfs.crypto.keyring import RingKeys
    from memfs.remotes.manifest import BucketManifest

IDENTITY = "memfs.json"
SUFFIX = ".enc"
SCHEME = "memfs-enc-1"
REPO_ID_BYTES = 16
Got = tuple[bytes, str]


class SealedStorage:
    """A Storage whose packs, manifest and presence objects are sealed in ``inner``."""

    def __init__(self, inner: Storage, keys: Keys) -> None:
        self.inner = inner
        self.keys = keys
        self._digests: dict[str, str] = {}
        self._epochs: dict[str, int] = {}

    @property
    def url(self) -> str:
        return self.inner.url

    @url.setter
    def url(self, value: str) -> None:
        self.inner.url = value

    # -- names --------------------------------------------------------------------------

    @staticmethod
    def _role(key: str) -> Role | None:
        role = role_for_name(key)
        return role if role in (Role.MANIFEST, Role.PACK, Role.PRESENCE) else None

    def _stored(self, key: str) -> str:
        return key + SUFFIX if self._role(key) is not None else key

    @staticmethod
    def _is_index(key: str) -> bool:
        return key.startswith("packs/") and key.endswith(".idx")

    def _logical(self, stored: str) -> str:
        name = stored.removesuffix(SUFFIX)
        return name if stored.endswith(SUFFIX) and self._role(name) is not None else stored

    def digest(self, key: str) -> str | None:
        """The sha256 (hex) of the last ciphertext read or written under ``key``."""
        return self._digests.get(key)

    def epoch(self, key: str) -> int | None:
        """The epoch the last ciphertext read or written under ``key`` was sealed under."""
        return self._epochs.get(key)

    # -- sealing ------------------------------------------------------------------------

    def _seal(self, key: str, data: bytes) -> tuple[bytes, int]:
        """``data`` sealed under the newest epoch held (as is, for a name not sealed)."""
        role = self._role(key)
        if role is None:
            return data, 0
        epoch, secret = self.keys.current()
        return seal(secret, epoch, role, self.keys.repo_id, key, data), epoch

    def _wrote(self, key: str, blob: bytes, epoch: int, landed: bool) -> bool:
        if landed and epoch:
            self._note(key, blob, epoch)
        return landed

    def _note(self, key: str, blob: bytes, epoch: int) -> None:
        self._digests[key] = hashlib.sha256(blob).hexdigest()
        self._epochs[key] = epoch

    def _open(self, key: str, got: Got | None) -> Got | None:
        role = self._role(key)
        if got is None or role is None:
            return got
        blob, etag = got
        try:
            _, epoch = peek(blob)
        except TamperError as error:
            raise TamperError(self.url, key, error.why) from None
        secret = self._key(key, epoch)
        try:
            plain = open_sealed(secret, self.keys.repo_id, key, role, blob)
        except TamperError as error:
            raise TamperError(self.url, key, error.why) from None
        self._note(key, blob, epoch)
        return plain, etag

    def _key(self, key: str, epoch: int) -> bytes:
        """The key of ``epoch`` for object ``key``; an epoch beyond keys.json's is a tamper
        of the object's header, or keys.json put back: the error names both."""
        try:
            return self.keys.key(epoch)
        except RollbackError:
            raise TamperError(
                self.url,
                key,
                f"is sealed under epoch {epoch}, which keys.json does not hold (the object "
                "was changed, or an older keys.json was put back)",
            ) from None

    # -- Storage ------------------------------------------------------------------------

    def get(self, key: str) -> Got | None:
        if self._is_index(key):
            return None
        return self._open(key, self.inner.get(self._stored(key)))

    def get_if_changed(self, key: str, etag: str | None) -> Got | Unchanged | None:
        got = self.inner.get_if_changed(self._stored(key), etag)
        return got if isinstance(got, Unchanged) else self._open(key, got)

    def get_many(self, keys: list[str]) -> list[Got | None]:
        asked = [key for key in keys if not self._is_index(key)]
        found = dict(zip(asked, self.inner.get_many([self._stored(k) for k in asked]), strict=True))
        return [self._open(key, found[key]) if key in found else None for key in keys]

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if self._is_index(key):
            return True  # an encrypted store holds no index: the fetch rebuilds it
        blob, epoch = self._seal(key, data)
        if self._wrote(key, blob, epoch, self.inner.put_if_absent(self._stored(key), blob)):
            return True
        if self._role(key) is Role.PACK:
            self._reseal_pack(key, blob, epoch)
        return False

    def _reseal_pack(self, key: str, blob: bytes, current: int) -> None:
        """A pack already there (same content, named by it) sealed under an older epoch, or
        damaged, is replaced by ``blob``: a push racing a rotation lists no old-epoch pack."""
        got = self.inner.get(self._stored(key))
        if got is None:
            self._wrote(key, blob, current, self.inner.put_if_absent(self._stored(key), blob))
            return
        try:
            _, epoch = peek(got[0])
        except TamperError:
            epoch = 0
        if epoch < current:
            stored = self.inner.put_if_match(self._stored(key), blob, got[1])
            self._wrote(key, blob, current, stored)

    def put_if_match(self, key: str, data: bytes, etag: str) -> bool:
        blob, epoch = self._seal(key, data)
        return self._wrote(key, blob, epoch, self.inner.put_if_match(self._stored(key), blob, etag))

    def put(self, key: str, data: bytes) -> None:
        """A plain write (one writer per object: presence records), sealed."""
        put: Callable[[str, bytes], None] = self.inner.put  # type: ignore[attr-defined]
        blob, epoch = self._seal(key, data)
        put(self._stored(key), blob)
        self._wrote(key, blob, epoch, True)

    def delete(self, key: str) -> None:
        if not self._is_index(key):
            self.inner.delete(self._stored(key))

    def modified(self, key: str) -> float | None:
        return self.inner.modified(self._stored(key))

    def list(self, prefix: str = "") -> list[str]:
        return sorted({self._logical(key) for key in self.inner.list(prefix)})

    def list_stamped(self, prefix: str) -> tuple[list[tuple[str, float, int]], float]:
        """``inner.list_stamped`` with logical names (sizes are the ciphertexts')."""
        listed: Callable[[str], tuple[list[tuple[str, float, int]], float]]
        listed = self.inner.list_stamped  # type: ignore[attr-defined]
        entries, now = listed(prefix)
        return [(self._logical(key), stamp, size) for key, stamp, size in entries], now

    def folders(self) -> list[str]:
        return self.inner.folders()


class LazyKeys:
    """The agent's keys, opened on first use: a remote that is only listed or polled
    unchanged loads no identity and reads no keyring."""

    def __init__(self, remote: SealedRemote) -> None:
        self.remote = remote
        self._keys: RingKeys | None = None
        self._lock = threading.Lock()

    @property
    def repo_id(self) -> bytes:
        return self.opened().repo_id

    def current(self) -> tuple[int, bytes]:
        return self.opened().current()

    def key(self, epoch: int) -> bytes:
        return self.opened().key(epoch)

    def opened(self) -> RingKeys:
        with self._lock:
            if self._keys is None:
                self._keys = self.remote.open_keys()
            return self._keys

    def set(self, keys: RingKeys) -> None:
        with self._lock:
            self._keys = keys


class SealedRemote:
    """The encrypted side of a ``BucketRemote``: keys, guard, sealed manifest, first claim."""

    def __init__(self, raw: Storage, url: str, expected: bool = True) -> None:
        self.raw = raw
        self.url = url
        self.expected = expected  # configured encrypted: a plain manifest is a downgrade
        self.lazy = LazyKeys(self)
        self.storage = SealedStorage(raw, self.lazy)
        self._identity: Identity | None = None
        self._guard: ManifestGuard | None = None
        self._read_identity = False  # memfs.json read by this remote (not only remembered)

    # -- keys ---------------------------------------------------------------------------

    def identity(self) -> Identity:
        """This machine's identity (created if it has none)."""
        from memfs.crypto.identity import ensure_identity

        if self._identity is None:
            self._identity = ensure_identity()
        return self._identity

    def pins(self) -> RepoPins:
        from memfs.crypto.identity import config_dir

        folder = self.identity().config_dir
        return RepoPins(folder if folder is not None else config_dir())

    def repo_id(self) -> bytes | None:
        """The agent's repo id: remembered for this URL, else memfs.json's (remembered)."""
        pinned = self.pins().get(self.url)
        if pinned is not None:
            return pinned
        from memfs.keys import stored_repo_id

        self._read_identity = True
        found = stored_repo_id(self.raw)
        if found is not None:
            self.pins().pin(self.url, found)
        return found

    def _repo_id_changed(self) -> bool:
        """After a manifest that fails to open under the remembered repo id: whether
        memfs.json names another one (the agent was deleted and made again at this URL);
        then that one is remembered and the keys and guard start over. A store that swaps
        in another agent it holds keys for gains nothing: fetch refuses another agent id."""
        if self._read_identity:
            return False
        from memfs.keys import stored_repo_id

        self._read_identity = True
        found = stored_repo_id(self.raw)
        if found is None or found == self.pins().get(self.url):
            return False
        self.pins().pin(self.url, found)
        self.lazy = LazyKeys(self)
        self.storage.keys = self.lazy
        self._guard = None
        return True

    def open_keys(self) -> RingKeys:
        """This machine's keys for the agent; NoKeyError naming its recipient if it has none."""
        from memfs.crypto.keycache import KeyCache
        from memfs.crypto.keyring import open_keys

        identity = self.identity()
        repo_id = self.repo_id()
        if repo_id is None:
            raise NoKeyError(self.url, identity.recipient)
        cache = KeyCache.for_repo(repo_id, identity.config_dir)
        return open_keys(self.raw, repo_id, identity, cache)

    def guard(self) -> ManifestGuard | None:
        """The rollback guard of this URL on this machine; None while no agent is here."""
        if self._guard is None:
            from memfs.crypto.keycache import KeyCache

            repo_id = self.repo_id()
            if repo_id is None:
                return None
            cache = KeyCache.for_repo(repo_id, self.identity().config_dir)
            self._guard = ManifestGuard(self.url, cache)
        return self._guard

    # -- the manifest -------------------------------------------------------------------

    def read_manifest(
        self, parse: Callable[[bytes], BucketManifest], etag: str | None = None
    ) -> tuple[BucketManifest | None, str | None] | Unchanged:
        """The sealed manifest and its ETag (``UNCHANGED`` if ``etag`` still holds), checked
        by the guard; (None, None) when nothing was pushed yet."""
        guard = self.guard()
        seen = guard.before() if guard is not None else None
        if guard is None:  # no memfs.json: nothing was pushed here, unless planted plain
            got = None if self.raw.get(MANIFEST + SUFFIX) is None else self._no_identity()
        else:
            try:
                got = (
                    self.storage.get_if_changed(MANIFEST, etag)
                    if etag
                    else self.storage.get(MANIFEST)
                )
            except TamperError:
                if not self._repo_id_changed():
                    raise
                return self.read_manifest(parse, etag)  # the agent here was made anew
        if isinstance(got, Unchanged):
            return got
        if got is None:
            plain = self.raw.get(MANIFEST)
            ManifestGuard(self.url, None).missing(seen, plain[0] if plain else None, self.expected)
            return None, None
        assert guard is not None
        try:
            manifest = parse(got[0])
        except RemoteError as error:
            why = f"opens but is not a manifest ({error})"
            raise TamperError(self.url, MANIFEST, why) from None
        digest, epoch = self.storage.digest(MANIFEST), self.storage.epoch(MANIFEST)
        assert digest is not None and epoch is not None
        prev = manifest.extra.get("prev")
        prev = prev if isinstance(prev, str) else None
        guard.check(seen, manifest.generation, digest, epoch, prev)
        guard.accept(manifest.generation, digest, epoch)
        return manifest, got[1]

    def put_manifest(
        self, manifest: BucketManifest, etag: str | None, encode: Callable[[BucketManifest], bytes]
    ) -> bool:
        """Compare-and-swap the sealed manifest (create it when ``etag`` is None), naming the
        ciphertext it replaces in ``prev``; the guard's record follows a swap that landed."""
        import dataclasses

        extra = dict(manifest.extra)
        extra.pop("prev", None)
        if etag is not None:
            extra["prev"] = self.storage.digest(MANIFEST)
        manifest = dataclasses.replace(manifest, extra=extra)
        if etag is None:
            self.raw.put_if_absent(MANIFEST, stub_bytes())  # old memfs: "format 2, upgrade"
            moved = self.storage.put_if_absent(MANIFEST, encode(manifest))
        else:
            moved = self.storage.put_if_match(MANIFEST, encode(manifest), etag)
        if moved:
            digest, epoch = self.storage.digest(MANIFEST), self.storage.epoch(MANIFEST)
            assert digest is not None and epoch is not None
            guard = self.guard()
            assert guard is not None  # the claim wrote memfs.json before anything else
            guard.accept(manifest.generation, digest, epoch)
        return moved

    def _no_identity(self) -> Got:
        raise RemoteCorruptError(
            self.url, "manifest.json.enc is there but memfs.json, which names its agent, is not"
        )

    # -- the first push -----------------------------------------------------------------

    def claim(self, manifest: BucketManifest | None, agent: dict[str, Any]) -> dict[str, Any]:
        """Before a push uploads: refuse another agent's store; for the first push, write
        memfs.json (with the ``encryption`` block) and the keyring. What goes into the
        sealed manifest about the agent (``agent_id``, ``created_at``)."""
        agent_id = str(agent.get("id", "") or "")
        if manifest is not None:
            theirs = manifest.extra.get("agent_id")
            if agent_id and isinstance(theirs, str) and theirs and theirs != agent_id:
                raise RemoteError(
                    self.url,
                    f"{self.url} holds another agent ({manifest.name}, {theirs}); "
                    "push to another URL or name",
                )
            return {"agent_id": theirs or agent_id, "created_at": manifest.extra.get("created_at")}
        repo_id = self._claim_identity()
        self.pins().pin(self.url, repo_id)
        from memfs.crypto.keyring import create_keyring

        name = os.environ.get("MEMFS_ENV_NAME") or hostname()
        self.lazy.set(create_keyring(self.raw, repo_id, self.identity(), name))
        return {"agent_id": agent_id, "created_at": str(agent.get("created_at", "") or "")}

    def _claim_identity(self) -> bytes:
        """memfs.json, written once: its repo id (one already there is used)."""
        from memfs.keys import stored_repo_id

        created = utc_now().isoformat().replace("+00:00", "Z")
        record = {
            "format": 1,
            "name": "",
            "id": "",
            "created_at": created,
            "encryption": {"scheme": SCHEME, "repo_id": os.urandom(REPO_ID_BYTES).hex()},
        }
        if self.raw.put_if_absent(IDENTITY, json.dumps(record, indent=1).encode()):
            return bytes.fromhex(record["encryption"]["repo_id"])  # type: ignore[index]
        found = stored_repo_id(self.raw)
        if found is None:
            raise RemoteCorruptError(
                self.url, "memfs.json holds an unencrypted agent; push to another URL or name"
            )
        return found
