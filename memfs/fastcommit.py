"""A one-file ``commit`` at O(stat) cost: git's index and cache-tree, kept by memfs.

A full commit walks the work tree (one ``readdir`` per folder, a stat and a classification per
file), reads the index to vouch for unchanged files, compares trees, and builds the new trees
through dulwich: ~0.2 s at 10,000 files, for an edit of one. After every commit whose work
tree is exactly what it committed (nothing held back, skipped, or a symlink), the record in
``.git/memfs/commit.bin`` keeps, for that commit:

- every file of its tree with its mode, blob sha and the stat data it had when known to
  hold that blob (git's index);
- every folder the walk listed, with its stat data and the names it held (git's untracked
  cache), and the sha of every subtree (git's cache-tree);
- the stat data of the files outside the tree that decide how it is read (``statusrecord``'s
  key: ``.git/config``, the hook, the secrets, ``.gitignore``, ``.memfsignore``, ``agent.yaml``).

The next commit, while HEAD is still that commit, stats every folder and file instead of
walking: a folder whose stat changed is listed again and must hold the same names (else the
full commit runs); a file whose stat changed is read and hashed, and only those; the trees on
the changed files' paths are rebuilt from the record, every other subtree's sha reused; the
objects are written by ``history.loose``, the branch moved by compare-and-swap, the index
spliced, and the record written again for the new commit. Every check a full commit makes on
a change still runs on it: Letta's rules and hook, the secrets guard (``Agent._gate``), the
size cap, readable regular files only (anything else: the full commit).

Data safety: the stat data of an entry is trusted only if it is older than the moment it
was taken by more than a clock tick (``statusrecord.RACY_NS``, git's "racily clean" rule,
per entry): a younger entry is recorded without stat data and read every time until it
ages. An entry's stat is taken before it is read; one that changed while read is recorded
without stat data. Anything the record cannot vouch for sends the commit down the full path.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import stat
import time
from array import array
from collections.abc import Iterable
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memfs import __version__, gitindex, indexfile, statusrecord
from memfs.faults import crash_point
from memfs.history import loose
from memfs.trees import (
    MODE_EXECUTABLE,
    MODE_FILE,
    TRAILER_HOST,
    TRAILER_ORIGIN,
    CommitInfo,
    FileChange,
    Files,
    TreeEntry,
    parse_trailers,
    with_trailers,
)
from memfs.util import hostname

if TYPE_CHECKING:
    from memfs.agent import Agent, Snapshot

RECORD = "commit.bin"
FORMAT = 2
_TRUE = ("true", "yes", "on", "1")
FALLBACK: Any = object()
"""What ``commit`` returns when the record cannot answer: the caller runs the full commit."""

Sig = tuple[int, int, int, int, int]

commits_fast = 0  # commits made by this module in this process: for tests and benchmarks


def _sig(st: os.stat_result) -> Sig:
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode)


def _trusted(sig: Sig, taken_ns: int) -> Sig | None:
    """``sig`` if its entry last changed long enough before ``taken_ns`` (when the stat was
    taken, or a moment before) that any later change shows in it; else None."""
    ctime = sig[1]
    window = statusrecord.RACY_NS if ctime % 1_000_000 else statusrecord.COARSE_RACY_NS
    return sig if max(ctime, sig[0]) < taken_ns - window else None


_STAT = attrgetter("st_mtime_ns", "st_ctime_ns", "st_size", "st_ino", "st_mode")
_MODES = (MODE_FILE, MODE_EXECUTABLE)
_UNTRUSTED = (0, 0, 0, 0, 0)  # no file has mode 0: never equal to a stat taken now


class _Table:
    """The record's files in three flat columns (a path list, 20-byte shas, five unsigned
    64-bit stat fields each, zeros where untrusted), read and written without an object per
    field: loading 10,000 files as tuples cost a commit more than the rest of its record."""

    def __init__(self, paths: list[str], shas: bytes, modes: bytes, sigs: array[int]) -> None:
        self.paths, self.sigs = paths, sigs
        self.shas, self.modes = bytearray(shas), bytearray(modes)

    @classmethod
    def of(cls, rows: list[tuple[str, int, str, Sig | None]]) -> _Table:
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
    def loads(cls, data: tuple[list[str], bytes, bytes, bytes]) -> _Table:
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

    def changed(self, stats: list[os.stat_result]) -> list[int]:
        """The rows whose stat is not ``stats``' (or untrusted); OverflowError for a stat
        field outside the columns' range (a time before 1970)."""
        now = array("Q", chain.from_iterable(map(_STAT, stats)))
        if now == self.sigs:
            return []
        found = []
        step = 5 * 256
        for start in range(0, len(now), step):
            if now[start : start + step] != self.sigs[start : start + step]:
                first = start // 5
                for i in range(first, min(first + 256, len(self.paths))):
                    if now[5 * i : 5 * i + 5] != self.sigs[5 * i : 5 * i + 5]:
                        found.append(i)
        return found


def _path(agent: Agent) -> Path:
    return agent.history.state_dir / RECORD


def forget(agent: Agent) -> None:
    """Drop the record: the next commit runs in full."""
    with contextlib.suppress(OSError):
        _path(agent).unlink()


def context(agent: Agent, head: str | None) -> tuple[Any, ...]:
    """What the record must have been made for: ``statusrecord.key`` (this memfs, HEAD, the
    files beside the tree that decide how it is read)."""
    return statusrecord.key(agent, head)


def remember(
    agent: Agent,
    made_for: tuple[Any, ...],
    commit: str,
    tree: Files,
    snapshot: Snapshot,
    started_ns: int,
) -> None:
    """Record ``commit`` (whose tree is ``tree``) after a full commit whose work tree, walked
    from ``started_ns`` on (``snapshot``), holds exactly ``tree``; ``made_for`` is the
    context taken before the walk. Nothing is recorded for any other tree."""
    forget(agent)
    scan = snapshot.scan
    if scan.skipped or agent.held or snapshot.files != tree or set(snapshot.stats) != set(tree):
        return
    if any(sig is not None and _trusted(sig, started_ns) is None for sig in made_for[3]):
        return  # a rule file changed a moment ago: it may change again unseen
    rows: list[tuple[str, int, str, Sig | None]] = []
    for path, st in snapshot.stats.items():
        if not stat.S_ISREG(st.st_mode):
            return  # symlinks: where they lead depends on other entries
        entry = tree[path]
        rows.append((path, entry.mode, entry.sha, _trusted(_sig(st), started_ns)))
    folders: dict[str, tuple[Sig | None, tuple[str, ...]]] = {}
    for folder, names in scan.listed.items():
        st = scan.folders.get(folder)
        if st is None:
            return
        folders[folder] = (_trusted(_sig(st), started_ns), names)
    trees = subtree_shas(tree)
    if trees.get("") != agent.history.commit_tree_sha(commit):
        return  # this tree is not what the commit holds (flattened away a shadowed path)
    try:
        table = _Table.of(rows)
    except (OverflowError, ValueError):
        return  # a time before 1970: not kept in the columns
    record = _record(made_for, commit, agent._max_file_size(), table.dumps(), folders, trees)
    record["index"] = _index_layout(agent, table.paths)
    _write(agent, record)


def _record(
    made_for: tuple[Any, ...],
    commit: str,
    cap: int,
    files: tuple[list[str], bytes, bytes, bytes],
    folders: dict[str, tuple[Sig | None, tuple[str, ...]]],
    trees: dict[str, str],
) -> dict[str, Any]:
    key = (made_for[0], made_for[1], commit, made_for[3])
    return {
        "format": FORMAT,
        "version": __version__,
        "key": key,
        "cap": cap,
        "files": files,
        "folders": folders,
        "trees": trees,
    }


def _write(agent: Agent, record: dict[str, Any]) -> None:
    """Replace the record whole, without fsync: a torn or lost record costs a full commit."""
    path = _path(agent)
    temp = path.with_name(f".{RECORD}.{os.getpid()}")
    try:
        temp.write_bytes(marshal.dumps(record))
        os.replace(temp, path)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            temp.unlink()


def _load(agent: Agent) -> dict[str, Any] | None:
    try:
        record = marshal.loads(_path(agent).read_bytes())
    except Exception:  # a cache: whatever is wrong with it, commit in full
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    if record.get("version") != __version__:
        return None
    return record


def subtree_shas(tree: Files) -> dict[str, str]:
    """The sha of every folder's tree object in ``tree`` ("" is the root), computed."""
    folders = {""}
    for path in tree:
        folder = path.rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    return _trees_of(folders, ((p, e.mode, e.sha) for p, e in tree.items()), {}, None)


def _trees_of(
    folders: set[str],
    files: Iterable[tuple[str, int, str]],
    known: dict[str, str],
    write: tuple[Path, bool] | None,
) -> dict[str, str]:
    """``known`` (tree shas by folder) with the trees of ``folders`` made anew from ``tree``'s
    files and their subfolders' shas, deepest first; written as objects with ``write``
    (the ``.git`` folder, fsync or not), else only hashed."""
    children: dict[str, list[tuple[str, int, str]]] = {folder: [] for folder in folders}
    for path, mode, sha in files:
        folder, _, name = path.rpartition("/")
        if folder in children:
            children[folder].append((name, mode, sha))
    result = dict(known)
    subfolders: dict[str, list[str]] = {}
    for folder in result.keys() | folders:
        if folder:
            subfolders.setdefault(folder.rpartition("/")[0], []).append(folder)
    for folder in sorted(folders, key=lambda f: -f.count("/") - (1 if f else 0)):
        start = len(folder) + 1 if folder else 0
        entries = children[folder] + [
            (sub[start:], loose.TREE_MODE, result[sub]) for sub in subfolders.get(folder, ())
        ]
        content = loose.tree_content(entries)
        if write is None:
            result[folder] = loose.object_sha(b"tree", content)
        else:
            result[folder] = loose.write_object(write[0], b"tree", content, write[1])
    return result


def commit(
    agent: Agent, message: str | None, origin: str, allow_read_only: tuple[str, ...] = ()
) -> CommitInfo | Any | None:
    """Commit every change in the work tree from the record, or ``FALLBACK`` when the record
    cannot vouch for the tree (the caller then commits in full). Runs under the agent's lock,
    after the checks a full commit makes first (a git operation midway, a merge to recover)."""
    record = _load(agent)
    if record is None:
        return FALLBACK
    history = agent.history
    head = history.head()
    made_for = context(agent, head)
    if head is None or record["key"] != made_for or record["cap"] != agent._max_file_size():
        return FALLBACK
    if history.commit_tree_sha(head) != record["trees"].get(""):
        return FALLBACK
    started = time.time_ns()
    base = str(agent.root) + "/"
    lstat = os.lstat
    folders: dict[str, tuple[Sig | None, tuple[str, ...]]] = record["folders"]
    new_folders = dict(folders)
    for folder, (sig, names) in folders.items():
        try:
            st = lstat(base + folder if folder else base)
        except OSError:
            return FALLBACK
        now = _sig(st)
        if sig is None or now != sig:
            try:
                listing = tuple(sorted(os.listdir(base + folder if folder else base)))
            except OSError:
                return FALLBACK
            if listing != names or not stat.S_ISDIR(st.st_mode):
                return FALLBACK  # an entry came or went: the full walk classifies it
            new_folders[folder] = (_trusted(now, started), names)
    try:
        table = _Table.loads(record["files"])
    except (KeyError, TypeError, ValueError):
        return FALLBACK
    paths = table.paths
    try:
        stats = [lstat(base + path) for path in paths]
        dirty = table.changed(stats)
    except (OSError, OverflowError):
        return FALLBACK  # gone (its folder's listing changed too, or is changing now)
    payload: dict[str, tuple[int, bytes] | None] = {}
    fresh: dict[str, os.stat_result] = {}
    cap, uid = record["cap"], os.getuid()
    new_sigs: dict[int, tuple[int, str, Sig | None]] = {}
    for i in dirty:
        path, st = paths[i], stats[i]
        mode_bits = st.st_mode
        if not (
            stat.S_ISREG(mode_bits)
            and st.st_size <= cap
            and st.st_uid == uid
            and mode_bits & stat.S_IRUSR
        ):
            return FALLBACK  # a symlink, a folder, too large, not ours to read: the full walk
        mode = MODE_EXECUTABLE if mode_bits & 0o100 else MODE_FILE
        try:
            with open(base + path, "rb") as handle:
                data = handle.read()
            after = lstat(base + path)
        except OSError:
            return FALLBACK
        unchanged = _sig(after) == _sig(st)  # not written while read: its stat vouches
        sha = loose.object_sha(b"blob", data)
        if unchanged:
            fresh[path] = st
        new_sigs[i] = (mode, sha, _trusted(_sig(st), started) if unchanged else None)
        if TreeEntry(mode, sha) != table.entry(i):
            payload[path] = (mode, data)
    row = {paths[i]: i for i in dirty}
    new_files = {paths[i]: found for i, found in new_sigs.items()}
    # HEAD's tree for Letta's rules: all of it only where they look at the whole tree
    if agent.letta_rules().tree_wide:
        head_tree = {path: table.entry(i) for i, path in enumerate(paths)}
    else:
        head_tree = {path: table.entry(row[path]) for path in payload}
    before = bytes(table.sigs)
    for i, (mode, sha, sig) in new_sigs.items():
        table.set(i, mode, sha, sig)
    if not payload:
        agent.skipped, agent.held, agent.overridden = [], [], []
        if before != bytes(table.sigs) or new_folders != folders:
            _write(agent, {**record, "files": table.dumps(), "folders": new_folders})
        return None
    agent.skipped = []
    verdict = agent._gate(head_tree, payload, origin, allow_read_only)
    allowed = verdict.allowed
    if not allowed:
        forget(agent)  # held changes stay in the work tree: the record would hide them
        return None
    for path in payload:
        if path not in allowed:  # held: the table keeps what HEAD holds, the tree too
            entry = head_tree[path]
            table.set(row[path], entry.mode, entry.sha, None)
    changes = [
        FileChange(path, "modified", head_tree[path], TreeEntry(change[0], new_files[path][1]))
        for path, change in sorted(allowed.items())
        if change is not None
    ]
    updated = {change.path: change.new for change in changes}
    fsync = (history.config_value("core", "fsyncObjectFiles") or "").lower() in _TRUE
    control = history.control_dir
    for _, data in (c for c in allowed.values() if c is not None):
        loose.write_object(control, b"blob", data, fsync)
    trees = _changed_trees(record["trees"], table, updated, new_folders, control, fsync)
    from memfs.agent import generated_message

    text = message or generated_message(changes)
    trailers = {TRAILER_HOST: hostname(), TRAILER_ORIGIN: origin}
    offset = time.localtime().tm_gmtoff
    author, when, full_text = agent.author(), int(time.time()), with_trailers(text, trailers)
    content = loose.commit_content(trees[""], [head], author, when, offset, full_text)
    sha = loose.write_object(control, b"commit", content, fsync)
    crash_point("commit.objects")
    moved = loose.move_ref(control, history.branch_ref().decode(), head, sha)
    if moved is None:  # a case the light writer leaves to dulwich (a lock in the way, ...)
        history.move_branch(head, sha, text.split("\n", 1)[0].encode())
    elif not moved:
        from memfs.errors import ConcurrentUpdateError

        raise ConcurrentUpdateError(
            f"{history.branch()} moved while memfs was committing; nothing was lost, try again"
        )
    global commits_fast
    commits_fast += 1
    crash_point("commit.index")
    index = _write_index(agent, record, table, updated, new_files, fresh, trees[""])
    if index is None:  # the index is not the one recorded: written in full, as a full commit
        committed = {path: table.entry(i) for i, path in enumerate(paths)}
        dirty_paths = set(row)
        index_stats = {
            path: st for path, st in zip(paths, stats, strict=True) if path not in dirty_paths
        }
        for path, st in fresh.items():  # read whole and unchanged: vouches for what is committed
            if committed[path] == TreeEntry(*new_files[path][:2]):
                index_stats[path] = st
        history.write_index(committed, index_stats, commit=sha, changed=list(allowed))
        index = _index_layout(agent, paths)
    if agent.held:
        forget(agent)  # held changes stay in the work tree: the record would hide them
    else:
        new_key = (made_for[0], made_for[1], sha, made_for[3])
        _write(agent, {**record, "key": new_key, "files": table.dumps(),
                       "folders": new_folders, "trees": trees, "index": index})  # fmt: skip
    return _info(sha, head, author, when, offset, full_text)


def _info(sha: str, parent: str, author: str, when: int, offset: int, text: str) -> CommitInfo:
    """What ``History.commit_info`` says of the commit just written, without reading it."""
    from datetime import datetime, timedelta, timezone

    message, trailers = parse_trailers(text)
    date = datetime.fromtimestamp(when, timezone(timedelta(seconds=offset)))
    return CommitInfo(sha, [parent], author, date, message, trailers)


def _index_layout(agent: Agent, paths: list[str]) -> tuple[Any, list[int]] | None:
    """The index file's identity and where each of ``paths``' entries starts in it, if it
    lists exactly those paths (what lets the next commit splice it without parsing it)."""
    found = gitindex.entry_offsets(agent.history.control_dir)
    if found is None or len(found[1]) != len(paths):
        return None
    known, offsets = found
    try:
        return known, [offsets[path] for path in paths]
    except KeyError:
        return None


def _write_index(
    agent: Agent,
    record: dict[str, Any],
    table: _Table,
    updated: dict[str, TreeEntry | None],
    new_files: dict[str, tuple[int, str, Sig | None]],
    fresh: dict[str, os.stat_result],
    tree_sha: str,
) -> tuple[Any, list[int]] | None:
    """Splice the index the record knows: the committed entries, and the stat data of files
    read whole and unchanged, put in place. Its new layout; None if it is not that index."""
    layout = record.get("index")
    if not layout:
        return None
    known, starts = layout
    replacements: dict[str, bytes] = {}
    for path in set(updated) | set(fresh):
        entry = table.entry(table.paths.index(path))  # the table holds what is committed now
        st = fresh.get(path)
        mode, sha, trusted = new_files[path]
        if st is not None and (entry != TreeEntry(mode, sha) or trusted is None):
            st = None  # a stat that does not vouch for the entry: git and memfs hash the file
        if st is None and path not in updated:
            continue
        replacements[path] = indexfile.pack_entry(path, entry, st)
    where = {path: starts[table.paths.index(path)] for path in replacements}
    written = gitindex.splice_at(
        agent.history.control_dir, tuple(known), where, replacements,
        agent.history._lock.cleared_stale_git_lock, tree_sha,
    )  # fmt: skip
    return None if written is None else (written, starts)


def _changed_trees(
    trees: dict[str, str],
    table: _Table,
    updated: dict[str, TreeEntry | None],
    listings: dict[str, tuple[Sig | None, tuple[str, ...]]],
    control: Path,
    fsync: bool,
) -> dict[str, str]:
    """``trees`` (every folder's tree sha) for the files of ``table`` (what is committed now),
    where only the folders on the paths ``updated`` differ: those tree objects are built and
    written, every other subtree's sha reused."""
    touched: set[str] = {""}
    for path in updated:
        folder = path.rpartition("/")[0]
        while folder:
            touched.add(folder)
            folder = folder.rpartition("/")[0]
    rows = {path: i for i, path in enumerate(table.paths)}
    if all(folder in listings for folder in touched):  # each folder's names: no 10,000 scan
        candidates = [
            f"{folder}/{name}" if folder else name
            for folder in touched
            for name in listings[folder][1]
        ]
    else:
        candidates = table.paths
    entries = [(path, *table.entry(rows[path])) for path in candidates if path in rows]
    return _trees_of(touched, entries, trees, (control, fsync))
