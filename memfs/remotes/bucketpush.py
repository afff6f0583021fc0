"""A push to an object-store remote: upload the pack, then compare-and-swap the manifest.

The write half of ``memfs.remotes.bucket.BucketRemote`` (whose methods call these): a push
uploads its pack and index (create-if-absent, named by their content), then moves the
manifest with a compare-and-swap on the ETag it read; a lost race is an ordinary
PushRejectedError. The uploads that overlap a push's other work (``upload_ahead`` before its
commit, ``head_while_uploading`` beside its manifest read) start here too, and the swap
without a pack that secrets and key rotations make (``update_manifest``). Apart from the
reading half because a fetch, a pull or a poll never writes: they do not load it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable

from memfs.errors import PushRejectedError, RemoteError
from memfs.faults import crash_point
from memfs.remotes.background import Keeping, Putting, Uploading
from memfs.remotes.bucket import IDENTITY, MANIFEST, BucketRemote
from memfs.remotes.bucketfetch import size_text
from memfs.remotes.manifest import BucketIdentity, BucketManifest
from memfs.schema import MANIFEST_FILE, manifest_data
from memfs.util import hostname, utc_now_text

COMPACT_PACKS_ENV = "MEMFS_COMPACT_PACKS"  # a push compacts when the manifest lists more
DEFAULT_COMPACT_PACKS = 50

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.history import History
    from memfs.history.packing import PackFiles


def compact_if_due(remote: BucketRemote, history: History, listed: int) -> None:
    """Compact once the manifest lists more than ``MEMFS_COMPACT_PACKS`` packs
    (memfs.remotes.bucketgc, loaded only then)."""
    from memfs.config import count_from_env  # loaded by the push already

    limit = count_from_env(COMPACT_PACKS_ENV, DEFAULT_COMPACT_PACKS)
    if listed > limit and not remote._contended:
        from memfs.remotes.bucketgc import compact_after_push

        compact_after_push(remote, history)


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


def head_while_uploading(
    remote: BucketRemote, history: History, branch: str, new: str, guess: str
) -> str | None:
    """``head(branch)``, with the upload of ``new``'s pack overlapping the manifest read.

    ``guess`` is where this machine last saw the branch here (its remote-tracking ref,
    an ancestor of ``new``): the pack of what ``new`` adds to it is uploaded on a thread
    while the manifest is read, one round trip less for a push. If the branch is indeed
    at ``guess``, the next ``push`` of ``new`` swaps the manifest at once; if not (others
    pushed meanwhile), the pack is left unlisted, as a lost race leaves one, and the push
    goes the usual way.
    """
    ahead, remote._ahead = remote._ahead, None
    if ahead is not None and ahead[:2] == (new, guess):
        pack, sealed, uploading = ahead[2:]
    else:
        if ahead is not None:  # the commit before the push moved the branch: left unlisted
            with contextlib.suppress(Exception):
                ahead[4].wait()
        pack = history.pack_between([new], [guess])
        if pack is None:
            return remote.head(branch)
        sealed = remote.sealed is not None
        uploading = _uploading(remote, pack)
    head: str | None = guess  # until read (a failed read unsends nothing for it)
    try:
        head = remote.head(branch)
    finally:
        try:
            uploading.wait()
        finally:
            if not sealed and (remote.sealed is not None or head is None):
                _unsend(remote, pack.name)  # (no agent there now: the push refuses it)
    remote._uploaded = (new, guess, pack) if head == guess and sealed == remote.encrypted else None
    remote._note_encrypted(history)
    return head


def _uploading(remote: BucketRemote, pack: PackFiles) -> Uploading:
    """The upload of a push's pack beside the manifest's read. Sealed, it waits for the read
    (started here if none is pending) to open the manifest: a machine removed from the agent
    finds out there, before it uploads anything (review10 F3); no request more, the read is
    the one ``head`` takes."""
    if remote.sealed is None:
        return Uploading(remote, pack)
    remote.prefetch()
    return remote.sealed.uploading_after(remote._reading)(remote, pack)


def upload_ahead(remote: BucketRemote, history: History, new: str, guess: str) -> None:
    """Start uploading the pack of what ``new`` adds to ``guess`` now, before the commit a
    push makes first, so the upload overlaps that commit's scan of the work tree; the
    ``head_while_uploading`` of the same two commits takes it over. If the commit moves
    the branch, the pack is left unlisted (as a lost race leaves one) and another made.
    An encrypted remote seals it once the manifest's read (``prefetch``) has opened the
    manifest: the agent, its keys and their epoch are then known (``UploadingSealed``)."""
    if remote._ahead is not None:
        return
    start: Callable[[BucketRemote, PackFiles], Uploading] = Uploading
    if remote.encrypt:
        if remote.sealed is None or remote._reading is None:
            return  # nothing read yet: sealing is left to the push, after the commit
        start = remote.sealed.uploading_after(remote._reading)
    pack = history.pack_between([new], [guess])
    if pack is not None:
        remote._ahead = (new, guess, pack, remote.sealed is not None, start(remote, pack))


def _unsend(remote: BucketRemote, name: str) -> None:
    """Delete a pack uploaded in the clear before the read found the agent encrypted (a
    remote not yet marked so, whose tracking ref predates the marking): it is uploaded
    again sealed by the push."""
    remote.raw.delete(f"packs/{name}.idx")
    remote.raw.delete(f"packs/{name}.pack")


def push(
    remote: BucketRemote, history: History, branch: str, new: str, expected: str | None
) -> None:
    """Upload what the remote lacks, then compare-and-swap the manifest to ``new``."""
    remote._taken()
    manifest, etag = remote._last_read if remote._last_read is not None else remote.read_manifest()
    remote._last_read = None  # a cached read serves one push; the swap checks it anyway
    uploaded, remote._uploaded = remote._uploaded, None
    remote._note_encrypted(history)
    _check_expected(remote, manifest, branch, expected)
    if uploaded is not None and uploaded[:2] == (new, expected):
        pack: PackFiles | None = uploaded[2]  # uploaded while the manifest was read
    else:
        uploaded = None
        known = [
            sha for sha in (manifest.refs.values() if manifest else ()) if history.has_commit(sha)
        ]
        pack = history.pack_between([new], known)
    agent = _identity_at(history, new, manifest, branch)
    if remote.sealed is not None:  # the first push makes memfs.json and the keyring first
        agent = {**agent, **remote.sealed.claim(manifest, agent)}
    keeping = Keeping(history, pack) if pack is not None else None
    claiming = remote.sealed.claiming if remote.sealed is not None else None
    try:
        if uploaded is None:  # a first push's keys.json and stub land beside it
            manifest, etag = _upload(remote, pack, manifest, etag, branch, expected)
        if claiming is not None:
            _settle_claim(remote, pack)
            claiming = None
        _reseal_if_stale(remote, pack)
        listed = _swap(remote, history, branch, new, manifest, etag, pack, agent)
    finally:
        if claiming is not None:  # failing: its threads are joined, their errors dropped
            claiming.abandon()
        if keeping is not None:
            keeping.wait()
    compact_if_due(remote, history, listed)


def _upload(
    remote: BucketRemote,
    pack: PackFiles | None,
    manifest: BucketManifest | None,
    etag: str | None,
    branch: str,
    expected: str | None,
) -> tuple[BucketManifest | None, str | None]:
    """Upload the pack and its index; the manifest to swap (read again if contended)."""
    if pack is None:
        return manifest, etag
    put_pack(remote, pack)
    if remote._contended:
        # Others are pushing too: read again after the uploads, so that the swap
        # follows its read at once instead of racing the whole upload (one GET more).
        manifest, etag = remote.read_manifest()
        _check_expected(remote, manifest, branch, expected)
        remote._last_read = None
    return manifest, etag


def _settle_claim(remote: BucketRemote, pack: PackFiles | None) -> None:
    """Wait for the first push's keys.json and stub manifest.json (before the manifest: a
    reader must find the keyring the manifest is sealed under). If another first push of the
    agent put its keyring first, the pack sealed under this push's own key is sealed again
    under the keys there (``SealedStorage`` replaces a pack there that does not open)."""
    assert remote.sealed is not None and remote.sealed.claiming is not None
    claiming, remote.sealed.claiming = remote.sealed.claiming, None
    if not claiming.settle(remote.sealed) and pack is not None:
        remote.storage.put_if_absent(f"packs/{pack.name}.pack", pack.pack)


def _reseal_if_stale(remote: BucketRemote, pack: PackFiles | None) -> None:
    """A pack sealed under an older epoch than the newest this push has learnt (a key
    rotation landed while it uploaded: the manifest read told it) is sealed again before
    the manifest lists it, so a machine the rotation removed cannot read it."""
    if remote.sealed is None or pack is None:
        return
    key = f"packs/{pack.name}.pack"
    sealed_under = remote.sealed.storage.epoch(key)
    if sealed_under is not None and sealed_under < remote.sealed.lazy.current()[0]:
        remote.storage.put_if_absent(key, pack.pack)  # there already: sealed again in place


def put_pack(remote: BucketRemote, pack: PackFiles) -> None:
    """Upload a pack and its index (create-if-absent: named by their content); on a
    plain remote both requests at once, one round trip instead of two. Neither is read
    before the manifest lists the pack, after both are done; a crash between leaves an
    unlisted pack or index, which compaction deletes as it deletes a lost race's."""
    remote.progress(f"uploading {pack.count} objects, {size_text(len(pack.pack))}")
    crash_point("push.pack")
    if remote.sealed is not None:  # sealing keeps its order (memfs.remotes.sealedremote)
        remote.storage.put_if_absent(f"packs/{pack.name}.pack", pack.pack)
        crash_point("push.index")
        remote.storage.put_if_absent(f"packs/{pack.name}.idx", pack.index)
        return
    index = Putting(remote.storage, f"packs/{pack.name}.idx", pack.index, "push.index")
    try:
        remote.storage.put_if_absent(f"packs/{pack.name}.pack", pack.pack)
    finally:
        index.wait()


def _swap(
    remote: BucketRemote,
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
    if remote.sealed is not None:  # who the agent is lives in the sealed manifest only
        sealed = {k: agent[k] for k in ("agent_id", "created_at") if agent.get(k)}
        updated = updated._replace(extra={**updated.extra, **sealed})
    crash_point("push.manifest")
    if manifest is None and remote.sealed is None:
        _claim(remote, agent)
    if not put_manifest(remote, updated, etag if manifest is not None else None):
        remote._contended = True
        raise PushRejectedError(remote.url)
    return len(packs)


def update_manifest(
    remote: BucketRemote, change: Callable[[BucketManifest], BucketManifest], attempts: int = 20
) -> BucketManifest:
    """Compare-and-swap the manifest to ``change(current)`` without a pack: what a secret
    push and a key rotation need. ``change`` gets the manifest as read and returns the
    one to write (its generation is set here); it is called again after a lost race, on
    the newer manifest, so it must re-apply its edit rather than return a stale copy.
    RemoteError if nothing was ever pushed here; PushRejectedError after ``attempts``
    lost races (jittered back-off between them)."""
    import random

    for attempt in range(attempts):
        manifest, etag = remote.read_manifest()
        if manifest is None or etag is None:
            raise RemoteError(remote.url, f"{remote.url} holds no agent yet: push one first")
        updated = change(manifest)._replace(generation=manifest.generation + 1)
        if put_manifest(remote, updated, etag):
            remote._last_read = None
            return updated
        time.sleep(random.uniform(0, 0.02 * (attempt + 1)))
    raise PushRejectedError(remote.url, "the manifest kept changing")


def put_manifest(remote: BucketRemote, manifest: BucketManifest, etag: str | None) -> bool:
    """Compare-and-swap the manifest (create it if ``etag`` is None); sealed, with the
    digest of the ciphertext it replaces, on an encrypted remote."""
    if remote.sealed is not None:
        return remote.sealed.put_manifest(manifest, etag, _encode)
    if etag is None:
        return remote.storage.put_if_absent(MANIFEST, _encode(manifest))
    return remote.storage.put_if_match(MANIFEST, _encode(manifest), etag)


def _check_expected(
    remote: BucketRemote, manifest: BucketManifest | None, branch: str, expected: str | None
) -> None:
    if (manifest.refs.get(branch) if manifest else None) != expected:
        remote._contended = True
        raise PushRejectedError(remote.url)


def _claim(remote: BucketRemote, agent: dict[str, Any]) -> None:
    """Write memfs.json once; refuse if another agent already lives at this URL."""
    identity = BucketIdentity(
        name=str(agent.get("name", "")),
        id=str(agent.get("id", "")),
        created_at=str(agent.get("created_at", "")),
    )
    if remote.storage.put_if_absent(IDENTITY, json.dumps(identity.to_json(), indent=1).encode()):
        return
    existing = remote.identity()
    if existing is not None and existing.id != identity.id:
        raise RemoteError(
            remote.url,
            f"{remote.url} holds another agent ({existing.name}, {existing.id}); "
            "push to another URL or name",
        )


STUB = {"format": 2, "encryption": "memfs-enc-1"}


def _encode(manifest: BucketManifest) -> bytes:
    return json.dumps(manifest.to_json(), indent=1, sort_keys=True).encode()
