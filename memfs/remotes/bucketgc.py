"""Compaction of a bucket's packs (DESIGN.md §5): many packs listed by the manifest become
one, the ones it replaced are deleted after a grace period, and packs no manifest lists (lost
push races) are deleted once no push in flight can still list them. A push compacts by
itself once the list is long; ``memfs gc --remote`` does it all at once.
"""

from __future__ import annotations

import contextlib
import time

from memfs.errors import MemfsError, PushRejectedError
from memfs.remotes.bucketfetch import import_holding
from memfs.remotes.manifest import RetiredPack

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs.history import History
    from memfs.remotes.bucket import BucketRemote
    from memfs.remotes.storage import Storage

DEFAULT_GRACE_S = 3600.0
COMPACT_GRACE_ENV = "MEMFS_COMPACT_GRACE"  # seconds a pack replaced by it stays readable


def compact_after_push(remote: BucketRemote, history: History) -> None:
    """Compact without a manual command, once a push has made the list long (every
    ``MEMFS_COMPACT_PACKS`` pushes or so). The push has landed already: a compaction
    that loses its compare-and-swap to another pusher, or fails, is left for a later
    push and never fails this one; a push that lost a race itself (others are pushing
    now) leaves it to a calmer one, as a compaction's swap would make theirs fail."""
    from memfs.config import seconds_from_env  # yaml and all: only when compacting

    # Any memfs error, not only the remote's: one that cannot build its pack here (objects
    # a held-packs record vouches for, pruned since by git gc) must not turn the landed
    # push into a failure (exit 9 with git fsck clean, the tracking ref left behind).
    grace_s = seconds_from_env(COMPACT_GRACE_ENV, DEFAULT_GRACE_S)  # a bad value: exit 2
    # The push guard (memfs.secrets.outgoing) is for what a push adds: a compaction packs
    # again what the store holds already, so it is not asked.
    check, history.outgoing_check = history.outgoing_check, None
    try:
        with contextlib.suppress(MemfsError):
            # Unlisted packs are left to a manual 'gc --remote': one may belong to a push
            # still in flight (a laptop asleep mid-push, a retry that found its pack there
            # from a killed try), and deleting it would let that push list a missing pack.
            compact(remote, history, grace_s, orphans=False)
    finally:
        history.outgoing_check = check


def compact(
    remote: BucketRemote,
    history: History,
    grace_s: float = DEFAULT_GRACE_S,
    orphans: bool = True,
    reseal: bool = False,
) -> tuple[int, int]:
    """Replace the listed packs by one; delete packs retired more than ``grace_s`` ago, and
    (``orphans``) packs no manifest lists (lost push races) older than that. ``reseal``
    (after a key rotation) builds the one pack even from one, so that it is sealed under
    the newest epoch (a pack of the same name is sealed again in place: SealedStorage).

    Returns (packs merged, packs deleted). Readers that still use a retired pack find it
    for the grace period; one that finds it gone re-reads the manifest.
    """
    from memfs.compaction import compacted_pack  # its pack writer: only when compacting

    manifest, etag = remote.read_manifest()
    if manifest is None:
        return 0, 0
    now = time.time()
    expired = [r for r in manifest.retired if now - r.retired_at >= grace_s]
    merged = 0
    packs, retired = list(manifest.packs), [r for r in manifest.retired if r not in expired]
    if len(manifest.packs) > 1 or (reseal and remote.sealed is not None and manifest.packs):
        import_holding(remote, history, manifest.packs, list(manifest.refs.values()))
        source = remote.storage
        if remote.sealed is not None:  # no .idx there: the base pack is indexed here
            source = IndexedHere(remote.storage)  # type: ignore[assignment]
        whole = compacted_pack(history, source, manifest)
        if whole is not None:
            remote.storage.put_if_absent(f"packs/{whole.name}.pack", whole.pack)
            remote.storage.put_if_absent(f"packs/{whole.name}.idx", whole.index)
            history.hold_packs([whole.name])  # built from objects here: never fetch it
            retired += [RetiredPack(name=n, retired_at=now) for n in packs if n != whole.name]
            merged, packs = len(packs), [whole.name]
    if merged or expired:
        updated = manifest._replace(
            generation=manifest.generation + 1, packs=packs, retired=retired
        )
        assert etag is not None
        if not remote._put_manifest(updated, etag):
            raise PushRejectedError(remote.url, "it changed during compaction")
    for pack in expired:
        if pack.name not in packs:
            _delete_pack(remote.storage, pack.name)
    unlisted = (
        _orphans(remote.storage, set(packs) | {r.name for r in retired}, now - grace_s)
        if orphans
        else []
    )
    for name in unlisted:
        _delete_pack(remote.storage, name)
    return merged, len(expired) + len(unlisted)


class IndexedHere:
    """An encrypted store as the compaction reads its base pack from it: the store keeps no
    ``.idx``, so one is built here from the pack just opened (``memfs.packs.index_pack``,
    which checks every object) and the base is appended to, as on a plain store, instead
    of the whole history being packed again at every compaction."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def get_many(self, keys: list[str]) -> list[tuple[bytes, str] | None]:
        from memfs.packs import PackError, index_pack

        got = self.storage.get_many(keys)
        for i, key in enumerate(keys):
            pack_key = key.removesuffix(".idx") + ".pack"
            if got[i] is not None or not key.endswith(".idx") or pack_key not in keys:
                continue
            pack = got[keys.index(pack_key)]
            if pack is not None:
                with contextlib.suppress(PackError):  # not a pack: the whole history again
                    got[i] = (index_pack(pack[0]).index_bytes(), "")
        return got


def _orphans(storage: Storage, listed: set[str], older_than: float) -> list[str]:
    """Packs no manifest lists (uploaded by a push that lost its race), old enough that no
    push still in flight can be about to list them."""
    names = {key.rsplit("/", 1)[-1].rsplit(".", 1)[0] for key in storage.list("packs")}
    orphans = []
    for name in sorted(names - listed):
        stamp = storage.modified(f"packs/{name}.pack") or storage.modified(f"packs/{name}.idx")
        if stamp is not None and stamp <= older_than:
            orphans.append(name)
    return orphans


def _delete_pack(storage: Storage, name: str) -> None:
    storage.delete(f"packs/{name}.idx")
    storage.delete(f"packs/{name}.pack")
