"""The git index, kept only as a stat cache: reading it.

memfs commits without the index (DESIGN.md §4); it rewrites the index afterwards so that
``git status`` agrees with memfs (``memfs.gitindexwrite``), and reads it back here to avoid
hashing files whose stat data has not changed, and to read HEAD's tree from it when it was
written for that tree. An index that is missing, garbled or locked costs re-hashing, never
correctness.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Mapping
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

RACY_NS = 50_000_000  # statusrecord.RACY_NS: more than a coarse kernel clock tick
files_hashed = 0  # work-tree files read and hashed by this process: for tests and benchmarks


def hash_worktree(
    root: Path, control_dir: Path, files: Mapping[str, os.stat_result], use_index: bool = True
) -> tuple[Files, list[str]]:
    """Tree entries for the files on disk, hashing only those the index can't vouch for.

    Returns the entries and the paths that vanished or became unreadable meanwhile.
    ``use_index=False`` hashes everything: cheaper for a few files than reading the index.
    """
    cache = load_stat_cache(control_dir) if use_index else _StatCache({}, 0)
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


def tree_from_index(control_dir: Path, tree_sha: str) -> Files | None:
    """The files of tree ``tree_sha`` read from the index, if the index was written for that
    tree and is unchanged since; None otherwise (the caller reads the tree's objects)."""

    cache = load_stat_cache(control_dir)
    if indexfile.recorded_tree(control_dir, cache.stat) != tree_sha:
        return None
    files = cache.files()
    return dict(files) if len(files) == len(cache.entries) else None  # None: a conflict


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
    cache = load_stat_cache(control_dir)
    entries = cache.entries
    if len(entries) != len(tree):
        return False
    for path, entry in tree.items():
        found = entries.get(path)
        if found is None or found[0] != entry.mode or found[5] != entry.sha:
            return False
    if tree_sha is not None and cache.stat is not None:
        indexfile.record_index_tree(control_dir, tree_sha, indexfile.record_key(cache.stat))
    return True


_last_read: dict[str, tuple[tuple[int, int, int, int], _StatCache]] = {}


def load_stat_cache(control_dir: Path) -> _StatCache:
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
