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
from collections.abc import Iterable
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
FORMAT = 1
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
    files: dict[str, tuple[int, str, Sig | None]] = {}
    for path, st in snapshot.stats.items():
        if not stat.S_ISREG(st.st_mode):
            return  # symlinks: where they lead depends on other entries
        entry = tree[path]
        files[path] = (entry.mode, entry.sha, _trusted(_sig(st), started_ns))
    folders: dict[str, tuple[Sig | None, tuple[str, ...]]] = {}
    for folder, names in scan.listed.items():
        st = scan.folders.get(folder)
        if st is None:
            return
        folders[folder] = (_trusted(_sig(st), started_ns), names)
    trees = subtree_shas(tree)
    if trees.get("") != agent.history.commit_tree_sha(commit):
        return  # this tree is not what the commit holds (flattened away a shadowed path)
    record = _record(made_for, commit, agent._max_file_size(), files, folders, trees)
    record["index"] = _index_layout(agent, list(files))
    _write(agent, record)


def _record(
    made_for: tuple[Any, ...],
    commit: str,
    cap: int,
    files: dict[str, tuple[int, str, Sig | None]],
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
    files: dict[str, tuple[int, str, Sig | None]] = record["files"]
    paths = list(files)
    try:
        stats = [lstat(base + path) for path in paths]
    except OSError:
        return FALLBACK  # gone: the folder's listing changed too, or is changing now
    new_files = dict(files)
    dirty = [
        (path, st)
        for path, st, (_, _, sig) in zip(paths, stats, files.values(), strict=True)
        if sig is None or (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode) != sig
    ]
    payload: dict[str, tuple[int, bytes] | None] = {}
    fresh: dict[str, os.stat_result] = {}
    cap, uid = record["cap"], os.getuid()
    for path, st in dirty:
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
        recorded_mode, recorded_sha, _ = files[path]
        sha = loose.object_sha(b"blob", data)
        if unchanged:
            fresh[path] = st
        new_files[path] = (mode, sha, _trusted(_sig(st), started) if unchanged else None)
        if (mode, sha) != (recorded_mode, recorded_sha):
            payload[path] = (mode, data)
    # HEAD's tree for Letta's rules: all of it only where they look at the whole tree
    if agent.letta_rules().tree_wide:
        head_tree = {path: TreeEntry(mode, sha) for path, (mode, sha, _) in files.items()}
    else:
        head_tree = {path: TreeEntry(*files[path][:2]) for path in payload}
    if not payload:
        agent.skipped, agent.held, agent.overridden = [], [], []
        if new_files != files or new_folders != folders:
            _write(agent, {**record, "files": new_files, "folders": new_folders})
        return None
    agent.skipped = []
    verdict = agent._gate(head_tree, payload, origin, allow_read_only)
    allowed = verdict.allowed
    if not allowed:
        forget(agent)  # held changes stay in the work tree: the record would hide them
        return None
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
    trees = _changed_trees(record["trees"], files, updated, new_folders, control, fsync)
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
    index = _write_index(agent, record, paths, files, updated, new_files, fresh, trees[""])
    if index is None:  # the index is not the one recorded: written in full, as a full commit
        committed = {path: TreeEntry(mode, sha) for path, (mode, sha, _) in files.items()}
        committed.update(updated)  # type: ignore[arg-type]
        dirty_paths = {path for path, _ in dirty}
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
        _write(agent, {**record, "key": new_key, "files": new_files, "folders": new_folders,
                       "trees": trees, "index": index})  # fmt: skip
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
    paths: list[str],
    files: dict[str, tuple[int, str, Sig | None]],
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
        entry = updated.get(path) or TreeEntry(*files[path][:2])
        st = fresh.get(path)
        mode, sha, trusted = new_files[path]
        if st is not None and (entry != TreeEntry(mode, sha) or trusted is None):
            st = None  # a stat that does not vouch for the entry: git and memfs hash the file
        if st is None and path not in updated:
            continue
        replacements[path] = indexfile.pack_entry(path, entry, st)
    where = {path: starts[paths.index(path)] for path in replacements}
    written = gitindex.splice_at(
        agent.history.control_dir, tuple(known), where, replacements,
        agent.history._lock.cleared_stale_git_lock, tree_sha,
    )  # fmt: skip
    return None if written is None else (written, starts)


def _changed_trees(
    trees: dict[str, str],
    files: dict[str, tuple[int, str, Sig | None]],
    updated: dict[str, TreeEntry | None],
    listings: dict[str, tuple[Sig | None, tuple[str, ...]]],
    control: Path,
    fsync: bool,
) -> dict[str, str]:
    """``trees`` (every folder's tree sha) for the record's ``files`` with ``updated``, where
    only the folders on the paths updated differ: those tree objects are built and written,
    every other subtree's sha reused."""
    touched: set[str] = {""}
    for path in updated:
        folder = path.rpartition("/")[0]
        while folder:
            touched.add(folder)
            folder = folder.rpartition("/")[0]

    def entry(path: str) -> tuple[str, int, str]:
        found = updated.get(path)
        return (path, found.mode, found.sha) if found else (path, *files[path][:2])

    if all(folder in listings for folder in touched):  # each folder's names: no 10,000 scan
        candidates = [
            f"{folder}/{name}" if folder else name
            for folder in touched
            for name in listings[folder][1]
        ]
        entries = [entry(path) for path in candidates if path in files]
    else:
        entries = [entry(path) for path in files]
    return _trees_of(touched, entries, trees, (control, fsync))
