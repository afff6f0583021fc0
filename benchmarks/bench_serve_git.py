"""``git clone`` through ``memfs serve`` beside ``git clone file://`` of the same repository.

    python benchmarks/bench_serve_git.py [--sizes 100,1000] [--repeat 5] [--json FILE]

For each size an agent of that many memory files (100 folders, as bench_process's) is pushed
to a cloud on moto's S3 (loopback) and copied to a bare repository. A ``memfs serve`` process
with a token serves the cloud; its first clone (which fills the server's cache) is not timed.
Then the two clones run in turns, --repeat times each: the real git CLI through the server
with Letta Code's auth (``-c http.extraHeader=Authorization: Basic ...``), and ``git clone
file://`` of the bare repository. Each figure is a median; the ratio is server / file://.
Target (issue 13): within 2x. --no-clone-cache times what a clone costs the first time
after a push (the server's whole-clone cache off). A second row times ``git push`` of a
one-file commit the same two ways (through the server it is a compare-and-swap push to S3;
no target).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import git, populate
from benchmarks.process.runner import isolated_environment
from tests.s3 import moto_s3
from tests.serve import running_server

TARGET = 2.0
Row = dict[str, object]


def seed(work: Path, env: dict[str, str], cloud: str, name: str, files: int) -> Path:
    """The agent pushed to ``cloud`` by memfs, and a bare copy of its repository."""
    root = work / f"agent-{name}"
    subprocess.run(
        [sys.executable, "-m", "memfs", "init", str(root), "--name", name],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    populate(root, files)
    for args in (("commit", "-m", "populate"), ("remote", "add", "origin", f"{cloud}/{name}"),
                 ("push",)):  # fmt: skip
        subprocess.run([sys.executable, "-m", "memfs", "-C", str(root), *args],
                       env=env, check=True, capture_output=True)  # fmt: skip
    bare = work / f"{name}.git"
    git(work, "clone", "-q", "--bare", str(root), str(bare))
    return bare


def seconds(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds one git process takes (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def clone_seconds(command: list[str], cwd: Path, env: dict[str, str], target: Path) -> float:
    """Seconds one ``git clone`` process takes; the clone is removed afterwards."""
    elapsed = seconds([*command, str(target)], cwd, env)
    shutil.rmtree(target)
    return elapsed


def push_seconds(clone: Path, env: dict[str, str], auth: list[str], round_: int) -> float:
    """Seconds ``git push`` of a one-file commit takes (the commit itself is not timed)."""
    note = clone / "reference" / "topic-000" / "note-00000.md"
    note.write_text(f"---\ndescription: note 0\n---\nfact 0, edit {round_}\n")
    subprocess.run(["git", "commit", "-qam", f"edit {round_}"], cwd=clone, env=env, check=True)
    return seconds(["git", *auth, "push", "-q", "origin", "main"], clone, env)


def row(name: str, size: int, served: list[float], plain: list[float], target: bool) -> Row:
    s, p = statistics.median(served), statistics.median(plain)
    verdict = ("PASS" if s / p <= TARGET else "MISS") if target else "-"
    return {"row": name, "files": size, "serve_s": s, "file_s": p, "ratio": s / p,
            "runs": len(served), "verdict": verdict}  # fmt: skip


def measure(sizes: list[int], repeat: int, clone_cache: bool = True) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-git-") as tmp, moto_s3() as s3:
        work = Path(tmp)
        env = isolated_environment(work, s3.endpoint)
        if not clone_cache:
            env["MEMFS_SERVE_CLONE_CACHE"] = "0"  # every clone packs its objects afresh
        import boto3

        boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1",
                     aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="bench")  # fmt: skip
        cloud = "s3://bench/agents"
        bares = {size: seed(work, env, cloud, f"agent-{size}", size) for size in sizes}
        with running_server(cloud, work, token=True, env=env) as server:
            basic = base64.b64encode(f"letta:{server.token}".encode()).decode()
            auth = ["-c", "credential.helper=", "-c", "core.askPass=",
                    "-c", f"http.extraHeader=Authorization: Basic {basic}"]  # fmt: skip
            for size in sizes:
                url = f"{server.url}/v1/git/agent-{size}/state.git"
                through = ["git", *auth, "clone", "-q", url]
                local = ["git", "clone", "-q", bares[size].as_uri()]
                clone_seconds(through, work, env, work / "warm")  # fills the server's cache
                served, plain = [], []
                for _ in range(repeat):
                    served.append(clone_seconds(through, work, env, work / "served"))
                    plain.append(clone_seconds(local, work, env, work / "plain"))
                rows.append(row("clone", size, served, plain, target=True))
                seconds([*through, str(work / f"pusher-{size}")], work, env)
                seconds([*local, str(work / f"plain-pusher-{size}")], work, env)
                served, plain = [], []
                for round_ in range(repeat):
                    served.append(push_seconds(work / f"pusher-{size}", env, auth, round_))
                    plain.append(push_seconds(work / f"plain-pusher-{size}", env, [], round_))
                rows.append(row("1-file push", size, served, plain, target=False))
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| git (median of runs) | files | through memfs serve (S3) | file:// | ratio "
        "| target <= 2x |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['row']} ({r['runs']}) | {r['files']:,} | {r['serve_s']:.3f} s "
            f"| {r['file_s']:.3f} s | {r['ratio']:.2f}x | {r['verdict']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--sizes", default="100,1000", help="agent sizes, comma separated")
    parser.add_argument("--repeat", type=int, default=5, help="clones timed per side")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--no-clone-cache", action="store_true", help="the server packs every clone afresh"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    os.environ.pop("MEMFS_CLOUD", None)
    rows = measure(sizes, args.repeat, clone_cache=not args.no_clone_cache)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
