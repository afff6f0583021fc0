"""Writing the git index: in full, by splicing the changed entries in, and the record of the
tree it was written for.

memfs keeps the index only as a stat cache (``memfs.gitindex`` reads it); after a commit,
an update or a checkout it writes the index again so ``git status`` agrees with memfs. The
write goes through git's ``index.lock`` protocol, is not fsynced (as git's), and is done by
replacing only the changed entries when the index there lists the rest (O(changes), not
10,000 entries packed again). ``.git/memfs/index-tree`` names the tree an index was written
for (git's cache-tree, in effect). Apart from the reader because a command that only reads
(``status``, ``ls``) never writes the index, and a one-file commit from its record
(``memfs.fastcommit``) only splices: neither parses the whole index for its stat cache.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from memfs import indexfile
from memfs.trees import Files, TreeEntry
from memfs.util import write_and_rename

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dulwich.file import FileLocked

# dulwich (its lock file and Index) is imported inside the writers that need it; the stat
# cache (memfs.gitindex) inside the two that compare with the index there.


def write_index(
    control_dir: Path,
    tree: Files,
    stats: Mapping[str, os.stat_result],
    cleared_stale_lock: Callable[[FileLocked], bool],
    tree_sha: str | None = None,
    changed: Collection[str] | None = None,
) -> None:
    """Rewrite the index for ``tree`` with stat data, so ``git status`` is clean.

    ``cleared_stale_lock`` is asked about an ``index.lock`` in the way (``RepoLock``'s).
    ``tree_sha``, the sha of the tree object ``tree`` lists, lets ``tree_from_index`` answer
    for that tree from the index afterwards. ``changed``: the paths where ``tree`` may differ
    from what the index lists now; if every other entry matches ``tree``, those entries are
    copied as they are and only ``changed`` are written anew (O(changes) packing, not 10,000).
    """
    data = _spliced_for(control_dir, tree, stats, changed) if changed is not None else None
    if data is None:
        data = indexfile.serialize(tree, stats)
    write_index_data(control_dir, data, cleared_stale_lock, tree_sha)


def splice_index(
    control_dir: Path,
    tree: Files,
    stats: Mapping[str, os.stat_result],
    changed: Collection[str],
    cleared_stale_lock: Callable[[FileLocked], bool],
    tree_sha: str | None = None,
) -> bool:
    """Write the index for ``tree`` by replacing the ``changed`` entries only, if the index
    lists ``tree`` at every other path; whether it could (else the caller rewrites it all)."""
    data = _spliced_for(control_dir, tree, stats, changed)
    if data is None:
        return False
    write_index_data(control_dir, data, cleared_stale_lock, tree_sha)
    return True


def write_index_data(
    control_dir: Path,
    data: bytes | bytearray,
    cleared_stale_lock: Callable[[FileLocked], bool],
    tree_sha: str | None = None,
) -> os.stat_result | None:
    """Replace the index with ``data`` under git's ``index.lock``; record ``tree_sha``. The
    stat of the index written, None if a lock kept it from being written.

    Not fsynced, as git does not fsync its index (core.fsync's default): the rename is
    atomic against a killed process, and an index lost to a power cut is a cache memfs
    ignores (checksum) and writes again; an fsync of a 10,000-entry index costs a commit
    more than the rest of its index write.
    """
    indexfile.forget_index_tree(control_dir)
    index = str(control_dir / "index")
    written = _write_locked(index, data)
    if written is None:
        # git itself is writing the index, or a crash left index.lock behind. The index is
        # only memfs's stat cache: skipping it costs re-hashing, never correctness; but a
        # stale lock would leave it (and 'git status') out of date for good.
        from dulwich.file import FileLocked

        if not cleared_stale_lock(FileLocked(index, index + ".lock")):
            return None
        written = _write_locked(index, data)
        if written is None:
            return None
    if tree_sha is not None:
        indexfile.record_index_tree(control_dir, tree_sha, indexfile.record_key(written))
    return written


def _write_locked(index: str, data: bytes | bytearray) -> os.stat_result | None:
    """Write ``data`` as ``index`` the way git and dulwich's ``GitFile`` do: into
    ``index.lock``, created exclusively (the lock), renamed over ``index``; the stat of the
    file written (the rename keeps its inode), or None if ``index.lock`` is there already.
    Not dulwich's ``GitFile``: its module costs a one-file commit ~5 ms to import."""
    lock = index + ".lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return None
    return write_and_rename(fd, lock, index, data, fsync=False)


def index_is_for(control_dir: Path, tree_sha: str) -> bool:
    """Whether the index file there now was written for tree ``tree_sha`` (the record names
    it): one stat and one small read. A write skipped because git held ``index.lock`` leaves
    no record, so the index behind HEAD is seen and written again."""
    try:
        st = os.stat(control_dir / "index")
    except OSError:
        return False
    return indexfile.recorded_tree(control_dir, st) == tree_sha


def update_index_paths(
    control_dir: Path,
    updates: Mapping[str, TreeEntry | None],
    stats: Mapping[str, os.stat_result],
    cleared_stale_lock: Callable[[FileLocked], bool],
) -> None:
    """Bring the index in line for some paths only (after an index-free commit)."""
    from memfs.gitindex import load_stat_cache

    cache = load_stat_cache(control_dir)
    if cache.raw is not None and all(
        entry is not None or name in updates for name, entry in cache.entries.items()
    ):
        replacements = {
            path: None if entry is None else indexfile.pack_entry(path, entry, stats.get(path))
            for path, entry in updates.items()
        }
        write_index_data(
            control_dir,
            indexfile.splice(cache.raw, cache.entries, cache.index_mtime_ns, replacements),
            cleared_stale_lock,
        )
        return
    from dulwich.file import FileLocked
    from dulwich.index import Index, IndexEntry, index_entry_from_stat

    indexfile.forget_index_tree(control_dir)
    index_path = str(control_dir / "index")
    try:
        index = Index(index_path)
    except (OSError, ValueError, AssertionError, struct.error, IndexError):
        index = Index(index_path, read=False)
    for path, entry in updates.items():
        key = path.encode("utf-8", "surrogateescape")
        if entry is None:
            if key in index:
                del index[key]
            continue
        st = stats.get(path)
        if st is None:
            index[key] = IndexEntry(
                ctime=0, mtime=0, dev=0, ino=0, mode=entry.mode, uid=0, gid=0,
                size=0, sha=entry.sha.encode(),
            )  # fmt: skip
        else:
            index[key] = index_entry_from_stat(st, entry.sha.encode(), mode=entry.mode)
    try:
        index.write()
    except FileLocked as error:
        if not cleared_stale_lock(error):
            return  # only a stat cache: see write_index
        with contextlib.suppress(FileLocked):
            index.write()


def _spliced_for(
    control_dir: Path, tree: Files, stats: Mapping[str, os.stat_result], changed: Collection[str]
) -> bytes | None:
    """The index for ``tree`` made from the current one, if it lists ``tree`` everywhere but
    at ``changed``; None if it does not (or is not a version 2 index, or holds a conflict).
    An entry whose stat data is not the file's now (touched, same content) is written anew
    too, so it is not hashed again by every command.

    The comparison with ``tree`` is two dicts compared in C (the index's entries as tree
    entries are made once per index read, and ``hash_worktree`` made them already), not a
    loop of tuple comparisons per entry: at 10,000 files that loop cost a commit ~30 ms."""
    from memfs.gitindex import load_stat_cache

    cache = load_stat_cache(control_dir)
    if cache.raw is None:
        return None
    entries = cache.entries
    listed = cache.files()
    if len(listed) != len(entries):
        return None  # a conflicted entry: written in full
    wanted = set(changed)
    if wanted.isdisjoint(tree) and wanted.isdisjoint(listed):
        if tree != listed:
            return None
    elif {p: e for p, e in tree.items() if p not in wanted} != {
        p: e for p, e in listed.items() if p not in wanted
    }:
        return None
    fresh = [
        path
        for path, st in stats.items()
        if (entry := entries.get(path)) is not None
        and (entry[1] != st.st_mtime_ns or entry[2] != st.st_ctime_ns
             or entry[3] != st.st_size & indexfile.U32 or entry[4] != st.st_ino & indexfile.U32)
    ]  # fmt: skip
    wanted.update(fresh)
    replacements = {
        path: indexfile.pack_entry(path, tree[path], stats.get(path)) if path in tree else None
        for path in wanted
        if path in tree or path in entries
    }
    return indexfile.splice(cache.raw, entries, cache.index_mtime_ns, replacements)


Identity = tuple[int, int, int]  # an index file's mtime_ns, size, inode


def identity(st: os.stat_result) -> Identity:
    """What stays the same while an index file is the one that was written (as
    ``record_key``: the rename into place changes its ctime, and git writes a new file)."""
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def entry_offsets(control_dir: Path) -> tuple[Identity, dict[str, int]] | None:
    """Where each entry of the (version 2) index starts, with the index file's identity; None
    for an index that is not there, not version 2, or holds a conflict."""
    try:
        with open(control_dir / "index", "rb") as handle:
            st = os.fstat(handle.fileno())
            data = handle.read()
    except OSError:
        return None
    try:
        offsets = indexfile.offsets(data)
    except (ValueError, struct.error, IndexError):
        return None
    return (identity(st), offsets) if offsets is not None else None


def splice_at(
    control_dir: Path,
    known: Identity,
    offsets: Mapping[str, int],
    replacements: Mapping[str, bytes],
    cleared_stale_lock: Callable[[FileLocked], bool],
    tree_sha: str | None = None,
) -> Identity | None:
    """Rewrite the index ``known`` (its identity when ``offsets`` were taken) with each entry
    of ``replacements`` (path -> ``indexfile.pack_entry``, of the same name) put in place of
    the one there: no entry parsed, none moved. The identity of the index written; None if
    the index is not ``known`` any more, or a lock kept it (the caller writes it in full).

    The entries copied must not be racily clean (their files not modified since the old
    index was written): the caller vouches for that (``fastcommit`` copies only entries
    whose stat data it trusts)."""
    try:
        with open(control_dir / "index", "rb") as handle:
            st = os.fstat(handle.fileno())
            if identity(st) != known:
                return None
            data = bytearray(st.st_size)  # read into, spliced and written: one buffer
            if handle.readinto(data) != st.st_size:
                return None
    except OSError:
        return None
    for path, packed in replacements.items():
        offset = offsets.get(path)
        if offset is None:
            return None
        old_length = indexfile.entry_length(data, offset)
        head = indexfile.ENTRY.size
        if old_length != len(packed) or data[offset + head : offset + old_length] != packed[head:]:
            return None  # not the entry of that name: an index other than the one recorded
        data[offset : offset + old_length] = packed
    import hashlib

    del data[-20:]
    data += hashlib.sha1(data).digest()
    written = write_index_data(control_dir, data, cleared_stale_lock, tree_sha)
    return None if written is None else identity(written)
