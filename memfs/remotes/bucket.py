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

Compaction of the packs is memfs.remotes.bucketgc; the steps a push runs on threads beside
its requests are memfs.remotes.background.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable

from memfs.errors import (
    PushRejectedError,
    RemoteCorruptError,
    RemoteError,
)
from memfs.faults import crash_point
from memfs.jsonbound import loads as bounded_loads
from memfs.remotes import BUCKET_PREFIX, redact
from memfs.remotes.background import Keeping, PacksFor, Putting, Reading, Uploading
from memfs.remotes.bucketfetch import fetch, size_text
from memfs.remotes.bucketgc import DEFAULT_GRACE_S, compact, compact_if_due
from memfs.remotes.manifest import (
    BucketIdentity,
    BucketManifest,
    ManifestInvalid,
    parse_identity,
    parse_manifest,
)
from memfs.remotes.storage import Storage, Unchanged, open_storage
from memfs.schema import MANIFEST_FILE, manifest_data
from memfs.util import hostname, utc_now_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.history import History
    from memfs.history.packing import PackFiles
    from memfs.remotes.sealedremote import SealedRemote

MANIFEST = "manifest.json"
IDENTITY = "memfs.json"
Progress = Callable[[str], None]


def _agent_identity(history: History, sha: str) -> dict[str, Any]:
    """Who the agent at ``sha`` is: its agent.yaml, or for a Letta Code repo (no agent.yaml
    in its tree) what memfs recorded in .git/config (``[memfs]``: memfs.opening)."""
    data = manifest_data(history.file_at(sha, MANIFEST_FILE))
    if data:
        return data
    keys = {"name": "name", "id": "id", "created_at": "created", "description": "description"}
    found = {key: history.config_value("memfs", name) for key, name in keys.items()}
    return {key: value for key, value in found.items() if value}


def _identity_at(
    history: History, sha: str, manifest: BucketManifest | None, branch: str
) -> dict[str, Any]:
    """``_agent_identity`` for a push of ``sha``: the manifest's name and description as they
    are when ``sha`` holds the agent.yaml of the commit the manifest names (most pushes), so
    no YAML is parsed; read from agent.yaml otherwise."""
    before = manifest.refs.get(branch) if manifest is not None else None
    if manifest is not None and manifest.name is not None and before is not None:
        entry = history.entries_at(sha, MANIFEST_FILE)
        same = entry and history.has_commit(before)
        if same and entry == history.entries_at(before, MANIFEST_FILE):
            return {"name": manifest.name, "description": manifest.description}
    return _agent_identity(history, sha)


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
            from memfs.remotes import record_encrypted

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
        """``head(branch)``, with the upload of ``new``'s pack overlapping the manifest read.

        ``guess`` is where this machine last saw the branch here (its remote-tracking ref,
        an ancestor of ``new``): the pack of what ``new`` adds to it is uploaded on a thread
        while the manifest is read, one round trip less for a push. If the branch is indeed
        at ``guess``, the next ``push`` of ``new`` swaps the manifest at once; if not (others
        pushed meanwhile), the pack is left unlisted, as a lost race leaves one, and the push
        goes the usual way.
        """
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[:2] == (new, guess):
            pack, sealed, uploading = ahead[2:]
        else:
            if ahead is not None:  # the commit before the push moved the branch: left unlisted
                with contextlib.suppress(Exception):
                    ahead[4].wait()
            pack = history.pack_between([new], [guess])
            if pack is None:
                return self.head(branch)
            sealed = self.sealed is not None
            uploading = Uploading(self, pack)
        try:
            head = self.head(branch)
        finally:
            try:
                uploading.wait()
            finally:
                if not sealed and self.sealed is not None:
                    self._unsend(pack.name)
        self._uploaded = (new, guess, pack) if head == guess and sealed == self.encrypted else None
        self._note_encrypted(history)
        return head

    def upload_ahead(self, history: History, new: str, guess: str) -> None:
        """Start uploading the pack of what ``new`` adds to ``guess`` now, before the commit a
        push makes first, so the upload overlaps that commit's scan of the work tree; the
        ``head_while_uploading`` of the same two commits takes it over. If the commit moves
        the branch, the pack is left unlisted (as a lost race leaves one) and another made.
        An encrypted remote seals it once the manifest's read (``prefetch``) has opened the
        manifest: the agent, its keys and their epoch are then known (``UploadingSealed``)."""
        if self._ahead is not None:
            return
        start: Callable[[BucketRemote, PackFiles], Uploading] = Uploading
        if self.encrypt:
            if self.sealed is None or self._reading is None:
                return  # nothing read yet: sealing is left to the push, after the commit
            start = self.sealed.uploading_after(self._reading)
        pack = history.pack_between([new], [guess])
        if pack is not None:
            self._ahead = (new, guess, pack, self.sealed is not None, start(self, pack))

    def _unsend(self, name: str) -> None:
        """Delete a pack uploaded in the clear before the read found the agent encrypted (a
        remote not yet marked so, whose tracking ref predates the marking): it is uploaded
        again sealed by the push."""
        self.raw.delete(f"packs/{name}.idx")
        self.raw.delete(f"packs/{name}.pack")

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

    # -- writing ------------------------------------------------------------------------

    def push(self, history: History, branch: str, new: str, expected: str | None) -> None:
        """Upload what the remote lacks, then compare-and-swap the manifest to ``new``."""
        self._taken()
        manifest, etag = self._last_read if self._last_read is not None else self.read_manifest()
        self._last_read = None  # a cached read serves one push; the swap checks it anyway
        uploaded, self._uploaded = self._uploaded, None
        self._note_encrypted(history)
        self._check_expected(manifest, branch, expected)
        if uploaded is not None and uploaded[:2] == (new, expected):
            pack: PackFiles | None = uploaded[2]  # uploaded while the manifest was read
        else:
            uploaded = None
            known = [
                sha
                for sha in (manifest.refs.values() if manifest else ())
                if history.has_commit(sha)
            ]
            pack = history.pack_between([new], known)
        agent = _identity_at(history, new, manifest, branch)
        if self.sealed is not None:  # the first push makes memfs.json and the keyring first
            agent = {**agent, **self.sealed.claim(manifest, agent)}
        keeping = Keeping(history, pack) if pack is not None else None
        try:
            if uploaded is None:
                manifest, etag = self._upload(pack, manifest, etag, branch, expected)
            self._reseal_if_stale(pack)
            listed = self._swap(history, branch, new, manifest, etag, pack, agent)
        finally:
            if keeping is not None:
                keeping.wait()
        compact_if_due(self, history, listed)

    def _upload(
        self,
        pack: PackFiles | None,
        manifest: BucketManifest | None,
        etag: str | None,
        branch: str,
        expected: str | None,
    ) -> tuple[BucketManifest | None, str | None]:
        """Upload the pack and its index; the manifest to swap (read again if contended)."""
        if pack is None:
            return manifest, etag
        self._put_pack(pack)
        if self._contended:
            # Others are pushing too: read again after the uploads, so that the swap
            # follows its read at once instead of racing the whole upload (one GET more).
            manifest, etag = self.read_manifest()
            self._check_expected(manifest, branch, expected)
            self._last_read = None
        return manifest, etag

    def _reseal_if_stale(self, pack: PackFiles | None) -> None:
        """A pack sealed under an older epoch than the newest this push has learnt (a key
        rotation landed while it uploaded: the manifest read told it) is sealed again before
        the manifest lists it, so a machine the rotation removed cannot read it."""
        if self.sealed is None or pack is None:
            return
        key = f"packs/{pack.name}.pack"
        sealed_under = self.sealed.storage.epoch(key)
        if sealed_under is not None and sealed_under < self.sealed.lazy.current()[0]:
            self.storage.put_if_absent(key, pack.pack)  # there already: sealed again in place

    def _put_pack(self, pack: PackFiles) -> None:
        """Upload a pack and its index (create-if-absent: named by their content); on a
        plain remote both requests at once, one round trip instead of two. Neither is read
        before the manifest lists the pack, after both are done; a crash between leaves an
        unlisted pack or index, which compaction deletes as it deletes a lost race's."""
        self.progress(f"uploading {pack.count} objects, {size_text(len(pack.pack))}")
        crash_point("push.pack")
        if self.sealed is not None:  # sealing keeps its order (memfs.remotes.sealedremote)
            self.storage.put_if_absent(f"packs/{pack.name}.pack", pack.pack)
            crash_point("push.index")
            self.storage.put_if_absent(f"packs/{pack.name}.idx", pack.index)
            return
        index = Putting(self.storage, f"packs/{pack.name}.idx", pack.index, "push.index")
        try:
            self.storage.put_if_absent(f"packs/{pack.name}.pack", pack.pack)
        finally:
            index.wait()

    def _swap(
        self,
        history: History,
        branch: str,
        new: str,
        manifest: BucketManifest | None,
        etag: str | None,
        pack: PackFiles | None,
        agent: dict[str, Any],
    ) -> int:
        """Compare-and-swap the manifest to list ``new`` (and the pack); PushRejectedError if
        it changed since it was read. The number of packs it lists now."""
        packs = list(manifest.packs) if manifest else []
        if pack is not None and pack.name not in packs:
            packs.append(pack.name)
        updated = BucketManifest(
            generation=(manifest.generation + 1) if manifest else 1,
            refs={**(manifest.refs if manifest else {}), branch: new},
            packs=packs,
            retired=list(manifest.retired) if manifest else [],
            push_id=os.urandom(16).hex(),  # as uuid4().hex, opaque: uuid imports platform
            pushed_at=utc_now_text(),
            host=hostname(),
            name=str(agent.get("name", "")),
            description=str(agent.get("description", "") or ""),
            extra=manifest.extra if manifest else {},  # what a newer memfs wrote is kept
        )
        if self.sealed is not None:  # who the agent is lives in the sealed manifest only
            sealed = {k: agent[k] for k in ("agent_id", "created_at") if agent.get(k)}
            updated = updated._replace(extra={**updated.extra, **sealed})
        crash_point("push.manifest")
        if manifest is None and self.sealed is None:
            self._claim(agent)
        if not self._put_manifest(updated, etag if manifest is not None else None):
            self._contended = True
            raise PushRejectedError(self.url)
        return len(packs)

    def update_manifest(
        self, change: Callable[[BucketManifest], BucketManifest], attempts: int = 20
    ) -> BucketManifest:
        """Compare-and-swap the manifest to ``change(current)`` without a pack: what a secret
        push and a key rotation need. ``change`` gets the manifest as read and returns the
        one to write (its generation is set here); it is called again after a lost race, on
        the newer manifest, so it must re-apply its edit rather than return a stale copy.
        RemoteError if nothing was ever pushed here; PushRejectedError after ``attempts``
        lost races (jittered back-off between them)."""
        import random

        for attempt in range(attempts):
            manifest, etag = self.read_manifest()
            if manifest is None or etag is None:
                raise RemoteError(self.url, f"{self.url} holds no agent yet: push one first")
            updated = change(manifest)._replace(generation=manifest.generation + 1)
            if self._put_manifest(updated, etag):
                self._last_read = None
                return updated
            time.sleep(random.uniform(0, 0.02 * (attempt + 1)))
        raise PushRejectedError(self.url, "the manifest kept changing")

    def _put_manifest(self, manifest: BucketManifest, etag: str | None) -> bool:
        """Compare-and-swap the manifest (create it if ``etag`` is None); sealed, with the
        digest of the ciphertext it replaces, on an encrypted remote."""
        if self.sealed is not None:
            return self.sealed.put_manifest(manifest, etag, _encode)
        if etag is None:
            return self.storage.put_if_absent(MANIFEST, _encode(manifest))
        return self.storage.put_if_match(MANIFEST, _encode(manifest), etag)

    def compact(
        self,
        history: History,
        grace_s: float = DEFAULT_GRACE_S,
        orphans: bool = True,
        reseal: bool = False,
    ) -> tuple[int, int]:
        """memfs.remotes.bucketgc.compact: one pack for the listed ones, the expired deleted."""
        self.settle()
        return compact(self, history, grace_s, orphans, reseal)

    def _check_expected(
        self, manifest: BucketManifest | None, branch: str, expected: str | None
    ) -> None:
        if (manifest.refs.get(branch) if manifest else None) != expected:
            self._contended = True
            raise PushRejectedError(self.url)

    def _claim(self, agent: dict[str, Any]) -> None:
        """Write memfs.json once; refuse if another agent already lives at this URL."""
        identity = BucketIdentity(
            name=str(agent.get("name", "")),
            id=str(agent.get("id", "")),
            created_at=str(agent.get("created_at", "")),
        )
        if self.storage.put_if_absent(IDENTITY, json.dumps(identity.to_json(), indent=1).encode()):
            return
        existing = self.identity()
        if existing is not None and existing.id != identity.id:
            raise RemoteError(
                self.url,
                f"{self.url} holds another agent ({existing.name}, {existing.id}); "
                "push to another URL or name",
            )


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


def _encode(manifest: BucketManifest) -> bytes:
    return json.dumps(manifest.to_json(), indent=1, sort_keys=True).encode()
