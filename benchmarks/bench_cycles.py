"""Cost as work grows: whole `memfs` processes after N watcher commit+push cycles (issue 12).

    python benchmarks/bench_cycles.py [--cycles 10,100,1000,5000] [--files 100]
                                      [--store folder|s3] [--repeat 3] [--dir FOLDER]

An agent with a bucket remote (a local-folder cloud, or moto's S3 on loopback) runs commit+push
cycles the way the watcher does (a one-file edit, ``Agent.commit_paths``, ``sync.push``, in
this process). At each checkpoint it times whole processes, as a user or harness runs them:
  status   `memfs status` in the agent
  commit   `memfs commit` after a one-file edit
  push     `memfs push` of that commit
  pull     `memfs pull` in a second clone that is 3 commits behind
  clone    `memfs clone` of the remote into a new folder
and what one clone reads from the remote (on S3 the requests and response bytes moto
served; on a folder the files and bytes of the manifest, memfs.json, each listed pack and its
index, read or not), and counts the agent's local packs and loose objects, the second clone's
packs, and the packs the remote manifest lists (and the manifest's size). Each figure is the
median of --repeat runs: wall ms / CPU ms (user+sys of the process), and in brackets their
ratios to the first checkpoint (target: <= 1.2 at 5,000 against 10). On a machine loaded by
others wall time is noisy and CPU time is the steadier figure. The 5,000-cycle run takes a
long while (tens of minutes on a loaded machine): run it in the background to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import memfs
from benchmarks._common import populate
from memfs import sync
from memfs.remotes.configure import add_remote

OPERATIONS = ("status", "commit", "push", "pull", "clone")
EDITED = 20  # the cycles edit these files in turn


@dataclass
class Checkpoint:
    cycles: int
    ms: dict[str, float]
    cpu_ms: dict[str, float]
    local_packs: int
    loose: int
    second_packs: int
    remote_packs: int
    manifest_kib: float
    cycle_ms: float  # median in-process commit+push cycle since the previous checkpoint
    slowest_ms: float  # the slowest of those cycles (a push that compacted the remote)
    clone_requests: int  # what the last clone read from the remote: requests (files)
    clone_kib: float  # and bytes


def memfs_run(cwd: Path, *args: str) -> tuple[float, float]:
    """Run `memfs ARGS` as a whole process in ``cwd``; its wall and CPU (user+sys) time in ms.

    CPU time is what the process itself spent: on a machine loaded by others it moves far
    less than wall time, so its ratios are the ones to trust there. Fails loudly.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "memfs", *args], cwd=cwd, capture_output=True, text=True
    )
    elapsed = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    if done.returncode != 0:
        raise SystemExit(f"memfs {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return elapsed, cpu


def edit(root: Path, n: int) -> str:
    """A one-file edit, as a person or the agent makes; the path edited."""
    i = n % EDITED
    path = f"reference/topic-{i % 100:03d}/note-{i:05d}.md"
    (root / path).write_text(f"---\ndescription: note {i}\n---\nfact {i}, edit {n}\n")
    return path


def objects_in(control: Path) -> tuple[int, int]:
    """(packs, loose objects) in a repository's object store."""
    objects = control / "objects"
    packs = len(list((objects / "pack").glob("*.pack")))
    loose = sum(len(os.listdir(d)) for d in objects.iterdir() if len(d.name) == 2 and d.is_dir())
    return packs, loose


Meter = Callable[[], tuple[int, int]]
"""Requests served and bytes sent by the remote so far."""


class Bench:
    """One agent, its remote, a second clone, and the cycle counter."""

    def __init__(
        self,
        work: Path,
        url: str,
        files: int,
        repeat: int,
        manifest: Callable[[], bytes],
        meter: Meter,
    ) -> None:
        self.work, self.url, self.repeat, self.manifest = work, url, repeat, manifest
        self.meter = meter
        self.root = work / "agent"
        self.agent = memfs.init(self.root, name="agent")
        populate(self.root, files)
        self.agent.commit()
        add_remote(self.agent.history, "origin", url)
        assert sync.push(self.agent).ok
        self.second = work / "second"
        sync.clone(url, self.second).close()
        self.done = 0
        self.edits = 0
        self.clones = 0

    def cycle(self) -> float:
        """One watcher cycle: a one-file edit, its commit, a push; ms."""
        start = time.perf_counter()
        path = edit(self.root, self.edits)
        self.edits += 1
        self.agent.commit_paths([path], origin="watch")
        report = sync.push(self.agent, origin="watch")
        if not report.ok:
            raise SystemExit(f"push failed at cycle {self.done}: {report.to_dict()}")
        self.done += 1
        return (time.perf_counter() - start) * 1000

    def measure(self, durations: list[float]) -> Checkpoint:
        cycles = self.done
        times: dict[str, list[tuple[float, float]]] = {op: [] for op in OPERATIONS}
        for _ in range(self.repeat):
            times["status"].append(memfs_run(self.root, "status"))
            edit(self.root, self.edits)
            self.edits += 1
            times["commit"].append(memfs_run(self.root, "commit", "-m", "bench edit"))
            times["push"].append(memfs_run(self.root, "push"))
            memfs_run(self.second, "pull")  # up to date (untimed), then 3 commits behind
            for _ in range(3):
                self.cycle()
            times["pull"].append(memfs_run(self.second, "pull"))
            target = self.work / f"clone-{self.clones}"
            self.clones += 1
            before = self.meter()
            times["clone"].append(memfs_run(self.work, "clone", self.url, str(target)))
            after = self.meter()
            clone_requests, clone_bytes = after[0] - before[0], after[1] - before[1]
            shutil.rmtree(target)
        packs, loose = objects_in(self.root / ".git")
        second_packs, _ = objects_in(self.second / ".git")
        manifest = self.manifest()
        return Checkpoint(
            cycles=cycles,
            ms={op: statistics.median(wall for wall, _ in values) for op, values in times.items()},
            cpu_ms={
                op: statistics.median(cpu for _, cpu in values) for op, values in times.items()
            },
            local_packs=packs,
            loose=loose,
            second_packs=second_packs,
            remote_packs=len(json.loads(manifest).get("packs", [])),
            manifest_kib=len(manifest) / 1024,
            cycle_ms=statistics.median(durations) if durations else 0.0,
            slowest_ms=max(durations, default=0.0),
            clone_requests=clone_requests,
            clone_kib=clone_bytes / 1024,
        )


def run(bench: Bench, checkpoints: list[int]) -> list[Checkpoint]:
    results = []
    for target in checkpoints:
        durations = [bench.cycle() for _ in range(max(0, target - bench.done))]
        point = bench.measure(durations)
        results.append(point)
        print_table(results)
    return results


def print_table(results: list[Checkpoint]) -> None:
    base = results[0]
    head = ["cycles"] + [f"{op} wall/cpu ms (x first)" for op in OPERATIONS]
    head += ["packs", "loose", "2nd packs", "remote packs", "manifest KiB", "cycle ms (max)"]
    head += ["clone requests", "clone KiB"]
    print(" | ".join(head))
    for point in results:
        cells = [str(point.cycles)]
        for op in OPERATIONS:
            wall = point.ms[op] / base.ms[op] if base.ms[op] else 0.0
            cpu = point.cpu_ms[op] / base.cpu_ms[op] if base.cpu_ms[op] else 0.0
            cells.append(f"{point.ms[op]:.0f}/{point.cpu_ms[op]:.0f} ({wall:.2f}/{cpu:.2f})")
        cells += [str(point.local_packs), str(point.loose), str(point.second_packs)]
        cells += [str(point.remote_packs), f"{point.manifest_kib:.1f}"]
        cells.append(f"{point.cycle_ms:.0f} ({point.slowest_ms:.0f})")
        cells += [str(point.clone_requests), f"{point.clone_kib:.0f}"]
        print(" | ".join(cells))
    print(flush=True)


def folder_store(work: Path) -> tuple[str, Callable[[], bytes], Meter]:
    cloud = work / "cloud" / "agent"
    cloud.mkdir(parents=True)
    read: list[int] = [0, 0]  # files and bytes a clone reads, counted once it is done

    def manifest() -> bytes:
        return (cloud / "manifest.json").read_bytes()

    def meter() -> tuple[int, int]:
        """Counts up by what a clone of the folder reads now: the manifest, memfs.json, each
        listed pack and its index."""
        if not (cloud / "manifest.json").exists():
            return read[0], read[1]
        names = json.loads(manifest()).get("packs", [])
        files = [cloud / "manifest.json", cloud / "memfs.json"]
        files += [cloud / "packs" / f"{n}{suffix}" for n in names for suffix in (".pack", ".idx")]
        present = [f.stat().st_size for f in files if f.exists()]
        read[0] += len(present)
        read[1] += sum(present)
        return read[0], read[1]

    return f"memfs::{cloud.as_uri()}", manifest, meter


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", default="10,100,1000,5000", help="checkpoints, ascending")
    parser.add_argument("--files", type=int, default=100, help="memory files in the agent")
    parser.add_argument("--store", choices=("folder", "s3"), default="folder")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--dir", default=None, help="where to write (default: temp folder)")
    args = parser.parse_args()
    checkpoints = sorted(int(x) for x in args.cycles.split(","))
    work = Path(tempfile.mkdtemp(prefix="memfs-cycles-", dir=args.dir))
    home = work / "home"
    os.environ.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        MEMFS_CONFIG=str(home / ".config/memfs/config.yaml"),
        MEMFS_DATA_DIR=str(home / ".local/share/memfs"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
    )
    started = time.perf_counter()
    print(f"{args.files} files, {args.store} remote, medians of {args.repeat}", flush=True)
    try:
        if args.store == "folder":
            url, manifest, meter = folder_store(work)
            run(Bench(work, url, args.files, args.repeat, manifest, meter), checkpoints)
        else:
            run_s3(work, args, checkpoints)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"took {time.perf_counter() - started:.0f} s")


def run_s3(work: Path, args: argparse.Namespace, checkpoints: list[int]) -> None:
    """The same on moto's S3, served on loopback from this process (tests/s3.py)."""
    import boto3

    from tests.s3 import CREDENTIALS
    from tests.s3meter import metered_moto_s3

    os.environ.update(CREDENTIALS)
    with metered_moto_s3() as server:
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint
        client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="bench")

        def manifest() -> bytes:
            body = client.get_object(Bucket="bench", Key="agent/manifest.json")["Body"]
            return body.read()  # type: ignore[no-any-return]

        def meter() -> tuple[int, int]:
            return len(server.served), server.body_bytes()

        bench = Bench(work, "memfs::s3://bench/agent", args.files, args.repeat, manifest, meter)
        run(bench, checkpoints)


if __name__ == "__main__":
    main()
