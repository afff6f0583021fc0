"""A server's checkouts of its agents: locked, kept pristine, brought to the bucket's head.

A checkout under ``<cache_dir>/<agent-name>/`` is a cache: it holds nothing the bucket does not
(every write the server reports done was pushed), so whenever it is in doubt it is thrown away
and cloned again. It is in doubt when it cannot be opened (damaged, a clone stopped midway) or
when a write was stopped between its first change and its push (the ``serve-writing`` marker,
left in ``.git/memfs/`` for the whole write, says so to whoever takes the lock next).

``CheckoutLock`` serialises every use of one checkout across the threads of a server (a
``threading.Lock``) and across the processes sharing a cache dir (``fcntl.flock`` on
``<cache_dir>/.locks/<name>.lock``; the kernel drops it when a process dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from memfs.agent import Agent
from memfs.errors import LockTimeoutError, MemfsError

WRITING_MARKER = "serve-writing"
LOCK_TIMEOUT_S = 60.0


class CheckoutLock:
    """One agent's checkout, held by one thread of one process at a time."""

    def __init__(self, cache_dir: Path, name: str, timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.path = cache_dir / ".locks" / f"{name}.lock"
        self.timeout_s = timeout_s
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the checkout; LockTimeoutError (busy) after ``timeout_s``."""
        deadline = time.monotonic() + self.timeout_s
        if not self._thread_lock.acquire(timeout=self.timeout_s):
            raise LockTimeoutError(str(self.path), self.timeout_s, "another request")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                _flock_until(fd, deadline, self.path, self.timeout_s)
                yield
            finally:
                os.close(fd)  # drops the flock
        finally:
            self._thread_lock.release()


def _flock_until(fd: int, deadline: float, path: Path, timeout_s: float) -> None:
    """Take an exclusive flock on ``fd``, polling until ``deadline`` (flock has no timeout)."""
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise LockTimeoutError(str(path), timeout_s, "another server process") from None
            time.sleep(pause)  # waiting for another process's lock, not synchronising a test
            pause = min(pause * 2, 0.05)


def open_checkout(folder: Path) -> Agent | None:
    """The checkout at ``folder`` if it is whole (its head's commit present) and no write was
    stopped in it, else None."""
    from memfs.opening import open_agent

    if not (folder / ".git").exists():
        return None
    try:
        agent = open_agent(folder)
        head = agent.history.head()
        # a head whose commit is gone (packs removed under it) would be served as an empty repo
        if (
            (agent.history.state_dir / WRITING_MARKER).exists()
            or head is None
            or not agent.history.has_commit(head)
        ):
            agent.close()
            return None
        return agent
    except MemfsError:
        return None
    except Exception as error:  # dulwich's own errors on a garbled repository
        if type(error).__module__.startswith("dulwich"):
            return None
        raise


STAMPED = ("HEAD", "packed-refs", "refs/heads", "objects/pack", "index", "config", "memfs")


def checkout_stamp(folder: Path) -> tuple[object, ...]:
    """What the checkout's ``.git`` looks like, cheaply (a few stats): a user that finds it as
    it left it may go on with the ``Agent`` it had open; anything else (another process's
    fetch or write, damage, a stopped write's marker) changes it."""
    stamp: list[object] = []
    try:  # the branch's own ref file too: rewritten by rename, so a new inode on every move
        head = (folder / ".git" / "HEAD").read_text(errors="replace").strip()
    except OSError:
        head = ""
    ref = head.removeprefix("ref: ") if head.startswith("ref: refs/heads/") else ""
    for part in (*STAMPED, ref) if ref and ".." not in ref else STAMPED:
        try:
            st = (folder / ".git" / part).stat()
        except OSError:
            stamp.append(None)
            continue
        stamp.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(stamp)


def clone_checkout(url: str, folder: Path, name: str, encrypt: bool = False) -> Agent:
    """A fresh clone of ``url`` at ``folder``, whatever was there before (``encrypt``: the
    cloud is encrypted, a plain agent there is refused)."""
    from memfs.cloning import clone

    if folder.exists() or folder.is_symlink():
        discard(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return clone(url, folder, name=name, encrypt=encrypt)


def discard(folder: Path) -> None:
    """Remove a checkout: renamed aside first, so a crash midway never leaves half of one
    where the next request looks (the aside folder is removed now or by the next discard)."""
    aside = folder.with_name(f".discard-{folder.name}-{os.getpid()}-{time.monotonic_ns()}")
    if folder.is_symlink():
        folder.unlink()
    else:
        os.replace(folder, aside)
    for stale in folder.parent.glob(f".discard-{folder.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def mark_writing(agent: Agent) -> None:
    """Mark ``agent``'s checkout as midway through a write (its next user clones it again
    unless ``clear_writing`` ran)."""
    marker = agent.history.state_dir / WRITING_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{os.getpid()}\n")


def clear_writing(agent: Agent) -> None:
    """The write is over and the checkout holds the bucket's head again."""
    (agent.history.state_dir / WRITING_MARKER).unlink(missing_ok=True)


def move_to(agent: Agent, sha: str, reason: str) -> None:
    """Bring the checkout's branch and work tree to commit ``sha`` (which it holds already).

    The work tree must hold HEAD's tree (a pristine checkout, or a commit just made); anything
    else raises, and the caller re-clones."""
    history = agent.history
    with history.locked():
        ours = history.head()
        if ours == sha:
            return
        with agent.updating(history.head_tree(ours), history.tree_of(sha)):
            history.move_branch(ours, sha, reason.encode())
