"""A watcher's state as other processes see it: its lock and its state file, and the
running watcher's side of both (``claim``, ``write_state``).

Apart from ``memfs.watcher`` so that ``memfs status`` (which shows whether a watcher runs)
imports neither the watcher nor the sync stack: it needs two small files in ``.git/memfs``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from memfs.errors import WatcherError
from memfs.record import Record
from memfs.util import atomic_write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.agent import Agent


class WatchState(Record):
    """What ``status`` shows about a watcher."""

    __slots__ = _fields = (
        "pid",
        "started_at",
        "last_commit",
        "last_sync",
        "last_error",
        "pending_push",
        "mode",
        "remote_mode",
        "ready",
        "commits",
    )
    pid: int
    started_at: str
    last_commit: str | None
    last_sync: str | None
    last_error: str | None
    pending_push: bool
    mode: str
    remote_mode: str  # "inotify" when every polled remote is a watched folder
    ready: bool
    commits: int

    def __init__(
        self,
        pid: int,
        started_at: str,
        last_commit: str | None = None,
        last_sync: str | None = None,
        last_error: str | None = None,
        pending_push: bool = False,
        mode: str = "inotify",
        remote_mode: str = "polling",
        ready: bool = False,
        commits: int = 0,
    ) -> None:
        self.pid = pid
        self.started_at = started_at
        self.last_commit = last_commit
        self.last_sync = last_sync
        self.last_error = last_error
        self.pending_push = pending_push
        self.mode = mode
        self.remote_mode = remote_mode
        self.ready = ready
        self.commits = commits


def lock_path(agent: Agent) -> Path:
    """The file a running watcher holds locked."""
    return agent.history.state_dir / "watch.lock"


def read_state(agent: Agent) -> dict[str, Any]:
    """The last state a watcher wrote for this agent ({} if none ever ran)."""
    try:
        data = json.loads((agent.history.state_dir / "watch.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_running(agent: Agent) -> bool:
    """Whether a watcher holds this agent's watch lock right now.

    Opened read-only and never created: ``status`` must work on an agent the user cannot
    write, and no lock file means no watcher.
    """
    try:
        fd = os.open(lock_path(agent), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def status(agent: Agent) -> dict[str, Any]:
    """The watcher's state for ``memfs status`` and ``memfs watch --status``."""
    state = read_state(agent)
    running = is_running(agent)
    return {
        **state,
        "agent": str(agent.root),
        "running": running,
        "pid": state.get("pid") if running else None,
    }


def claim(agent: Agent) -> int:
    """Lock ``.git/memfs/watch.lock`` for a watcher about to run: one watcher per agent; the
    open file, held until the watcher closes it.

    The kernel drops the lock if this process dies, so a crash never blocks a restart.
    """
    fd = os.open(lock_path(agent), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        holder = read_state(agent).get("pid", "?")
        raise WatcherError(
            f"a watcher already runs for {agent.root} (pid {holder}); "
            f"stop it with 'memfs watch --stop {agent.root}'"
        ) from error
    return fd


def write_state(agent: Agent, state: WatchState, running: bool = True) -> None:
    """Write a running watcher's state to ``.git/memfs/watch.json`` (best effort)."""
    path = agent.history.state_dir / "watch.json"
    data = {**state._asdict(), "running": running}
    with contextlib.suppress(OSError):
        atomic_write(path, json.dumps(data, indent=2).encode())


# -- a watcher whose agent went away ---------------------------------------------------------

Identity = tuple[tuple[int, int], tuple[int, int]]  # (device, inode) of the folder and .git


def identity(agent: Agent) -> Identity:
    """What the watcher watches: the device and inode of the agent folder and its ``.git``, so
    that a folder put in its place (a restored backup, another clone) is not taken for it."""
    root, control = os.stat(agent.root), os.stat(agent.history.control_dir)
    return (root.st_dev, root.st_ino), (control.st_dev, control.st_ino)


def gone_reason(agent: Agent, started: Identity) -> str | None:
    """Why the agent the watcher started on is no longer there (removed, moved, unmounted, its
    ``.git`` removed, another folder in its place), or None while it is. Two ``stat`` calls."""
    try:
        root = os.stat(agent.root)
    except OSError:
        return f"{agent.root} was removed or moved"
    try:
        control = os.stat(agent.history.control_dir)
    except OSError:
        return f"{agent.history.control_dir} was removed or moved"
    now = (root.st_dev, root.st_ino), (control.st_dev, control.st_ino)
    if now != started:
        return f"{agent.root} is another folder now"
    return None


def release_gone(claim_fd: int, state: WatchState) -> None:
    """Let go of an agent that went away: say ``running: false`` in the state file next to the
    lock file if that still exists (it moved with the folder: ``/proc`` knows where to), and
    release the lock. Nothing is created where the agent was."""
    with contextlib.suppress(OSError):
        where = os.readlink(f"/proc/self/fd/{claim_fd}")
        if not where.endswith(" (deleted)") and os.path.exists(where):
            data = {**state._asdict(), "running": False}
            atomic_write(Path(where).parent / "watch.json", json.dumps(data, indent=2).encode())
    os.close(claim_fd)  # releases the flock
