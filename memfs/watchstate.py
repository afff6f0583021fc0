"""A watcher's state as other processes see it: its lock and its state file.

Apart from ``memfs.watcher`` so that ``memfs status`` (which shows whether a watcher runs)
imports neither the watcher nor the sync stack: it needs two small files in ``.git/memfs``.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memfs.agent import Agent


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
