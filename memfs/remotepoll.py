"""Which remotes a watcher reads, when, and whether they moved: what an idle agent costs.

``RemotePoller`` keeps, for one watcher:
- its ``PollSchedule`` (memfs/pollschedule.py): hot after activity, backing off to cold;
- the ETag of each object store's manifest last read, so that a poll is a conditional read
  (``BucketRemote.poll``): an unchanged manifest costs no body and no parse. An ETag is kept
  only once the head it names has been pulled, so a failed pull is tried again;
- the folder clouds (``memfs::file://``) it follows with inotify instead of polling, read when
  their manifest.json (an encrypted agent's manifest.json.enc) changes, and once per cold
  interval in case an event was lost.
It only looks; the watcher pulls what moved (memfs/watcher.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memfs.errors import RemoteError
from memfs.pollschedule import PollSchedule, ScheduleSettings

if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.remotes import Remote

MANIFEST = "manifest.json"
MANIFESTS = (MANIFEST, MANIFEST + ".enc")  # an encrypted agent's swapped object is the .enc


@dataclass
class Move:
    """A remote whose head moved past its tracking ref: what the pull should bring."""

    url: str
    head: str
    etag: str | None  # its manifest's ETag, kept once the head is pulled
    remote: Remote  # open, holding the manifest it read (the fetch reuses it)


class RemotePoller:
    """Schedules and makes the cheap reads that tell a watcher a remote moved."""

    def __init__(
        self,
        agent: Agent,
        settings: ScheduleSettings,
        folder_read_s: float,
        note_error: Callable[[str], None],
        log: Callable[[str], None],
    ) -> None:
        self.agent = agent
        self.schedule = PollSchedule(settings)
        self.folder_read_s = folder_read_s  # a followed folder is read this often regardless
        self.note_error = note_error
        self.log = log
        self.etags: dict[str, str | None] = {}  # remote URL -> ETag of its manifest last read
        self.folders: set[str] = set()  # remote URLs followed by inotify, not polled
        self._folder_changed = False
        self._next_folder_read = 0.0
        self._lock = threading.Lock()

    # -- when ---------------------------------------------------------------------------

    def activity(self, now: float) -> None:
        """A local edit: poll hot again at once."""
        with self._lock:
            self.schedule.activity(now)

    def folder_changed(self) -> None:
        """inotify saw a followed folder's manifest change (from the observer thread)."""
        with self._lock:
            self._folder_changed = True

    def next_due(self, now: float) -> float:
        """When something is next to be read."""
        with self._lock:
            due = self.schedule.due
            if self.folders:
                due = min(due, now if self._folder_changed else self._next_folder_read)
            return due

    def due(self, now: float) -> tuple[bool, bool]:
        """(polled remotes due, followed folders due), taking the folders' event."""
        with self._lock:
            scheduled = now >= self.schedule.due
            folders = self._folder_changed or (bool(self.folders) and now >= self._next_folder_read)
            self._folder_changed = False
            if folders:
                self._next_folder_read = now + self.folder_read_s
            return scheduled, folders

    def finished(self, now: float, scheduled: bool, moved: bool) -> None:
        """Schedule the next poll: hot for a while if a remote moved."""
        with self._lock:
            if moved:
                self.schedule.activity(now)
            if scheduled:
                self.schedule.polled(now)

    # -- what ---------------------------------------------------------------------------

    def look(self, scheduled: bool = True, folders: bool = True) -> dict[str, Move]:
        """Read the remotes due (polled ones if ``scheduled``, followed folders if
        ``folders``); those whose head moved, by name. Errors are noted, not raised."""
        from memfs import sync
        from memfs.remotes import list_remotes
        from memfs.secrets.hooks import after_fetch

        history = self.agent.history
        branch = history.branch()
        moves: dict[str, Move] = {}
        for config in list_remotes(history):
            followed = config.url in self.folders
            if config.mirror or not (folders if followed else scheduled):
                continue
            try:
                remote = sync.open_for(self.agent, config)
                seen = self._head(remote, config.url, branch)
                tracked = history.ref(f"refs/remotes/{config.name}/{branch}")
                if seen is not None and seen[0] is not None and seen[0] == tracked:
                    after_fetch(self.agent, config, remote)  # only its secrets may be new (§6)
            except RemoteError as error:
                self.note_error(str(error))
                continue
            if seen is None:
                continue  # unchanged since the last read
            head, etag = seen
            if head is not None and head != history.ref(f"refs/remotes/{config.name}/{branch}"):
                moves[config.name] = Move(config.url, head, etag, remote)
            elif etag is not None:
                self.etags[config.url] = etag
        return moves

    def pulled(self, moves: dict[str, Move]) -> None:
        """After the pull: keep the ETag of each manifest whose head is now pulled."""
        history = self.agent.history
        branch = history.branch()
        for name, move in moves.items():
            if history.ref(f"refs/remotes/{name}/{branch}") == move.head:
                self.etags[move.url] = move.etag

    def _head(self, remote: Remote, url: str, branch: str) -> tuple[str | None, str | None] | None:
        """(the remote's head of ``branch``, its manifest's ETag or None), or None when an
        object store's manifest has not changed since the last read."""
        from memfs.remotes.bucket import BucketRemote
        from memfs.remotes.storage import Unchanged

        if not isinstance(remote, BucketRemote):
            return remote.head(branch), None  # a git host: one ref listing
        got = remote.poll(self.etags.get(url))
        if isinstance(got, Unchanged):
            return None
        manifest, etag = got
        return (manifest.refs.get(branch) if manifest else None), etag

    # -- folder clouds ------------------------------------------------------------------

    def follow_folders(self, observer: Any, wake: Callable[[], None]) -> str:
        """Follow each folder cloud's manifest with ``observer`` (an inotify observer, or None
        if the work tree's fell back to polling); ``"inotify"`` if every remote is followed
        that way, else ``"polling"``. A folder that cannot be watched (not there yet, no
        inotify watch left) stays on the poll schedule, and the log says so."""
        from watchdog import events

        from memfs.remotes import list_remotes, local_path

        poller = self

        class ManifestHandler(events.FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                for raw in (getattr(event, "src_path", ""), getattr(event, "dest_path", "")):
                    if raw and os.path.basename(os.fsdecode(raw)) in MANIFESTS:
                        poller.folder_changed()
                        wake()

        changes: list[type[events.FileSystemEvent]] = [
            events.FileCreatedEvent, events.FileModifiedEvent, events.FileMovedEvent,
            events.FileClosedEvent,
        ]  # fmt: skip
        polled = False
        for config in list_remotes(self.agent.history):
            if config.mirror:
                continue
            folder = local_path(config.url) if config.kind == "bucket" else None
            if folder is None or observer is None:
                polled = True
                continue
            try:
                observer.schedule(ManifestHandler(), folder, recursive=False, event_filter=changes)
            except OSError as error:
                self.log(f"cannot watch {folder} ({error.strerror}): polling it instead")
                polled = True
                continue
            self.folders.add(config.url)
        with self._lock:
            self._next_folder_read = time.monotonic() + self.folder_read_s
            self._folder_changed = bool(self.folders)  # read once now: it may have moved since
        return "inotify" if self.folders and not polled else "polling"
