"""The files of the commit record (``memfs.commitrecord``) in flat columns: ``Table``.

A path list, 20-byte shas, a mode byte and five unsigned 64-bit stat fields per file (zeros
where the record does not trust the file's stat data), read and written without an object
per field: loading 10,000 files as tuples cost a commit more than the rest of its record.
Comparing them with the work tree's stat is the scan every stat-only commit makes.
"""

from __future__ import annotations

import os
from array import array
from itertools import chain
from operator import attrgetter

from memfs.trees import MODE_EXECUTABLE, MODE_FILE, TreeEntry

Sig = tuple[int, int, int, int, int]
"""A file's stat data as the record keeps it: mtime_ns, ctime_ns, size, inode, mode."""

_FIELDS = tuple(map(attrgetter, ("st_mtime_ns", "st_ctime_ns", "st_size", "st_ino", "st_mode")))
_MODES = (MODE_FILE, MODE_EXECUTABLE)
_UNTRUSTED = (0, 0, 0, 0, 0)  # no file has mode 0: never equal to a stat taken now


class Table:
    """The record's files in three flat columns (a path list, 20-byte shas, five unsigned
    64-bit stat fields each, zeros where untrusted), read and written without an object per
    field: loading 10,000 files as tuples cost a commit more than the rest of its record."""

    def __init__(self, paths: list[str], shas: bytes, modes: bytes, sigs: array[int]) -> None:
        self.paths, self.sigs = paths, sigs
        self.shas, self.modes = bytearray(shas), bytearray(modes)

    @classmethod
    def of(cls, rows: list[tuple[str, int, str, Sig | None]]) -> Table:
        sigs = array("Q", chain.from_iterable(row[3] or _UNTRUSTED for row in rows))
        return cls(
            [row[0] for row in rows],
            b"".join(bytes.fromhex(row[2]) for row in rows),
            bytes(_MODES.index(row[1]) for row in rows),
            sigs,
        )

    def dumps(self) -> tuple[list[str], bytes, bytes, bytes]:
        return (self.paths, bytes(self.shas), bytes(self.modes), self.sigs.tobytes())

    @classmethod
    def loads(cls, data: tuple[list[str], bytes, bytes, bytes]) -> Table:
        sigs = array("Q")
        sigs.frombytes(data[3])
        table = cls(data[0], data[1], data[2], sigs)
        if not (len(table.shas) == 20 * len(table.paths) == 20 * len(table.modes)):
            raise ValueError("a torn record")
        if len(sigs) != 5 * len(table.paths):
            raise ValueError("a torn record")
        return table

    def entry(self, i: int) -> TreeEntry:
        return TreeEntry(_MODES[self.modes[i]], self.shas[20 * i : 20 * i + 20].hex())

    def set(self, i: int, mode: int, sha: str, sig: Sig | None) -> None:
        self.modes[i] = _MODES.index(mode)
        self.shas[20 * i : 20 * i + 20] = bytes.fromhex(sha)
        try:
            self.sigs[5 * i : 5 * i + 5] = array("Q", sig or _UNTRUSTED)
        except OverflowError:  # a time before 1970: read every time
            self.sigs[5 * i : 5 * i + 5] = array("Q", _UNTRUSTED)

    def changed(self, stats: list[os.stat_result], start: int = 0) -> list[int]:
        """The rows (from ``start`` on) whose stat is not ``stats``' (or untrusted);
        OverflowError for a stat field outside the columns' range (a time before 1970).
        Field by field: one array per field costs less than a tuple per file."""
        end = start + len(stats)
        found: set[int] = set()
        for k, field in enumerate(_FIELDS):
            now = array("Q", map(field, stats))
            then = self.sigs[5 * start + k : 5 * end : 5]
            if now != then:
                found.update(start + i for i in differing(now, then, 1))
        return sorted(found)

    def scan(
        self, root: str, keep: bool = False
    ) -> tuple[list[int], dict[int, os.stat_result], list[os.stat_result] | None]:
        """lstat each file (relative to the folder ``root``) and compare: the rows that
        differ or are untrusted, their stats, and with ``keep`` every stat. Without it, 512
        files at a time, each block's stat results freed before the next: at 10,000 files
        ~1,500 page faults (~3 ms) fewer than holding all of them. OSError if a file is not
        there, OverflowError as ``changed``. Resolved from an open handle on ``root``, as
        ``statusrecord.lstat_all``."""
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            lstat, paths = os.lstat, self.paths
            rows: list[int] = []
            picked: dict[int, os.stat_result] = {}
            kept: list[os.stat_result] | None = [] if keep else None
            for start in range(0, len(paths), 512):
                stats = [lstat(path, dir_fd=folder) for path in paths[start : start + 512]]
                found = self.changed(stats, start)
                rows += found
                picked.update((i, stats[i - start]) for i in found)
                if kept is not None:
                    kept += stats
        finally:
            os.close(folder)
        return rows, picked, kept


def differing(now: array[int], then: array[int], width: int = 5) -> list[int]:
    """The rows (``width`` numbers each) where the columns ``now`` and ``then`` differ: 256
    rows compared at once, one by one only inside a block that differs."""
    if now == then:
        return []
    found = []
    step = width * 256
    rows = min(len(now), len(then)) // width
    for start in range(0, width * rows, step):
        if now[start : start + step] != then[start : start + step]:
            first = start // width
            for i in range(first, min(first + 256, rows)):
                if now[width * i : width * i + width] != then[width * i : width * i + width]:
                    found.append(i)
    return found
