"""The git index, kept only as a stat cache.

memfs commits without the index (DESIGN.md §4); it rewrites the index afterwards so that
``git status`` agrees with memfs, and reads it back to avoid hashing files whose stat data
has not changed. An index that is missing, garbled or locked costs re-hashing, never
correctness. It is written with one ``struct`` call per entry, not dulwich's ``Index.write``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

from dulwich.file import FileLocked, GitFile
from dulwich.index import Index, IndexEntry, index_entry_from_stat
from dulwich.objects import Blob

from memfs.trees import Files, TreeEntry, file_mode, read_worktree_data


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
    for path, st in files.items():
        mode = file_mode(st)
        cached = cache.lookup(path, st, mode)
        if cached is not None:
            entries[path] = TreeEntry(mode, cached)
            continue
        try:
            data = read_worktree_data(root / path, mode)
        except OSError:
            unreadable.append(path)
            continue
        entries[path] = TreeEntry(mode, Blob.from_string(data).id.decode())
    return entries, unreadable


def write_index(
    control_dir: Path,
    tree: Files,
    stats: Mapping[str, os.stat_result],
    cleared_stale_lock: Callable[[FileLocked], bool],
) -> None:
    """Rewrite the index for ``tree`` with stat data, so ``git status`` is clean.

    ``cleared_stale_lock`` is asked about an ``index.lock`` in the way (``RepoLock``'s).
    """
    try:
        index_file = GitFile(str(control_dir / "index"), "wb")
    except FileLocked as error:
        # git itself is writing the index, or a crash left index.lock behind. The index is
        # only memfs's stat cache: skipping it costs re-hashing, never correctness; but a
        # stale lock would leave it (and 'git status') out of date for good.
        if not cleared_stale_lock(error):
            return
        try:
            index_file = GitFile(str(control_dir / "index"), "wb")
        except FileLocked:
            return
    try:
        index_file.write(_serialize_index(tree, stats))
    except BaseException:
        index_file.abort()
        raise
    index_file.close()


def update_index_paths(
    control_dir: Path,
    updates: Mapping[str, TreeEntry | None],
    stats: Mapping[str, os.stat_result],
    cleared_stale_lock: Callable[[FileLocked], bool],
) -> None:
    """Bring the index in line for some paths only (after an index-free commit)."""
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


_INDEX_ENTRY = struct.Struct(">10L20sH")
_U32 = 0xFFFFFFFF
_NAME_LENGTH_MASK = 0xFFF


def _serialize_index(tree: Files, stats: Mapping[str, os.stat_result]) -> bytes:
    """``tree`` as a version-2 git index, with the stat data of the files in ``stats``.

    One ``struct`` call per entry: dulwich's ``Index.write`` builds an object and makes a
    dozen small writes per entry, a tenth of a second for a fresh 10,000-file checkout.
    Times are taken in whole nanoseconds, as git compares them.
    """
    parts = [b"DIRC", struct.pack(">LL", 2, len(tree))]
    for key, path in sorted((path.encode("utf-8", "surrogateescape"), path) for path in tree):
        entry = tree[path]
        st = stats.get(path)
        if st is None:
            fields: tuple[int, ...] = (0, 0, 0, 0, 0, 0, entry.mode, 0, 0, 0)
        else:
            ctime_s, ctime_ns = divmod(st.st_ctime_ns, 1_000_000_000)
            mtime_s, mtime_ns = divmod(st.st_mtime_ns, 1_000_000_000)
            fields = (
                ctime_s & _U32, ctime_ns, mtime_s & _U32, mtime_ns, st.st_dev & _U32,
                st.st_ino & _U32, entry.mode, st.st_uid & _U32, st.st_gid & _U32,
                st.st_size & _U32,
            )  # fmt: skip
        name_length = min(len(key), _NAME_LENGTH_MASK)
        parts.append(_INDEX_ENTRY.pack(*fields, bytes.fromhex(entry.sha), name_length))
        parts.append(key + b"\0" * (8 - (_INDEX_ENTRY.size + len(key)) % 8))
    data = b"".join(parts)
    return data + hashlib.sha1(data).digest()


class _StatCache:
    """The index as a cache of blob shas, valid for entries whose stat data still matches.

    ``entries`` maps an encoded path to ``(mode, mtime_ns, ctime_ns, size, ino, sha)``, or
    to None for an entry git marks as conflicted (never trusted). An entry written in the
    same instant its file was last modified is not trusted (git's "racy clean" rule): the
    file may have changed again within the timestamp's resolution.
    """

    def __init__(self, entries: dict[bytes, _Entry | None], index_mtime_ns: int) -> None:
        self.entries = entries
        self._index_mtime_ns = index_mtime_ns

    def lookup(self, path: str, st: os.stat_result, mode: int) -> str | None:
        entry = self.entries.get(path.encode("utf-8", "surrogateescape"))
        if entry is None:
            return None
        entry_mode, mtime_ns, ctime_ns, size, ino, sha = entry
        if (
            entry_mode != mode
            or size != st.st_size & _U32
            or mtime_ns != st.st_mtime_ns
            or ctime_ns != st.st_ctime_ns
            or ino != st.st_ino & _U32
            or mtime_ns >= self._index_mtime_ns
        ):
            return None
        return sha


def index_describes(control_dir: Path, tree: Files) -> bool:
    """Whether the index holds exactly ``tree``: the same paths, modes and blob shas."""
    entries = _load_stat_cache(control_dir).entries
    if len(entries) != len(tree):
        return False
    for path, entry in tree.items():
        found = entries.get(path.encode("utf-8", "surrogateescape"))
        if found is None or found[0] != entry.mode or found[5] != entry.sha:
            return False
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
        entries = read_index_entries(data)
    except (OSError, ValueError, struct.error, IndexError):
        return _StatCache({}, 0)  # a cache: an index cut short or garbled means hash again
    cache = _StatCache(entries, st.st_mtime_ns)
    _last_read.clear()  # one index at a time: a process works on one agent at once, mostly
    _last_read[str(path)] = (key, cache)
    return cache


_Entry = tuple[int, int, int, int, int, str]  # mode, mtime_ns, ctime_ns, size, ino, sha
_EXTENDED = 0x4000
_STAGE_MASK = 0x3000


def read_index_entries(data: bytes) -> dict[bytes, _Entry | None]:
    """The entries of a version 2 or 3 git index, by encoded path (None: conflicted).

    One ``struct`` call per entry: dulwich's ``Index`` builds an object per entry and costs
    ~0.3 s at 10,000 entries, more than the rest of a ``status``; a version 4 index (path
    prefix compression, written by ``git update-index --index-version 4``) is read by dulwich.
    ValueError for anything that is not a well-formed index.
    """
    if data[:4] != b"DIRC" or len(data) < 32:
        raise ValueError("not a git index")
    checksum = data[-20:]
    if checksum != bytes(20) and hashlib.sha1(data[:-20]).digest() != checksum:
        raise ValueError("index checksum mismatch")  # all zeros: git's index.skipHash
    version, count = struct.unpack_from(">LL", data, 4)
    if version == 4:
        return _read_with_dulwich(data)
    if version not in (2, 3):
        raise ValueError(f"index version {version}")
    entries: dict[bytes, _Entry | None] = {}
    unpack = _INDEX_ENTRY.unpack_from
    size = _INDEX_ENTRY.size
    offset = 12
    for _ in range(count):
        ctime_s, ctime_ns, mtime_s, mtime_ns, _dev, ino, mode, _uid, _gid, file_size, sha, flags = (
            unpack(data, offset)
        )
        header = size + (2 if flags & _EXTENDED and version == 3 else 0)
        name_end = data.index(b"\0", offset + header)
        name = data[offset + header : name_end]
        offset += (header + len(name) + 8) & ~7
        if flags & _STAGE_MASK:
            entries[name] = None
            continue
        entries[name] = (
            mode,
            mtime_s * 1_000_000_000 + mtime_ns,
            ctime_s * 1_000_000_000 + ctime_ns,
            file_size,
            ino,
            sha.hex(),
        )
    if offset > len(data) - 20:
        raise ValueError("index cut short")
    return entries


def _read_with_dulwich(data: bytes) -> dict[bytes, _Entry | None]:
    """A version 4 index, through dulwich (rare: git writes v2 unless told otherwise)."""
    import io

    from dulwich.index import read_index_dict_with_version

    found, _version, _extensions = read_index_dict_with_version(io.BytesIO(data[:-20]))
    entries: dict[bytes, _Entry | None] = {}
    for name, entry in found.items():
        if not isinstance(entry, IndexEntry):
            entries[name] = None
            continue
        ctime, mtime = entry.ctime, entry.mtime
        entries[name] = (
            entry.mode,
            _ns(mtime),
            _ns(ctime),
            entry.size,
            entry.ino,
            entry.sha.decode(),
        )
    return entries


def _ns(stamp: int | float | tuple[int, int]) -> int:
    if isinstance(stamp, tuple):
        return stamp[0] * 1_000_000_000 + stamp[1]
    return int(stamp * 1_000_000_000)
