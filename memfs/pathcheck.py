"""Where memfs may read and write: the agent's own files, never outside it or in ``.git``.

Every path memfs writes into the work tree (a checkout, a merge, a pull, the server) and
every memory file it reads passes here first. The rule for a name is ``check_path``
(``memfs.worktree``, whose walk commits no name it refuses); here are ``check_symlink`` and
``check_tree_links`` for where links lead (alone and through each other),
``check_incoming_tree`` for a whole tree before its first file is written, ``safe_path`` and
``read_inside`` for the disk as it is now (DESIGN.md §4). It stands alone because the walk
(``memfs.worktree``), the writers (``memfs.worktreewrite``, ``memfs.apply``) and the readers
(context, the server) all apply the same rules, and a reader needs nothing else of them.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from pathlib import Path

from memfs.errors import UnsafePathError
from memfs.trees import MODE_SYMLINK
from memfs.worktree import check_path


def check_symlink(root: Path, path: str, mode: int, data: bytes) -> None:
    """Refuse a symlink whose target is absolute or climbs out of the agent."""
    if mode != MODE_SYMLINK:
        return
    link_target = os.fsdecode(data)
    if os.path.isabs(link_target):
        raise UnsafePathError(path, f"symlink to an absolute path ({link_target})")
    real_root = os.path.realpath(root)
    resolved = os.path.normpath(os.path.join(real_root, os.path.dirname(path), link_target))
    if os.path.commonpath([resolved, real_root]) != real_root:
        raise UnsafePathError(path, f"symlink would point outside the agent ({link_target})")
    if resolved == real_root or (resolved + "/").startswith(os.path.join(real_root, ".git") + "/"):
        raise UnsafePathError(path, f"symlink points into the repository ({link_target})")


def check_incoming_tree(root: Path, entries: dict[str, tuple[int, bytes]]) -> None:
    """Refuse a tree (path -> (mode, content)) that would write outside the agent.

    Checks every path, every symlink's target, that every entry is a file or a symlink (a
    submodule is neither), and that no path lies under a symlink of the same tree (writing
    ``link/file`` would follow the link).
    """
    links = {path for path, (mode, _) in entries.items() if mode == MODE_SYMLINK}
    check_tree_links({path: entries[path][1] for path in links})
    checked_folders: set[str] = set()  # thousands of files share a few folders
    for path, (mode, data) in entries.items():
        if not (stat.S_ISREG(mode) or mode == MODE_SYMLINK):
            raise UnsafePathError(path, f"git mode {mode:o} is not a file or a symlink")
        folder, _, name = path.rpartition("/")
        if folder not in checked_folders:
            parts = check_path(path)
            for depth in range(1, len(parts)):
                if "/".join(parts[:depth]) in links:
                    raise UnsafePathError(path, f"{'/'.join(parts[:depth])} is a symlink")
            checked_folders.add(folder)
        else:
            check_path(name)  # the folder part is known good; the name is checked alone
        if mode == MODE_SYMLINK:
            check_symlink(root, path, mode, data)


MAX_LINK_HOPS = 40  # as the kernel's ELOOP limit


def check_tree_links(links: dict[str, bytes]) -> None:
    """Refuse a tree whose symlinks (path -> target), followed through each other, leave it.

    Each link alone may look harmless (``d/l2 -> ../../reference``, ``d/l1.md ->
    l2/../../../SECRET.txt``) while together they reach outside: a target is resolved the way
    the kernel will, one part at a time, following the tree's own links on the way.
    """
    for path in links:
        resolve_in_tree(path, links)


def resolve_in_tree(path: str, links: dict[str, bytes]) -> str:
    """Where the symlink at ``path`` ends, as a path inside the agent ("" is its root).

    UnsafePathError if it leaves the agent, enters ``.git``, or loops.
    """
    hops = 0
    resolved: list[str] = path.split("/")[:-1]
    pending = _parts_of_target(path, links[path])
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                raise UnsafePathError(path, "its symlinks lead outside the agent")
            resolved.pop()
            continue
        resolved.append(part)
        here = "/".join(resolved)
        if part.lower().rstrip(". ") in (".git", "git~1") and len(resolved) == 1:
            raise UnsafePathError(path, "its symlinks lead into the repository")
        if here in links:
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise UnsafePathError(path, "its symlinks form a loop")
            resolved.pop()
            pending = _parts_of_target(here, links[here]) + pending
    return "/".join(resolved)


def _parts_of_target(path: str, data: bytes) -> list[str]:
    target = os.fsdecode(data)
    if os.path.isabs(target):
        raise UnsafePathError(path, f"symlink to an absolute path ({target})")
    return target.split("/")


def safe_path(root: Path, path: str) -> Path:
    """``root/path``, refusing anything that escapes ``root`` or touches ``.git``."""
    parts = check_path(path)
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise UnsafePathError(path, f"{current.relative_to(root)} is a symlink")
    return root / path


def beneath_symlink(root: Path, path: str) -> str | None:
    """The first folder of ``path`` that is a symlink on disk, if any: a path beneath it
    is not the agent's own file (git does not follow symlinked folders either)."""
    parts = path.split("/")
    for depth in range(1, len(parts)):
        folder = "/".join(parts[:depth])
        if os.path.islink(os.path.join(root, folder)):
            return folder
    return None


def inside(root: Path, path: str) -> Path:
    """``root/path`` resolved through every symlink, refused if it ends outside the agent
    or in its ``.git``."""
    resolved = os.path.realpath(os.path.join(root, path))
    _check_inside(_real(str(root)), resolved, path)
    return Path(resolved)


def read_inside(root: Path, path: str) -> bytes:
    """The content of the file at ``path``, read only if it resolves inside the agent: what
    every read of a memory file goes through.

    The file is opened first and the path the kernel actually opened is checked (one
    readlink of /proc/self/fd), so there is no window between check and read and no
    realpath walk per file; a symlink as the last part, or no /proc, takes ``inside``.
    """
    try:
        fd = os.open(os.path.join(root, path), _READ_FLAGS | os.O_NOFOLLOW)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        fd = os.open(inside(root, path), _READ_FLAGS)  # the last part is a symlink
        return _read_regular(fd, path)
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        opened = os.path.realpath(os.path.join(root, path))
    try:
        _check_inside(_real(str(root)), opened, path)
    except BaseException:
        os.close(fd)
        raise
    return _read_regular(fd, path)


# O_NONBLOCK: opening a named pipe for reading would wait for a writer, forever
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


def _read_regular(fd: int, path: str) -> bytes:
    """The content of the open file ``fd`` (closed after), if it is a regular file; OSError
    for a pipe, socket or device, which memfs never reads."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read()
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=16)
def _real(root: str) -> str:
    return os.path.realpath(root)


def _check_inside(real_root: str, resolved: str, path: str) -> None:
    git_dir = os.path.join(real_root, ".git")
    if os.path.commonpath([resolved, real_root]) != real_root or resolved == real_root:
        raise UnsafePathError(path, "it resolves to a place outside the agent")
    if resolved == git_dir or resolved.startswith(git_dir + os.sep):
        raise UnsafePathError(path, "it resolves into the agent's repository")
