"""Watcher speed: sync latency between two watched machines, one-edit commits, idle cost.

    python benchmarks/bench_watch.py [--edits 50] [--files 10000] [--idle-s 20]

1. Sync latency: machines A and B each run `memfs watch --daemon` with default settings on one
   agent in moto's S3 (loopback). An edit on A is timed until B's work tree shows it; p50/p95
   over --edits edits. Targets (issue 5): p50 <= 1 s, p95 <= 2 s.
2. One-edit commit in a --files agent: the watcher's commit (Agent.commit_paths; the index
   is brought in line later, when edits pause) beside `git add -A && git commit` on the same
   repository, in the same run. Target: no slower.
3. Idle cost: a watcher on an unchanged --files agent with an S3 remote, CPU and RSS of its
   process over --idle-s seconds. Targets: < 2% of one core, < 150 MB RSS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

import memfs
from benchmarks._common import GIT_ENV, populate
from memfs import sync
from memfs.remotes import add_remote
from memfs.watcher import start_daemon, stop_daemon
from tests.s3 import CREDENTIALS, moto_s3


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def sync_latency(work: Path, url: str, edits: int) -> list[float]:
    a = memfs.init(work / "machine-a" / "agent", name="latency")
    add_remote(a.history, "origin", url)
    sync.push(a)
    b = sync.clone(url, work / "machine-b" / "agent")
    start_daemon(a, [])
    start_daemon(b, [])
    latencies = []
    try:
        target = b.root / "notes" / "latest.md"
        for i in range(edits):
            text = f"edit {i} at {time.time()}\n"
            (a.root / "notes").mkdir(exist_ok=True)
            start = time.perf_counter()
            (a.root / "notes" / "latest.md").write_text(text)
            deadline = start + 30
            while time.perf_counter() < deadline:
                try:
                    if target.read_text() == text:
                        break
                except OSError:
                    pass
                time.sleep(0.005)
            else:
                raise SystemExit(f"edit {i} did not reach B within 30 s")
            latencies.append(time.perf_counter() - start)
            time.sleep(0.2)  # pacing between edits, outside the measured span
    finally:
        stop_daemon(a)
        stop_daemon(b)
    return latencies


def commit_latency(work: Path, files: int, runs: int = 15) -> tuple[float, float]:
    agent = memfs.init(work / "big", name="big")
    populate(agent.root, files)
    agent.commit()
    target = agent.root / "reference/topic-007/note-00007.md"
    ours = []
    for i in range(runs):
        target.write_text(f"memfs edit {i}\n")
        start = time.perf_counter()
        agent.commit_paths(["reference/topic-007/note-00007.md"], update_index=False)
        ours.append((time.perf_counter() - start) * 1000)
    theirs = []
    for i in range(runs):
        target.write_text(f"git edit {i}\n")
        start = time.perf_counter()
        subprocess.run(["git", "add", "-A"], cwd=agent.root, env=GIT_ENV, check=True)
        subprocess.run(["git", "commit", "-qm", "x"], cwd=agent.root, env=GIT_ENV, check=True)
        theirs.append((time.perf_counter() - start) * 1000)
    agent.close()
    return statistics.median(ours), statistics.median(theirs)


def idle_cost(work: Path, url: str, files: int, seconds: float) -> tuple[float, float]:
    agent = memfs.init(work / "idle", name="idle")
    populate(agent.root, files)
    agent.commit()
    add_remote(agent.history, "origin", url)
    sync.push(agent)
    pid = start_daemon(agent, [])
    try:
        time.sleep(3)  # let start-up work finish; measure the steady state only
        ticks = os.sysconf("SC_CLK_TCK")
        before = _cpu_ticks(pid)
        time.sleep(seconds)
        used = (_cpu_ticks(pid) - before) / ticks
        rss_mb = _rss_kb(pid) / 1024
    finally:
        stop_daemon(agent)
    return 100 * used / seconds, rss_mb


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--idle-s", type=float, default=20.0)
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    work = Path(tempfile.mkdtemp(prefix="memfs-bench-watch-"))
    os.environ["MEMFS_DATA_DIR"] = str(work / "data")
    try:
        with moto_s3() as server:
            os.environ["AWS_ENDPOINT_URL"] = server.endpoint
            client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
            client.create_bucket(Bucket="watch-bench")
            latencies = sync_latency(work, "s3://watch-bench/agents/latency", args.edits)
            ours, theirs = commit_latency(work, args.files)
            cpu, rss = idle_cost(work, "s3://watch-bench/agents/idle", args.files, args.idle_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'measure':<34} {'value':>10}  target")
    print(f"{'sync latency p50 (s)':<34} {percentile(latencies, 0.5):>10.2f}  <= 1")
    print(f"{'sync latency p95 (s)':<34} {percentile(latencies, 0.95):>10.2f}  <= 2")
    print(f"{'sync latency max (s)':<34} {max(latencies):>10.2f}  ({len(latencies)} edits)")
    label = f"one-edit commit, {args.files} files (ms)"
    print(f"{label:<34} {ours:>10.1f}  git: {theirs:.1f} ms, ratio {ours / theirs:.2f}")
    print(f"{'idle watcher CPU (% of a core)':<34} {cpu:>10.2f}  < 2")
    print(f"{'idle watcher RSS (MB)':<34} {rss:>10.1f}  < 150")


if __name__ == "__main__":
    main()
