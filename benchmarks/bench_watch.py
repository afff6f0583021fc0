"""Watcher speed: sync latency between two watched machines, one-edit commits, idle cost.

    python benchmarks/bench_watch.py [--edits 50] [--files 10000] [--idle-s 20] [--scale 10]

1. Sync latency: machines A and B each run `memfs watch --daemon` with default settings on one
   agent in moto's S3 (loopback). An edit on A is timed until B's work tree shows it; p50/p95
   over --edits edits. Targets (issue 5): p50 <= 1 s, p95 <= 2 s.
2. One-edit commit in a --files agent: the watcher's commit (Agent.commit_paths; the index
   is brought in line later, when edits pause) beside `git add -A && git commit` on the same
   repository, in the same run. Target: no slower.
3. Idle cost: a watcher on an unchanged --files agent with an S3 remote, CPU and RSS of its
   process over --idle-s seconds. Targets: < 2% of one core, < 150 MB RSS.
4. Idle requests (issue 12): requests and bytes per idle hour of one watched agent on moto's
   S3, and what 1,000 idle agents cost a month at S3 list prices. Before: a poll every second
   (--poll-s 1, as the watcher did), each a full GET of manifest.json (bytes: polls x manifest
   size). After: the default hot/cold schedule, measured with time scaled down --scale times
   (cold interval 45/scale s, hot for 0.5 s, then a settle period) and the measured rate
   scaled back up; beside it the schedule itself with its real defaults over simulated hours.
   Target: <= 120 requests per idle hour.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

import memfs
from benchmarks._common import GIT_ENV, populate
from memfs import sync
from memfs.pollschedule import COLD_ENV, HOT_FOR_ENV, PollSchedule, ScheduleSettings
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote
from memfs.watcher import start_daemon, stop_daemon
from tests.s3 import CREDENTIALS
from tests.s3meter import MeteredServer, metered_moto_s3

GET_PER_1000 = 0.0004  # S3 Standard list prices, us-east-1
PUT_LIST_PER_1000 = 0.005
HOURS_PER_MONTH = 720


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


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables (inherited by the watcher daemons) for a while."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def idle_requests(
    work: Path,
    server: MeteredServer,
    url: str,
    options: list[str],
    settle_s: float,
    window_s: float,
) -> tuple[int, int, int, int]:
    """(requests, GET requests, response bytes, manifest size) an idle daemon made in
    ``window_s`` after ``settle_s``, on the agent at ``url`` (bucket path ``/watch-bench/...``)."""
    name = url.rsplit("/", 1)[-1]
    agent = memfs.init(work / name, name=name)
    add_remote(agent.history, "origin", url)
    sync.push(agent)
    remote = BucketRemote("memfs::" + url)
    stored = remote.storage.get("manifest.json")
    manifest = len(stored[0]) if stored else 0
    start_daemon(agent, options)
    try:
        time.sleep(settle_s)  # start-up sync and the hot period: not idle yet
        before = len(server.served)
        time.sleep(window_s)  # the window being measured
        window = server.served[before:]
    finally:
        stop_daemon(agent)
    gets = sum(1 for s in window if s.method == "GET")
    return len(window), gets, sum(s.body_bytes for s in window), manifest


def simulated_polls(hours: float, seed: int = 0) -> tuple[int, int]:
    """The default schedule, driven by a simulated clock: (polls in the first hour after a
    burst of activity, polls per hour once idle, averaged over ``hours``)."""
    now = [0.0]
    schedule = PollSchedule(
        ScheduleSettings(), clock=lambda: now[0], rand=random.Random(seed).random
    )
    polls_first = polls_later = 0
    while schedule.due < 3600 * (1 + hours):
        now[0] = schedule.due
        schedule.polled()
        if now[0] < 3600:
            polls_first += 1
        else:
            polls_later += 1
    return polls_first, round(polls_later / hours)


def monthly_cost(requests_per_hour: float, agents: int = 1000) -> float:
    return requests_per_hour * HOURS_PER_MONTH * agents * GET_PER_1000 / 1000


def idle_table(work: Path, server: MeteredServer, scale: float) -> None:
    """Requests, bytes and cost of an idle watcher, before and after (see the docstring)."""
    cold = 45.0 / scale
    old = idle_requests(work, server, "s3://watch-bench/agents/idle-old", ["--poll-s", "1"], 3, 20)
    with environment(**{COLD_ENV: f"{cold:g}", HOT_FOR_ENV: "0.5"}):
        new = idle_requests(work, server, "s3://watch-bench/agents/idle-new", [], 10, 20 * cold)
    first, steady = simulated_polls(hours=24)
    old_rate = old[0] * 3600 / 20
    new_rate = new[0] * 3600 / (20 * cold) / scale
    new_bytes = new[2] * 3600 / (20 * cold) / scale
    rows = [
        ("before: 1 s, full GET (measured)", old_rate, old_rate * old[3], old[0] != old[1]),
        (f"after: hot/cold (measured, time /{scale:g})", new_rate, new_bytes, new[0] != new[1]),
        ("after: schedule, idle hour (simulated)", steady, None, False),
        ("after: schedule, hour after activity (sim.)", first, None, False),
    ]
    print()
    print(
        f"idle watcher, one agent on S3 (moto); 1,000 agents at GET ${GET_PER_1000}/1,000 "
        f"(PUT/LIST ${PUT_LIST_PER_1000}/1,000: an idle watcher makes none), 720 h a month"
    )
    print(f"{'schedule':<44} {'req/hour':>9} {'KiB/hour':>9} {'$/month x1000':>14}")
    for label, rate, body, other in rows:
        note = "  (not only GETs!)" if other else ""
        kib = f"{'-':>9}" if body is None else f"{body / 1024:>9.1f}"
        print(f"{label:<44} {rate:>9.0f} {kib} {monthly_cost(rate):>14.2f}{note}")
    print(f"manifest.json: {old[3]} bytes; target <= 120 requests per idle hour")


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
    parser.add_argument("--scale", type=float, default=10.0, help="idle schedule time scale")
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    work = Path(tempfile.mkdtemp(prefix="memfs-bench-watch-"))
    os.environ["MEMFS_DATA_DIR"] = str(work / "data")
    try:
        with metered_moto_s3() as server:
            os.environ["AWS_ENDPOINT_URL"] = server.endpoint
            client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
            client.create_bucket(Bucket="watch-bench")
            latencies = sync_latency(work, "s3://watch-bench/agents/latency", args.edits)
            ours, theirs = commit_latency(work, args.files)
            cpu, rss = idle_cost(work, "s3://watch-bench/agents/idle", args.files, args.idle_s)
            print_first(latencies, ours, theirs, cpu, rss, args.files)
            idle_table(work, server, args.scale)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_first(
    latencies: list[float], ours: float, theirs: float, cpu: float, rss: float, files: int
) -> None:
    """The latency, commit and idle CPU/RSS table."""
    print(f"{'measure':<34} {'value':>10}  target")
    print(f"{'sync latency p50 (s)':<34} {percentile(latencies, 0.5):>10.2f}  <= 1")
    print(f"{'sync latency p95 (s)':<34} {percentile(latencies, 0.95):>10.2f}  <= 2")
    print(f"{'sync latency max (s)':<34} {max(latencies):>10.2f}  ({len(latencies)} edits)")
    label = f"one-edit commit, {files} files (ms)"
    print(f"{label:<34} {ours:>10.1f}  git: {theirs:.1f} ms, ratio {ours / theirs:.2f}")
    print(f"{'idle watcher CPU (% of a core)':<34} {cpu:>10.2f}  < 2")
    print(f"{'idle watcher RSS (MB)':<34} {rss:>10.1f}  < 150")


if __name__ == "__main__":
    main()
