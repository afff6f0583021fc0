"""Local repository speed: memfs beside the git CLI on the same agents, in the same run.

    python benchmarks/bench_local.py [--sizes 100,1000,10000] [--repeat 5]

For each agent size it measures, median of --repeat runs:
  status (clean)   memfs Agent.status()        vs  git status --porcelain
  commit 1 file    edit one file, Agent.commit vs  git add -A && git commit
  cli status       the memfs command           vs  git status (process start included)
and prints a table with the ratio memfs / git (lower is better; < 1 means memfs is faster).
Files are spread over 100 folders, as a real agent's memory is.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import memfs
from benchmarks._common import git, populate


def memfs_cli(root: Path, *args: str) -> None:
    command = [sys.executable, "-m", "memfs", "-C", str(root), *args]
    subprocess.run(command, check=True, capture_output=True)


def median_ms(
    action: Callable[[], object], repeat: int, before: Callable[[], object] = lambda: None
) -> float:
    times = []
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_size(workdir: Path, files: int, repeat: int) -> list[tuple[str, int, float, float]]:
    agent_root = workdir / f"memfs-{files}"
    git_root = workdir / f"git-{files}"
    agent_root.mkdir()
    populate(agent_root, files)
    agent = memfs.init(agent_root, name=f"bench-{files}")
    git_root.mkdir()
    populate(git_root, files)
    git(git_root, "init", "-q", "-b", "main")
    git(git_root, "config", "gc.auto", "0")
    git(git_root, "add", "-A")
    git(git_root, "commit", "-qm", "init")

    counter = iter(range(10**9))
    target = "reference/topic-007/note-00007.md"

    def edit(root: Path) -> Callable[[], None]:
        return lambda: (root / target).write_text(f"edit {next(counter)}\n")

    rows = [
        ("status (clean)", files, median_ms(agent.status, repeat),
         median_ms(lambda: git(git_root, "status", "--porcelain"), repeat)),
        ("commit 1 file", files, median_ms(agent.commit, repeat, edit(agent_root)),
         median_ms(lambda: (git(git_root, "add", "-A"), git(git_root, "commit", "-qm", "x")),
                   repeat, edit(git_root))),
        ("cli status", files, median_ms(lambda: memfs_cli(agent_root, "status"), repeat),
         median_ms(lambda: git(git_root, "status"), repeat)),
    ]  # fmt: skip
    agent.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="memfs-bench-"))
    try:
        rows = []
        for size in (int(s) for s in args.sizes.split(",")):
            rows += bench_size(workdir, size, args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'operation':<16} {'files':>7} {'memfs ms':>10} {'git ms':>9} {'ratio':>7}")
    for name, files, ours, theirs in rows:
        print(f"{name:<16} {files:>7} {ours:>10.1f} {theirs:>9.1f} {ours / theirs:>7.2f}")


if __name__ == "__main__":
    main()
