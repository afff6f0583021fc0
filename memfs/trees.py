"""Trees, changes and commits as plain data, and the pure helpers over them.

A tree (or a work tree) is a ``dict`` of posix paths to ``TreeEntry`` (git mode, hex sha of
the blob); a commit is a ``CommitInfo``. Nothing here opens a repository: merge, apply and the
conflict code work on these values, and ``history/`` turns dulwich's objects into them.
dulwich is used only for what git defines byte for byte: a diff's text.
"""

from __future__ import annotations

import io
import os
import stat
from collections import namedtuple
from collections.abc import Mapping
from pathlib import Path

from memfs.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime

MODE_FILE = 0o100644
MODE_EXECUTABLE = 0o100755
MODE_SYMLINK = 0o120000
TRAILER_HOST = "Memfs-Host"
TRAILER_ORIGIN = "Memfs-Origin"


class TreeEntry(namedtuple("TreeEntry", ("mode", "sha"))):
    """One file in a tree: its git mode and the hex sha of its blob (a
    ``collections.namedtuple``: ``typing.NamedTuple`` imports typing, ~3 ms a command)."""

    __slots__ = ()

    mode: int
    sha: str


Files = dict[str, TreeEntry]
"""A tree or a work tree, flattened: posix path -> entry."""


class FileChange(FrozenRecord):
    """How one path differs between two trees."""

    __slots__ = _fields = ("path", "status", "old", "new")
    path: str
    status: str  # "added" | "modified" | "deleted"
    old: TreeEntry | None
    new: TreeEntry | None

    def __init__(
        self, path: str, status: str, old: TreeEntry | None, new: TreeEntry | None
    ) -> None:
        self._set(path, status, old, new)


class CommitInfo(FrozenRecord):
    """A commit as memfs shows it."""

    __slots__ = _fields = ("sha", "parents", "author", "date", "message", "trailers")
    sha: str
    parents: list[str]
    author: str
    date: datetime
    message: str
    trailers: dict[str, str]

    def __init__(
        self,
        sha: str,
        parents: list[str],
        author: str,
        date: datetime,
        message: str,
        trailers: dict[str, str] | None = None,
    ) -> None:
        self._set(sha, parents, author, date, message, {} if trailers is None else trailers)

    @property
    def short(self) -> str:
        return self.sha[:7]

    @property
    def summary(self) -> str:
        return self.message.split("\n", 1)[0]

    @property
    def host(self) -> str | None:
        return self.trailers.get(TRAILER_HOST)

    @property
    def origin(self) -> str | None:
        return self.trailers.get(TRAILER_ORIGIN)

    def to_dict(self) -> dict[str, object]:
        return {
            "sha": self.sha,
            "short": self.short,
            "parents": self.parents,
            "author": self.author,
            "date": self.date.isoformat(),
            "summary": self.summary,
            "message": self.message,
            "host": self.host,
            "origin": self.origin,
        }


def file_mode(st: os.stat_result) -> int:
    """The git mode for a file with this stat."""
    if stat.S_ISLNK(st.st_mode):
        return MODE_SYMLINK
    return MODE_EXECUTABLE if st.st_mode & 0o100 else MODE_FILE


def read_worktree_data(path: Path, mode: int) -> bytes:
    """The blob content git stores for the file at ``path``."""
    if mode == MODE_SYMLINK:
        return os.fsencode(os.readlink(path))
    return path.read_bytes()


def with_trailers(message: str, trailers: Mapping[str, str]) -> str:
    """``message`` followed by a blank line and git trailers."""
    lines = [f"{key}: {value}" for key, value in trailers.items()]
    return message.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"


def parse_trailers(message: str) -> tuple[str, dict[str, str]]:
    """Split a commit message into its text and its memfs trailers."""
    paragraphs = message.rstrip("\n").split("\n\n")
    last = paragraphs[-1].split("\n")
    trailers: dict[str, str] = {}
    if len(paragraphs) > 1 and all(": " in line for line in last):
        for line in last:
            key, value = line.split(": ", 1)
            trailers[key] = value
        if any(key.startswith("Memfs-") for key in trailers):
            return "\n\n".join(paragraphs[:-1]), trailers
    return message.rstrip("\n"), {}


def compare_trees(old: Files, new: Files, paths: tuple[str, ...] = ()) -> list[FileChange]:
    """Per-path differences between two trees, sorted by path, limited to ``paths`` if given."""
    if old == new:  # one comparison in C: a clean status of 10,000 files sorts nothing
        return []
    # the differing paths found by set operations in C, then only those sorted: a one-file
    # change between two 10,000-file trees sorts one path, not 10,000
    differing = {path for path, _ in old.items() ^ new.items()}
    changes = []
    for path in sorted(differing):
        if paths and not any(path == p or path.startswith(p.rstrip("/") + "/") for p in paths):
            continue
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        status = "added" if before is None else "deleted" if after is None else "modified"
        changes.append(FileChange(path, status, before, after))
    return changes


def write_diff(
    out: io.BufferedIOBase | io.BytesIO, change: FileChange, old: bytes, new: bytes
) -> None:
    """A git-style unified diff of one change, or a 'Binary files differ' line."""
    from dulwich.patch import gen_diff_header, is_binary, unified_diff  # 10 ms (email): diffs only

    path = change.path.encode("utf-8", "surrogateescape")
    out.writelines(
        gen_diff_header(
            (path if change.old else None, path if change.new else None),
            (change.old.mode if change.old else None, change.new.mode if change.new else None),
            (
                change.old.sha.encode() if change.old else None,
                change.new.sha.encode() if change.new else None,
            ),
        )
    )
    old_name = b"a/" + path if change.old else b"/dev/null"
    new_name = b"b/" + path if change.new else b"/dev/null"
    if is_binary(old) or is_binary(new):
        out.write(b"Binary files " + old_name + b" and " + new_name + b" differ\n")
        return
    out.writelines(unified_diff(old.splitlines(True), new.splitlines(True), old_name, new_name))


def blob_sha(data: bytes) -> str:
    """The hex sha git gives a blob holding ``data`` (as dulwich's ``Blob.from_string(data).id``,
    without importing dulwich's object model)."""
    import hashlib  # on use: loading OpenSSL costs a small agent's status more than its work

    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()
