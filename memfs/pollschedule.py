"""When an idle watcher polls its remotes: hot while things happen, cold when nothing does.

A watcher polls fast (``hot_s``, 1 s for object stores) while there is activity: a local
edit, or a poll that found a remote moved, each keeps it hot for ``hot_for_s``. After that,
each poll that finds nothing doubles the interval (2 s, 4 s, ...) up to ``cold_s``. Every
interval after the hot ones is spread by +-``jitter`` so that 1,000 idle watchers started
together do not poll in lockstep. Any activity makes the next poll due at once (a hot
interval from now), however cold the schedule was.

With the defaults, an idle agent costs 3,600/45 = 80 polls an hour instead of 3,600, and a
watcher that sees edits keeps the 1 s latency it had. Pure logic: the clock and the random
source are injected, so tests drive it without threads or sleeps.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

HOT_S_BUCKET = 1.0  # object stores: a conditional GET, cheap and billed per request
HOT_S_GIT = 10.0  # git hosts: a whole ref advertisement per poll, and hosts rate-limit
COLD_S = 45.0  # 30-60 s with the default jitter
HOT_FOR_S = 30.0
JITTER = 1 / 3
COLD_ENV = "MEMFS_WATCH_COLD_S"
HOT_FOR_ENV = "MEMFS_WATCH_HOT_FOR_S"


def _env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment, else ``default``."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def default_cold_s() -> float:
    """The cold interval: ``MEMFS_WATCH_COLD_S`` if set, else 45 s."""
    return _env_seconds(COLD_ENV, COLD_S)


def default_hot_for_s() -> float:
    """How long activity keeps polling hot: ``MEMFS_WATCH_HOT_FOR_S`` if set, else 30 s."""
    return _env_seconds(HOT_FOR_ENV, HOT_FOR_S)


@dataclass(frozen=True)
class ScheduleSettings:
    """The schedule's shape, in seconds. ``hot_s == cold_s`` with no jitter is a fixed
    interval (what an explicit ``--poll-s`` asks for)."""

    hot_s: float = HOT_S_BUCKET
    cold_s: float = COLD_S
    hot_for_s: float = HOT_FOR_S
    jitter: float = JITTER

    @classmethod
    def fixed(cls, interval_s: float) -> ScheduleSettings:
        return cls(hot_s=interval_s, cold_s=interval_s, hot_for_s=0.0, jitter=0.0)


class PollSchedule:
    """Says when the next poll is due; told about polls and activity.

    ``due`` is the monotonic time of the next poll. Call ``polled(now)`` after each poll and
    ``activity(now)`` on a local edit or a remote change.
    """

    def __init__(
        self,
        settings: ScheduleSettings,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.rand = rand
        now = clock()
        self._active_at = now  # starting counts as activity: a watcher starts hot
        self._interval = settings.hot_s
        self.due = now  # poll at once

    @property
    def hot(self) -> bool:
        """Whether the last activity is recent enough to poll at the hot interval."""
        return self.clock() - self._active_at < self.settings.hot_for_s

    def activity(self, now: float | None = None) -> None:
        """A local edit or a remote change: poll hot again, the next poll within ``hot_s``."""
        now = self.clock() if now is None else now
        self._active_at = now
        self._interval = self.settings.hot_s
        self.due = min(self.due, now + self.settings.hot_s)

    def polled(self, now: float | None = None) -> float:
        """A poll just ran: schedule the next one; the interval chosen (jitter included)."""
        now = self.clock() if now is None else now
        settings = self.settings
        if now - self._active_at < settings.hot_for_s:
            # hot: exactly hot_s, so the worst-case latency stays hot_s; watchers that are
            # hot are already out of step, each started by its own activity
            self._interval = interval = settings.hot_s
        else:  # idle: back off step by step, spread so that idle watchers drift apart
            self._interval = min(max(self._interval * 2, settings.hot_s), settings.cold_s)
            interval = self._interval * (1 + settings.jitter * (2 * self.rand() - 1))
        self.due = now + interval
        return interval
