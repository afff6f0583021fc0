"""``memfs watch --daemon`` and ``--stop``: the watcher as a background process.

It logs to ``.git/memfs/watch.log``, survives the terminal that started it, and says it runs
through its state file (memfs/watchstate.py); SIGTERM makes it flush and stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from memfs.errors import WatcherError
from memfs.watchstate import is_running, read_state

if TYPE_CHECKING:
    from memfs.agent import Agent


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
