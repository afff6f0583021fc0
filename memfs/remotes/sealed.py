"""An encrypted agent's store: a Storage over a Storage that seals what it writes and opens
what it reads (docs/design-encryption.md §2, §3).

``SealedStorage`` maps logical names to what the store holds: ``manifest.json`` ->
``manifest.json.enc``, ``packs/<name>.pack`` -> ``packs/<name>.pack.enc``, ``envs/<id>.json`` ->
``envs/<id>.json.enc``; each sealed (``memfs.crypto.envelope``) with the role and logical name
the name implies, so a byte changed, a pack copied under another pack's name, an object of
another agent all fail to open: TamperError naming the object. ``memfs.json`` and
``keys.json`` pass through in the clear. An encrypted store holds no pack index (``.idx``):
the fetch rebuilds every index from the pack it opened, so index reads answer "absent"
without a request and index writes are skipped. ``digest(key)`` is the sha256 of the last
ciphertext seen under a name, what a sealed manifest's ``prev`` and the rollback guard use.

What a bucket remote needs beyond storage (keys, the sealed manifest with its guard, the
first push's claim) is ``memfs.remotes.sealedremote``.
"""

from __future__ import annotations

from collections.abc import Callable

from memfs.crypto.envelope import Role, open_sealed, peek, role_for_name, seal
from memfs.digests import sha256_hex
from memfs.errors import RollbackError, TamperError
from memfs.remotes.storage import Storage, Unchanged

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs.crypto.envelope import Keys

SUFFIX = ".enc"
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
        self._digests[key] = sha256_hex(blob)  # memfs.digests: no OpenSSL for a small blob
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
            confirm = getattr(self.keys, "confirm", None)
            if confirm is not None:  # a cached key: keys.json asked first (ForkError if
                confirm(epoch)  # it holds another key for the epoch), then the object blamed
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

    def opened(self, key: str, got: Got | None) -> Got | None:
        """What ``get(key)`` answers, for ``got``: the stored object read another way (with
        others at once, before the keys were known)."""
        return self._open(key, got)

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
        damaged, or that its epoch's key does not open (sealed by a machine whose cached key
        was damaged, before that was caught: review10 F6), is replaced by ``blob``: a push
        lists no pack that the others cannot open, and a push racing a rotation no old-epoch
        pack."""
        got = self.inner.get(self._stored(key))
        if got is None:
            self._wrote(key, blob, current, self.inner.put_if_absent(self._stored(key), blob))
            return
        try:
            _, epoch = peek(got[0])
            if epoch == current:
                open_sealed(self.keys.key(epoch), self.keys.repo_id, key, Role.PACK, got[0])
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
