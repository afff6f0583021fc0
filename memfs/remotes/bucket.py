"""Object-store remotes: packs plus one compare-and-swap manifest (DESIGN.md §5, format 1).

    <agent-url>/memfs.json              written once, create-if-absent
    <agent-url>/manifest.json           refs, packs, who pushed when: compare-and-swap
    <agent-url>/packs/pack-<sha>.pack   immutable, create-if-absent
    <agent-url>/packs/pack-<sha>.idx    immutable, written after its .pack

An encrypted agent (``memfs remote add --encrypt``, docs/design-encryption.md §2) keeps this
shape: its packs and manifest are sealed by ``memfs.remotes.sealed`` (``.enc`` objects, no
``.idx``), ``manifest.json`` is a plain stub that says so (format 2: old memfs refuses it),
and the compare-and-swap is on the sealed manifest's ETag. A remote not configured encrypted
finds out from the stub, and then works the same.

Data is made visible last: a push uploads its pack and index, then moves the manifest with a
compare-and-swap on the ETag it read. A lost race is an ordinary PushRejectedError (fetch,
merge, retry); packs it uploaded are harmless, being named by their content and listed by no
manifest. There are no lock files and no expiry timers. An incremental push is 4 requests:
read the manifest, write the pack, the index, the manifest. Once a push has lost a race
(others are pushing), it reads the manifest again after its uploads, so that its swap
follows a fresh read instead of racing the whole upload: 5 requests, far fewer lost swaps.

This module is the remote and its reading half (the manifest, its prefetch and poll, the
agent's identity). The writing half, the push and its uploads, is memfs.remotes.bucketpush,
loaded by the first write; fetching is memfs.remotes.bucketfetch; compaction of the packs is
memfs.remotes.bucketgc; the steps a push runs on threads beside its requests are
memfs.remotes.background.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

from memfs.errors import RemoteCorruptError, RemoteError
from memfs.jsonbound import loads as bounded_loads
from memfs.remotes import BUCKET_PREFIX, redact
from memfs.remotes.background import PacksFor, Reading, Uploading
from memfs.remotes.bucketfetch import fetch
from memfs.remotes.manifest import (
    BucketIdentity,
    BucketManifest,
    ManifestInvalid,
    parse_identity,
    parse_manifest,
)
from memfs.remotes.storage import Storage, Unchanged, open_storage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.history import History
    from memfs.history.packing import PackFiles
    from memfs.remotes.sealedremote import SealedRemote

MANIFEST = "manifest.json"
IDENTITY = "memfs.json"
Progress = Callable[[str], None]


class BucketRemote:
    """An agent stored in an object store (S3, a local folder, memory://...)."""

    def __init__(
        self,
        url: str,
        options: dict[str, Any] | None = None,
        progress: Progress | None = None,
        encrypt: bool = False,
    ) -> None:
        self.url = redact(url)
        self._config_url = url  # as .git/config has it: which remote to mark encrypted
        self.raw: Storage = open_storage(url.removeprefix(BUCKET_PREFIX), options, self.url)
        self.storage: Storage = self.raw
        self.encrypt = encrypt  # configured encrypted: a plain manifest here is a downgrade
        self.sealed: SealedRemote | None = None
        if encrypt:
            self._go_sealed()
        self.progress = progress or (lambda message: None)
        self._last_read: tuple[BucketManifest | None, str | None] | None = None
        self._contended = False  # a push through this remote lost a race: others are pushing
        # (new, guess, pack) uploaded by head_while_uploading, for the push of new that follows
        self._uploaded: tuple[str, str, PackFiles] | None = None
        # (new, guess, pack, sealed, upload) started by upload_ahead before the local commit
        self._ahead: tuple[str, str, PackFiles, bool, Uploading] | None = None
        self._reading: Reading | None = None  # the manifest's read started by ``prefetch``
        self._downloaded: dict[str, bytes] = {}  # packs by name, from ``download_ahead``
        self._prefetched = False  # _last_read is that read, not yet taken by a read_manifest

    @property
    def encrypted(self) -> bool:
        """Whether the agent here is encrypted (configured so, or found so)."""
        self.settle()
        return self.sealed is not None

    def prefetch(self, packs_for: PacksFor | None = None) -> None:
        """Start reading the manifest on a thread; the next read takes its answer.

        A push or pull starts it before its local work (the commit's scan, loading the
        repository), so the round trip, and on S3 the connection's TLS handshake, overlaps
        that work. Nothing is decided on it that a read just before would not decide: a push
        swaps the manifest only if it is still the one read (compare-and-swap). Every method
        that reads the manifest, or the state a read sets, waits for it first (``settle``).
        ``packs_for`` (a pull): the packs the fetch will need are downloaded too
        (``download_ahead``).
        """
        if self._reading is None and self._last_read is None:
            self._reading = Reading(self, packs_for)

    def download_ahead(self, history: History, branch: str, seen: str | None) -> None:
        """On the prefetching thread, once the manifest is read: download the packs it lists
        that this repository lacks, if ``branch`` moved there since this machine last saw
        it (``seen``) and they are few (one batch of the fetch), for the fetch to import
        without waiting for them. Nothing is imported here; an encrypted remote's packs are
        opened (authenticated) as the fetch would open them, with the keys the read used."""
        from memfs.remotes.bucketfetch import FETCH_BATCH

        manifest = self._last_read[0] if self._last_read is not None else None
        if manifest is None:
            return
        tip = manifest.refs.get(branch)
        if tip is None or tip == seen:
            return
        missing = [name for name in manifest.packs if not history.has_pack(name)]
        if not missing or len(missing) > FETCH_BATCH:
            return
        try:
            got = self.storage.get_many([f"packs/{name}.pack" for name in missing])
        except RemoteError:
            return  # the fetch asks again, and says what went wrong
        self._downloaded = {n: g[0] for n, g in zip(missing, got, strict=True) if g is not None}

    def take_downloaded(self, names: list[str]) -> dict[str, bytes]:
        """The packs of ``names`` ``download_ahead`` holds, handed over once."""
        return {name: self._downloaded.pop(name) for name in names if name in self._downloaded}

    def settle(self) -> None:
        """Wait for a read ``prefetch`` started, if one is pending: then ``_last_read`` is its
        answer, as if ``read_manifest`` had been called when it started. What the read raised
        is raised here."""
        reading, self._reading = self._reading, None
        if reading is not None:
            reading.wait()
            self._prefetched = True

    def _taken(self) -> None:
        """The prefetched read is used (by a fetch or a push, as they use any last read):
        the next ``read_manifest`` reads afresh."""
        self.settle()
        self._prefetched = False

    def _note_encrypted(self, history: History) -> None:
        """A remote found encrypted (not configured so) is marked so in .git/config."""
        if self.sealed is not None and not self.encrypt:
            from memfs.remotes.configure import record_encrypted

            record_encrypted(history, self._config_url)
            self.encrypt = self.sealed.expected = True

    def _go_sealed(self) -> None:
        """Work sealed from now on (``memfs.remotes.sealed``: loads the crypto modules)."""
        from memfs.remotes.sealedremote import SealedRemote

        self.sealed = SealedRemote(self.raw, self.url, expected=self.encrypt)
        self.storage = self.sealed.storage

    # -- reading ------------------------------------------------------------------------

    def read_manifest(self) -> tuple[BucketManifest | None, str | None]:
        """The manifest and its ETag, or (None, None) if nothing was ever pushed here."""
        self.settle()
        if self._prefetched and self._last_read is not None:
            self._prefetched = False
            return self._last_read
        return self.read_manifest_now()

    def read_manifest_now(self) -> tuple[BucketManifest | None, str | None]:
        """``read_manifest``, read now (the prefetching thread's read)."""
        if self.sealed is not None:
            read = self.sealed.read_manifest(self._parse_manifest)
            assert not isinstance(read, Unchanged)
            self._last_read = read
            return read
        got = self.storage.get(MANIFEST)
        if got is None:
            self._last_read = (None, None)
            return None, None
        data, etag = got
        if is_stub(data):
            self._go_sealed()
            return self.read_manifest_now()
        manifest = self._parse_manifest(data)
        self._last_read = (manifest, etag)
        return manifest, etag

    def poll(self, etag: str | None) -> tuple[BucketManifest | None, str | None] | Unchanged:
        """The manifest and its ETag if it changed since ``etag`` (the ETag of the last read),
        else ``UNCHANGED``: what an idle watcher asks every poll. An unchanged manifest costs
        no body and no parse (on S3 a conditional GET answered 304); a changed one is kept
        for the ``fetch`` that follows, as ``head`` keeps its read."""
        self._taken()
        if self.sealed is not None:
            read = self.sealed.read_manifest(self._parse_manifest, etag)
            if not isinstance(read, Unchanged):
                self._last_read = read
            return read
        got = self.storage.get_if_changed(MANIFEST, etag)
        if isinstance(got, Unchanged):
            return got
        if got is None:
            self._last_read = (None, None)
            return None, None
        if is_stub(got[0]):
            self._go_sealed()
            return self.poll(None)
        manifest = self._parse_manifest(got[0])
        self._last_read = (manifest, got[1])
        return manifest, got[1]

    def _parse_manifest(self, data: bytes) -> BucketManifest:
        """manifest.json's bytes -> the manifest; RemoteError if this memfs cannot read it."""
        try:
            raw = bounded_loads(data)
        except ValueError as error:
            raise RemoteCorruptError(self.url, "manifest.json is not valid JSON") from error
        if isinstance(raw, dict) and raw.get("format", 1) != 1:
            raise RemoteError(
                self.url,
                f"{self.url} uses manifest format {raw.get('format')!r}; this memfs reads "
                "format 1: upgrade memfs",
            )
        try:
            manifest = parse_manifest(raw)
        except ManifestInvalid as error:
            raise RemoteCorruptError(
                self.url, "manifest.json does not have the expected fields"
            ) from error
        return manifest

    def head(self, branch: str) -> str | None:
        manifest, _ = self.read_manifest()
        return manifest.refs.get(branch) if manifest else None

    def head_while_uploading(
        self, history: History, branch: str, new: str, guess: str
    ) -> str | None:
        """``head(branch)``, with the upload of ``new``'s pack (what it adds to ``guess``,
        where this machine last saw the branch) overlapping the manifest read: one round trip
        less for a push (memfs.remotes.bucketpush)."""
        from memfs.remotes.bucketpush import head_while_uploading

        return head_while_uploading(self, history, branch, new, guess)

    def upload_ahead(self, history: History, new: str, guess: str) -> None:
        """Start uploading the pack of what ``new`` adds to ``guess`` now, before the commit a
        push makes first; ``head_while_uploading`` of the same two commits takes it over
        (memfs.remotes.bucketpush)."""
        from memfs.remotes.bucketpush import upload_ahead

        upload_ahead(self, history, new, guess)

    def default_branch(self) -> str | None:
        manifest, _ = self.read_manifest()
        if manifest is None:
            return None
        if "main" in manifest.refs:
            return "main"
        return next(iter(manifest.refs)) if len(manifest.refs) == 1 else None

    def identity(self) -> BucketIdentity | None:
        """memfs.json: the agent stored here, or None if no agent is. For an encrypted agent
        its name and id are in the sealed manifest (memfs.json holds none)."""
        self.settle()
        if self.sealed is not None or self.encrypt:
            manifest, _ = self.read_manifest()
            if manifest is None:
                return None
            return BucketIdentity(
                name=manifest.name or "",
                id=str(manifest.extra.get("agent_id") or ""),
                created_at=str(manifest.extra.get("created_at") or ""),
            )
        got = self.storage.get(IDENTITY)
        if got is None:
            return None
        try:
            return parse_identity(bounded_loads(got[0]))
        except ValueError as error:  # not JSON, or ManifestInvalid
            raise RemoteCorruptError(
                self.url, "memfs.json is not a memfs agent identity"
            ) from error

    def fetch(self, history: History, branch: str) -> str | None:
        """Import the packs the local repo lacks; the branch's sha, or None if absent
        (memfs.remotes.bucketfetch)."""
        return fetch(self, history, branch)

    # -- writing: memfs.remotes.bucketpush, loaded by the first write --------------------

    def push(self, history: History, branch: str, new: str, expected: str | None) -> None:
        """Upload what the remote lacks, then compare-and-swap the manifest to ``new``."""
        from memfs.remotes.bucketpush import push

        push(self, history, branch, new, expected)

    def _put_pack(self, pack: PackFiles) -> None:
        """Upload a pack and its index (create-if-absent); what an ``Uploading`` runs."""
        from memfs.remotes.bucketpush import put_pack

        put_pack(self, pack)

    def update_manifest(
        self, change: Callable[[BucketManifest], BucketManifest], attempts: int = 20
    ) -> BucketManifest:
        """Compare-and-swap the manifest to ``change(current)`` without a pack: what a secret
        push and a key rotation need (memfs.remotes.bucketpush)."""
        from memfs.remotes.bucketpush import update_manifest

        return update_manifest(self, change, attempts)

    def _put_manifest(self, manifest: BucketManifest, etag: str | None) -> bool:
        """Compare-and-swap the manifest (create it if ``etag`` is None)."""
        from memfs.remotes.bucketpush import put_manifest

        return put_manifest(self, manifest, etag)

    def compact(
        self,
        history: History,
        grace_s: float | None = None,
        orphans: bool = True,
        reseal: bool = False,
    ) -> tuple[int, int]:
        """memfs.remotes.bucketgc.compact: one pack for the listed ones, the expired deleted
        (``grace_s`` None: its DEFAULT_GRACE_S)."""
        from memfs.remotes.bucketgc import DEFAULT_GRACE_S, compact

        self.settle()
        grace = DEFAULT_GRACE_S if grace_s is None else grace_s
        return compact(self, history, grace, orphans, reseal)


STUB = {"format": 2, "encryption": "memfs-enc-1"}


def stub_bytes() -> bytes:
    """The plain ``manifest.json`` of an encrypted agent: an old memfs refuses format 2."""
    return json.dumps(STUB, indent=1, sort_keys=True).encode()


def is_stub(data: bytes) -> bool:
    """Whether manifest.json's ``data`` is the stub of an encrypted agent."""
    if b"encryption" not in data:
        return False  # a plain manifest: no JSON parse here
    with contextlib.suppress(ValueError):
        raw = bounded_loads(data)
        return isinstance(raw, dict) and raw.get("encryption") == STUB["encryption"]
    return False
