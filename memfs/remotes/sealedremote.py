"""The encrypted side of a ``BucketRemote`` (docs/design-encryption.md §2, §4, §5): the agent's
keys, answered from this machine's key cache for the repo id remembered for the URL (no
``memfs.json`` or keys.json read on a normal push); the sealed manifest read and written with
the rollback guard (``memfs.remotes.guard``); a pack sealed and uploaded ahead of a push's
commit. Its storage is a ``SealedStorage`` (``memfs.remotes.sealed``); the first push's
``memfs.json`` and keyring are ``memfs.remotes.sealedclaim``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from memfs.crypto.envelope import load_cipher
from memfs.errors import (
    ForkError,
    MemfsError,
    NoKeyError,
    RemoteCorruptError,
    RemoteError,
    TamperError,
)
from memfs.remotes.background import Background, Uploading
from memfs.remotes.bucket import is_stub, stub_bytes
from memfs.remotes.guard import MANIFEST, ManifestGuard, RepoPins
from memfs.remotes.sealed import SUFFIX, Got, SealedStorage
from memfs.remotes.storage import Storage, Unchanged

TYPE_CHECKING = False  # typing (~1.5 ms of an encrypted command) for types only
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from memfs.crypto.identity import Identity
    from memfs.crypto.keycache import KeyCache
    from memfs.crypto.keyring import RingKeys
    from memfs.history.packing import PackFiles
    from memfs.remotes.background import Reading
    from memfs.remotes.bucket import BucketRemote
    from memfs.remotes.manifest import BucketManifest
    from memfs.remotes.sealedclaim import Claiming

IDENTITY = "memfs.json"
ROTATING = "rotating"
"""The sealed manifest's field naming the epoch a ``key rm`` / ``key rotate`` is moving
keys.json to (``memfs.reseal.mark_rotation``), set before keys.json moves: a reader holding
an older epoch reads keys.json first (``SealedRemote._follow_rotation``), and the first
manifest sealed under that epoch or a newer one drops it (``put_manifest``)."""


class Beside(Background):
    """``call`` on a thread beside the caller's own request; ``wait`` returns its answer."""

    def __init__(self, call: Callable[[], Any], name: str = "memfs-sealed") -> None:
        self.call = call
        self.result: Any = None
        super().__init__(name)

    def run(self) -> None:
        self.result = self.call()

    def answer(self) -> Any:
        self.wait()
        return self.result

    def settle(self) -> None:
        """Join the thread, dropping what it raised: the caller is raising its own error."""
        self._thread.join()


def at_once(raw: Storage, keys: list[str]) -> list[Got | None]:
    """``raw.get`` of each key, the requests overlapping on threads: one round trip, and no
    thread pool to import (``concurrent.futures`` costs a process ~5 ms)."""
    others = [Beside(lambda key=key: raw.get(key), "memfs-get") for key in keys[1:]]
    try:
        first = raw.get(keys[0])
    except BaseException:
        for other in others:
            other.settle()
        raise
    return [first, *(other.answer() for other in others)]


class UploadingSealed(Uploading):
    """A push's pack sealed and uploaded before the push swaps the manifest (ahead of its
    commit, ``BucketRemote.upload_ahead``, or beside the manifest's read,
    ``head_while_uploading``), once the manifest's read has opened the manifest: then the
    agent the store holds is known (a repo id changed there is followed first) and so are its
    keys, at the newest epoch the read met, from the key cache or the keyring the read opened.
    A read that failed (a machine removed: NoKeyError, review10 F3), or found no manifest,
    uploads nothing: the push says the read's error, or sees the branch is not where it
    guessed and uploads the pack itself. ``reading`` None: the manifest was read already."""

    def __init__(
        self, remote: BucketRemote, pack: PackFiles, sealed: SealedRemote, reading: Reading | None
    ) -> None:
        self.sealed, self.reading = sealed, reading
        super().__init__(remote, pack)

    def run(self) -> None:
        read = self.reading is None or self.reading.finished()
        if read and self.sealed.storage.digest(MANIFEST) is not None:
            super().run()


class LazyKeys:
    """The agent's keys as sealing and opening ask for them. The key cache answers first,
    read once (with the guard's ``seen`` record): a machine that holds the epoch asked for,
    and to seal any epoch, reads no keyring and loads nothing of age. An epoch it does not
    hold opens the keyring (``RingKeys``: keys.json read, this machine's slot unwrapped,
    checked against the keys held, cached), which answers from then on, so a key rotated
    since the cache was written is found (a newer epoch seals), and a removed machine gets
    NoKeyError. A poll answered unchanged opens nothing."""

    def __init__(self, remote: SealedRemote) -> None:
        self.remote = remote
        self._keys: RingKeys | None = None
        self._cached: tuple[bytes, dict[int, bytes]] | None = None  # repo id, epoch keys
        self._lock = threading.Lock()

    @property
    def repo_id(self) -> bytes:
        with self._lock:
            cached = self._from_cache()
            if cached is not None:
                return cached[0]
        return self.opened().repo_id

    def current(self) -> tuple[int, bytes]:
        with self._lock:
            cached = self._from_cache()
            if cached is not None and cached[1]:
                top = max(cached[1])
                return top, cached[1][top]
        return self.opened().current()

    def key(self, epoch: int) -> bytes:
        with self._lock:
            cached = self._from_cache()
            if cached is not None and epoch in cached[1]:
                return cached[1][epoch]
        return self.opened().key(epoch)

    def confirm(self, epoch: int) -> None:
        """After an object sealed under ``epoch`` failed to open with the key the cache gave
        (the keyring not opened yet by this command): open the keyring once, as without a
        cache, before the object is blamed. Its check against the keys held raises ForkError
        if keys.json holds another key for the epoch (the cache and the store disagree: a
        cached key is never replaced by keys.json's, or a store could wrap a key of its own
        to a machine); a cached key damaged on disk is not held at all (``KeyCache``, its
        kid). Any other failure to open keys.json leaves the object's error to be said."""
        with self._lock:
            if self._keys is not None or self._cached is None or epoch not in self._cached[1]:
                return
        try:
            self.opened().refresh()
        except ForkError:
            raise
        except (MemfsError, OSError):  # keys.json unreadable, or refused: the object's error
            return

    def _from_cache(self) -> tuple[bytes, dict[int, bytes]] | None:
        """The repo id and the cached keys (None once the keyring is open, or with no repo id
        known for the URL); the caller holds the lock."""
        if self._keys is not None:
            return None
        if self._cached is None:
            repo_id = self.remote.repo_id()
            if repo_id is None:
                return None
            self._cached = repo_id, self.remote.key_cache(repo_id).held()
        return self._cached

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
        self._folder: Path | None = None
        self._cache: tuple[bytes, KeyCache] | None = None  # repo id, its key cache
        self._guard: ManifestGuard | None = None
        self._read_identity = False  # memfs.json read by this remote (not only remembered)
        self._none_here = False  # memfs.json read, absent, and no manifest: no agent here yet
        self.stubbed = False  # this process put the stub manifest.json (the first push)
        self.claiming: Claiming | None = None  # a first push's keys.json, stub on their way
        self._followed = False  # keys.json read for a manifest marked ROTATING
        # The AEAD's compiled binding (~1 ms) is loaded now, by the thread that opens the
        # remote, before a push or pull starts reading the manifest on another: loaded there,
        # beside this thread's own imports (the repository's), cryptography's binding then
        # cost a push 4-13 ms of wall in A/B runs (the two threads contend for the
        # interpreter), CPU unchanged.
        # Every command that opens an encrypted remote seals or opens something with it; only
        # a watcher's poll answered unchanged does not, once per watcher.
        load_cipher()

    def uploading_after(
        self, reading: Reading | None
    ) -> Callable[[BucketRemote, PackFiles], UploadingSealed]:
        """How ``BucketRemote`` starts a pack's upload ahead of its push: sealed after
        ``reading`` (the manifest's read its ``prefetch`` started; None: read already) has
        opened the manifest."""
        return lambda remote, pack: UploadingSealed(remote, pack, self, reading)

    # -- keys ---------------------------------------------------------------------------

    def identity(self) -> Identity:
        """This machine's identity (created if it has none)."""
        from memfs.crypto.identity import ensure_identity

        if self._identity is None:
            self._identity = ensure_identity()
        return self._identity

    def folder(self) -> Path:
        """This machine's config folder, where its identity, key caches and pins are (found
        without reading the identity: a command with its keys cached needs none)."""
        if self._folder is None:
            from memfs.crypto.keycache import config_dir

            self._folder = config_dir()
        return self._folder

    def pins(self) -> RepoPins:
        return RepoPins(self.folder())

    def key_cache(self, repo_id: bytes) -> KeyCache:
        """This machine's key cache of the agent ``repo_id``: one object per remote, so the
        guard's read of its ``seen`` record gives the keys too (``KeyCache.held``)."""
        from memfs.crypto.keycache import KeyCache

        if self._cache is None or self._cache[0] != repo_id:
            self._cache = repo_id, KeyCache.for_repo(repo_id, self.folder())
        return self._cache[1]

    def repo_id(self) -> bytes | None:
        """The agent's repo id: remembered for this URL, else memfs.json's (remembered)."""
        pinned = self.pins().get(self.url)
        if pinned is not None or self._none_here:
            return pinned
        from memfs.crypto.keyfile import stored_repo_id

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
        from memfs.crypto.keyfile import stored_repo_id

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
        cache = KeyCache.for_repo(repo_id, identity.config_dir)  # its own: read afresh
        return open_keys(self.raw, repo_id, identity, cache)

    def guard(self) -> ManifestGuard | None:
        """The rollback guard of this URL on this machine; None while no agent is here."""
        if self._guard is None:
            repo_id = self.repo_id()
            if repo_id is None:
                return None
            self._guard = ManifestGuard(self.url, self.key_cache(repo_id))
        return self._guard

    # -- the manifest -------------------------------------------------------------------

    def read_manifest(
        self, parse: Callable[[bytes], BucketManifest], etag: str | None = None
    ) -> tuple[BucketManifest | None, str | None] | Unchanged:
        """The sealed manifest and its ETag (``UNCHANGED`` if ``etag`` still holds), checked
        by the guard; (None, None) when nothing was pushed yet."""
        first = self._read_unpinned() if etag is None and self._unpinned() else None
        guard = self.guard()
        seen = guard.before() if guard is not None else None
        plain: Got | None = None
        if first is not None:  # asked with memfs.json (its repo id pinned, if it is there)
            sealed, plain = first
            got = None if sealed is None else self.storage.opened(MANIFEST, sealed)
        elif guard is None:  # no memfs.json: nothing was pushed here, unless planted plain
            # both asked at once (one round trip on S3, not two): a first push needs both
            sealed, plain = at_once(self.raw, [MANIFEST + SUFFIX, MANIFEST])
            got = None if sealed is None else self._no_identity()
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
            plain = plain if guard is None or first is not None else self.raw.get(MANIFEST)
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
        guard.accept(manifest.generation, digest, epoch, seen)
        self._follow_rotation(manifest)
        return manifest, got[1]

    def _follow_rotation(self, manifest: BucketManifest) -> None:
        """A manifest marked ``ROTATING`` to an epoch beyond the newest this machine holds:
        keys.json is read now (once a command), so what this command seals is sealed under the
        newest epoch keys.json gives it, and a machine the rotation removed gets NoKeyError
        here, before anything is uploaded. An unmarked manifest costs nothing."""
        mark = manifest.extra.get(ROTATING)
        if self._followed or not isinstance(mark, int) or isinstance(mark, bool):
            return
        if mark > self.lazy.current()[0]:
            self._followed = True
            self.lazy.opened().refresh()

    def _unpinned(self) -> bool:
        """Whether this machine knows no repo id for the URL and has not looked it up yet."""
        return self._guard is None and not self._read_identity and self.pins().get(self.url) is None

    def _read_unpinned(self) -> tuple[Got | None, Got | None] | None:
        """The first read at a URL this machine has no repo id for: both manifests and
        memfs.json asked at once (one round trip instead of three). memfs.json's repo id is
        pinned, and then (sealed, plain) is the manifests' answer; with no memfs.json and no
        manifest, nothing was pushed here: ((None, None), the repo id None without another
        read). Anything else (a plain agent, a manifest without memfs.json) returns None:
        the read goes the usual way, memfs.json and keys.json asked one after another."""
        from memfs.crypto.keyfile import repo_id_in

        sealed, plain, identity = at_once(self.raw, [MANIFEST + SUFFIX, MANIFEST, IDENTITY])
        if identity is not None:
            repo_id = repo_id_in(self.raw, IDENTITY, identity[0], ("encryption", "repo_id"))
            if repo_id is None:
                return None
            self._read_identity = True
            self.pins().pin(self.url, repo_id)
            return sealed, plain
        if sealed is not None or (plain is not None and not is_stub(plain[0])):
            return None
        self._none_here = True
        return None, plain

    def put_manifest(
        self, manifest: BucketManifest, etag: str | None, encode: Callable[[BucketManifest], bytes]
    ) -> bool:
        """Compare-and-swap the sealed manifest (create it when ``etag`` is None), naming the
        ciphertext it replaces in ``prev``; the guard's record follows a swap that landed."""
        extra = dict(manifest.extra)
        extra.pop("prev", None)
        mark = extra.get(ROTATING)
        if isinstance(mark, int) and self.lazy.current()[0] >= mark:
            extra.pop(ROTATING)  # sealed under the epoch the rotation moved to: done
        if etag is not None:
            extra["prev"] = self.storage.digest(MANIFEST)
        manifest = manifest._replace(extra=extra)
        if etag is None:
            if not self.stubbed:
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
        memfs.json (with the ``encryption`` block) and the keyring
        (``memfs.remotes.sealedclaim``). What goes into the sealed manifest about the agent
        (``agent_id``, ``created_at``)."""
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
        from memfs.remotes.sealedclaim import first_claim

        return first_claim(self, agent)
