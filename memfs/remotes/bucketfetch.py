"""Fetching from an object-store remote: the packs the local repo lacks, imported.

A fetch reads the manifest (or takes the read the push or poll before it made), downloads the
packs it lists that this repo lacks, a few at a time, and imports each: the index is rebuilt
from the pack, never trusted, except on a first fetch (a clone), where the index the pusher
uploaded is checked against its pack and the objects a checkout reads are hashed before
anything is stored (memfs.packcheck). A pack a compaction deleted meanwhile makes it read the
manifest again. ``BucketRemote.fetch`` and compaction (memfs.remotes.bucketgc) call these.
"""

from __future__ import annotations

from memfs.errors import NotAMemfsRemoteError, PackCorruptError, RemoteCorruptError, RemoteError
from memfs.faults import crash_point

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs.history import History
    from memfs.remotes.bucket import BucketRemote

FETCH_BATCH = 8  # packs downloaded at once: small packs overlap, big ones stay bounded in memory


class PackGone(Exception):
    """A pack the manifest listed has been deleted by a compaction: read the manifest again."""


def fetch(remote: BucketRemote, history: History, branch: str) -> str | None:
    """Import the packs the local repo lacks; the branch's sha, or None if absent."""
    remote._taken()
    for attempt in range(3):
        if attempt == 0 and remote._last_read is not None:
            manifest = remote._last_read[0]  # read by head() just now: one GET less per race
        else:
            manifest, _ = remote.read_manifest()
        remote._note_encrypted(history)
        if manifest is None and remote.storage.list(""):
            raise NotAMemfsRemoteError(remote.url, branch, "it holds files but no manifest.json")
        if manifest is None or branch not in manifest.refs:
            return None
        sha = manifest.refs[branch]
        if history.has_commit(sha):
            return sha
        try:
            import_holding(remote, history, manifest.packs, [sha])
        except PackGone:
            continue  # a compaction replaced the packs: the new manifest lists the new one
        if not history.has_commit(sha):
            raise RemoteCorruptError(
                remote.url, f"the manifest names {sha[:7]} but no pack holds it"
            )
        return sha
    raise RemoteError(
        remote.url, f"{remote.url}: packs kept disappearing while fetching; try again"
    )


def import_holding(
    remote: BucketRemote, history: History, names: list[str], shas: list[str]
) -> None:
    """``_import``, then, if a commit of ``shas`` is still missing, once more without the
    held-packs record of ``names``: it vouched for objects git gc has pruned since."""
    _import(remote, history, names, shas[0] if len(shas) == 1 else None)
    if not all(history.has_commit(sha) for sha in shas) and history.release_packs(names):
        _import(remote, history, names)


def _import(
    remote: BucketRemote, history: History, names: list[str], tip: str | None = None
) -> None:
    missing = [name for name in names if not history.has_pack(name)]
    if missing:
        history.drop_unpacked()  # keep this fetch's objects (for a checkout), not the last's
    if missing and tip is not None and history.head() is None:
        _import_checked(remote, history, missing, tip)
        return
    received = done = 0
    for start in range(0, len(missing), FETCH_BATCH):
        batch = missing[start : start + FETCH_BATCH]
        # the .idx is rebuilt here, never trusted: only the .pack is downloaded, unless the
        # manifest's prefetch did already (BucketRemote.download_ahead)
        packs: dict[str, bytes | None] = dict(remote.take_downloaded(batch))
        rest = [name for name in batch if name not in packs]
        if rest:
            got = remote.storage.get_many([f"packs/{name}.pack" for name in rest])
            packs.update(
                (n, g[0] if g is not None else None) for n, g in zip(rest, got, strict=True)
            )
        for name in batch:
            pack = packs[name]
            if pack is None:
                raise PackGone(name)
            received += len(pack)
            done += 1
            remote.progress(f"fetched pack {done}/{len(missing)}, {size_text(received)}")
            crash_point("fetch.import")
            try:
                history.import_pack(name, pack)
            except PackCorruptError as error:
                raise RemoteCorruptError(remote.url, str(error)) from error


def _import_checked(remote: BucketRemote, history: History, names: list[str], tip: str) -> None:
    """A first fetch (a clone): each pack with the index its pusher uploaded beside it,
    checked against the pack instead of rebuilt object by object, and the objects a
    checkout of ``tip`` reads hashed, before anything is stored (``memfs.packcheck``)."""
    from memfs.packcheck import check_received
    from memfs.packs import PackError

    received: list[tuple[str, bytes, bytes | None]] = []
    size = 0
    for start in range(0, len(names), FETCH_BATCH):
        batch = names[start : start + FETCH_BATCH]
        got = remote.storage.get_many(
            [f"packs/{name}{suffix}" for name in batch for suffix in (".pack", ".idx")]
        )
        for name, pack, index in zip(batch, got[::2], got[1::2], strict=True):
            if pack is None:
                raise PackGone(name)
            received.append((name, pack[0], index[0] if index is not None else None))
            size += len(pack[0]) + (len(index[0]) if index is not None else 0)
            remote.progress(f"fetched pack {len(received)}/{len(names)}, {size_text(size)}")
    try:
        checked, objects = check_received(received, bytes.fromhex(tip))
    except PackError as error:
        raise RemoteCorruptError(remote.url, str(error)) from error
    for item in checked:
        crash_point("fetch.import")
        history.import_pack(item.name, item.pack, item.index)
    history.keep_unpacked(objects)


def size_text(n: int) -> str:
    """A byte count as progress shows it."""
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"
