"""The record a one-file commit is made from (``memfs.fastcommit``): ``.git/memfs/commit.bin``.

Written after every commit whose work tree is exactly what it committed (nothing held back,
skipped, or a symlink), it keeps, for that commit: every file of its tree with its mode, blob
sha and the stat data it had when known to hold that blob (git's index), in flat columns
(``Table``); every folder the walk listed, with its stat data and the names it held (git's
untracked cache); the sha of every subtree (git's cache-tree); where each entry starts in the
index file memfs wrote; and the stat data of the files outside the tree that decide how it is
read (``statusrecord.key``: ``.git/config``, the hook, the secrets, ``.gitignore``,
``.memfsignore``, ``agent.yaml``, ``MEMORY.md``).

An entry's stat data is trusted only if it is older than the moment it was taken by more than
a clock tick (``statusrecord.RACY_NS``, git's "racily clean" rule, per entry; a file whose
ctime has no part below the millisecond gets ``statusrecord.COARSE_RACY_NS``): a younger
entry is kept without stat data and read every time until it ages. The rule is applied twice:
on this machine's clock, and on the file system's (the mtime of the record's temp file,
created after every stat was taken: a network file system stamps times with its server's
clock). No record is made while a file of the key is a symlink (its lstat does not move when
its target changes).

The record is plain data (``marshal``), checked on load: of the shape and types written,
every path relative with no empty, ``.``, ``..`` or ``.git`` part (``statusrecord.
sound_paths``): a record that lied would make a commit miss an edit, or read a file outside
the agent into history. It is a cache: torn, planted, from another memfs, format, user or
HEAD, it is not used, and a commit walks the tree.
"""

from __future__ import annotations

import _thread
import contextlib
import marshal
import os
import stat
from array import array
from collections.abc import Iterable
from pathlib import Path

from memfs import __version__, statusrecord
from memfs.filecolumns import _MODES as _MODES  # re-exported: the record's readers use them
from memfs.filecolumns import _UNTRUSTED, Sig, Table
from memfs.filecolumns import differing as differing
from memfs.history import loose
from memfs.trees import Files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.agent import Agent, Snapshot

RECORD = "commit.bin"
FORMAT = 3  # with statusrecord.FORMAT (in the key): bumped when the record's meaning changes


def stat_sig(st: os.stat_result) -> Sig:
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode)


def trusted(sig: Sig, taken_ns: int) -> Sig | None:
    """``sig`` if its entry last changed long enough before ``taken_ns`` (when the stat was
    taken, or a moment before) that any later change shows in it; else None."""
    return sig if max(sig[1], sig[0]) < taken_ns - statusrecord.window(sig[1]) else None


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
    if scan.custom_ignores:
        return  # a nested .gitignore or exclude lines: rules the record does not stat
    if scan.skipped or agent.held or snapshot.files != tree or set(snapshot.stats) != set(tree):
        return
    for sig in made_for[3]:
        if sig is not None and (trusted(sig, started_ns) is None or stat.S_ISLNK(sig[4])):
            return  # a rule file changed a moment ago, or a link: it may change again unseen
    rows: list[tuple[str, int, str, Sig | None]] = []
    for path, st in snapshot.stats.items():
        if not stat.S_ISREG(st.st_mode):
            return  # symlinks: where they lead depends on other entries
        entry = tree[path]
        rows.append((path, entry.mode, entry.sha, trusted(stat_sig(st), started_ns)))
    folders: dict[str, tuple[Sig | None, tuple[str, ...]]] = {}
    for folder, names in scan.listed.items():
        st = scan.folders.get(folder)
        if st is None:
            return
        folders[folder] = (trusted(stat_sig(st), started_ns), names)
    trees = subtree_shas(tree)
    if trees.get("") != agent.history.commit_tree_sha(commit):
        return  # this tree is not what the commit holds (flattened away a shadowed path)
    try:
        table = Table.of(rows)
    except (OverflowError, ValueError):
        return  # a time before 1970: not kept in the columns
    record = _record(made_for, commit, agent._max_file_size(), table.dumps(), folders, trees)
    record["index"] = index_layout(agent, table.paths, trees[""])
    write(agent, record)


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


def write(agent: Agent, record: dict[str, Any]) -> None:
    """Replace the record whole, without fsync: a torn or lost record costs a full commit.
    Its temp file (named for this process and thread) is created first: its mtime, on the
    file system's clock, is later than every stat the record holds; an entry too near it
    loses its stat data (``_untrust_fresh``), and a key file too near it drops the record."""
    path = _path(agent)
    temp = path.with_name(f".{RECORD}.{os.getpid()}.{_thread.get_ident()}")
    try:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()  # left by a process of this pid that died: a new file, a new mtime
        with open(temp, "xb") as file:
            record = _untrust_fresh(record, os.fstat(file.fileno()).st_mtime_ns)
            if record is None:
                raise OSError("a file of the key is too fresh on the file system's clock")
            file.write(marshal.dumps(record))
        os.replace(temp, path)
    except (OSError, ValueError, TypeError):
        with contextlib.suppress(OSError):
            temp.unlink()


def _untrust_fresh(record: dict[str, Any], fs_now_ns: int) -> dict[str, Any] | None:
    """``record`` with the stat data of every entry changed too near ``fs_now_ns`` (a time on
    the file system's clock, after every stat was taken) dropped; None if a file of the key
    is that fresh. Nothing to do, the usual case, costs a ``max`` over each column."""
    if any(s is not None and trusted(s, fs_now_ns) is None for s in record["key"][3]):
        return None
    folders = record["folders"]
    if any(s is not None and trusted(s, fs_now_ns) is None for s, _ in folders.values()):
        folders = {f: (s and trusted(s, fs_now_ns), names) for f, (s, names) in folders.items()}
        record = {**record, "folders": folders}
    paths, shas, modes, packed = record["files"]
    view = memoryview(packed).cast("Q")  # read in place: copied only if a row is dropped
    limit = fs_now_ns - statusrecord.COARSE_RACY_NS  # older than this: trusted in any case
    mtimes, ctimes = view[0::5], view[1::5]
    sigs: array[int] | None = None
    for start in range(0, len(mtimes), 256):  # a block at a time, row by row in a fresh one
        end = min(start + 256, len(mtimes))
        if max(mtimes[start:end]) < limit and max(ctimes[start:end]) < limit:
            continue
        for i in range(start, end):
            if mtimes[i] >= limit or ctimes[i] >= limit:
                row = tuple(view[5 * i : 5 * i + 5])
                if row[4] and trusted(row, fs_now_ns) is None:  # mode 0: untrusted already
                    if sigs is None:
                        sigs = array("Q")
                        sigs.frombytes(packed)
                    sigs[5 * i : 5 * i + 5] = array("Q", _UNTRUSTED)
    if sigs is not None:
        record = {**record, "files": (paths, shas, modes, sigs.tobytes())}
    return record


_KEYS = frozenset(("format", "version", "key", "cap", "files", "folders", "trees", "index"))


def load(agent: Agent) -> dict[str, Any] | None:
    """The record, if it is one of this format, memfs and shape (``_check``); else None."""
    data = read(agent)
    return None if data is None else parse(data)


def read(agent: Agent) -> bytes | None:
    """The record's bytes as stored, None if there are none."""
    try:
        return _path(agent).read_bytes()
    except OSError:
        return None


def parse(data: bytes, checked: bool = False) -> dict[str, Any] | None:
    """The record stored as ``data``, if it is one of this format, memfs and shape.
    ``checked``: these very bytes were parsed and checked already (by ``memfs.prescan``'s
    child): the shape is not checked again (~3.5 ms at 10,000 files)."""
    try:
        record = marshal.loads(data)
    except Exception:  # a cache: whatever is wrong with it, commit in full
        return None
    if type(record) is not dict or record.get("format") != FORMAT:
        return None
    if record.get("version") != __version__:
        return None
    if checked:
        return record
    try:
        _check(record)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return record


def _is_sig(value: Any) -> bool:
    return type(value) is tuple and len(value) == 5 and all(type(f) is int for f in value)


def _check(record: dict[str, Any]) -> None:
    """ValueError (or KeyError, TypeError) unless ``record`` is of the shape ``remember`` and
    ``fastcommit`` write: plain types only, every path sound, every sha 40 hex digits."""
    if not _KEYS.issuperset(record) or type(record["cap"]) is not int:
        raise ValueError("not a commit record")
    if type(record["key"]) is not tuple or len(record["key"]) != 4:
        raise ValueError("not a key")
    files = record["files"]
    if type(files) is not tuple or len(files) != 4:
        raise ValueError("not the columns")
    paths, shas, modes, packed = files
    if not statusrecord.sound_paths(paths) or len(set(paths)) != len(paths):
        raise ValueError("a path outside the tree, or twice")
    if not (type(shas) is bytes and type(modes) is bytes and type(packed) is bytes):
        raise ValueError("not the columns")
    if modes.translate(None, b"\x00\x01"):
        raise ValueError("a mode memfs does not write")
    folders, trees = record["folders"], record["trees"]
    if type(folders) is not dict or type(trees) is not dict:
        raise ValueError("not the folders")
    if not statusrecord.sound_paths([f for f in [*folders, *trees] if f != ""]):
        raise ValueError("a folder outside the tree")
    for value in folders.values():
        sig, names = value
        if (sig is not None and not _is_sig(sig)) or type(names) is not tuple:
            raise ValueError("not a folder")
        "".join(names)  # TypeError for a name that is not a str (one C loop, not a genexpr)
    hexes = list(trees.values())
    joined = "".join(hexes)  # TypeError for anything but str
    if len(joined) != 40 * len(hexes) or len(bytes.fromhex(joined)) != 20 * len(hexes):
        raise ValueError("not a tree sha")
    layout = record.get("index")
    if layout is not None:
        known, starts = layout
        if not _is_sig((*known, 0, 0)) or type(starts) is not list or len(starts) != len(paths):
            raise ValueError("not an index layout")
        array("Q", starts)  # TypeError for anything but int, OverflowError below 0


def subtree_shas(tree: Files) -> dict[str, str]:
    """The sha of every folder's tree object in ``tree`` ("" is the root), computed."""
    folders = {""}
    for path in tree:
        folder = path.rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    return trees_of(folders, ((p, e.mode, e.sha) for p, e in tree.items()), {}, None)


def trees_of(
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


def index_layout(agent: Agent, paths: list[str], tree_sha: str) -> tuple[Any, list[int]] | None:
    """The index file's identity and where each of ``paths``' entries starts in it, if it
    was written for tree ``tree_sha`` and lists exactly those paths (what lets the next
    commit splice it without parsing it). An index whose write was skipped (git held
    ``index.lock``) has no layout: splicing it would keep its stale entries for good."""
    from memfs import gitindexwrite  # loaded by the commit that writes the record already

    if not gitindexwrite.index_is_for(agent.history.control_dir, tree_sha):
        return None
    found = gitindexwrite.entry_offsets(agent.history.control_dir)
    if found is None or len(found[1]) != len(paths):
        return None
    known, offsets = found
    try:
        return known, [offsets[path] for path in paths]
    except KeyError:
        return None
