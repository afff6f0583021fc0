"""A watcher whose agent goes away (removed, moved, its .git removed, another folder in its
place) says so and exits 8 within seconds instead of spinning; no failure makes it spin.

Whole ``memfs watch`` processes: what was found was a left-over process burning a core for an
hour. CPU time is the child's own (``/proc/PID/stat`` while it runs, ``wait4``'s rusage once
it has exited), so a busy loop shows however loaded the machine is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import memfs
from memfs.remotes.configure import add_remote
from memfs.watchpace import FailureWait

from .conftest import write
from .servers import free_port, wait_for

CPU_BOUND_S = 0.5  # far above the ~0.05 s a waiting watcher uses; a spinning one uses ~1 s/s
HZ = os.sysconf("SC_CLK_TCK")


class WatchProcess:
    """``memfs watch AGENT --log LOG`` as a child process, reaped with its CPU time."""

    def __init__(self, root: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        command = [sys.executable, "-m", "memfs", "watch", str(root), "--log", str(log)]
        command += ["--quiet-ms", "100", "--max-delay-ms", "500"]
        self.proc = subprocess.Popen(
            command, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
        )
        self.code: int | None = None
        self.cpu_at_exit = 0.0
        wait_for(lambda: "watching " in self.text() or self.exited(), what="the watcher to start")
        assert self.code is None, self.text() + self.stderr()

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read() if self.code is not None else ""

    def cpu(self) -> float:
        """User + system seconds so far (final once it has exited)."""
        if self.code is not None:
            return self.cpu_at_exit
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ

    def exited(self) -> bool:
        """Whether it has exited (reaping it, with its rusage, the first time)."""
        if self.code is None:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid == 0:
                return False
            self.code = os.waitstatus_to_exitcode(status)
            self.proc.returncode = self.code
            self.cpu_at_exit = usage.ru_utime + usage.ru_stime
        return True

    def kill(self) -> None:
        if not self.exited():
            self.proc.kill()
            wait_for(self.exited, what="the killed watcher to be reaped")


def test_failed_turns_wait_longer_each_time_up_to_the_cap() -> None:
    wait = FailureWait(max_s=3.0)
    waits = []
    for now in (10.0, 20.0, 30.0, 40.0):
        wait.failed(now)
        waits.append(wait.until - now)
    assert waits == [0.5, 1.0, 2.0, 3.0]
    wait.succeeded()
    wait.failed(50.0)
    assert wait.until == 50.5, "a turn that worked starts over"


@pytest.fixture
def watching(tmp_path: Path) -> Iterator[list[WatchProcess]]:
    """Watcher processes started by the test, killed if it left one running."""
    started: list[WatchProcess] = []
    yield started
    for process in started:
        process.kill()


def an_agent(tmp_path: Path, remote: str) -> memfs.Agent:
    agent = memfs.init(tmp_path / "agent")
    write(agent.root, "system/human.md", "Likes tomatoes.\n")
    agent.commit(message="first")
    if remote == "file":
        (tmp_path / "cloud").mkdir()
        add_remote(agent.history, "origin", f"memfs::file://{tmp_path / 'cloud'}")
    return agent


def remove(root: Path, how: str) -> None:
    if how == "rm -rf":
        shutil.rmtree(root)
    elif how == "renamed":
        root.rename(root.with_name("moved"))
    elif how == ".git removed":
        shutil.rmtree(root / ".git")
    elif how == "replaced":  # moved away and another agent made in its place at once
        root.rename(root.with_name("moved"))
        memfs.init(root)


@pytest.mark.parametrize("remote", ["none", "file"])
@pytest.mark.parametrize("how", ["rm -rf", "renamed", ".git removed", "replaced"])
def test_watcher_of_a_gone_agent_says_so_and_exits_8(
    tmp_path: Path, watching: list[WatchProcess], how: str, remote: str
) -> None:
    agent = an_agent(tmp_path, remote)
    process = WatchProcess(agent.root, tmp_path / "watch.log")
    watching.append(process)
    before = process.cpu()
    remove(agent.root, how)
    wait_for(process.exited, timeout=15, what="the watcher to notice its agent is gone")
    assert process.code == 8, process.text() + process.stderr()
    assert process.text().count("agent folder gone: ") == 1, process.text()
    assert "agent folder gone: " in process.stderr(), "the exit's one line"
    assert "Traceback" not in process.text() and "internal error" not in process.text()
    assert process.cpu() - before < CPU_BOUND_S, "no busy loop while it noticed"
    moved = tmp_path / "moved"
    if how in ("renamed", "replaced"):  # the state moved with the folder: not running there
        assert json.loads((moved / ".git/memfs/watch.json").read_text())["running"] is False
    if how == "replaced":  # the new agent is not the watcher's: nothing written into it
        assert not (agent.root / ".git/memfs/watch.json").exists()
    if how == "rm -rf":
        assert not agent.root.exists(), "nothing created where the agent was"


def test_idle_watcher_without_an_object_store_stays_idle(
    tmp_path: Path, watching: list[WatchProcess]
) -> None:
    """Presence has nowhere to go without an object store and says a beat is due 'now': the
    watcher used to take that at its word, in a loop, burning a core for as long as it ran."""
    agent = an_agent(tmp_path, "none")
    process = WatchProcess(agent.root, tmp_path / "watch.log")
    watching.append(process)
    before = process.cpu()
    time.sleep(2.0)  # the measurement window, not synchronisation: nothing is awaited
    assert process.cpu() - before < CPU_BOUND_S / 2
    assert not process.exited()


def test_watcher_with_its_remote_down_backs_off_without_spinning(
    tmp_path: Path, watching: list[WatchProcess]
) -> None:
    agent = an_agent(tmp_path, "none")
    add_remote(agent.history, "origin", f"git://127.0.0.1:{free_port()}/down.git")  # no one
    process = WatchProcess(agent.root, tmp_path / "watch.log")
    watching.append(process)
    before = process.cpu()
    write(agent.root, "system/human.md", "Likes tomatoes and basil.\n")
    wait_for(
        lambda: process.text().count("retrying in") >= 2 and process.text().count("error:") >= 4,
        timeout=30,
        what="pushes and polls to fail a few times",
    )
    assert process.cpu() - before < CPU_BOUND_S, process.text()
    assert not process.exited(), "a remote down is no reason to stop"
    assert "committed " in process.text(), "commits go on locally"
