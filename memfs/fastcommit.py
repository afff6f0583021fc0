"""A one-file ``commit`` at O(stat) cost: git's index and cache-tree, kept by memfs.

A full commit walks the work tree (one ``readdir`` per folder, a stat and a classification per
file), reads the index to vouch for unchanged files, compares trees, and builds the new trees
through dulwich: ~0.2 s at 10,000 files, for an edit of one. While HEAD is still the commit
the record (``memfs.commitrecord``) was made for, the next commit stats every folder and file
instead of walking: a folder whose stat changed is listed again and must hold the same names
(else the full commit runs); a file whose stat changed is read and hashed, and only those;
the trees on the changed files' paths are rebuilt from the record, every other subtree's sha
reused; the objects are written by ``history.loose``, the branch moved by compare-and-swap,
the index spliced in place, and the record written again for the new commit. Every check a
full commit makes on a change still runs on it: Letta's rules and hook, the secrets guard
(``Agent._gate``), the size cap, readable regular files only (anything else: the full commit).

Data safety: a file's stat is taken before it is read; one that changed while read is
recorded without stat data, as is one changed within a clock tick of its stat (racily clean).
Anything the record cannot vouch for sends the commit down the full path.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from memfs import gitindexwrite, indexfile, statusrecord
from memfs.commitrecord import context as context
from memfs.commitrecord import (
    forget,
    index_layout,
    parse,
    read,
    stat_sig,
    trees_of,
    trusted,
    write,
)
from memfs.commitrecord import remember as remember
from memfs.faults import crash_point
from memfs.filecolumns import Sig, Table
from memfs.history import loose
from memfs.layout import MANIFEST_FILE
from memfs.secrets.hooks import has_secrets
from memfs.trees import (
    MODE_EXECUTABLE,
    MODE_FILE,
    TRAILER_HOST,
    TRAILER_ORIGIN,
    CommitInfo,
    FileChange,
    TreeEntry,
    parse_trailers,
    with_trailers,
)
from memfs.util import hostname

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.agent import Agent

_TRUE = ("true", "yes", "on", "1")
FALLBACK: Any = object()
"""What ``commit`` returns when the record cannot answer: the caller runs the full commit."""

commits_fast = 0  # commits made by this module in this process: for tests and benchmarks


def commit(
    agent: Agent, message: str | None, origin: str, allow_read_only: tuple[str, ...] = ()
) -> CommitInfo | Any | None:
    """Commit every change in the work tree from the record, or ``FALLBACK`` when the record
    cannot vouch for the tree (the caller then commits in full). Runs under the agent's lock,
    after the checks a full commit makes first (a git operation midway, a merge to recover)."""
    early, agent.prescan = agent.prescan, None  # a child's scan, started by a push
    data = read(agent)
    answer: tuple[int, list[int]] | None = None
    if early is not None and data is not None and data == early.data:
        answer = early.answer()  # against these very bytes, which it parsed and checked
        record = parse(data, checked=answer is not None)
        if answer is not None:
            from memfs import prescan

            prescan.answers_taken += 1
    else:
        if early is not None:
            early.discard()  # another record now (a commit in between): scan here
        record = None if data is None else parse(data)
    if record is None:
        return FALLBACK
    history = agent.history
    head = history.head()
    made_for = context(agent, head)
    if head is None or record["key"] != made_for or record["cap"] != agent._max_file_size():
        return FALLBACK
    if history.commit_tree_sha(head) != record["trees"].get(""):
        return FALLBACK
    started = time.time_ns() if answer is None else answer[0]  # before any stat used
    base = str(agent.root) + "/"
    lstat = os.lstat
    folders: dict[str, tuple[Sig | None, tuple[str, ...]]] = record["folders"]
    new_folders = dict(folders)
    for folder, (sig, names) in folders.items():
        try:
            st = lstat(base + folder if folder else base)
        except OSError:
            return FALLBACK
        now = stat_sig(st)
        if sig is None or now != sig:
            try:
                listing = tuple(sorted(os.listdir(base + folder if folder else base)))
            except OSError:
                return FALLBACK
            if listing != names or not stat.S_ISDIR(st.st_mode):
                return FALLBACK  # an entry came or went: the full walk classifies it
            new_folders[folder] = (trusted(now, started), names)
    try:
        table = Table.loads(record["files"])
    except (KeyError, TypeError, ValueError):
        return FALLBACK
    paths = table.paths
    stats: list[os.stat_result] | None = None
    try:
        if answer is None:  # every stat kept only if the index is not the one to splice
            dirty, picked, stats = table.scan(base, keep=not _splices(agent, record))
        else:  # the rows the child found changed, stat again here before they are read
            dirty = answer[1]
            picked = {i: lstat(base + paths[i]) for i in dirty}
    except (OSError, OverflowError, IndexError, TypeError):
        return FALLBACK  # gone (its folder's listing changed too, or is changing now)
    payload: dict[str, tuple[int, bytes] | None] = {}
    fresh: dict[str, os.stat_result] = {}
    cap, uid = record["cap"], os.getuid()
    new_sigs: dict[int, tuple[int, str, Sig | None]] = {}
    for i in dirty:
        path, st = paths[i], picked[i]
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
        unchanged = stat_sig(after) == stat_sig(st)  # not written while read: its stat vouches
        sha = loose.object_sha(b"blob", data)
        if unchanged:
            fresh[path] = st
        new_sigs[i] = (mode, sha, trusted(stat_sig(st), started) if unchanged else None)
        if TreeEntry(mode, sha) != table.entry(i):
            payload[path] = (mode, data)
    row = {paths[i]: i for i in dirty}
    new_files = {paths[i]: found for i, found in new_sigs.items()}
    plain = not allow_read_only and MANIFEST_FILE not in payload and _no_rules(agent)
    # HEAD's tree for Letta's rules: all of it only where they look at the whole tree
    if not plain and agent.letta_rules().tree_wide:
        head_tree = {path: table.entry(i) for i, path in enumerate(paths)}
    else:
        head_tree = {path: table.entry(row[path]) for path in payload}
    before = {i: tuple(table.sigs[5 * i : 5 * i + 5]) for i in new_sigs}  # the rows read
    for i, (mode, sha, sig) in new_sigs.items():
        table.set(i, mode, sha, sig)
    if not payload:
        if not gitindexwrite.index_is_for(history.control_dir, record["trees"][""]):
            # git rewrote the index (its status does), or a write was skipped while git held
            # index.lock: the index must still list HEAD, or git shows the commit undone
            committed = {path: table.entry(i) for i, path in enumerate(paths)}
            if not history.index_describes(committed, commit=head):
                return FALLBACK  # the full commit writes it
        agent.skipped, agent.held, agent.overridden = [], [], []
        if _worth_writing(before, new_sigs, folders, new_folders, len(paths)):
            write(agent, {**record, "files": table.dumps(), "folders": new_folders})
        return None
    agent.skipped = []
    if plain:  # what the gate lets through here, without loading Letta's rules
        allowed: dict[str, tuple[int, bytes] | None] = dict(payload)
        agent.held, agent.overridden = [], []
    else:
        allowed = agent._gate(head_tree, payload, origin, allow_read_only).allowed
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
    from memfs.agentcommit import generated_message

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
        index_stats = _vouched(base, table, stats, set(row))
        for path, st in fresh.items():  # read whole and unchanged: vouches for what is committed
            if committed[path] == TreeEntry(*new_files[path][:2]):
                index_stats[path] = st
        history.write_index(committed, index_stats, commit=sha, changed=list(allowed))
        index = index_layout(agent, paths, trees[""])
    if agent.held:
        forget(agent)  # held changes stay in the work tree: the record would hide them
    else:
        new_key = (made_for[0], made_for[1], sha, made_for[3])
        write(agent, {**record, "key": new_key, "files": table.dumps(),
                       "folders": new_folders, "trees": trees, "index": index})  # fmt: skip
    return _info(sha, head, author, when, offset, full_text)


REREAD_NS, REREAD_BYTE_NS, REWRITE_ROW_NS = 20_000, 2, 500
"""What a later scan pays for a file the record does not trust (open, read, lstat, sha-1: ~20
us and ~2 ns a byte) and what writing the record costs per file (~0.5 us: 5 ms at 10,000),
measured on this project's CI machine."""


def _worth_writing(
    before: dict[int, tuple[int, ...]],
    new_sigs: dict[int, tuple[int, str, Sig | None]],
    folders: dict[str, tuple[Sig | None, tuple[str, ...]]],
    new_folders: dict[str, tuple[Sig | None, tuple[str, ...]]],
    rows: int,
) -> bool:
    """Whether a scan that found nothing to commit should write the stat data it learnt
    (``before``: the rows it read, as the record held them; ``rows``: the record's files):
    only when re-reading the files (and listing the folders) it could now trust, on every
    later scan, costs more than rewriting the whole record once. The usual case, a file
    committed a moment ago (too fresh to trust then) and trusted now, is not worth 5 ms at
    10,000 files. Not writing is always safe: the record keeps what it held, and what no
    longer stats as it says is read."""
    gained = 0
    for i, (_, _, sig) in new_sigs.items():
        if sig is not None and before[i] != sig:
            gained += REREAD_NS + REREAD_BYTE_NS * sig[2]
    for folder, (sig, _) in new_folders.items():
        if sig is not None and folders[folder][0] != sig:
            gained += REREAD_NS
    return gained >= REWRITE_ROW_NS * rows


def _no_rules(agent: Agent) -> bool:
    """Whether nothing can hold a change back: a memfs-native agent with no pre-commit hook
    (so no Letta rule is active, ``lettahook.Rules.active``) and no secrets (the guard).
    Then the gate lets every change through, and ``memfs.lettahook`` (~5 ms to import) and
    the guard are not loaded; anything else goes through ``Agent._gate``."""
    if agent.layout.is_letta or has_secrets(agent):
        return False
    return not os.path.lexists(agent.history.control_dir / "hooks" / "pre-commit")


def _splices(agent: Agent, record: dict[str, Any]) -> bool:
    """Whether the index is the one the record's layout was taken from (``_write_index``
    splices it); if not, the commit writes it whole, with the scan's stat of every file."""
    layout = record.get("index")
    try:
        st = os.stat(agent.history.control_dir / "index")
    except OSError:
        return False
    return bool(layout) and gitindexwrite.identity(st) == tuple(layout[0])


def _vouched(
    base: str, table: Table, stats: list[os.stat_result] | None, skip: set[str]
) -> dict[str, os.stat_result]:
    """The stat of each file of ``table`` but ``skip`` that the table's stat data vouches
    for: ``stats`` (the scan's, each equal to what the table holds), or, after a scan that
    kept none (a child's, or one that expected to splice the index), a stat taken now and
    kept only where it still is what the table holds."""
    moved: set[int] = set()
    if stats is None:
        try:
            stats = statusrecord.lstat_all(base, table.paths)
            moved = set(table.changed(stats))
        except (OSError, OverflowError):
            return {}  # no stat data: git and memfs hash those files
    return {
        path: st
        for i, (path, st) in enumerate(zip(table.paths, stats, strict=True))
        if path not in skip and i not in moved
    }


def _info(sha: str, parent: str, author: str, when: int, offset: int, text: str) -> CommitInfo:
    """What ``History.commit_info`` says of the commit just written, without reading it."""
    from datetime import datetime, timedelta, timezone

    message, trailers = parse_trailers(text)
    date = datetime.fromtimestamp(when, timezone(timedelta(seconds=offset)))
    return CommitInfo(sha, [parent], author, date, message, trailers)


def _write_index(
    agent: Agent,
    record: dict[str, Any],
    table: Table,
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
    written = gitindexwrite.splice_at(
        agent.history.control_dir, tuple(known), where, replacements,
        agent.history._lock.cleared_stale_git_lock, tree_sha,
    )  # fmt: skip
    return None if written is None else (written, starts)


def _changed_trees(
    trees: dict[str, str],
    table: Table,
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
    return trees_of(touched, entries, trees, (control, fsync))
