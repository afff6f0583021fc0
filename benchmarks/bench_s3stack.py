"""What an S3 stack costs a process before its first answer: import + client + one GET.

    python benchmarks/bench_s3stack.py [--runs 5] [--files 100] [--compare SRC]

Each row is a whole ``python -c`` process (medians of ``--runs``, the rows run in turns)
against a moto S3 server on 127.0.0.1: import the client, create it, GET one 1 KiB object.
Rows: a bare interpreter, s3fs as memfs used it (``cat_file``), botocore alone, boto3, and
memfs's thin client (memfs/remotes/s3.py, through ``open_storage``, as ``memfs
push/pull/clone`` use it). Columns are three processes: the floor (a bare interpreter; for
memfs, its own modules up to ``open_storage``, which are not the S3 stack), the floor plus
the stack's imports, and all of it plus creating the client and one GET. ``total - floor``
is what the S3 stack costs a process. Target (issue 12): <= 100 ms.

A second table times ``memfs push`` (first push) and ``memfs clone`` of a ``--files``-file
agent as whole processes; ``--compare SRC`` runs another memfs source tree (e.g. ``git
archive <commit> | tar -x -C SRC``) beside this one, in turns, on the same server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import memfs  # noqa: E402
from benchmarks._common import populate  # noqa: E402
from memfs.remotes.configure import add_remote  # noqa: E402
from tests.s3 import CREDENTIALS, moto_s3  # noqa: E402

BUCKET, KEY = "stack-bench", "agents/a/manifest.json"

# (name, what comes before the stack, the stack's imports, client + one GET); the endpoint
# comes from AWS_ENDPOINT_URL. memfs's own modules are the floor of its row, not its S3 stack.
STACKS: list[tuple[str, str, str, str]] = [
    ("bare python", "", "", "pass"),
    (
        "s3fs (memfs before)",
        "",
        "import s3fs",
        "fs = s3fs.S3FileSystem(skip_instance_cache=True, config_kwargs={'connect_timeout': 5})\n"
        f"fs.cat_file('{BUCKET}/{KEY}')",
    ),
    (
        "botocore alone",
        "",
        "import botocore.session",
        "c = botocore.session.get_session().create_client('s3')\n"
        f"c.get_object(Bucket='{BUCKET}', Key='{KEY}')['Body'].read()",
    ),
    (
        "boto3",
        "",
        "import boto3",
        f"boto3.client('s3').get_object(Bucket='{BUCKET}', Key='{KEY}')['Body'].read()",
    ),
    (
        "memfs thin client",
        "from memfs.remotes.storage import open_storage",
        "import memfs.remotes.s3storage",
        f"open_storage('s3://{BUCKET}/agents/a').get('manifest.json')",
    ),
]


def run(code: str, env: dict[str, str], cpu: list[float] | None = None) -> float:
    """Seconds one whole ``python -c code`` process takes (its CPU seconds go to ``cpu``:
    on a loaded machine they move less than the wall clock)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return elapsed


def memfs_runs(env: dict[str, str], files: int, runs: int, sources: dict[str, str]) -> None:
    """Median whole-process ``memfs push`` and ``memfs clone`` per source tree, in turns."""
    import resource
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="bench-s3stack-"))
    agent = memfs.init(work / "agent", name="agent")
    populate(agent.root, files)
    agent.commit()
    times: dict[tuple[str, str], list[float]] = {}
    for run_index in range(runs):
        for label, source in sources.items():
            side = {**env, "PYTHONPATH": source} if source else env
            remote = f"r-{label.split()[0]}-{run_index}"
            url = f"s3://{BUCKET}/agents/{remote}"
            add_remote(agent.history, remote, url)
            for what, command in (
                ("push", ["-C", str(agent.root), "push", "-q", remote]),
                ("clone", ["clone", "-q", url, str(work / f"clone-{remote}")]),
            ):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "memfs", *command],
                    env=side,
                    check=True,
                    capture_output=True,
                    cwd=work,  # not the repository: python -m puts the folder first on sys.path
                )
                times.setdefault((label, what), []).append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                times.setdefault((label, f"{what} cpu"), []).append(cpu)
    print(f"\nmemfs push (first) / clone of a {files}-file agent, whole processes, medians")
    print(f"of {runs} (CPU: user + system)\n")
    print("| memfs | push | push CPU | clone | clone CPU |\n|---|---:|---:|---:|---:|")
    for label in sources:
        push, push_cpu, clone, clone_cpu = (
            statistics.median(times[(label, w)]) * 1000
            for w in ("push", "push cpu", "clone", "clone cpu")
        )
        figures = " | ".join(f"{value:.0f} ms" for value in (push, push_cpu, clone, clone_cpu))
        print(f"| {label} | {figures} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--compare", help="another memfs source tree to run beside this one")
    args = parser.parse_args()
    with moto_s3() as server:
        os.environ.update(CREDENTIALS, AWS_EC2_METADATA_DISABLED="true")
        env = {**os.environ, "AWS_ENDPOINT_URL": server.endpoint}
        import boto3

        client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * 1024)
        steps = ("floor", "imports", "total", "cpu0", "cpu")
        times: dict[tuple[str, str], list[float]] = {
            (name, step): [] for name, *_ in STACKS for step in steps
        }
        for _name, floor, imported, _ in STACKS:  # warm the file cache once, untimed
            run(f"{floor}\n{imported}", env)
        for _ in range(args.runs):
            for name, floor, imported, work in STACKS:
                times[(name, "floor")].append(run(floor or "pass", env, times[(name, "cpu0")]))
                times[(name, "imports")].append(run(f"{floor}\n{imported}", env))
                code = f"{floor}\n{imported}\n{work}"
                times[(name, "total")].append(run(code, env, times[(name, "cpu")]))
        print_stacks(args.runs, times)
        sources = {"this tree": ""}
        if args.compare:
            sources[f"compare ({args.compare})"] = args.compare
        memfs_runs(env, args.files, args.runs, sources)


def print_stacks(runs: int, times: dict[tuple[str, str], list[float]]) -> None:
    print(f"S3 stack start-up, whole processes, medians of {runs} (moto on 127.0.0.1)\n")
    print("| stack | floor | + imports | + client + GET | S3 stack (total - floor) | its CPU |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, *_ in STACKS:
        floor, imported, total, cpu0, cpu = (
            statistics.median(times[(name, step)]) * 1000
            for step in ("floor", "imports", "total", "cpu0", "cpu")
        )
        print(
            f"| {name} | {floor:.0f} ms | {imported:.0f} ms | {total:.0f} ms "
            f"| {total - floor:.0f} ms | {cpu - cpu0:.0f} ms |"
        )


if __name__ == "__main__":
    main()
