"""Writing the agent's files: a fresh checkout's whole tree, and one file at a time.

``populate``, ``write_file`` and ``remove_file`` are the only ways memfs changes the work
tree; each refuses a path that would land outside the agent or inside ``.git``
(``memfs.pathcheck``, DESIGN.md §4). Apart from the walk (``memfs.worktree``): a command that
only reads or commits never loads the writers.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from memfs.errors import UnsafePathError
from memfs.faults import crash_point
from memfs.pathcheck import check_incoming_tree, check_symlink, safe_path
from memfs.trees import MODE_EXECUTABLE, MODE_SYMLINK
from memfs.util import atomic_write

MANIFEST = "agent.yaml"  # memfs.schema.MANIFEST_FILE; written last by a fresh checkout


def populate(root: Path, entries: dict[str, tuple[int, bytes]]) -> dict[str, os.stat_result]:
    """Write a checked tree into an empty work tree; the stat of every file written.

    The fast path of a fresh checkout: each folder is made once and each file written once
    (no temp files, no fsync): the checkout is removed whole if anything fails, and a
    checkout killed midway is recognised by its marker (``memfs.checkout``), written before
    the first file. ``agent.yaml`` is written last, so a partial folder is not an agent even
    to a memfs that does not know the marker.
    """
    check_incoming_tree(root, entries)
    made: set[str] = set()
    stats: dict[str, os.stat_result] = {}
    base = str(root)
    for path, (mode, data) in sorted(
        entries.items(), key=lambda item: (item[0] == MANIFEST, item[0])
    ):
        crash_point("checkout.write")
        folder = path.rpartition("/")[0]
        if folder and folder not in made:
            os.makedirs(os.path.join(base, folder), exist_ok=True)
            made.add(folder)
        target = f"{base}/{path}"
        if mode == MODE_SYMLINK:
            os.symlink(os.fsdecode(data), target)
            stats[path] = os.lstat(target)
            continue
        permissions = 0o755 if mode == MODE_EXECUTABLE else 0o644
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, permissions)
        try:
            written = os.write(fd, data)
            if written != len(data):
                _write_all(fd, memoryview(data)[written:])
            stats[path] = os.fstat(fd)  # after the last write: what the index must record
        finally:
            os.close(fd)
    return stats


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_file(root: Path, path: str, mode: int, data: bytes) -> None:
    """Write ``data`` at ``path`` crash-safely, as a symlink for the symlink mode."""
    target = safe_path(root, path)
    if target.is_dir() and not target.is_symlink():
        raise UnsafePathError(path, "a folder is in the way")
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == MODE_SYMLINK:
        check_symlink(root, path, mode, data)
        link_target = os.fsdecode(data)
        temp = target.with_name(f".memfs-tmp-link-{os.getpid()}-{target.name}")
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        os.symlink(link_target, temp)
        os.replace(temp, target)
        return
    atomic_write(target, data, 0o755 if mode == MODE_EXECUTABLE else 0o644)


def remove_file(root: Path, path: str) -> None:
    """Delete ``path`` and any folders it leaves empty."""
    target = safe_path(root, path)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    parent = target.parent
    while parent != root:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
