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

The record is a cache: unreadable, from another memfs version, or stale, it is ignored and
the tree is walked; a failure to write it costs nothing but speed (a read-only agent).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memfs import __version__

if TYPE_CHECKING:
    from memfs.agent import Agent, Snapshot, Status

RECORD = "status.bin"
FORMAT = 3
RACY_NS = 50_000_000
"""An entry changed less than this before the walk began makes the tree too fresh to record:
well over a coarse kernel clock tick (1-10 ms), which is what file times advance by."""
COARSE_RACY_NS = 2_500_000_000
"""The window where no file time has a part below the millisecond: a file system that keeps
times in seconds (or FAT's two) shows a change as made up to that much earlier."""

OUTSIDE = (".git/config", ".git/hooks/pre-commit", ".git/memfs/secrets.enc")
"""Files outside the work tree that ``status``'s answer depends on: the git config, the hook,
the secrets (whose values the commit guard looks for). The caches beside them, parsed files
and conflict markers by blob, only save work."""
INSIDE = (".gitignore", ".memfsignore", "agent.yaml", "MEMORY.md")
"""Files of the tree that decide how the rest is read (rules, layout): stat'ed even when
ignored, so their coming and going is seen."""

Sig = tuple[int, int, int, int, int]  # mtime_ns, ctime_ns, size, inode, mode

records_used = 0  # answers given from the record by this process: for tests and benchmarks


def sig(st: os.stat_result) -> Sig:
    """What must stay the same for an entry to hold what it held."""
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode)


def _sig_or_none(path: str) -> Sig | None:
    try:
        return sig(os.lstat(path))
    except OSError:
        return None


def key(agent: Agent, head: str | None) -> tuple[Any, ...]:
    """What a record must have been made for: this memfs, HEAD, the files beside the tree.
    Taken before the tree is looked at, so a file changed meanwhile fails the next check."""
    base = str(agent.root) + "/"
    return (
        FORMAT,
        __version__,
        head,
        tuple(_sig_or_none(base + name) for name in OUTSIDE + INSIDE),
    )


def _path(agent: Agent) -> Path:
    return agent.history.state_dir / RECORD


def _valid(agent: Agent, wanted: tuple[Any, ...]) -> tuple[dict[str, Any], list[Any]] | None:
    """The record and the fresh stat of each file it lists, if it was made for ``wanted``
    (``key``) and every folder and file it saw still stats the same; else None."""
    import pickle  # on use: a commit asks only for ``key``

    try:
        record = pickle.loads(_path(agent).read_bytes())
    except Exception:  # a cache: whatever is wrong with it, walk the tree
        return None
    if not isinstance(record, dict) or record.get("key") != wanted:
        return None
    base = str(agent.root) + "/"
    lstat = os.lstat
    try:
        for paths, sigs in (record["folders"], record["files"]):  # the files' stats last
            stats = [lstat(base + path) for path in paths]
            now = [(s.st_mtime_ns, s.st_ctime_ns, s.st_size, s.st_ino, s.st_mode) for s in stats]
            if now != sigs:
                return None
    except (OSError, KeyError, TypeError, ValueError):
        return None
    global records_used
    records_used += 1
    return record, stats


def recorded(agent: Agent, wanted: tuple[Any, ...]) -> Status | None:
    """The recorded answer if nothing it was made from changed (``_valid``); None (walk the
    tree) otherwise. The caller fills in the fields read live."""
    found = _valid(agent, wanted)
    return None if found is None else found[0]["status"]


def recorded_snapshot(agent: Agent, wanted: tuple[Any, ...]) -> Snapshot | None:
    """The snapshot the recorded answer was worked out from, with the stat data taken now,
    if nothing it was made from changed; None (walk the tree) otherwise. What ``ls`` and
    ``context`` read: no walk, no index, no hashing."""
    from memfs.agent import Snapshot
    from memfs.trees import TreeEntry
    from memfs.worktree import Scan

    found = _valid(agent, wanted)
    if found is None:
        return None
    record, stats = found
    status = record["status"]
    try:
        listed, entries = marshal.loads(record["snapshot"])
        files = {path: TreeEntry(mode, sha) for path, (mode, sha) in entries.items()}
        seen = dict(zip(record["files"][0], stats, strict=True))
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
    unless some entry changed too near that moment to be trusted."""
    scan = snapshot.scan
    if scan.custom_ignores:
        return  # a nested .gitignore or exclude lines: rules the record does not stat
    seen = {**scan.files, **scan.skipped_stats}
    if any(stat.S_ISLNK(st.st_mode) for st in seen.values()):
        return  # where a link leads depends on entries a walk may not list: walk each time
    window = RACY_NS
    if not any(st.st_ctime_ns % 1_000_000 for st in seen.values()):
        window = COARSE_RACY_NS  # times in whole milliseconds or coarser (FAT, some mounts)
    limit = started_ns - window
    for stats in (scan.folders.values(), seen.values()):
        if any(st.st_ctime_ns >= limit for st in stats):
            return
    if any(s is not None and s[1] >= limit for s in made_for[3]):
        return
    record = {
        "key": made_for,
        "folders": (list(scan.folders), [sig(st) for st in scan.folders.values()]),
        "files": (list(seen), [sig(st) for st in seen.values()]),
        # marshal'd apart: what ls and context need, left unread by status
        "snapshot": marshal.dumps(
            (list(scan.files), {path: tuple(entry) for path, entry in snapshot.files.items()})
        ),
        "status": status,
    }
    import pickle

    _write(_path(agent), pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))


def _write(path: Path, data: bytes) -> None:
    """Replace the record whole (a temp file renamed over it), without fsync: after a crash
    it is there whole, absent, or unreadable, and either of the last two costs one walk."""
    temp = path.with_name(f".{RECORD}.{os.getpid()}")
    try:
        with open(temp, "wb") as file:
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
