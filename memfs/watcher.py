"""The watcher: file events -> debounce -> index-free commits -> push; remote polling -> pull.

Pieces, each testable without threads (DESIGN.md §7):
- ``EventFilter`` turns watchdog events into agent-relative paths, dropping ``.git`` and
  editor litter (it only translates; what gets committed is decided by ``commit_paths``).
- ``Debouncer`` decides when a batch is due: after a quiet period, but no later than a maximum
  delay after its first event.
- ``Watcher`` runs one loop per agent: commit due batches, push with capped exponential backoff
  while the remote is unreachable, poll remotes cheaply and pull when they moved, rescan fully
  now and then to catch anything an event missed, and flush on stop.
- ``RemotePoller`` (memfs/remotepoll.py) says when to look at the remotes and whether they
  moved: a hot/cold ``PollSchedule`` (memfs/pollschedule.py), every second while there are
  edits or remote changes, backing off to 30-60 s when idle; conditional manifest reads (no
  body when unchanged); folder clouds (``file://``) followed by inotify instead of polled.
Memfs's own writes (merges) leave files equal to the new head, so they commit nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from memfs.agent import Agent
from memfs.errors import MemfsError, WatcherError
from memfs.lettahook import hook_installed
from memfs.pollschedule import (
    HOT_S_BUCKET,
    HOT_S_GIT,
    ScheduleSettings,
    default_cold_s,
    default_hot_for_s,
)
from memfs.remotepoll import RemotePoller
from memfs.util import atomic_write, utc_now
from memfs.watchstate import is_running, lock_path, read_state
from memfs.watchstate import status as status  # re-exported: memfs watch --status

Log = Callable[[str], None]
# watchdog registers a folder created inside a watched tree twice (its creation event and
# its recursive walk both add it) and warns that the second replaces the first: harmless,
# but printed to the user's terminal mid-watch.
warnings.filterwarnings(
    "ignore", message=r"Callback with id .* already exists", category=RuntimeWarning
)
# The same editor litter as ignore.LITTER_PATTERNS, matched by name without pathspec: this
# runs for every event. Anything else is decided by commit_paths with the full rules.
LITTER_NAMES = ("4913", ".DS_Store")
LITTER_PREFIXES = (".#", ".memfs-tmp-", "#")
LITTER_SUFFIXES = (".swp", ".swo", ".swx", "~", ".tmp")


@dataclass
class WatchSettings:
    """How the watcher paces itself (milliseconds and seconds as the CLI names them)."""

    quiet_ms: int = 300
    max_delay_ms: int = 2000
    poll_s: float | None = None  # a fixed interval; None: the hot/cold schedule below
    poll_hot_s: float | None = None  # None: 1 s for object stores, 10 s for git hosts
    poll_cold_s: float = field(default_factory=default_cold_s)  # MEMFS_WATCH_COLD_S, 45 s
    poll_hot_for_s: float = field(default_factory=default_hot_for_s)  # MEMFS_WATCH_HOT_FOR_S
    push: bool = True
    pull_only: bool = False  # a read-only mount: follow the remote, commit and push nothing
    rescan_s: float = 60.0
    backoff_max_s: float = 60.0
    env_name: str | None = None  # 'memfs envs' name; None: MEMFS_ENV_NAME, else the host


class Debouncer:
    """Collects paths; a batch is due after ``quiet_s`` without events or ``max_delay_s``
    after its first event, whichever comes first."""

    def __init__(self, quiet_s: float, max_delay_s: float) -> None:
        self.quiet_s = quiet_s
        self.max_delay_s = max_delay_s
        self.paths: set[str] = set()
        self._first = 0.0
        self._last = 0.0

    def add(self, path: str, now: float) -> None:
        if not self.paths:
            self._first = now
        self.paths.add(path)
        self._last = now

    def deadline(self) -> float | None:
        """When the current batch falls due, or None if there is none."""
        if not self.paths:
            return None
        return min(self._last + self.quiet_s, self._first + self.max_delay_s)

    def take(self, now: float) -> list[str]:
        """The batch if it is due (emptying it), else []."""
        due = self.deadline()
        if due is None or now < due:
            return []
        batch, self.paths = sorted(self.paths), set()
        return batch


# The least quiet time in a repo with Letta Code's hooks: its memory tool writes a file, then
# runs git add and git commit (a v2 commit's hook takes a second or more, during which git
# holds index.lock, which the watcher also waits out). On a loaded machine the gap between
# the write and ``git add`` passed 1.5 s; the watcher is the backstop for edits Letta Code
# does not commit (a person's editor), for which 3 s is no real delay.
LETTA_CODE_QUIET_S = 3.0


def is_litter(path: str) -> bool:
    """Editor swap, backup and lock files, and memfs's own temp files (and folders)."""
    if "/.memfs-tmp-" in "/" + path:
        return True
    name = PurePosixPath(path).name
    return (
        name in LITTER_NAMES or name.startswith(LITTER_PREFIXES) or name.endswith(LITTER_SUFFIXES)
    )


class EventFilter:
    """watchdog events -> agent-relative paths worth looking at."""

    def __init__(self, root: Path, on_path: Callable[[str], None]) -> None:
        self.root = os.path.realpath(root)
        self.on_path = on_path

    def dispatch(self, event: Any) -> None:
        """watchdog's handler entry point."""
        if getattr(event, "event_type", "") in ("opened", "closed_no_write"):
            return
        for raw in (getattr(event, "src_path", ""), getattr(event, "dest_path", "")):
            path = self.relative(os.fsdecode(raw)) if raw else None
            if path is not None:
                self.on_path(path)

    def relative(self, absolute: str) -> str | None:
        try:
            rel = os.path.relpath(os.path.realpath(absolute), self.root)
        except ValueError:
            return None
        if rel == "." or rel.startswith(".."):
            return None
        rel = rel.replace(os.sep, "/")
        if rel.split("/", 1)[0] == ".git" or is_litter(rel):
            return None
        return rel


@dataclass
class WatchState:
    """What ``status`` shows about a watcher."""

    pid: int
    started_at: str
    last_commit: str | None = None
    last_sync: str | None = None
    last_error: str | None = None
    pending_push: bool = False
    mode: str = "inotify"
    remote_mode: str = "polling"  # "inotify" when every polled remote is a watched folder
    ready: bool = False
    commits: int = 0


class Watcher:
    """Keeps one agent committed and synced while it runs. Use ``memfs.watch``."""

    def __init__(
        self, agent: Agent, settings: WatchSettings | None = None, log: Log | None = None
    ) -> None:
        self.agent = agent
        self.settings = settings or WatchSettings()
        self.log = log or (lambda message: None)
        quiet_s, max_delay_s = self.settings.quiet_ms / 1000, self.settings.max_delay_ms / 1000
        self._letta_hooks = hook_installed(agent.history.control_dir)
        if self._letta_hooks:
            # Letta Code commits its own writes (write, git add, git commit through its hooks):
            # give it time to, so the watcher takes only what nobody else commits.
            quiet_s = max(quiet_s, LETTA_CODE_QUIET_S)
            max_delay_s = max(max_delay_s, quiet_s)
        self._quiet_s = quiet_s
        self.debouncer = Debouncer(quiet_s, max_delay_s)
        self.state = WatchState(pid=os.getpid(), started_at=utc_now().isoformat())
        self._wake = threading.Condition()
        self._stopping = False
        self._observer: Any = None
        self._held_logged: set[str] = set()  # held changes already in the log
        self._thread: threading.Thread | None = None
        self._push_due = 0.0
        self._backoff = 1.0
        self._poller = RemotePoller(
            agent, self._schedule_settings(), self.settings.poll_cold_s, self._note_error, self.log
        )
        self._next_rescan = time.monotonic() + self.settings.rescan_s
        self._claim_fd: int | None = None
        self._index_behind: set[str] = set()
        self._own_index = self._index_stamp()  # the index as memfs itself last left it
        self._known_head = agent.history.head()  # as the watcher last committed or synced it
        self._presence = self._heartbeat() if self._syncing else None

    def _heartbeat(self) -> Any:
        """This environment's presence in the store (memfs/presence.py): mode ``mount`` for a
        mounted folder, else ``watch``."""
        from memfs.presence import Heartbeat

        # memfs/mount.py's marker, looked at without importing the mount module
        mounted = (self.agent.history.state_dir / "mount.json").exists()
        mode = "mount" if mounted else "watch"
        return Heartbeat(self.agent, mode, self.settings.env_name, log=self.log)

    def _claim(self) -> None:
        """Hold ``.git/memfs/watch.lock`` while running: one watcher per agent.

        The kernel drops the lock if this process dies, so a crash never blocks a restart.
        """
        fd = os.open(lock_path(self.agent), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            holder = read_state(self.agent).get("pid", "?")
            raise WatcherError(
                f"a watcher already runs for {self.agent.root} (pid {holder}); "
                f"stop it with 'memfs watch --stop {self.agent.root}'"
            ) from error
        self._claim_fd = fd

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Watcher:
        """Follow events, commit what changed while nobody watched, sync; then run.

        The observer starts first, so an edit made during the catch-up is not missed; the
        state says ``ready`` only once events flow and the loop runs.
        """
        if self._thread is not None:
            return self  # already running: ``with memfs.watch(agent):`` enters a started one
        self._claim()
        self._start_observer()
        self._catch_up()
        if self._syncing:
            inotify = self._observer if self.state.mode == "inotify" else None
            self.state.remote_mode = self._poller.follow_folders(inotify, self._wake_up)
        if self._presence is not None:
            self._presence.beat(force=True)  # on start: this environment is live
        self._thread = threading.Thread(target=self._run, name="memfs-watch", daemon=True)
        self._thread.start()
        self.state.ready = True
        self._write_state()
        return self

    def stop(self) -> None:
        """Flush (commit and push what is pending) and stop."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
        self.flush()
        if self._presence is not None and self._thread is not None:
            self._presence.stop()  # a clean exit: 'stopped', not left to go stale
        self._write_state(running=False)
        if self._claim_fd is not None:
            os.close(self._claim_fd)  # releases the flock
            self._claim_fd = None

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def flush(self) -> None:
        """Commit everything pending now and push it."""
        with self._wake:
            paths = sorted(self.debouncer.paths)
            self.debouncer.paths.clear()
        self._commit(paths)
        self._refresh_index()
        self._commit_all()
        if self._pushing:
            self._push()

    def notify(self, path: str) -> None:
        """A path changed (called from the observer thread, or directly by tests)."""
        with self._wake:
            now = time.monotonic()
            self.debouncer.add(path, now)
            self._poller.activity(now)  # a local edit: poll hot again at once
            self._wake.notify_all()

    def _wake_up(self) -> None:
        with self._wake:
            self._wake.notify_all()

    @property
    def _pushing(self) -> bool:
        return self.settings.push and not self.settings.pull_only

    @property
    def _syncing(self) -> bool:
        return self.settings.push or self.settings.pull_only

    # -- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                timeout = self._next_wake() - time.monotonic()
                if timeout > 0:
                    self._wake.wait(timeout)
                if self._stopping:
                    return
                batch = self.debouncer.take(time.monotonic())
            try:
                self.step(batch)
            except Exception as error:  # the loop must survive anything one step does
                self._note_error(f"{type(error).__name__}: {error}")

    def _next_wake(self) -> float:
        candidates = [self._next_rescan]
        if self._syncing:
            candidates.append(self._poller.next_due(time.monotonic()))
        deadline = self.debouncer.deadline()
        if deadline is not None:
            candidates.append(deadline)
        if self.state.pending_push:
            candidates.append(self._push_due)
        beat = self._presence.next_due() if self._presence is not None else None
        if beat is not None:
            candidates.append(beat)
        return min(candidates)

    def step(self, batch: list[str]) -> None:
        """One turn of the loop: commit a due batch, push, poll, rescan."""
        now = time.monotonic()
        if batch and (self.agent.history.git_busy() or self._index_touched_by_others()):
            # Another tool is committing (Letta Code: git add, then git commit through its
            # hooks): let it finish, or its commit would find its change already taken.
            for path in batch:
                self.debouncer.add(path, now)
            batch = []
        if batch:
            self._commit(batch)
        elif self.debouncer.deadline() is None:
            self._refresh_index()  # quiet now: catch the index up with the commits
            self._own_index = self._index_stamp()
        if now >= self._next_rescan:
            self._next_rescan = now + self.settings.rescan_s
            self._commit_all()
        if self._pushing and not self.state.pending_push:
            head = self.agent.history.head()
            if head != self._known_head:  # committed by another tool: git, Letta Code
                self._known_head = head
                if not self.agent.history.detached():  # git checkout <sha>: nothing to push
                    self.state.pending_push = True
                    self._push_due = now
        if self._pushing and self.state.pending_push and now >= self._push_due:
            self._push()
        if self._syncing:  # --no-push: commit only
            self._poll_due(now)
        beat = self._presence.next_due() if self._presence is not None else None
        if beat is not None and time.monotonic() >= beat:
            self._presence.beat()  # type: ignore[union-attr]  # idle heartbeat, or coalesced

    # -- the work -----------------------------------------------------------------------

    def _index_stamp(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.agent.history.control_dir / "index")
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def _index_touched_by_others(self) -> bool:
        """In a repo with Letta Code's hooks: whether another tool changed the index within
        the quiet time. Letta Code stages its write (``git add``) and then commits it; between
        the two no lock is held, and on a loaded machine the gap can outlast the quiet time
        counted from the file's write. A staged change means someone is committing it."""
        if not self._letta_hooks:
            return False
        stamp = self._index_stamp()
        if stamp is None or stamp == self._own_index:
            return False
        return time.time() - stamp[0] / 1e9 < self._quiet_s

    def _commit(self, paths: list[str]) -> None:
        if not paths or self.settings.pull_only:
            return
        info = self.agent.commit_paths(paths, origin="watch", update_index=False)
        self._log_held()
        if info is not None:
            self._index_behind.update(paths)
            self._committed(info.short, info.summary)

    def _refresh_index(self) -> None:
        """Bring the index in line for what was committed without it (O(index), so batched)."""
        if self._index_behind:
            paths, self._index_behind = sorted(self._index_behind), set()
            self.agent.refresh_index_paths(paths)

    def _commit_all(self) -> None:
        if self.settings.pull_only:
            return
        info = self.agent.commit(origin="watch")
        self._own_index = self._index_stamp()
        self._log_held()
        if info is not None:
            self._committed(info.short, info.summary)

    def _log_held(self) -> None:
        """Log each change Letta's rules keep out of commits (left in the work tree), once."""
        for refusal in self.agent.held:
            line = refusal.render()
            if line not in self._held_logged:
                self._held_logged.add(line)
                self.log(f"not committed (kept in the work tree): {line}")

    def _committed(self, short: str, summary: str) -> None:
        self.log(f"committed {short} {summary}")
        self.state.commits += 1
        self.state.last_commit = utc_now().isoformat()
        self.state.pending_push = True
        self._push_due = time.monotonic()
        self._write_state()

    def _push(self) -> None:
        from memfs import sync
        from memfs.remotes import list_remotes

        if not list_remotes(self.agent.history):
            self.state.pending_push = False
            self._known_head = self.agent.history.head()
            return
        try:
            report = sync.push(self.agent, origin="watch")
        except MemfsError as error:  # refused before any remote was tried: later, not at once
            self._note_error(str(error))
            self._retry_push_later()
            self._write_state()
            return
        self._after_sync(report)

    def _poll_due(self, now: float) -> None:
        """Read what is due (memfs/remotepoll.py); then schedule the next poll."""
        scheduled, folders = self._poller.due(now)
        if not (scheduled or folders):
            return
        moved = False
        try:
            moved = self._poll(scheduled, folders)
        finally:  # whatever the poll raised, the next one is scheduled: no busy loop
            self._poller.finished(now, scheduled, moved)

    def _poll(self, scheduled: bool = True, folders: bool = True) -> bool:
        """Pull if a remote's head moved; whether one did. Cheap when nothing did: one
        conditional read of an object store's manifest (no body if unchanged), one ref
        listing of a git host; the pull reuses the manifest the poll read."""
        from memfs import sync

        moves = self._poller.look(scheduled, folders)
        if not moves:
            return False
        opened = {name: move.remote for name, move in moves.items()}
        report = sync.pull(self.agent, origin="watch", opened=opened)
        self._after_sync(report)
        self._poller.pulled(moves)
        if any(o.integrated in ("merged",) for o in report.remotes) and self._pushing:
            self._push()
        return True

    def _after_sync(self, report: Any) -> None:
        self._own_index = self._index_stamp()  # a pull rewrites the index
        self._known_head = self.agent.history.head()
        errors = [o.error for o in report.remotes if o.error]
        for outcome in report.remotes:
            if outcome.integrated in ("fast-forward", "merged"):
                self.log(f"{outcome.remote}: {outcome.integrated}")
            for conflict in outcome.conflicts:  # as 'memfs sync' prints them
                where = conflict.copy_path and f"other version at {conflict.copy_path}"
                self.log(
                    f"conflict in {conflict.path} ({conflict.kind}): {where or conflict.resolution}"
                )
            if outcome.pushed == "pushed":
                self.log(f"{outcome.remote}: pushed")
        self.state.last_sync = utc_now().isoformat()
        if errors:
            self._note_error(errors[0])
            self._retry_push_later()
        else:
            self.state.last_error = None
            self.state.pending_push = False
            self._backoff = 1.0
        self._write_state()
        if self._presence is not None and self._thread is not None:
            self._presence.beat(report)  # written now, or within COALESCE_S if one just was

    def _retry_push_later(self) -> None:
        """Push again after the backoff (doubled each time, up to ``backoff_max_s``)."""
        self.state.pending_push = True
        self._push_due = time.monotonic() + self._backoff
        self.log(f"retrying in {self._backoff:.0f}s")
        self._backoff = min(self._backoff * 2, self.settings.backoff_max_s)

    def _note_error(self, message: str) -> None:
        self.state.last_error = message
        self.log(f"error: {message}")
        self._write_state()

    def _catch_up(self) -> None:
        """On start: commit what changed while nobody watched, then sync."""
        from memfs import sync

        self._commit_all()
        if self._pushing:
            with contextlib.suppress(MemfsError):
                self._after_sync(sync.sync(self.agent, origin="watch"))
        elif self._syncing:
            with contextlib.suppress(MemfsError):
                self._after_sync(sync.pull(self.agent, origin="watch"))

    def _schedule_settings(self) -> ScheduleSettings:
        """A fixed interval if one was asked for (``--poll-s``), else the hot/cold schedule,
        hot at 1 s for object stores and 10 s as soon as a git host is among the remotes."""
        settings = self.settings
        if settings.poll_s is not None:
            return ScheduleSettings.fixed(settings.poll_s)
        hot_s = settings.poll_hot_s
        if hot_s is None:
            from memfs.remotes import list_remotes

            kinds = {config.kind for config in list_remotes(self.agent.history)}
            hot_s = HOT_S_BUCKET if kinds <= {"bucket"} else HOT_S_GIT
        return ScheduleSettings(
            hot_s=hot_s, cold_s=settings.poll_cold_s, hot_for_s=settings.poll_hot_for_s
        )

    # -- the observer -------------------------------------------------------------------

    def _start_observer(self) -> None:
        from watchdog import events
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        filter_ = EventFilter(self.agent.root, self.notify)

        class Handler(events.FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                filter_.dispatch(event)

        # Only changes: every read of a file (memfs's own polling reads .git often) would
        # otherwise be an open and a close event.
        changes: list[type[events.FileSystemEvent]] = [
            events.FileCreatedEvent, events.FileModifiedEvent, events.FileMovedEvent,
            events.FileDeletedEvent, events.FileClosedEvent, events.DirCreatedEvent,
            events.DirMovedEvent, events.DirDeletedEvent,
        ]  # fmt: skip
        try:
            observer = Observer()
            observer.schedule(Handler(), str(self.agent.root), recursive=True, event_filter=changes)
            observer.start()
            if _unwatched_folders(observer, self.agent.root):
                observer.stop()
                observer.join(timeout=10)
                raise OSError(errno.ENOSPC, "inotify watch limit reached")
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            self.log("inotify watch limit reached: falling back to polling the folder every 2 s")
            self.state.mode = "polling"
            observer = PollingObserver(timeout=2)
            observer.schedule(Handler(), str(self.agent.root), recursive=True, event_filter=changes)
            observer.start()
        self._observer = observer

    def _write_state(self, running: bool = True) -> None:
        path = self.agent.history.state_dir / "watch.json"
        data = {**self.state.__dict__, "running": running}
        with contextlib.suppress(OSError):
            atomic_write(path, json.dumps(data, indent=2).encode())


def _unwatched_folders(observer: Any, root: Path) -> int:
    """How many folders an inotify observer failed to watch.

    watchdog swallows the limit error for every folder but the root, which would leave parts
    of the agent silently unwatched. Counting its watches reads a watchdog internal; if that is
    not there, this trusts the observer (the periodic rescan still catches what it misses).
    """
    try:
        watched = sum(len(e._inotify._active_callbacks_by_path) for e in observer.emitters)
    except AttributeError:
        return 0
    folders = sum(1 for _ in os.walk(root))
    return max(0, folders - watched)


def start_daemon(agent: Agent, args: list[str], timeout_s: float = 30.0) -> int:
    """Start ``memfs watch`` for ``agent`` in the background; its pid once it runs.

    It logs to ``.git/memfs/watch.log`` and survives the terminal that started it.
    """
    if is_running(agent):
        raise WatcherError(
            f"a watcher already runs for {agent.root} (pid {read_state(agent).get('pid')})"
        )
    log = agent.history.state_dir / "watch.log"
    command = [sys.executable, "-m", "memfs", "watch", str(agent.root), "--log", str(log), *args]
    with open(os.devnull, "rb") as stdin, open(log, "ab") as output:
        child = subprocess.Popen(
            command, stdin=stdin, stdout=output, stderr=output, start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise WatcherError(f"the watcher exited at once (code {child.returncode}); see {log}")
        state = read_state(agent)
        if state.get("pid") == child.pid and state.get("ready") and state.get("running", True):
            return child.pid
        time.sleep(0.05)
    child.terminate()
    raise WatcherError(f"the watcher did not start within {timeout_s:g}s; see {log}")


def stop_daemon(agent: Agent, timeout_s: float = 60.0) -> int:
    """Ask the agent's watcher to flush and stop (SIGTERM); its pid once it has exited."""
    if not is_running(agent):
        raise WatcherError(f"no watcher runs for {agent.root}")
    pid = int(read_state(agent).get("pid", 0))
    if pid <= 0:
        raise WatcherError(f"the watcher of {agent.root} did not record its pid")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_running(agent):
            return pid
        time.sleep(0.05)
    raise WatcherError(f"the watcher (pid {pid}) did not stop within {timeout_s:g}s")


def watch(agent: Agent, settings: WatchSettings | None = None, log: Log | None = None) -> Watcher:
    """Start watching ``agent``; a handle with ``stop()`` and ``flush()``, and a context manager."""
    return Watcher(agent, settings, log).start()
