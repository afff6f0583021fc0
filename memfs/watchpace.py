"""How the watcher paces itself: its settings, the debouncer that says when a batch of edits
is due for a commit, and the remote-polling schedule it asks for (memfs/pollschedule.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from memfs.pollschedule import (
    HOT_S_BUCKET,
    HOT_S_GIT,
    ScheduleSettings,
    default_cold_s,
    default_hot_for_s,
)

if TYPE_CHECKING:
    from memfs.history import History

# The least quiet time in a repo with Letta Code's hooks: its memory tool writes a file, then
# runs git add and git commit (a v2 commit's hook takes a second or more, during which git
# holds index.lock, which the watcher also waits out). On a loaded machine the gap between
# the write and ``git add`` passed 1.5 s; the watcher is the backstop for edits Letta Code
# does not commit (a person's editor), for which 3 s is no real delay.
LETTA_CODE_QUIET_S = 3.0


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


class FailureWait:
    """How long the watcher's loop waits after a turn that raised: 0.5 s, doubled after each
    failure in a row up to ``max_s``, none once a turn works. Whatever keeps failing (a file
    it cannot read, a bug), the loop never spins."""

    FIRST_S = 0.5

    def __init__(self, max_s: float) -> None:
        self.max_s = max_s
        self.wait_s = 0.0
        self.until = 0.0  # no turn before this (monotonic)

    def failed(self, now: float) -> None:
        self.wait_s = min(max(self.wait_s * 2, self.FIRST_S), max(self.max_s, self.FIRST_S))
        self.until = now + self.wait_s

    def succeeded(self) -> None:
        self.wait_s = 0.0


def schedule_settings(settings: WatchSettings, history: History) -> ScheduleSettings:
    """A fixed interval if one was asked for (``--poll-s``), else the hot/cold schedule,
    hot at 1 s for object stores and 10 s as soon as a git host is among the remotes."""
    if settings.poll_s is not None:
        return ScheduleSettings.fixed(settings.poll_s)
    hot_s = settings.poll_hot_s
    if hot_s is None:
        from memfs.remotes import list_remotes

        kinds = {config.kind for config in list_remotes(history)}
        hot_s = HOT_S_BUCKET if kinds <= {"bucket"} else HOT_S_GIT
    return ScheduleSettings(
        hot_s=hot_s, cold_s=settings.poll_cold_s, hot_for_s=settings.poll_hot_for_s
    )
