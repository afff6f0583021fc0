"""Apply a change of tree to the work tree: never over an edit, never left half done.

A merge, fast-forward, restore or revert rewrites many files while editors (a person, the
agent, a watcher's harness) keep writing. Two rules hold (DESIGN.md §6):

- A file is replaced only while it holds the version the change expects. The check and the
  replacement are one step: the new version is written to a temp file first; then whatever
  is at the path is *moved aside* (a rename: atomic, so the last editor's file is what
  moves), checked, and only then is the new version linked in (a link fails if anything
  appeared at the path meanwhile). A file that was not the expected version is put back.
  The moved-aside file is kept until the change is committed and checked again then, so an
  append through a file handle opened before the move is found, not lost.
- A change stopped midway (an edit met on the way, an error, kill -9) is rolled back, never
  committed half-applied as if it were a local edit. Before the first write a journal in
  ``.git/memfs/`` lists every path with its old and new version. Until the change's commit
  moves the branch, a journal means "unfinished": ``recover`` puts back the old version of
  every path that holds the new one and leaves every other file (an edit) as it is (an edit
  of a file the change wrote keeps the version it replaced beside it, as a conflict copy);
  the caller then commits those edits and merges again.

Files moved aside or prepared live in the update's own folder at the agent's root,
``.memfs-tmp-update-<token>/`` (ignored, so never committed), never inside a folder the
update is emptying. A moved-aside file that turns out to hold an edit and cannot go back to
its path becomes a conflict copy, which the next commit records: nothing is dropped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from memfs import pathcheck, worktree
from memfs.errors import LocalEditError, UnsafePathError
from memfs.faults import crash_point
from memfs.layout import MANIFEST_FILE
from memfs.record import FrozenRecord
from memfs.trees import (
    MODE_EXECUTABLE,
    MODE_SYMLINK,
    Files,
    TreeEntry,
    blob_sha,
    compare_trees,
    file_mode,
    read_worktree_data,
)
from memfs.util import TEMP_PREFIX, atomic_write, fsync_dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs.history import History

JOURNAL = "update.json"
MODE_FOLDER = 0o040000


class _Change(FrozenRecord):
    """One path the update changes: its entry before and after."""

    __slots__ = _fields = ("path", "old", "new")
    path: str
    old: TreeEntry | None
    new: TreeEntry | None

    def __init__(self, path: str, old: TreeEntry | None, new: TreeEntry | None) -> None:
        self._set(path, old, new)


def entry_on_disk(path: Path) -> TreeEntry | None:
    """The entry the file at ``path`` would have in a commit; a folder's has no sha."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return TreeEntry(MODE_FOLDER, "")
    mode = file_mode(st)
    try:
        return TreeEntry(mode, blob_sha(read_worktree_data(path, mode)))
    except FileNotFoundError:
        return None


class TreeUpdate:
    """One journaled change of the work tree from one tree to another (see the module doc)."""

    def __init__(
        self, root: Path, history: History, head: str | None, changes: list[_Change], token: str
    ) -> None:
        self.root = root
        self.history = history
        self.head = head
        self.changes = changes
        self.token = token

    # -- names ----------------------------------------------------------------------------

    @property
    def staging(self) -> Path:
        """The update's own folder at the agent's root (ignored, so never committed): moved-
        aside and prepared files live here, out of the folders the update empties."""
        return self.root / f"{TEMP_PREFIX}update-{self.token}"

    def _beside(self, index: int, role: str) -> Path:
        return self.staging / f"{index}-{role}"

    def aside(self, index: int) -> Path:
        """Where the file replaced by change ``index`` is kept until the commit."""
        return self._beside(index, "old")

    def prepared(self, index: int) -> Path:
        """The temp file holding change ``index``'s new version before it is linked in."""
        return self._beside(index, "new")

    @property
    def journal(self) -> Path:
        return self.history.state_dir / JOURNAL

    # -- the journal ----------------------------------------------------------------------

    def _record(self) -> None:
        def entry(value: TreeEntry | None) -> list[object] | None:
            return [value.mode, value.sha] if value else None

        document = {
            "token": self.token,
            "head": self.head,
            "changes": [[c.path, entry(c.old), entry(c.new)] for c in self.changes],
        }
        atomic_write(self.journal, json.dumps(document).encode())

    @classmethod
    def load(cls, root: Path, history: History) -> TreeUpdate | None:
        """The unfinished update recorded in the journal, if there is one."""
        try:
            document = json.loads((history.state_dir / JOURNAL).read_bytes())
            changes = [
                _Change(
                    str(path),
                    TreeEntry(int(old[0]), str(old[1])) if old else None,
                    TreeEntry(int(new[0]), str(new[1])) if new else None,
                )
                for path, old, new in document["changes"]
            ]
            for change in changes:
                worktree.check_path(change.path)
            return cls(root, history, document["head"], changes, str(document["token"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, UnsafePathError):
            # A journal memfs cannot read names nothing it can undo; the next commit
            # records the work tree as it is, which loses nothing.
            (history.state_dir / JOURNAL).unlink(missing_ok=True)
            return None

    # -- applying -------------------------------------------------------------------------

    def apply(self) -> None:
        """Write every change, or roll back what was written and raise."""
        contents = {
            c.new.sha: self.history.blob(c.new.sha) for c in self.changes if c.new is not None
        }
        for change in self.changes:
            pathcheck.safe_path(self.root, change.path)
            if change.new is not None:
                pathcheck.check_symlink(
                    self.root, change.path, change.new.mode, contents[change.new.sha]
                )
        self._record()
        try:
            self.staging.mkdir(exist_ok=True)
            for index, change in enumerate(self.changes):
                crash_point("apply.write")
                if not self._apply_one(index, change, contents):
                    raise LocalEditError(change.path)
        except BaseException:
            self.roll_back()
            raise
        crash_point("apply.commit")

    def _apply_one(self, index: int, change: _Change, contents: dict[str, bytes]) -> bool:
        target = pathcheck.safe_path(self.root, change.path)
        replacement = None
        if change.new is not None:
            if target.is_dir() and not target.is_symlink():
                try:
                    target.rmdir()  # an empty folder left where the file goes
                except OSError:
                    raise UnsafePathError(change.path, "a folder is in the way") from None
            target.parent.mkdir(parents=True, exist_ok=True)
            replacement = self.prepared(index)
            _prepare(replacement, change.new.mode, contents[change.new.sha])
        if not self._swap(target, change.old, replacement, self.aside(index)):
            return False
        if change.new is None:
            _remove_empty_folders(target.parent, self.root)
        return True

    def _swap(
        self, target: Path, expected: TreeEntry | None, replacement: Path | None, aside: Path
    ) -> bool:
        """Replace ``target`` by ``replacement`` (None: delete it) if it holds ``expected``.

        What was at ``target`` is left at ``aside``; False (and everything as it was, but
        for a file that appeared at the path meanwhile, which stays) if it was not
        ``expected``.
        """
        if expected is not None:
            try:
                if stat.S_ISDIR(target.lstat().st_mode):
                    return _discard(replacement)
                os.rename(target, aside)
            except FileNotFoundError:
                return _discard(replacement)
            crash_point("apply.moved")
            if entry_on_disk(aside) != expected:
                _put_back(aside, target, self.root)
                return _discard(replacement)
        if replacement is not None:
            try:
                _link_no_clobber(replacement, target)
            except FileExistsError:
                # Something appeared at the path since: an edit (a save, or an append that
                # made a new file), and it stays. What was moved aside goes back beside it
                # as a conflict copy: an append must not turn into losing the lines before.
                if os.path.lexists(aside):
                    _put_back(aside, target, self.root)
                return _discard(replacement)
            replacement.unlink(missing_ok=True)
            crash_point("apply.linked")
        fsync_dir(target.parent)
        return True

    # -- finishing --------------------------------------------------------------------------

    def finish(self) -> None:
        """The change is committed: drop what was moved aside (unless an edit reached it)."""
        for index, change in enumerate(self.changes):
            self._settle_aside(index, change)
            self.prepared(index).unlink(missing_ok=True)
        self._drop_staging()
        self.journal.unlink(missing_ok=True)

    def _drop_staging(self) -> None:
        for index in range(len(self.changes)):  # an undo stopped by a crash leaves these
            self._beside(index, "undone").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.staging.rmdir()  # anything still there is kept (ignored, never committed)

    def roll_back(self) -> None:
        """Undo what was applied: every path holding its new version gets its old one back.

        A path holding anything else is an edit and stays as it is; if this update had
        written it and the edit does not begin with the version it replaced (moved aside),
        that version becomes a conflict copy: committed on the old HEAD, the edit alone
        would drop it from the tree.
        """
        self.staging.mkdir(exist_ok=True)
        for index in reversed(range(len(self.changes))):
            change = self.changes[index]
            target = self.root / change.path
            aside = self.aside(index)
            on_disk = entry_on_disk(target)
            if on_disk is not None and on_disk == change.new:
                self._undo_write(index, change, target, aside)
            elif on_disk is None and os.path.lexists(aside):
                _put_back(aside, target, self.root)
            if (
                os.path.lexists(aside)
                and entry_on_disk(target) != change.old
                and not _begins(target, aside)
            ):
                # Edited after this update wrote it (an append to the new version, before or
                # while it was being undone): the edit stays and will be committed on the old
                # HEAD, so what the update replaced, though committed, is no longer in the
                # tree unless kept: a conflict copy.
                _keep_as_copy(aside, target, self.root)
            self._settle_aside(index, change)
            self.prepared(index).unlink(missing_ok=True)
            if change.old is None:
                _remove_empty_folders(target.parent, self.root)  # made for an undone add
        self._drop_staging()
        self.journal.unlink(missing_ok=True)

    def _undo_write(self, index: int, change: _Change, target: Path, aside: Path) -> None:
        """Put back what was moved aside (or the old version) at ``target``, which holds the
        new one. A moved-aside file goes back as a copy of it: a swap that gives up (an
        edit landed at the path meanwhile) discards its replacement, and the moved-aside
        file must then stay for ``roll_back`` to keep."""
        replacement: Path | None = None
        if os.path.lexists(aside) and stat.S_ISDIR(aside.lstat().st_mode):
            replacement = aside
        elif os.path.lexists(aside):
            replacement = self.prepared(index)
            mode = file_mode(aside.lstat())
            _prepare(replacement, mode, read_worktree_data(aside, mode))
        elif change.old is not None:
            replacement = self.prepared(index)
            _prepare(replacement, change.old.mode, self.history.blob(change.old.sha))
        undone = self._beside(index, "undone")
        if self._swap(target, change.new, replacement, undone):
            undone.unlink(missing_ok=True)  # the new version: the merge can write it again
            if replacement is not aside:
                aside.unlink(missing_ok=True)  # back at its path

    def _settle_aside(self, index: int, change: _Change) -> None:
        """Drop a moved-aside file that holds the old version; keep any other as a copy."""
        aside = self.aside(index)
        if not os.path.lexists(aside):
            return
        if entry_on_disk(aside) == change.old:
            aside.unlink()
        else:
            _keep_as_copy(aside, self.root / change.path, self.root)


def apply_tree(
    root: Path, history: History, current: Files, target: Files, head: str | None
) -> TreeUpdate:
    """Make the work tree go from ``current`` to ``target``; LocalEditError if an edit is met.

    The caller commits (or moves the branch away from ``head``), then calls ``finish``.
    """
    pathcheck.check_tree_links(
        {p: history.blob(e.sha) for p, e in target.items() if e.mode == MODE_SYMLINK}
    )
    # Deletions first, so a folder that becomes a file is gone before the file is written.
    found = sorted(compare_trees(current, target), key=lambda c: c.new is not None)
    changes = [_Change(c.path, c.old, c.new) for c in found]
    import secrets  # 4 ms (hmac): only a work-tree update needs it

    update = TreeUpdate(root, history, head, changes, secrets.token_hex(4))
    update.apply()
    return update


def recover(root: Path, history: History, active: str | None = None) -> str | None:
    """Finish or undo an update a crash or an error left behind.

    If its commit happened (the branch moved on), only the moved-aside files are settled:
    "finished" (the caller rewrites the index, which the crash may have left behind);
    otherwise it is "rolled back". None if there was none. ``active`` names an update this
    process is running now.
    """
    update = TreeUpdate.load(root, history)
    if update is None or update.token == active:
        return None
    if history.head() != update.head:
        update.finish()
        return "finished"
    update.roll_back()
    return "rolled back"


@contextlib.contextmanager
def updating(root: Path, history: History, current: Files, target: Files) -> Iterator[TreeUpdate]:
    """Apply a change, let the caller commit it, then finish it (or roll it back).

    Never in the middle of a plain-git rebase or merge: its marked files are not memfs's to
    overwrite."""
    history.refuse_during_git_operation()
    head = history.head()
    update = apply_tree(root, history, current, target, head)
    try:
        yield update
    except BaseException:
        if history.head() == head:
            update.roll_back()
        else:
            update.finish()
        raise
    update.finish()


def _prepare(path: Path, mode: int, data: bytes) -> None:
    """Write a new version to ``path`` (a temp name beside its target), durably."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if mode == MODE_SYMLINK:
        os.symlink(os.fsdecode(data), path)
        return
    permissions = 0o755 if mode == MODE_EXECUTABLE else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, permissions)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, permissions)
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(replacement: Path | None) -> bool:
    if replacement is not None:
        replacement.unlink(missing_ok=True)
    return False


def _begins(path: Path, start: Path) -> bool:
    """Whether the regular file ``path`` holds all of the regular file ``start`` first (an
    append to it: committing ``path`` loses nothing of ``start``)."""
    try:
        if not (stat.S_ISREG(path.lstat().st_mode) and stat.S_ISREG(start.lstat().st_mode)):
            return False
        return path.read_bytes().startswith(start.read_bytes())
    except OSError:
        return False


def _put_back(aside: Path, target: Path, root: Path) -> None:
    """Return a moved-aside file to its path; if the path is taken, keep it as a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if stat.S_ISDIR(aside.lstat().st_mode):
        if not os.path.lexists(target):
            os.rename(aside, target)
            return
    else:
        try:
            _link_no_clobber(aside, target)
            aside.unlink(missing_ok=True)
            return
        except FileExistsError:
            pass
    _keep_as_copy(aside, target, root)


NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}


def _link_no_clobber(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` unless something is there (FileExistsError).

    A hard link does it in one step. Filesystems without hard links (vfat, exFAT, some FUSE
    and SMB mounts) get a check and a rename: a window of microseconds instead of none.
    """
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in NO_HARD_LINKS:
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from error
        os.rename(source, target)


def _keep_as_copy(aside: Path, target: Path, root: Path) -> None:
    """An edit that cannot be at its path: a conflict copy, committed next.

    Beside the file in a memfs-native agent; in a Letta repo under ``.memfs-conflicts/``
    with no ``.md`` ending, where Letta Code never loads it as a block (merge.py).
    """
    # here only: merge3 costs start-up time
    from memfs.merge import conflict_copy_path, letta_conflict_copy_path

    found = entry_on_disk(aside)
    short = found.sha[:7] if found and found.sha else "0000000"
    letta = not (root / MANIFEST_FILE).is_file()
    relative = target.relative_to(root).as_posix()
    for attempt in range(100):
        label = short if attempt == 0 else f"{short}-{attempt}"
        if letta:
            copy = root / letta_conflict_copy_path(relative, label)
        else:
            copy = target.parent / conflict_copy_path(target.name, label)
        copy.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(copy):
            os.rename(aside, copy)
            return
    raise UnsafePathError(str(target), "too many conflict copies beside it")


def _remove_empty_folders(folder: Path, root: Path) -> None:
    current = folder
    while current != root and root in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
