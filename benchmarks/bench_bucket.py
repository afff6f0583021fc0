"""Object-store remote speed: memfs on moto's S3 (loopback) beside git on a local bare repo.

    python benchmarks/bench_bucket.py [--sizes 100,1000,10000] [--commits 1,100]
                                      [--no-writers] [--dir FOLDER]

Rows, each measured in the same run as its git counterpart on the same repository:
  push            first push of the whole agent      vs  git push to a local bare repo
  clone           clone into a new folder            vs  git clone of that bare repo
  incr push       push of a committed one-file change vs  git push of the same change
                  (the transfer, as a watcher does it; with the number of S3 requests made)
  8 writers       8 processes x 10 commits pushed    vs  the same memfs run against a bare repo
Ratios are memfs / git (lower is better); each figure is the median of 5 runs, the two sides
run in turns. --dir picks where the agents are written (default: the system's temp folder).
Targets (issue 4): incremental push of a 10,000-file agent <= 4 requests and <= 100 ms;
clone <= 1.5x git clone; 8 writers <= 2x the bare-repo run.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

import memfs
from benchmarks._common import git, populate
from memfs import sync
from memfs.remotes import get_remote
from memfs.remotes.configure import add_remote
from tests.s3 import CREDENTIALS, moto_s3

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from memfs import sync
    url, root, name = sys.argv[1:4]
    agent = sync.clone(url, root)
    for i in range(10):
        Path(root, f"writer-{name}.md").write_text(f"{name} {i}\\n")
        agent.commit()
        assert sync.push(agent).ok
    """
)


REPEAT = 5


def timed_pair(ours, theirs) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median ms of REPEAT runs of each, taken in turns (ours, theirs, ours...) so that a slow
    spell of the machine's disk falls on both sides alike. ``action(n)`` gets the run number,
    for fresh target names."""
    times: tuple[list[float], list[float]] = ([], [])
    for n in range(REPEAT):
        for side, action in enumerate((ours, theirs)):
            os.sync()  # both sides start with no dirty pages being written back
            start = time.perf_counter()
            action(n)
            times[side].append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def build_agent(root: Path, files: int, commits: int) -> memfs.Agent:
    agent = memfs.init(root, name=root.name)
    populate(root, files)
    agent.commit()
    for c in range(commits - 1):
        (root / "reference" / "log.md").write_text(f"commit {c}\n")
        agent.commit()
    return agent


def bench_case(work: Path, server, bucket: str, files: int, commits: int) -> list[tuple]:  # type: ignore[no-untyped-def]
    name = f"a{files}-{commits}"
    agent = build_agent(work / name, files, commits)
    urls = [f"s3://{bucket}/agents/{name}-{n}" for n in range(REPEAT)]
    bares = [work / f"{name}-{n}.git" for n in range(REPEAT)]
    for n in range(REPEAT):
        add_remote(agent.history, f"r{n}", urls[n])
        git(work, "init", "-q", "--bare", "-b", "main", str(bares[n]))
    configs = [get_remote(agent.history, f"r{n}") for n in range(REPEAT)]
    rows = []
    push_ms, git_push_ms = timed_pair(
        lambda n: sync.push_remote(agent, configs[n], "copy"),
        lambda n: git(agent.root, "push", "-q", str(bares[n]), "main"),
    )
    rows.append(("push", files, commits, push_ms, git_push_ms, ""))
    # file:// makes git use its transport, as memfs must; a plain path would hardlink objects
    clone_ms, git_clone_ms = timed_pair(
        lambda n: sync.clone(urls[n], work / f"{name}-clone-{n}").close(),
        lambda n: git(work, "clone", "-q", bares[n].as_uri(), str(work / f"{name}-gitclone-{n}")),
    )
    rows.append(("clone", files, commits, clone_ms, git_clone_ms, ""))
    counts = []

    def incremental_push(n: int) -> None:
        server.requests.clear()
        sync.push_remote(agent, configs[n], "copy")
        counts.append(len(server.requests))

    def one_file_change(n: int) -> None:
        (agent.root / "reference/topic-007/note-00007.md").write_text(f"changed fact {n}\n")
        agent.commit()

    for n in range(REPEAT):
        one_file_change(n)  # every remote is one commit behind, with the same change each
    incr_ms, git_incr_ms = timed_pair(
        incremental_push, lambda n: git(agent.root, "push", "-q", str(bares[n]), "main")
    )
    rows.append(("incr push", files, commits, incr_ms, git_incr_ms, f"{max(counts)} requests"))
    agent.close()
    return rows


def run_writers(work: Path, url: str, tag: str) -> None:
    """8 writer processes, each pushing 10 commits to ``url``."""
    script = work / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen([sys.executable, str(script), url, str(work / f"{tag}-w{n}"), str(n)])
        for n in range(8)
    ]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a writer failed in the {tag} run: {codes}")


def bench_writers(work: Path, bucket: str) -> tuple:  # type: ignore[no-untyped-def]
    """Each run starts from the same one-commit agent: a fresh S3 agent and a fresh bare repo,
    so no run inherits the packs or commits of the one before."""
    # moto serves from a thread of this process, whose heap the earlier rows filled: keep the
    # garbage collector from walking it on the server's time (S3 itself has no such cost).
    gc.collect()
    gc.freeze()
    seed = memfs.init(work / "busy", name="busy")
    s3_urls, bares = [], []
    for n in range(REPEAT):
        s3_urls.append(f"s3://{bucket}/agents/busy-{n}")
        bares.append(work / f"busy-{n}.git")
        git(work, "init", "-q", "--bare", "-b", "main", str(bares[n]))
        add_remote(seed.history, f"s3-{n}", s3_urls[n])
        add_remote(seed.history, f"bare-{n}", str(bares[n]))
        sync.push(seed, f"s3-{n}")
        sync.push(seed, f"bare-{n}")
    s3_ms, bare_ms = timed_pair(
        lambda n: run_writers(work, s3_urls[n], f"s3-{n}"),
        lambda n: run_writers(work, str(bares[n]), f"bare-{n}"),
    )
    return ("8 writers", 80, 8, s3_ms, bare_ms, "memfs on S3 vs memfs on a bare repo")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--commits", default="1,100")
    parser.add_argument("--no-writers", action="store_true")
    parser.add_argument("--dir", default=None, help="where to write (default: temp folder)")
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    work = Path(tempfile.mkdtemp(prefix="memfs-bench-", dir=args.dir))
    os.environ["MEMFS_DATA_DIR"] = str(work / "data")
    rows = []
    try:
        with moto_s3() as server:
            os.environ["AWS_ENDPOINT_URL"] = server.endpoint
            bucket = "bench"
            boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1").create_bucket(
                Bucket=bucket
            )
            for files in (int(x) for x in args.sizes.split(",")):
                for commits in (int(x) for x in args.commits.split(",")):
                    rows += bench_case(work, server, bucket, files, commits)
                    print(f"  done {files} files x {commits} commits", file=sys.stderr)
            if not args.no_writers:
                rows.append(bench_writers(work, bucket))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = ("operation", "files", "commits", "memfs ms", "git ms", "ratio")
    print("{:<11} {:>6} {:>7} {:>9} {:>8} {:>6}  note".format(*header))
    for op, files, commits, ours, theirs, note in rows:
        cells = (op, files, commits, f"{ours:.0f}", f"{theirs:.0f}", f"{ours / theirs:.2f}")
        print("{:<11} {:>6} {:>7} {:>9} {:>8} {:>6}  {}".format(*cells, note))


if __name__ == "__main__":
    main()
