"""What memfs learned from each memory file, kept until the file's stat data changes.

``status``, ``check`` and ``context`` need, from every memory file, its problems, its
description, limit, read_only flag and size. Parsing 10,000 files' front matter costs
seconds; a file whose stat data (mtime, ctime, size, inode, mode) is what it was when it was
last parsed holds what it held then, the way git's index avoids re-hashing. The results live
in ``.git/memfs/parsed.bin``, written atomically and versioned, in Python's ``marshal`` format:
a 10,000-file agent's entries load in a few milliseconds where JSON took ~12 ms (and a JSON
list per entry had to be checked and turned into a tuple). Like the index, it is local state
memfs alone writes, never synced nor read from a remote, and it ends with the SHA-1 of what
precedes it: a file cut short or garbled is ignored whole, and an intact one is trusted
without checking 10,000 entries' types one by one. The cache is only an
optimisation: a missing, unreadable or other-version file is ignored and rebuilt, never an
error, and git's racy-clean rule applies: an entry whose file was modified no earlier than
the cache was written is not trusted (the file may have changed again within the timestamp's
resolution), nor is one whose file changed in the moments before it was parsed.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import stat
import time
from collections import namedtuple
from pathlib import Path

from memfs.errors import UnsafePathError
from memfs.layout import Layout
from memfs.memory import MemoryFile
from memfs.schema import Problem
from memfs.util import atomic_write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT = 2  # entries: mtime_ns, ctime_ns, size, ino, mode, layout, label, problems, ...
FILE_NAME = "parsed.bin"
OLD_FILE_NAME = "parsed.json"  # format 1 (JSON): removed when the new file is written
# A file modified this close to the moment it was read may be modified again within the same
# timestamp tick without its stat data changing: its result is not kept (re-parsed next time).
RACY_WINDOW_NS = 100_000_000

files_parsed = 0  # memory files read and parsed by this process: for tests and benchmarks


_PARSED_FIELDS = ("label", "problems", "description", "limit", "read_only", "size", "unreadable")


class Parsed(namedtuple("Parsed", _PARSED_FIELDS)):
    """What status, check and context need from one memory file (a tuple: 10,000 of them
    are made from the cache per command, and a frozen dataclass costs several times more).
    A ``collections.namedtuple``: ``typing.NamedTuple`` would import typing (~3 ms) on
    every harness command."""

    __slots__ = ()

    label: str
    problems: tuple[tuple[int, str, str], ...]  # (line, message, severity)
    description: str | None
    limit: int | None
    read_only: bool
    size: int
    unreadable: bool  # not UTF-8, or front matter memfs cannot parse: no value to show

    def problem_list(self, path: str) -> list[Problem]:
        return [Problem(path, line, message, severity) for line, message, severity in self.problems]

    @classmethod
    def of(cls, memory_file: MemoryFile) -> Parsed:
        problems = memory_file.problems()
        return cls(
            label=memory_file.label,
            problems=tuple((p.line, p.message, p.severity) for p in problems),
            description=memory_file.description,
            limit=memory_file.limit,
            read_only=memory_file.read_only,
            size=memory_file.size,
            unreadable=memory_file.unreadable,
        )


def _stat_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode)


class ParseCache:
    """Parsed memory files by path, valid while the file's stat data is unchanged.

    ``parsed`` answers from the cache or reads the file; ``save`` keeps what this command
    used (files gone from the tree drop out). Losing or failing to write the file only
    costs time; a read-only agent works without it.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME
        self._entries: dict[str, tuple[Any, ...]] = {}
        self._used: dict[str, tuple[Any, ...]] = {}
        self._changed = False
        self._started_ns = time.time_ns()
        with contextlib.suppress(OSError, ValueError, TypeError, EOFError, LookupError):
            with open(self.path, "rb") as handle:
                written_ns = os.fstat(handle.fileno()).st_mtime_ns
                raw = handle.read()
            if _sha1(raw[:-20]) != raw[-20:]:
                raise ValueError("checksum mismatch")
            data = marshal.loads(raw[:-20])
            entries = data[1] if type(data) is tuple and len(data) == 2 else None
            if data[0] == FORMAT and type(entries) is dict:
                self._entries = entries
                self._written_ns = written_ns
        if not self._entries:
            self._written_ns = 0

    def parsed(
        self, root: Path, path: str, st: os.stat_result | None, layout: Layout
    ) -> Parsed | None:
        """What the memory file at ``path`` (stat ``st`` from the scan; None: unknown, never
        cached) holds; None if it cannot be read (gone, or a link leading out of the agent:
        reported elsewhere)."""
        return self.parse_all(root, [(path, st)], layout).get(path)

    def parse_all(
        self, root: Path, files: list[tuple[str, os.stat_result | None]], layout: Layout
    ) -> dict[str, Parsed]:
        """``parsed`` for many files at once, in order (the loop a 10,000-file status runs:
        a cache hit is a few comparisons, no call)."""
        found_all: dict[str, Parsed] = {}
        kind, written_ns, entries, used = layout.value, self._written_ns, self._entries, self._used
        for path, st in files:
            found = entries.get(path) if st is not None else None
            if found is not None:
                try:
                    if (
                        found[0] == st.st_mtime_ns  # type: ignore[union-attr]
                        and found[1] == st.st_ctime_ns  # type: ignore[union-attr]
                        and found[2] == st.st_size  # type: ignore[union-attr]
                        and found[3] == st.st_ino  # type: ignore[union-attr]
                        and found[4] == st.st_mode  # type: ignore[union-attr]
                        and found[5] == kind
                        and found[0] < written_ns
                        and (parsed := _from_entry(found)) is not None
                    ):
                        used[path] = found
                        found_all[path] = parsed
                        continue
                except (TypeError, ValueError, IndexError):
                    pass  # garbled: parsed again
            fresh = self._parse(root, path, st, layout)
            if fresh is not None:
                found_all[path] = fresh
        return found_all

    def _parse(
        self, root: Path, path: str, st: os.stat_result | None, layout: Layout
    ) -> Parsed | None:
        global files_parsed
        files_parsed += 1
        try:
            memory_file = MemoryFile.load(root, path, layout)
        except (OSError, UnsafePathError):
            return None
        parsed = Parsed.of(memory_file)
        # Only a regular file's stat vouches for its content (a symlink's lstat does not),
        # and only once the file has stopped changing (see RACY_WINDOW_NS).
        if (
            st is not None
            and stat.S_ISREG(st.st_mode)
            and st.st_mtime_ns < self._started_ns - RACY_WINDOW_NS
        ):
            self._used[path] = _to_entry(_stat_key(st), layout, parsed)
            self._changed = True
        return parsed

    def save(self) -> None:
        """Write what this command used, if it differs from what was read."""
        if not self._changed and self._used.keys() == self._entries.keys():
            return
        data = marshal.dumps((FORMAT, self._used))
        data += _sha1(data)
        with contextlib.suppress(OSError):  # a read-only agent: only costs time
            self.path.parent.mkdir(exist_ok=True)
            atomic_write(self.path, data)
            (self.path.parent / OLD_FILE_NAME).unlink(missing_ok=True)


SMALL = 128 * 1024  # bytes: below, CPython's SHA-1 is done before OpenSSL's would be loaded


def _sha1(data: bytes) -> bytes:
    """The SHA-1 of ``data``. Importing hashlib loads OpenSSL (~3 ms, a tenth of a small
    agent's ``ls``); CPython's own SHA-1 loads in 0.1 ms but is ~10x slower per byte, so it
    serves files below ``SMALL`` (~900 memory files) and OpenSSL's the larger ones."""
    if len(data) < SMALL:
        try:
            from _sha1 import sha1
        except ImportError:  # a Python built without its own hashes
            from hashlib import sha1
    else:
        from hashlib import sha1
    return sha1(data).digest()


def _to_entry(key: tuple[int, ...], layout: Layout, parsed: Parsed) -> tuple[Any, ...]:
    return (*key, layout.value, *parsed)


ENTRY_LENGTH = 13


def _from_entry(entry: tuple[Any, ...]) -> Parsed | None:
    """An entry as stored (``_to_entry``); None if it is not one. The file's checksum vouches
    for what memfs wrote, so only the shape is checked here."""
    if type(entry) is not tuple or len(entry) != ENTRY_LENGTH:
        return None
    return tuple.__new__(Parsed, entry[6:])
