"""The watcher: file events -> debounce -> index-free commits -> push; remote polling -> pull.

``Watcher`` runs one loop per agent: commit due batches, push with capped exponential backoff
while the remote is unreachable, poll remotes cheaply and pull when they moved, rescan fully
now and then to catch anything an event missed, and flush on stop. Its pieces, each testable
without threads (DESIGN.md §7), live beside it:
- memfs/watchevents.py: the event source (watchdog's inotify observer, or polling the folder
  at the inotify limit) and ``EventFilter``, turning events into agent-relative paths without
  ``.git`` and editor litter (what gets committed is decided by ``commit_paths``).
- memfs/watchpace.py: ``WatchSettings``, and ``Debouncer`` deciding when a batch is due (after
  a quiet period, but no later than a maximum delay after its first event).
- memfs/remotepoll.py: ``RemotePoller`` says when to look at the remotes and whether they
  moved: a hot/cold ``PollSchedule`` (memfs/pollschedule.py), every second while there are
  edits or remote changes, backing off to 30-60 s when idle; conditional manifest reads (no
  body when unchanged); folder clouds (``file://``) followed by inotify instead of polled.
- memfs/watchdaemon.py: the watcher as a background process; memfs/watchstate.py: its state.
Memfs's own writes (merges) leave files equal to the new head, so they commit nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from memfs.agent import Agent
from memfs.errors import MemfsError
from memfs.lettahook import hook_installed
from memfs.remotepoll import RemotePoller
from memfs.util import utc_now
from memfs.watchdaemon import start_daemon as start_daemon  # re-exported: memfs watch --daemon
from memfs.watchdaemon import stop_daemon as stop_daemon
from memfs.watchevents import EventFilter as EventFilter  # re-exported
from memfs.watchevents import is_litter as is_litter
from memfs.watchevents import start_observer
from memfs.watchpace import LETTA_CODE_QUIET_S, FailureWait, schedule_settings
from memfs.watchpace import Debouncer as Debouncer  # re-exported
from memfs.watchpace import WatchSettings as WatchSettings
from memfs.watchstate import WatchState as WatchState  # re-exported
from memfs.watchstate import claim, gone_reason, identity, release_gone, write_state
from memfs.watchstate import is_running as is_running  # re-exported
from memfs.watchstate import read_state as read_state
from memfs.watchstate import status as status  # re-exported: memfs watch --status

Log = Callable[[str], None]

ALIVE_CHECK_S = 2.0  # how often an idle watcher makes sure its agent is still there (2 stats)


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
            agent,
            schedule_settings(self.settings, agent.history),
            self.settings.poll_cold_s,
            self._note_error,
            self.log,
        )
        self._next_rescan = time.monotonic() + self.settings.rescan_s
        self._claim_fd: int | None = None
        self._index_behind: set[str] = set()
        self._own_index = self._index_stamp()  # the index as memfs itself last left it
        self._known_head = agent.history.head()  # as the watcher last committed or synced it
        self._presence = self._heartbeat() if self._syncing else None
        self._identity = identity(agent)
        self._next_alive_check = 0.0
        self._failures = FailureWait(self.settings.backoff_max_s)  # after a turn that raised
        self.gone: str | None = None  # why the agent went away, once it has: the watcher ended
        self.on_gone: Callable[[], None] | None = None  # called then (memfs watch exits)

    def _heartbeat(self) -> Any:
        """This environment's presence in the store (memfs/presence.py): mode ``mount`` for a
        mounted folder, else ``watch``."""
        from memfs.presence import Heartbeat

        # memfs/mount.py's marker, looked at without importing the mount module
        mounted = (self.agent.history.state_dir / "mount.json").exists()
        mode = "mount" if mounted else "watch"
        return Heartbeat(self.agent, mode, self.settings.env_name, log=self.log)

    def _claim(self) -> None:
        """Hold ``.git/memfs/watch.lock`` while running: one watcher per agent."""
        self._claim_fd = claim(self.agent)

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
        if self.gone is not None:  # nothing to flush to, and nothing to create where it was
            if self._claim_fd is not None:
                release_gone(self._claim_fd, self.state)
                self._claim_fd = None
            return
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
                now = time.monotonic()
                if now < self._failures.until:
                    continue  # woken early after a failure: wait out the rest (no busy loop)
                batch = self.debouncer.take(now)
            if self._agent_gone(now):  # before any work: nothing is written where it was
                return
            try:
                self.step(batch)
            except Exception as error:  # the loop must survive anything one step does
                if self._agent_gone(time.monotonic()):
                    return
                self._failed_turn(batch, f"{type(error).__name__}: {error}")
            else:
                self._failures.succeeded()

    def _failed_turn(self, batch: list[str], message: str) -> None:
        """A turn raised: note it, keep its batch, and wait before the next turn."""
        self._note_error(message)
        now = time.monotonic()
        with self._wake:
            for path in batch:
                self.debouncer.add(path, now)
        self._failures.failed(now)

    def _agent_gone(self, now: float) -> bool:
        """Whether the agent went away (checked at every turn, and every ``ALIVE_CHECK_S``
        when idle: two ``stat`` calls); if so, say so once and end: ``memfs watch`` exits 8."""
        self._next_alive_check = now + ALIVE_CHECK_S
        reason = gone_reason(self.agent, self._identity)
        if reason is None:
            return False
        self.gone = f"agent folder gone: {reason}; the watcher stops"
        self.log(self.gone)
        with self._wake:
            self._stopping = True
        if self.on_gone is not None:
            self.on_gone()
        return True

    def _next_wake(self) -> float:
        return max(self._due(), self._failures.until)

    def _due(self) -> float:
        candidates = [self._next_rescan, self._next_alive_check]
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

    # -- the observer -------------------------------------------------------------------

    def _start_observer(self) -> None:
        """Follow the agent's files (memfs/watchevents.py): inotify, else polling."""
        self._observer, self.state.mode = start_observer(self.agent.root, self.notify, self.log)

    def _write_state(self, running: bool = True) -> None:
        write_state(self.agent, self.state, running)


def watch(agent: Agent, settings: WatchSettings | None = None, log: Log | None = None) -> Watcher:
    """Start watching ``agent``; a handle with ``stop()`` and ``flush()``, and a context manager."""
    return Watcher(agent, settings, log).start()
