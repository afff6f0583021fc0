"""The agent's files on disk: what a commit would hold, and writing files back safely.

``scan`` walks the work tree and sorts every file into versioned, ignored as a secret, or
skipped (too large, a symlink leaving the agent, a nested repository, not a regular file, a
name another machine could not check out). What ``check_path`` refuses to check out is never
committed: the scan applies the same predicate to every path it would version.
``write_file``/``remove_file`` are the only ways memfs changes the work tree; both refuse a
path that would land outside the agent or inside ``.git`` (DESIGN.md §4).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
from pathlib import Path

from memfs.errors import UnsafePathError
from memfs.faults import crash_point
from memfs.ignore import IgnoreRules
from memfs.record import FrozenRecord, Record
from memfs.trees import MODE_EXECUTABLE, MODE_SYMLINK
from memfs.util import atomic_write

DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
MANIFEST = "agent.yaml"  # memfs.schema.MANIFEST_FILE; written last by a fresh checkout
scans = 0  # whole work-tree walks made by this process: for tests and benchmarks


class Skipped(FrozenRecord):
    """A file memfs does not version, and why.

    ``path`` is the name as the file system gave it (matching history's keys, so a tracked
    file keeps its last version); ``shown`` is the same name safe to print.
    """

    __slots__ = _fields = ("path", "reason")
    path: str
    reason: str

    def __init__(self, path: str, reason: str) -> None:
        self._set(path, reason)

    @property
    def shown(self) -> str:
        return display_path(self.path)

    def to_dict(self) -> dict[str, str]:
        return {"path": self.shown, "reason": self.reason}


class Scan(Record):
    """The outcome of walking the work tree."""

    __slots__ = _fields = (
        "files",
        "secrets",
        "skipped",
        "folders",
        "skipped_stats",
        "listed",
        "custom_ignores",
    )
    files: dict[str, os.stat_result]
    secrets: list[str]
    skipped: list[Skipped]
    # what the walk saw of every folder it listed ("" is the root) and of every file it
    # skipped for what its stat said: what ``memfs.statusrecord`` checks is unchanged
    folders: dict[str, os.stat_result]
    skipped_stats: dict[str, os.stat_result]
    # the names each listed folder held (every entry, ignored ones and ``.git`` too), as the
    # walk listed them after taking the folder's stat: what ``memfs.fastcommit`` compares a
    # folder's listing with when its stat changed
    listed: dict[str, tuple[str, ...]]
    # rules a record cannot watch applied (a nested .gitignore, exclude lines of the user):
    # the status and commit records are not kept for such a tree, so each command walks
    custom_ignores: bool

    def __init__(
        self,
        files: dict[str, os.stat_result] | None = None,
        secrets: list[str] | None = None,
        skipped: list[Skipped] | None = None,
        folders: dict[str, os.stat_result] | None = None,
        skipped_stats: dict[str, os.stat_result] | None = None,
        listed: dict[str, tuple[str, ...]] | None = None,
        custom_ignores: bool = False,
    ) -> None:
        self.files = {} if files is None else files
        self.secrets = [] if secrets is None else secrets
        self.skipped = [] if skipped is None else skipped
        self.folders = {} if folders is None else folders
        self.skipped_stats = {} if skipped_stats is None else skipped_stats
        self.listed = {} if listed is None else listed
        self.custom_ignores = custom_ignores


def scan(
    root: Path,
    rules: IgnoreRules,
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    tracked: frozenset[str] = frozenset(),
) -> Scan:
    """Walk ``root`` and classify every file below it (``.git`` excluded).

    As in git, a file already in history stays versioned even if a rule now ignores it.
    """
    global scans
    scans += 1
    walker = _Walker(root, rules, max_file_size, tracked)
    with contextlib.suppress(OSError):  # walk says why
        walker.result.folders[""] = os.lstat(root)
    walker.walk("", kept=True)
    walker.result.custom_ignores = rules.custom
    return walker.result


class _Walker:
    """One walk of the work tree, collecting into ``result``."""

    def __init__(self, root: Path, rules: IgnoreRules, cap: int, tracked: frozenset[str]) -> None:
        self.root = root
        self.rules = rules
        self.cap = cap
        self.tracked = tracked
        self._tracked_dirs: set[str] | None = None
        self.real_root = os.path.realpath(root)
        self.base = str(root)
        self.uid = os.getuid()
        self.good_folders: set[str] = set()  # folders whose names a checkout accepts
        self.result = Scan()

    @property
    def tracked_dirs(self) -> set[str]:
        """Every folder of a tracked file, as ``folder/``: only needed when a rule ignores a
        folder, so made on first use."""
        if self._tracked_dirs is None:
            self._tracked_dirs = {
                "/".join(parts[:depth]) + "/"
                for parts in (path.split("/")[:-1] for path in self.tracked)
                for depth in range(1, len(parts) + 1)
            }
        return self._tracked_dirs

    def walk(self, prefix: str, kept: bool = False) -> None:
        """Visit every entry of the folder ``prefix`` ("" for the root); ``kept``: no rule
        ignores the folder itself (it may be walked only for the tracked files inside).

        The loop is the whole cost of a large agent's ``status``: a plain file in a kept
        folder, under memfs's own rules alone, is decided here by its name and stat
        (``plainly_versioned``); anything else goes through ``visit``.
        """
        try:
            entries = sorted(os.scandir(self.base + "/" + prefix), key=_entry_name)
        except OSError as error:
            self.result.skipped.append(
                Skipped(prefix or ".", f"cannot list folder: {error.strerror}")
            )
            return
        names = tuple(entry.name for entry in entries)
        self.result.listed[prefix.rstrip("/")] = names
        if prefix and kept and ".gitignore" in names:  # git reads no rules in ignored folders
            self.rules.load_nested(prefix[:-1])
        by_name = kept and self.rules.by_name_only_in(prefix[:-1])
        name_is_ignored = self.rules.name_is_ignored
        files = self.result.files
        plainly_versioned = self.plainly_versioned
        for entry in entries:
            name = entry.name
            path = prefix + name
            if name == ".git":
                if prefix:
                    self.result.skipped.append(
                        Skipped(path, "a nested git repository is not versioned")
                    )
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished while walking
            if (
                by_name
                and stat.S_ISREG(st.st_mode)
                and not name_is_ignored(name)
                and plainly_versioned(path, st)
            ):
                files[path] = st
                continue
            self.visit(path, st, kept)

    def visit(self, path: str, st: os.stat_result, kept: bool = True) -> None:
        """Classify one entry: walk a folder, keep, ignore or skip a file. Below a folder a
        rule ignores (``kept`` false) every untracked entry is ignored: as in git, no rule
        can take it back in."""
        out = self.result
        if stat.S_ISDIR(st.st_mode):
            ignored = not kept or self.rules.is_ignored(path, is_dir=True)
            if not ignored or path + "/" in self.tracked_dirs:
                out.folders[path] = st
                self.walk(path + "/", kept=not ignored)
            return
        if path not in self.tracked and (not kept or self.rules.is_ignored(path)):
            if self.rules.is_secret(path):
                out.secrets.append(display_path(path))
            return
        if self.plainly_versioned(path, st):
            out.files[path] = st
            return
        reason = _skip_reason(self.root, path, st, self.cap, self.real_root)
        if reason:
            out.skipped.append(Skipped(path, reason))
            out.skipped_stats[path] = st
        else:
            out.files[path] = st

    def plainly_versioned(self, path: str, st: os.stat_result) -> bool:
        """Whether ``path`` is, at a glance, a file to version: a regular file under the cap,
        readable by its owner who is us, with a name a checkout accepts; else ``_skip_reason``
        decides. Saves a pathlib object and an ``access`` call per file of a large agent."""
        if not (
            stat.S_ISREG(st.st_mode)
            and st.st_size <= self.cap
            and st.st_uid == self.uid
            and st.st_mode & stat.S_IRUSR
        ):
            return False
        folder, _, name = path.rpartition("/")
        if folder not in self.good_folders:
            if name_refusal(folder + "/x" if folder else "x"):
                return False
            self.good_folders.add(folder)
        if name.isascii() and "\\" not in name and name.lower().rstrip(". ") not in _GIT_NAMES:
            return name not in (".", "..")  # what name_refusal says of a plain name, quicker
        return not name_refusal(name)


_GIT_NAMES = (".git", "git~1")


def _entry_name(entry: os.DirEntry[str]) -> str:
    return entry.name


def scan_paths(
    root: Path,
    rules: IgnoreRules,
    paths: list[str],
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    tracked: frozenset[str] = frozenset(),
) -> Scan:
    """Like ``scan`` but only for ``paths`` (files or folders): O(what they hold)."""
    walker = _Walker(root, rules, max_file_size, tracked)
    for path in paths:
        parts = path.split("/")
        if not path or ".git" in parts or "" in parts or ".." in parts:
            continue
        try:
            st = os.lstat(root / path)
        except OSError:
            continue  # deleted: the caller compares with history
        link = beneath_symlink(root, path)
        if link is not None:
            walker.result.skipped.append(Skipped(path, f"{link} is a symlink"))
            continue
        rules.load_ancestors(path)
        walker.visit(path, st)
    walker.result.custom_ignores = rules.custom
    return walker.result


def display_path(path: str) -> str:
    """``path`` as text that can be printed: bytes that are not UTF-8 shown as ``\\xff``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def name_refusal(path: str) -> str:
    """Why ``path`` must not be committed (its name), or "" if it may.

    The rule is ``check_path``'s, the one a checkout applies: what memfs would refuse to check
    out on another machine, it never commits. A name that is not UTF-8 cannot be stored as a
    git path other machines read the same way, so it is refused too.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8, so other machines could not check it out"
    try:
        check_path(path)
    except UnsafePathError as error:
        why = "a backslash in the name" if "\\" in path else str(error).rpartition(": ")[2]
        return f"memfs would refuse to check this name out on another machine ({why})"
    return ""


def _skip_reason(root: Path, path: str, st: os.stat_result, cap: int, real_root: str) -> str:
    refused = name_refusal(path)
    if refused:
        return refused
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(root / path)
        if os.path.isabs(target):
            return f"symlink to an absolute path ({target}) would break on other machines"
        resolved = os.path.realpath(os.path.join(real_root, os.path.dirname(path), target))
        if os.path.commonpath([resolved, real_root]) != real_root:
            return f"symlink points outside the agent ({target})"
        if resolved == real_root or resolved.startswith(os.path.join(real_root, ".git")):
            return f"symlink points into the agent's own repository ({target})"
        return ""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size > cap:
        return (
            f"{_size(st.st_size)} is over the {_size(cap)} size cap (max_file_size in agent.yaml)"
        )
    if not os.access(root / path, os.R_OK):
        return "not readable"
    return ""


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def check_path(path: str) -> list[str]:
    """The parts of ``path``, refusing anything that escapes the agent or touches ``.git``."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        raise UnsafePathError(path, "not a relative path inside the agent")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePathError(path, "it climbs out of the agent")
        if part.lower().rstrip(". ") in (".git", "git~1"):
            raise UnsafePathError(path, "it writes into the .git folder")
    return parts


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


def safe_path(root: Path, path: str) -> Path:
    """``root/path``, refusing anything that escapes ``root`` or touches ``.git``."""
    parts = check_path(path)
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise UnsafePathError(path, f"{current.relative_to(root)} is a symlink")
    return root / path


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


def beneath_symlink(root: Path, path: str) -> str | None:
    """The first folder of ``path`` that is a symlink on disk, if any: a path beneath it
    is not the agent's own file (git does not follow symlinked folders either)."""
    parts = path.split("/")
    for depth in range(1, len(parts)):
        folder = "/".join(parts[:depth])
        if os.path.islink(os.path.join(root, folder)):
            return folder
    return None


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
