"""The agent's files on disk: what a commit would hold.

``scan`` walks the work tree and sorts every file into versioned, ignored as a secret, or
skipped (too large, a symlink leaving the agent, a nested repository, not a regular file, a
name another machine could not check out). What ``check_path``, the rule a checkout applies
to a name, refuses to check out is never committed: the scan applies the same predicate to
every path it would version. The rest of the path checks (links, whole trees, reading only
inside the agent) is ``memfs.pathcheck``; writing files back is ``memfs.worktreewrite``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from memfs.errors import UnsafePathError
from memfs.ignore import IgnoreRules
from memfs.record import FrozenRecord, Record

DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
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
    from memfs.pathcheck import beneath_symlink

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
