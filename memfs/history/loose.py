"""Loose objects, tree objects and a branch's compare-and-swap, written without dulwich.

A one-file commit writes five small objects (a blob, a tree per folder on its path, the
commit) and moves one ref; importing dulwich's repository and object model for that costs
more than the writes. These writers do what dulwich's do, byte for byte on disk: an object
is deflated into a temp file beside its final name, fsynced only when the repository asks
(``core.fsyncObjectFiles``, dulwich's and git's default: no), made read-only and renamed into
place, so a killed process leaves the object whole or absent; an object already there is
freshened (its mtime), not written again. The ref is written under git's ``.lock`` protocol
and fsynced before the rename (as dulwich's ``GitFile`` does), after reading it again under
the lock: a branch moved meanwhile is a lost race, never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterable
from pathlib import Path

from memfs.digests import sha1_for
from memfs.util import write_and_rename

OBJECT_MODE = 0o444  # dulwich's PACK_MODE, git's loose-object mode
TREE_MODE = 0o040000

_counter = 0


def object_sha(kind: bytes, content: bytes) -> str:
    """The hex sha git gives an object of ``kind`` holding ``content``."""
    digest = sha1_for(len(content))(b"%s %d\0" % (kind, len(content)))
    digest.update(content)
    return digest.hexdigest()


def write_object(control: Path, kind: bytes, content: bytes, fsync: bool = False) -> str:
    """Store ``content`` as a loose object of ``kind`` in the repository at ``control`` (its
    ``.git`` folder); its hex sha. Crash-safe: temp file, optional fsync, rename."""
    header = b"%s %d\0" % (kind, len(content))
    digest = sha1_for(len(content))(header)
    digest.update(content)
    sha = digest.hexdigest()
    folder = control / "objects" / sha[:2]
    path = folder / sha[2:]
    try:
        os.utime(path, None)  # there already: freshened against age-based pruning, as dulwich
        return sha
    except FileNotFoundError:
        pass
    compressor = zlib.compressobj()
    data = compressor.compress(header) + compressor.compress(content) + compressor.flush()
    global _counter
    _counter += 1
    temp = folder / f"tmp_obj_{os.getpid()}_{_counter}"
    for attempt in range(3):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, OBJECT_MODE)
            break
        except FileNotFoundError:
            # git prune-packed (git gc, git repack -d) removed the empty fan-out folder
            # between the mkdir and the open: make it again, as git itself does
            if attempt == 2:
                raise
    write_and_rename(fd, temp, path, data, fsync)
    return sha


def tree_content(entries: Iterable[tuple[str, int, str]]) -> bytes:
    """A tree object's content for ``(name, mode, hex sha)`` entries, in git's order (a
    folder sorts as its name followed by ``/``)."""
    items = []
    for name, mode, sha in entries:
        key = name.encode("utf-8", "surrogateescape")
        items.append((key + b"/" if mode == TREE_MODE else key, key, mode, sha))
    items.sort()
    return b"".join(b"%o %s\0%s" % (mode, key, bytes.fromhex(sha)) for _, key, mode, sha in items)


def commit_content(
    tree: str, parents: Iterable[str], author: str, when: int, offset: int, message: str
) -> bytes:
    """A commit object's content, as dulwich's ``Commit`` serialises it."""
    sign = "-" if offset < 0 else "+"
    zone = f"{sign}{abs(offset) // 3600:02d}{abs(offset) // 60 % 60:02d}"
    lines = [f"tree {tree}"] + [f"parent {parent}" for parent in parents]
    stamp = f"{author} {when} {zone}"
    lines += [f"author {stamp}", f"committer {stamp}", "", ""]
    return "\n".join(lines).encode() + message.encode()


def move_ref(control: Path, ref: str, old: str, new: str) -> bool | None:
    """Compare-and-swap the loose ref ``ref`` (``refs/heads/main``) from ``old`` to ``new``.

    True when moved, False when it no longer holds ``old`` (nothing written), None when
    this writer does not answer (a ``.lock`` in the way, a symbolic ref, a ref folder shadowed
    by packed-refs): the caller moves it through dulwich, which knows those cases.
    """
    path = control / ref
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    moved: bool | None = False
    try:
        try:
            current = _read_ref(control, ref)  # again, under the lock
            if current == old:
                os.write(fd, new.encode() + b"\n")
                os.fsync(fd)
                moved = True
            elif current is None:
                moved = None
        finally:
            os.close(fd)
        if moved:
            os.replace(lock, path)
    finally:
        if not moved:
            with contextlib.suppress(OSError):
                os.unlink(lock)
    return moved


def set_ref(control: Path, ref: str, new: str) -> bool:
    """Point the loose ref ``ref`` (a remote-tracking ref) at ``new`` unconditionally, under
    git's ``.lock`` protocol, fsynced before the rename. Whether it was written: False leaves
    it to dulwich (a name git would not take, a ``.lock`` in the way, a folder where the ref
    goes). No reflog line is written (dulwich's writer added one; a commit's ``move_ref``
    writes none either): nothing in memfs or in git's own work relies on a tracking ref's
    log."""
    parts = ref.split("/")
    if len(parts) < 3 or parts[0] != "refs" or not all(map(_plain_ref_part, parts[1:])):
        return False
    path = control / ref
    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError:
        return False
    try:
        write_and_rename(fd, lock, path, new.encode() + b"\n", fsync=True)
    except OSError:
        return False
    return True


_REF_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _plain_ref_part(part: str) -> bool:
    """Whether one ``/``-separated part of a ref name is plainly one git accepts."""
    return (
        bool(part)
        and _REF_CHARS.issuperset(part)
        and not part.startswith(".")
        and not part.endswith((".lock", "."))
        and ".." not in part
    )


def _read_ref(control: Path, ref: str) -> str | None:
    """The sha a loose or packed ref holds; None for anything else (symbolic, missing)."""
    try:
        text = (control / ref).read_bytes().strip()
    except FileNotFoundError:
        text = b""
        with contextlib.suppress(OSError):
            for line in (control / "packed-refs").read_bytes().splitlines():
                if line.endswith(b" " + ref.encode()) and len(line) == 41 + len(ref):
                    text = line[:40]
        if not text:
            return None
    except OSError:
        return None
    if len(text) != 40 or any(c not in b"0123456789abcdef" for c in text):
        return None
    return text.decode()
