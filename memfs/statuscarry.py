"""The status record carried over a commit: ``status`` right after a commit costs its stats.

A commit moves HEAD, and the status record (``memfs.statusrecord``) is made for one HEAD, so
the first ``status`` after every commit walked, hashed and parsed the whole tree again
(~0.15 s at 10,000 files), though the commit had just vouched for every file. When the
status record was made for another HEAD and the commit record (``memfs.commitrecord``) for
this one, the two together answer for the tree, with one ``lstat`` per file:

- the status record is of the shape written, for this memfs, user and files beside the tree
  (``statusrecord.key`` but HEAD), and listed no skipped file, no open conflict and no file
  added or deleted (HEAD then tracked the same paths: a walk lists the same folders); the
  layout is decided by those files (agent.yaml or MEMORY.md is there), not by HEAD;
- the commit record was made for exactly this key (HEAD, the files beside the tree);
- every folder the status record saw stats as it did then: no entry came or went, so the
  same files are walked and the same secrets ignored; it saw exactly the commit record's
  files, in its order;
- every file stats as the commit record trusted it, or is a regular file of ours under the
  size cap that is read and hashes to what HEAD holds: the tree is HEAD's, nothing changed;
- every file that stats otherwise than the status record saw it is read and parsed: it had
  no problem then, has none now and holds no conflict markers; the others hold what they held.

Then the answer is the recorded one with HEAD's sha and no change (nothing to hold back or
review), and the record is written again for it. Anything else, or a file changed within the
racy window: ``None``, and ``status`` walks the tree as before.
"""

from __future__ import annotations

import marshal
import os
import stat
from array import array

from memfs import statusdata, statusrecord
from memfs.commitrecord import _MODES, differing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.agent import Agent, Status

records_carried = 0  # answers carried over a commit by this process: for tests and benchmarks


def carried(agent: Agent, wanted: tuple[Any, ...], started_ns: int) -> Status | None:
    """The status for ``wanted`` (``statusrecord.key`` now) from the status record of the
    HEAD before and the commit record of this one, re-recorded; None to walk the tree.
    ``started_ns``: ``statusrecord.now_ns()`` taken before ``wanted``."""
    path = statusrecord._path(agent)
    try:
        record = marshal.loads(path.read_bytes())
    except Exception:  # a cache: whatever is wrong with it, walk the tree
        return None
    if type(record) is not tuple or len(record) != 5 or type(record[0]) is not tuple:
        return None
    old_key = record[0]
    if len(old_key) != 4 or old_key[2] == wanted[2] or wanted[2] is None:
        return None
    if (old_key[0], old_key[1], old_key[3]) != (wanted[0], wanted[1], wanted[3]):
        return None
    try:
        return _carry(agent, record, wanted, started_ns)
    except (OSError, TypeError, ValueError, KeyError, IndexError, OverflowError):
        return None


def _carry(
    agent: Agent, record: tuple[Any, ...], wanted: tuple[Any, ...], started_ns: int
) -> Status | None:
    from memfs import commitrecord

    old_status = statusdata.status_of(record[4])  # ValueError unless of the shape written
    if old_status.skipped or old_status.conflicts:
        return None
    if any(change.status != "modified" for change in old_status.changes):
        return None  # HEAD then tracked other paths: a walk may list other folders
    if not _layout_on_disk(wanted):
        return None  # the rules files are read by may depend on HEAD (Letta v1 or v2)
    commit = commitrecord.load(agent)
    if commit is None or commit["key"] != wanted:
        return None
    table = commitrecord.Table.loads(commit["files"])
    root = str(agent.root)
    (folder_paths, folder_sigs), (paths, sigs) = record[1], record[2]
    if type(folder_paths) is not list or type(sigs) is not bytes or paths != table.paths:
        return None
    if not statusrecord.sound_paths([f for f in folder_paths if f]):
        return None
    if statusrecord.packed(statusrecord.lstat_all(root, folder_paths)) != folder_sigs:
        return None  # an entry came or went, or may have
    stats = statusrecord.lstat_all(root, paths)
    now = array("Q")
    now.frombytes(statusrecord.packed(stats))
    seen = array("Q")
    seen.frombytes(sigs)
    if len(seen) != len(now):
        return None
    new_rows = set(differing(now, seen)) | set(differing(now, table.sigs))
    cap, uid = commit["cap"], os.getuid()
    problem_paths = {row[0] for row in record[4][2]}
    fresh = []
    for i in sorted(new_rows):
        st, name = stats[i], paths[i]
        sig = statusrecord.sig(st)
        if statusrecord.racy([sig], started_ns):
            return None  # may change again unseen: walked until it settles
        if not (
            stat.S_ISREG(st.st_mode)
            and st.st_size <= cap
            and st.st_uid == uid
            and st.st_mode & stat.S_IRUSR
        ):
            return None  # the walk would skip it, or it is not what HEAD holds
        if name in problem_paths:
            return None  # its problems then may not be its problems now
        if not _as_committed(agent, table, i, st, name):
            return None
        fresh.append(sig)
    status = _status(old_status, wanted[2])
    data = (
        wanted,
        record[1],
        (paths, now.tobytes()),
        marshal.dumps((paths, paths, [_MODES[m] for m in table.modes], table.shas.hex())),
        statusdata.status_data(status),
    )  # fmt: skip
    beside = [s for s in wanted[3] if s is not None]
    statusrecord._write(statusrecord._path(agent), marshal.dumps(data), fresh + beside)
    global records_carried
    records_carried += 1
    return status


def _layout_on_disk(wanted: tuple[Any, ...]) -> bool:
    """Whether the key's files alone decide the layout (``Agent.layout``): agent.yaml or
    MEMORY.md is a regular file. Otherwise HEAD's tree decides between Letta's v1 and v2."""
    beside = dict(zip(statusrecord.INSIDE, wanted[3][len(statusrecord.OUTSIDE) :], strict=True))
    return any(
        (found := beside[name]) is not None and stat.S_ISREG(found[4])
        for name in ("agent.yaml", "MEMORY.md")
    )


def _as_committed(agent: Agent, table: Any, row: int, st: os.stat_result, path: str) -> bool:
    """Whether the file at ``path`` (stat ``st``) holds what HEAD holds there, with no
    problem and no conflict markers: read once, hashed, parsed."""
    from memfs.errors import UnsafePathError
    from memfs.history import loose
    from memfs.layout import is_memory_path
    from memfs.markers import has_markers
    from memfs.pathcheck import read_inside
    from memfs.trees import MODE_EXECUTABLE, MODE_FILE

    try:
        data = read_inside(agent.root, path)
    except (OSError, UnsafePathError):  # gone, unsafe, unreadable: the walk says what it is
        return False
    if statusrecord.sig(os.lstat(os.path.join(agent.root, path))) != statusrecord.sig(st):
        return False  # written while read
    mode = MODE_EXECUTABLE if st.st_mode & 0o100 else MODE_FILE
    entry = table.entry(row)
    if entry.mode != mode or entry.sha != loose.object_sha(b"blob", data):
        return False  # a change since the commit: the walk lists it
    if b"\0" not in data[:8000] and has_markers(data):
        return False
    layout = agent.layout
    if is_memory_path(path, layout):
        from memfs.memory import MemoryFile

        if MemoryFile(agent.root, path, data, layout).problems():
            return False
    return True


def _status(old: Status, head: str) -> Status:
    """``old`` for the tree HEAD ``head`` holds: no change, so nothing held or blocked."""
    old.head, old.changes, old.held, old.blocked = head, [], [], False
    return old
