"""The last ``status`` remembered, with the stat data it was made from (git's untracked cache,
taken one step further).

A harness runs ``memfs status`` again and again on a tree that has not changed. The full
answer walks every folder, stats and classifies every file, reads the index and the parse
cache: ~0.1 s at 10,000 files. The record in ``.git/memfs/status.bin`` holds that answer
with the stat data of every folder walked, every file seen (versioned or skipped), and of
the files outside the tree the answer depends on (``.git/config``, Letta's pre-commit hook),
for the commit HEAD named. While every one of those still
stats the same, the work tree holds exactly what it held, so the answer is the same: one
``lstat`` per file, no ``readdir``, no read, no parse. ``ls`` and ``context`` take the
snapshot the answer was worked out from (the files, their blob shas, what was skipped) from
the record alike, with the stat data taken now.

Why "stats the same" is enough: creating, removing or renaming an entry changes its folder's
mtime and ctime; writing a file, or changing its mode or owner, changes its ctime, which no
program can set. A change in the same clock tick as the stat was taken could go unseen, so
no record is written while any entry's ctime is within ``RACY_NS`` of the moment the walk
began (git's "racily clean" rule; ``COARSE_RACY_NS`` on a file system keeping coarse
times): such a tree is walked again next time. Nor while the tree holds a symlink: whether
it leads out of the agent depends on entries elsewhere, maybe in folders no walk lists.
A file with a ctime in the future (a skewed clock) is racy forever and never recorded.
What the answer reads live each time is not recorded: the branch, a merge's journal, a
plain-git operation midway, a detached HEAD, and what ``status`` prints beside (remotes,
watcher).

The same rule is applied again on the file system's own clock (a network or FUSE file system
stamps times with its server's): the record's temp file is created after every stat was
taken, and an entry whose ctime is within the window of that file's mtime is too fresh (git's
rule, with the index file's mtime). A file whose ctime has no part below the millisecond gets
``COARSE_RACY_NS``, file by file (a coarse mount inside the agent). Nor is a tree recorded
while a file of the key (``INSIDE``, ``OUTSIDE``) is a symlink: its lstat does not move when
its target changes.

The record is plain data (``marshal`` of str, int, bytes, tuple, list, dict: nothing in it
runs), checked on load: of the shape and types written, every path relative with no empty,
``.``, ``..`` or ``.git`` part; anything else is ignored. It is a cache: unreadable, from
another memfs version, format or user, or stale, it is ignored and the tree is walked; a
failure to write it costs nothing but speed (a read-only agent).
"""

from __future__ import annotations

import _thread
import contextlib
import marshal
import os
import stat
import time
from array import array
from itertools import chain
from operator import attrgetter
from pathlib import Path

from memfs import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from memfs.agent import Agent, Snapshot, Status

RECORD = "status.bin"
FORMAT = 4
"""What the record holds and means, bumped by hand whenever that changes (its fields, the
Status it rebuilds, how the answer is worked out): tests/test_records.py pins it to the
record's field list, so a field changed without a bump fails there. In the key, with this
memfs's version and the user's id."""
RACY_NS = 50_000_000
"""An entry changed less than this before the walk began makes the tree too fresh to record:
well over a coarse kernel clock tick (1-10 ms), which is what file times advance by."""
COARSE_RACY_NS = 2_500_000_000
"""The window for a file whose ctime has no part below the millisecond: a file system that
keeps times in seconds (or FAT's two) shows a change as made up to that much earlier."""

OUTSIDE = ("config", "hooks/pre-commit", "memfs/secrets.enc", "info/exclude")
"""Files of the git folder (``History.control_dir``: ``.git``, or where a ``gitdir:`` file
points) that ``status``'s answer depends on: the git config, the hook, the secrets (whose
values the commit guard looks for), the exclude file (the user's own ignore lines). The
caches beside them, parsed files and conflict markers by blob, only save work."""
INSIDE = (".gitignore", ".memfsignore", "agent.yaml", "MEMORY.md")
"""Files of the tree that decide how the rest is read (rules, layout): stat'ed even when
ignored, so their coming and going is seen."""

Sig = tuple[int, int, int, int, int]  # mtime_ns, ctime_ns, size, inode, mode

records_used = 0  # answers given from the record by this process: for tests and benchmarks


def sig(st: os.stat_result) -> Sig:
    """What must stay the same for an entry to hold what it held."""
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode)


_SIG = attrgetter("st_mtime_ns", "st_ctime_ns", "st_size", "st_ino", "st_mode")


def packed(stats: Iterable[os.stat_result]) -> bytes:
    """The ``sig`` of each of ``stats`` as one column of unsigned 64-bit numbers (what the
    record holds: loaded and compared without an object per field); OverflowError for a
    time before 1970."""
    return array("Q", chain.from_iterable(map(_SIG, stats))).tobytes()


def _sig_or_none(path: str) -> Sig | None:
    try:
        return sig(os.lstat(path))
    except OSError:
        return None


def key(agent: Agent, head: str | None) -> tuple[Any, ...]:
    """What a record must have been made for: this record format and user, this memfs, HEAD,
    the files beside the tree. Taken before the tree is looked at, so a file changed meanwhile
    fails the next check. (``commitrecord`` keeps positions 0, 1 and 3.)"""
    control = str(agent.history.control_dir) + "/"
    base = str(agent.root) + "/"
    return (
        (FORMAT, os.geteuid()),
        __version__,
        head,
        tuple(_sig_or_none(control + name) for name in OUTSIDE)
        + tuple(_sig_or_none(base + name) for name in INSIDE),
    )


def window(ctime_ns: int) -> int:
    """The racy window for an entry with this ctime: wide where the file system keeps no
    time below the millisecond (decided per file: one mount may be coarse, another not)."""
    return RACY_NS if ctime_ns % 1_000_000 else COARSE_RACY_NS


def racy(sigs: Iterable[Sig], now_ns: int) -> bool:
    """Whether any entry changed too near ``now_ns`` (a time taken after its stat, on the
    clock its ctime comes from) for a later change in the same clock tick to show."""
    return any(s[1] >= now_ns - (RACY_NS if s[1] % 1_000_000 else COARSE_RACY_NS) for s in sigs)


_BAD_PARTS = ("//", "/./", "/../", "/.git/", "/git~1/", "\0")


def sound_paths(paths: Any) -> bool:
    """Whether ``paths`` (read from a record) is a list of relative paths inside the tree:
    str, with no empty, ``.``, ``..`` or ``.git`` part (any case), no NUL. A join and a few
    substring searches per 256 paths, no loop per path: each path is between two slashes
    either way, and no bad part holds one inside, so a match never spans two paths. In
    blocks, as one join of 10,000 paths (~350 KB, four copies) costs more in fresh pages
    than in searching: ~2 ms in a new process, ~0.7 in blocks."""
    if type(paths) is not list:
        return False
    try:
        for start in range(0, len(paths), 256):
            joined = "/" + "/".join(paths[start : start + 256]).lower() + "/"
            if any(bad in joined for bad in _BAD_PARTS):
                return False
    except TypeError:
        return False
    return True


def _path(agent: Agent) -> Path:
    return agent.history.state_dir / RECORD


def lstat_all(root: str, paths: list[str]) -> list[os.stat_result]:
    """``os.lstat`` of each of ``paths`` (relative, "" the root itself) inside the folder
    ``root``; OSError if one is not there. Resolved from an open handle on ``root``: the
    kernel walks only the path inside the agent (at 10,000 files ~8% less than absolute
    paths), and every path is looked up in the one folder opened, as git's preload does."""
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        lstat = os.lstat
        return [lstat(path or ".", dir_fd=folder) for path in paths]
    finally:
        os.close(folder)


def _valid(agent: Agent, wanted: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[Any]] | None:
    """The record and the fresh stat of each file it lists, if it is of the shape written,
    was made for ``wanted`` (``key``) and every folder and file it saw still stats the same;
    else None."""
    try:
        record = marshal.loads(_path(agent).read_bytes())
    except Exception:  # a cache: whatever is wrong with it, walk the tree
        return None
    if type(record) is not tuple or len(record) != 5 or record[0] != wanted:
        return None
    root = str(agent.root)
    stats: list[os.stat_result] = []
    try:
        for pair in (record[1], record[2]):  # the folders, then the files' stats last
            paths, sigs = pair if type(pair) is tuple and len(pair) == 2 else (None, None)
            if type(paths) is not list:
                return None
            if not sound_paths([path for path in paths if path] if pair is record[1] else paths):
                return None  # a folder "" is the root
            stats = lstat_all(root, paths)
            if type(sigs) is not bytes or packed(stats) != sigs:
                return None
    except (OSError, TypeError, ValueError, OverflowError):
        return None
    global records_used
    records_used += 1
    return record, stats


_MODES = frozenset((0o100644, 0o100755, 0o120000, 0o160000))  # what a git tree holds


def _split40(shas: str) -> Iterable[str]:
    return (shas[i : i + 40] for i in range(0, len(shas), 40))


def recorded(agent: Agent, wanted: tuple[Any, ...]) -> Status | None:
    """The recorded answer if nothing it was made from changed (``_valid``); None (walk the
    tree) otherwise. The caller fills in the fields read live."""
    from memfs.statusdata import status_of

    found = _valid(agent, wanted)
    if found is None:
        return None
    try:
        return status_of(found[0][4])
    except (TypeError, ValueError):
        return None


def recorded_snapshot(agent: Agent, wanted: tuple[Any, ...]) -> Snapshot | None:
    """The snapshot the recorded answer was worked out from, with the stat data taken now,
    if nothing it was made from changed; None (walk the tree) otherwise. What ``ls`` and
    ``context`` read: no walk, no index, no hashing."""
    from memfs.agent import Snapshot
    from memfs.statusdata import status_of
    from memfs.trees import TreeEntry
    from memfs.worktree import Scan

    found = _valid(agent, wanted)
    if found is None:
        return None
    record, stats = found
    try:
        status = status_of(record[4])
        listed, paths, modes, shas = marshal.loads(record[3])
        count = len(paths)
        if not sound_paths(paths) or type(modes) is not list or len(modes) != count:
            return None
        if not _MODES.issuperset(modes) or type(shas) is not str or len(shas) != 40 * count:
            return None
        if len(bytes.fromhex(shas)) != 20 * count:
            return None  # fromhex takes spaces too
        files = dict(zip(paths, map(TreeEntry, modes, _split40(shas)), strict=True))
        seen = dict(zip(record[2][0], stats, strict=True))
        scanned = {path: seen[path] for path in listed}
    except (KeyError, TypeError, ValueError, EOFError):
        return None
    scan = Scan(files=scanned, secrets=list(status.secrets), skipped=list(status.skipped))
    return Snapshot(files, {p: st for p, st in scanned.items() if p in files}, scan)


def save(
    agent: Agent, made_for: tuple[Any, ...], status: Status, snapshot: Snapshot, started_ns: int
) -> None:
    """Record ``status``, the answer for ``snapshot`` (its walk begun at ``started_ns``,
    ``time.time_ns``, with ``made_for`` its ``key``), with the stat data the walk took;
    unless some entry changed too near that moment to be trusted, on this machine's clock
    or on the file system's (``_write``)."""
    from memfs.statusdata import status_data

    scan = snapshot.scan
    if scan.custom_ignores:
        return  # a nested .gitignore or exclude lines: rules the record does not stat
    seen = {**scan.files, **scan.skipped_stats}
    if any(stat.S_ISLNK(st.st_mode) for st in seen.values()):
        return  # where a link leads depends on entries a walk may not list: walk each time
    beside = [s for s in made_for[3] if s is not None]
    if any(stat.S_ISLNK(s[4]) for s in beside):
        return  # a rule file that is a link: its lstat does not move when its target does
    folders = [sig(st) for st in scan.folders.values()]
    files = [sig(st) for st in seen.values()]
    every = [*folders, *files, *beside]
    if racy(every, started_ns):
        return
    folder_paths, file_paths = list(scan.folders), list(seen)
    entries = snapshot.files
    snap_paths, modes = list(entries), [entry.mode for entry in entries.values()]
    if not (
        sound_paths([path for path in folder_paths if path])
        and sound_paths(file_paths)
        and sound_paths(snap_paths)
        and _MODES.issuperset(modes)
    ):
        return  # a record that would not be read (a nested ".GIT" folder, say)
    try:
        columns = packed(scan.folders.values()), packed(seen.values())
    except OverflowError:
        return  # a time before 1970: not kept in the columns
    record = (
        made_for,
        (folder_paths, columns[0]),
        (file_paths, columns[1]),
        # marshal'd apart: what ls and context need, left unread by status
        marshal.dumps(
            (list(scan.files), snap_paths, modes, "".join(e.sha for e in entries.values()))
        ),
        status_data(status),
    )
    _write(_path(agent), marshal.dumps(record), every)


def _write(path: Path, data: bytes, sigs: list[Sig]) -> None:
    """Replace the record whole (a temp file, named for this process and thread, renamed over
    it), without fsync: after a crash it is there whole, absent, or unreadable, and either of
    the last two costs one walk. Not written if any of ``sigs`` is racy on the file system's
    clock: the temp file's mtime, set when it is created after every stat was taken."""
    temp = path.with_name(f".{RECORD}.{os.getpid()}.{_thread.get_ident()}")
    try:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()  # left by a process of this pid that died: a new file, a new mtime
        with open(temp, "xb") as file:
            if racy(sigs, os.fstat(file.fileno()).st_mtime_ns):
                raise OSError("too fresh on the file system's clock")
            file.write(data)
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink()


def forget(agent: Agent) -> None:
    """Drop the record (a command that changes the tree's meaning without changing a stat)."""
    with contextlib.suppress(OSError):
        _path(agent).unlink()


def now_ns() -> int:
    """The moment a walk begins, on the clock file times are taken from."""
    return time.time_ns()
