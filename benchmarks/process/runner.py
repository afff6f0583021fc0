"""Running the measured commands: one isolated environment, wall-clock timing, samples.

Every command runs as a whole process (subprocess, wall clock from spawn to exit), as a user
or a harness runs it. The environment is isolated from the developer's: its own HOME, git
config, memfs config and data folder, a fixed git identity, moto's credentials and endpoint,
and the current venv's bin folder first on PATH, so that ``memfs`` is this venv's console
script and git finds this venv's ``git-remote-s3``.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.process.s3server import CREDENTIALS, CountingServer, Traffic

SIDES = ("memfs", "base", "peer", "git")
"""The columns, in the order they take turns: memfs, the same rows by another memfs build to
compare with (--base-memfs), awslabs git-remote-s3 (the peer), plain git with a bare repo."""

PEER_MISSING = (
    "git-remote-s3 is not installed: the git-remote-s3 column is skipped "
    "(pip install -e '.[bench]' adds it)"
)


class BenchError(RuntimeError):
    """A measured or preparing command failed: the benchmark cannot go on."""


def isolated_environment(work: Path, endpoint: str) -> dict[str, str]:
    """The environment every command runs in: nothing read from the developer's setup."""
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[init]\n\tdefaultBranch = main\n[pull]\n\tff = only\n[advice]\n\tdetachedHead = false\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MEMFS_", "AWS_", "GIT_")) and key not in ("HOME", "PYTHONPATH")
    }
    bin_folder = str(Path(sys.executable).parent)
    env.update(CREDENTIALS)
    env.update(
        {
            "HOME": str(home),
            "PATH": bin_folder + os.pathsep + env.get("PATH", os.defpath),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "MEMFS_CONFIG": str(home / ".config/memfs/config.yaml"),
            "MEMFS_DATA_DIR": str(home / ".local/share/memfs"),
            "MEMFS_HOST": "bench-host",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(gitconfig),
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
            "GIT_TERMINAL_PROMPT": "0",
            "AWS_ENDPOINT_URL": endpoint,
        }
    )
    return env


def memfs_script() -> str:
    """The ``memfs`` console script of the venv running the benchmark."""
    script = Path(sys.executable).parent / "memfs"
    if not script.exists():
        raise BenchError(f"no memfs console script beside {sys.executable}: pip install -e .")
    return str(script)


def peer_installed(env: dict[str, str]) -> bool:
    """Whether git can find awslabs' ``git-remote-s3`` helper on the benchmark's PATH."""
    return shutil.which("git-remote-s3", path=env["PATH"]) is not None


@dataclass(frozen=True)
class Sample:
    """One timed run: wall-clock seconds, what it cost the S3 server, and the CPU seconds
    (user + system) of the measured processes and their children: on a loaded machine the
    wall clock says as much about the neighbours as about the command, the CPU time less."""

    seconds: float
    traffic: Traffic
    cpu: float = 0.0


@dataclass
class Runner:
    """Runs commands in the isolated environment and keeps the timed samples."""

    env: dict[str, str]
    server: CountingServer
    samples: dict[tuple[str, int, str], list[Sample]] = field(default_factory=dict)

    def run(self, command: Sequence[str], cwd: Path) -> None:
        """Run one preparing (untimed) command; fail with its last line of stderr."""
        result = subprocess.run(
            list(command), cwd=cwd, env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BenchError(f"{' '.join(command)} in {cwd} exited {result.returncode}: {last}")

    def time(
        self,
        row: str,
        files: int,
        side: str,
        commands: Sequence[Sequence[str]],
        cwd: Path,
    ) -> None:
        """Run ``commands`` one after the other as one timed operation and record a sample."""
        before = self.server.traffic()
        used = _children_cpu()
        start = time.perf_counter()
        for command in commands:
            self.run(command, cwd)
        seconds = time.perf_counter() - start
        sample = Sample(seconds, self.server.traffic() - before, _children_cpu() - used)
        self.samples.setdefault((row, files, side), []).append(sample)


def _children_cpu() -> float:
    """User + system CPU seconds of every finished child process so far (git's helpers too)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def settle() -> None:
    """Let dirty pages reach the disk before a timed run, so no side pays for the last."""
    os.sync()


def interleaved(repeat: int, sides: Sequence[str], step: Callable[[int, str], None]) -> None:
    """Run ``step(n, side)`` for each repetition n, the sides in turns (memfs, peer, git,
    memfs, ...), so that a slow spell of the loaded machine falls on every side alike."""
    for n in range(repeat):
        for side in sides:
            settle()
            step(n, side)


@dataclass(frozen=True)
class Median:
    """The median of a row's samples on one side."""

    seconds: float
    requests: int
    bytes_up: int
    bytes_down: int
    runs: int
    cpu_seconds: float = 0.0


def median(samples: list[Sample]) -> Median:
    """Medians of time, requests, bytes and CPU time, each taken on its own."""
    return Median(
        seconds=statistics.median(s.seconds for s in samples),
        requests=round(statistics.median(s.traffic.requests for s in samples)),
        bytes_up=round(statistics.median(s.traffic.bytes_up for s in samples)),
        bytes_down=round(statistics.median(s.traffic.bytes_down for s in samples)),
        runs=len(samples),
        cpu_seconds=statistics.median(s.cpu for s in samples),
    )
