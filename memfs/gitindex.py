"""The git index, kept only as a stat cache.

memfs commits without the index (DESIGN.md §4); it rewrites the index afterwards so that
``git status`` agrees with memfs, and reads it back to avoid hashing files whose stat data
has not changed. An index that is missing, garbled or locked costs re-hashing, never
correctness. It is written with one ``struct`` call per entry, not dulwich's ``Index.write``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from memfs import indexfile
from memfs.trees import (
    MODE_EXECUTABLE,
    MODE_FILE,
    MODE_SYMLINK,
    Files,
    TreeEntry,
    blob_sha,
    read_worktree_data,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dulwich.file import FileLocked

# dulwich (its lock file and Index) is imported inside the writers: a command that only reads
# the index (``status``) never needs it.

RACY_NS = 50_000_000  # statusrecord.RACY_NS: more than a coarse kernel clock tick
files_hashed = 0  # work-tree files read and hashed by this process: for tests and benchmarks


def hash_worktree(
    root: Path, control_dir: Path, files: Mapping[str, os.stat_result], use_index: bool = True
) -> tuple[Files, list[str]]:
    """Tree entries for the files on disk, hashing only those the index can't vouch for.

    Returns the entries and the paths that vanished or became unreadable meanwhile.
    ``use_index=False`` hashes everything: cheaper for a few files than reading the index.
    """
    cache = _load_stat_cache(control_dir) if use_index else _StatCache({}, 0)
    entries: Files = {}
    unreadable: list[str] = []
    # the stat-cache check and trees.file_mode, inlined: this loop runs once per file of the
    # agent in every command
    index_get = cache.entries.get
    # git trusts an entry older than the index file; a file changed within one clock tick of
    # its stat being taken keeps that stat, so an entry is trusted only if older by RACY_NS
    racy_from = cache.index_mtime_ns - RACY_NS
    vouched = cache.files() if cache.entries else {}
    for path, st in files.items():
        st_mode = st.st_mode
        if stat.S_ISLNK(st_mode):
            mode = MODE_SYMLINK
        else:
            mode = MODE_EXECUTABLE if st_mode & 0o100 else MODE_FILE
        entry = index_get(path)
        if (
            entry is not None
            and entry[0] == mode
            and entry[1] == st.st_mtime_ns
            and entry[2] == st.st_ctime_ns
            and entry[3] == st.st_size & indexfile.U32
            and entry[4] == st.st_ino & indexfile.U32
            and entry[1] < racy_from  # else racily clean: hashed
        ):
            entries[path] = vouched[path]
            continue
        global files_hashed
        files_hashed += 1
        try:
            data = read_worktree_data(root / path, mode)
        except OSError:
            unreadable.append(path)
            continue
        entries[path] = TreeEntry(mode, blob_sha(data))
    return entries, unreadable


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
    _forget_index_tree(control_dir)
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
        _record_index_tree(control_dir, tree_sha, _record_key(written))
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
    try:
        with open(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            written = os.fstat(handle.fileno())
        os.replace(lock, index)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        raise
    return written


# The index as git's cache-tree: ``.git/memfs/index-tree`` names the tree object the index
# was written for, with the index file's mtime, size and inode then. While both still hold,
# the index lists that tree exactly, and reading it (one struct call per entry) is cheaper
# than flattening the tree's objects. Removed before every index write, written after, so a
# crash between leaves no record, never a wrong one; git replacing the index (a new file)
# changes its inode and mtime.
INDEX_TREE = "index-tree"


def _record_key(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns} {st.st_size} {st.st_ino}"


def _forget_index_tree(control_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (control_dir / "memfs" / INDEX_TREE).unlink()


def _record_index_tree(control_dir: Path, tree_sha: str, key: str) -> None:
    record = f"{tree_sha} {key}\n".encode()
    path = control_dir / "memfs" / INDEX_TREE
    with contextlib.suppress(OSError):
        if path.read_bytes() == record:
            return
    with contextlib.suppress(OSError):
        path.parent.mkdir(exist_ok=True)
        # not fsynced, as the index it describes is not: after a power cut it is whole,
        # absent or names another index (its key), and then it is simply not used
        temp = path.with_name(f".{INDEX_TREE}.{os.getpid()}")
        temp.write_bytes(record)
        os.replace(temp, path)


def _recorded_tree(control_dir: Path, st: os.stat_result | None) -> str | None:
    """The tree sha the record names, if it was made for the index file of stat ``st``."""
    try:
        tree_sha, _, key = (control_dir / "memfs" / INDEX_TREE).read_text().strip().partition(" ")
    except (OSError, UnicodeDecodeError):
        return None
    return tree_sha if st is not None and key == _record_key(st) else None


def index_is_for(control_dir: Path, tree_sha: str) -> bool:
    """Whether the index file there now was written for tree ``tree_sha`` (the record names
    it): one stat and one small read. A write skipped because git held ``index.lock`` leaves
    no record, so the index behind HEAD is seen and written again."""
    try:
        st = os.stat(control_dir / "index")
    except OSError:
        return False
    return _recorded_tree(control_dir, st) == tree_sha


def tree_from_index(control_dir: Path, tree_sha: str) -> Files | None:
    """The files of tree ``tree_sha`` read from the index, if the index was written for that
    tree and is unchanged since; None otherwise (the caller reads the tree's objects)."""
    cache = _load_stat_cache(control_dir)
    if _recorded_tree(control_dir, cache.stat) != tree_sha:
        return None
    files = cache.files()
    return dict(files) if len(files) == len(cache.entries) else None  # None: a conflict


def update_index_paths(
    control_dir: Path,
    updates: Mapping[str, TreeEntry | None],
    stats: Mapping[str, os.stat_result],
    cleared_stale_lock: Callable[[FileLocked], bool],
) -> None:
    """Bring the index in line for some paths only (after an index-free commit)."""
    cache = _load_stat_cache(control_dir)
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

    _forget_index_tree(control_dir)
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
    cache = _load_stat_cache(control_dir)
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
    ``_record_key``: the rename into place changes its ctime, and git writes a new file)."""
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


class _StatCache:
    """The index as a cache of blob shas, valid for entries whose stat data still matches.

    ``entries`` maps a path to ``(mode, mtime_ns, ctime_ns, size, ino, sha)``, or to None
    for an entry git marks as conflicted (never trusted). An entry written in the
    same instant its file was last modified is not trusted (git's "racy clean" rule): the
    file may have changed again within the timestamp's resolution.
    """

    def __init__(
        self,
        entries: dict[str, indexfile.Entry | None],
        index_mtime_ns: int,
        stat: os.stat_result | None = None,
        raw: dict[str, bytes] | None = None,
    ) -> None:
        self.entries = entries
        self.index_mtime_ns = index_mtime_ns
        self.stat = stat  # the index file's when read
        self.raw = raw  # each entry's bytes, for a version 2 index
        self._files: Files | None = None

    def files(self) -> Files:
        """Every entry that is not conflicted as a ``TreeEntry``, made once: the tree the
        index lists, and what ``hash_worktree`` hands out for a file whose stat the index
        recorded (one object per path, not one per use)."""
        if self._files is None:
            self._files = {
                path: TreeEntry(entry[0], entry[5])
                for path, entry in self.entries.items()
                if entry is not None
            }
        return self._files


def index_describes(control_dir: Path, tree: Files, tree_sha: str | None = None) -> bool:
    """Whether the index holds exactly ``tree``: the same paths, modes and blob shas.

    With ``tree_sha`` (the sha of ``tree``), a yes is recorded for ``tree_from_index``.
    """
    cache = _load_stat_cache(control_dir)
    entries = cache.entries
    if len(entries) != len(tree):
        return False
    for path, entry in tree.items():
        found = entries.get(path)
        if found is None or found[0] != entry.mode or found[5] != entry.sha:
            return False
    if tree_sha is not None and cache.stat is not None:
        _record_index_tree(control_dir, tree_sha, _record_key(cache.stat))
    return True


_last_read: dict[str, tuple[tuple[int, int, int, int], _StatCache]] = {}


def _load_stat_cache(control_dir: Path) -> _StatCache:
    """The index as a stat cache; parsed once while the file is unchanged (a commit reads
    it for hashing and again to check it describes HEAD)."""
    path = control_dir / "index"
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            key = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
            known = _last_read.get(str(path))
            if known is not None and known[0] == key:
                return known[1]
            data = handle.read()
        entries, raw = indexfile.read(data)
    except (OSError, ValueError, struct.error, IndexError):
        return _StatCache({}, 0)  # a cache: an index cut short or garbled means hash again
    cache = _StatCache(entries, st.st_mtime_ns, st, raw)
    _last_read.clear()  # one index at a time: a process works on one agent at once, mostly
    _last_read[str(path)] = (key, cache)
    return cache
