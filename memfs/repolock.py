"""The agent's write lock, and what to do about a lock git left behind.

memfs's own lock (DESIGN.md §4): ``fcntl.flock`` on ``.git/memfs/lock``, held per operation
so the CLI and a running watcher interleave safely; the kernel drops it when its holder dies.
git's locks are files (``<ref>.lock``, ``index.lock``) that a crash can leave behind for good:
while memfs's lock is held no other memfs process can be behind one, so one older than
``STALE_GIT_LOCK_S`` was left by a crash and is removed (issue 10, item 8).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from memfs.errors import ConcurrentUpdateError, LockTimeoutError

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported where a ref is updated: a read-only command loads no dulwich.file
    from typing import Any, TypeVar

    _T = TypeVar("_T")
    from dulwich.file import FileLocked

STALE_GIT_LOCK_S = 2.0  # git holds a ref lock for milliseconds: one this old was left by a crash


class RepoLock:
    """``fcntl.flock`` on ``.git/memfs/lock``, held per operation, reentrant in a process.

    The kernel releases the lock when the holder dies, so a crash never leaves it stale.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._owner: int | None = None
        self._fd: int | None = None

    @contextlib.contextmanager
    def hold(self, timeout: float) -> Iterator[None]:
        if not self._thread_lock.acquire(timeout=timeout):
            raise LockTimeoutError(str(self.path), timeout, "another thread")
        try:
            if self._depth == 0:
                self._fd = self._acquire(timeout)
                self._owner = threading.get_ident()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    os.close(self._fd)
                    self._fd = None
                    self._owner = None
        finally:
            self._thread_lock.release()

    def held_here(self) -> bool:
        """Whether this thread holds the lock now."""
        return self._depth > 0 and self._owner == threading.get_ident()

    def cleared_stale_git_lock(self, error: FileLocked) -> bool:
        """Whether the git lock of ``error`` was stale and is gone, when this thread holds
        the agent's lock (only then can no memfs process be behind it): see
        ``retry_past_stale_git_lock``."""
        if not self.held_here():
            return False
        lock = Path(os.fsdecode(error.lockfilename))
        return clear_stale_git_lock(lock)

    def _acquire(self, timeout: float) -> int:
        # .git/memfs only: never .git or the agent folder, which may have just been removed
        self.path.parent.mkdir(exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise LockTimeoutError(
                        str(self.path),
                        timeout,
                        f"process {holder}" if holder else "another process",
                    ) from error
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd


def retry_past_stale_git_lock(update: Callable[[], _T]) -> _T:
    """Run a dulwich ref update, clearing a git lock a crash left; the caller holds the
    agent's lock.

    dulwich, like git, writes a ref through ``<ref>.lock`` (or ``packed-refs.lock``) and
    renames it; a kill -9 in between leaves the lock, and every later update fails
    (issue 10, item 8). With the agent's lock held no other memfs process is updating
    refs, so the lock file is a git command's, gone within milliseconds, or a crash's:
    one still there when it is ``STALE_GIT_LOCK_S`` old is removed and the update retried.
    A lock that keeps being renewed ends in ConcurrentUpdateError naming the file.
    """
    from dulwich.file import FileLocked

    deadline = time.monotonic() + 2 * STALE_GIT_LOCK_S
    while True:
        try:
            return update()
        except FileLocked as error:
            lock = Path(os.fsdecode(error.lockfilename))
            if clear_stale_git_lock(lock):
                continue
            if time.monotonic() >= deadline:
                raise ConcurrentUpdateError(
                    f"{lock} is held by a git command that keeps it; "
                    "if none is running, delete the file and try again"
                ) from error
            time.sleep(0.02)


def survive_stale_object_locks(store: Any) -> None:
    """Make ``store.add_object`` (dulwich's loose-object write, also what its tree helpers
    call) clear a stale ``objects/xx/<sha>.lock`` a kill left, as ref updates do.

    dulwich writes a loose object through ``<sha>.lock`` and renames it; a kill in between
    leaves the lock, and every later write of that same object (the same content committed
    again) failed with FileLocked, exit 9, for good. Objects are named by their content, so
    a stale lock holds nothing worth keeping.
    """
    add = store.add_object

    def add_object(obj: Any) -> None:
        retry_past_stale_git_lock(lambda: add(obj))

    store.add_object = add_object


def clear_stale_git_lock(lock: Path) -> bool:
    """Whether ``lock`` is gone now: it was already, or it was stale and is removed.

    Only for callers holding the agent's lock (see ``retry_past_stale_git_lock``).
    """
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return True
    if age < STALE_GIT_LOCK_S or git_running_in(lock.parent):
        return False
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()
    return True


def git_running_in(folder: Path) -> bool:
    """Whether a git process works in the repository holding ``folder`` right now.

    A git command can hold a lock for minutes (``git commit`` keeps ``index.lock`` while its
    editor is open), so age alone never makes a lock stale: one with a git process working
    in the repository is live. Read from /proc (Linux); where there is none, every lock
    older than ``UNSURE_LOCK_S`` counts as stale.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return _newest_is_recent(folder)
    repo = _repository_of(folder)
    for entry in proc.iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            if not (entry / "comm").read_text().startswith("git"):
                continue
            cwd = os.path.realpath(entry / "cwd")
        except OSError:
            continue  # gone, or not ours to read
        if cwd == repo or cwd.startswith(repo + os.sep):
            return True
    return False


UNSURE_LOCK_S = 600.0


def _newest_is_recent(folder: Path) -> bool:
    return any(
        time.time() - path.stat().st_mtime < UNSURE_LOCK_S
        for path in folder.glob("*.lock")
        if path.is_file()
    )


def _repository_of(folder: Path) -> str:
    """The work tree root (or bare repository) a path inside ``.git`` belongs to."""
    path = os.path.realpath(folder)
    while path != os.path.dirname(path):
        if os.path.basename(path) == ".git":
            return os.path.dirname(path)
        if os.path.isfile(os.path.join(path, "HEAD")) and os.path.isdir(
            os.path.join(path, "objects")
        ):
            return path  # a bare repository (or a .git folder elsewhere)
        path = os.path.dirname(path)
    return os.path.realpath(folder)
