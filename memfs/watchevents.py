"""The watcher's event source: watchdog's observer (inotify, or polling the folder when the
inotify watch limit is reached) and the filter turning its events into agent-relative paths.

The filter only translates, dropping ``.git`` and editor litter; what gets committed is
decided by ``Agent.commit_paths`` with the full rules.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

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


def start_observer(
    root: Path, on_path: Callable[[str], None], log: Callable[[str], None]
) -> tuple[Any, str]:
    """Follow changes under ``root``, calling ``on_path`` for each path worth looking at; the
    running observer and its mode: ``inotify``, or ``polling`` (every 2 s) when the inotify
    watch limit is reached (logged)."""
    from watchdog import events
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    filter_ = EventFilter(root, on_path)

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
        observer.schedule(Handler(), str(root), recursive=True, event_filter=changes)
        observer.start()
        if _unwatched_folders(observer, root):
            observer.stop()
            observer.join(timeout=10)
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EMFILE):
            raise
        log("inotify watch limit reached: falling back to polling the folder every 2 s")
        observer = PollingObserver(timeout=2)
        observer.schedule(Handler(), str(root), recursive=True, event_filter=changes)
        observer.start()
        return observer, "polling"
    return observer, "inotify"


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
