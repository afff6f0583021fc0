"""The whole-process benchmark's command line: sizes, repetitions, where to write, output."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from benchmarks.process.report import Row, collect, cpu_markdown, markdown, write_json
from benchmarks.process.rows import BUCKET, ROWS, measure_size
from benchmarks.process.runner import (
    PEER_MISSING,
    SIDES,
    BenchError,
    Runner,
    isolated_environment,
    memfs_script,
    peer_installed,
)
from benchmarks.process.s3server import counting_moto_s3

DESCRIPTION = """\
Every row of issue 12's table as whole processes, on one moto S3 server in one run:
memfs (this venv's console script) beside awslabs git-remote-s3 0.4.2 and plain git pushing
to a local bare repo. Sides run in turns (memfs, peer, git, memfs, ...); each figure is the
median of --repeat runs; S3 requests and body bytes are counted by the server per operation.
Rows: first push; clone; one-file push (edit, commit untimed, push timed); one-file pull on
another clone; status; context; ls; commit after a one-file edit (git: add -A && commit).
"""


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options of the whole-process benchmark (python -m benchmarks adds its own)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000", help="agent sizes in files")
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 files only")
    parser.add_argument("--repeat", type=int, default=5, help="runs per side and row")
    parser.add_argument("--no-peer", action="store_true", help="skip the git-remote-s3 column")
    parser.add_argument(
        "--rows",
        default=",".join(ROWS),
        help="the rows to measure, by name, separated by commas (default: all): " + ", ".join(ROWS),
    )
    parser.add_argument("--dir", default=None, help="where to write (default: temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--base-memfs",
        type=Path,
        default=None,
        metavar="SCRIPT",
        help="another build's memfs console script (e.g. a venv of main): measured in the "
        "same run, in turns, as a 'base' column with the ratio memfs/base",
    )
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and check the options; --quick becomes its sizes, --sizes a list of numbers."""
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = "100,1000"
    try:
        args.sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes takes numbers separated by commas, not {args.sizes!r}")
    args.rows = [row.strip() for row in args.rows.split(",") if row.strip()]
    unknown = [row for row in args.rows if row not in ROWS]
    if unknown or not args.rows:
        named = unknown[0] if unknown else ""
        parser.error(f"--rows: no such row {named!r}; the rows are {', '.join(ROWS)}")
    if args.repeat < 1 or any(size < 1 for size in args.sizes):
        parser.error("--repeat and --sizes must be at least 1")
    if args.base_memfs is not None and not args.base_memfs.is_file():
        parser.error(f"--base-memfs: no such file: {args.base_memfs}")
    return args


def run(args: argparse.Namespace) -> list[Row]:
    """Measure every row at every size; return the table's rows."""
    scripts = {"memfs": memfs_script()}
    if args.base_memfs is not None:
        scripts["base"] = str(args.base_memfs.resolve())
    work = Path(tempfile.mkdtemp(prefix="memfs-bench-process-", dir=args.dir))
    try:
        with counting_moto_s3() as server:
            request = urllib.request.Request(f"{server.endpoint}/{BUCKET}", method="PUT")
            urllib.request.urlopen(request, timeout=30).close()
            runner = Runner(isolated_environment(work, server.endpoint), server)
            sides = [side for side in SIDES if side != "base" or "base" in scripts]
            if args.no_peer:
                sides.remove("peer")
            elif not peer_installed(runner.env):
                print(PEER_MISSING, file=sys.stderr)
                sides.remove("peer")
            for files in args.sizes:
                folder = work / f"agent-{files}"
                measure_size(runner, folder, files, args.repeat, sides, scripts, args.rows)
                print(f"  measured {files:,} files", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return collect(runner.samples)


def report(args: argparse.Namespace) -> None:
    """Measure, print the table, and write the JSON figures if asked."""
    rows = run(args)
    print(f"Whole processes, medians of {args.repeat}; ratios < 1 mean memfs is faster")
    print(markdown(rows))
    print("\nCPU time (user + system) of the measured processes, medians of the same runs")
    print(cpu_markdown(rows), flush=True)
    if args.json is not None:
        write_json(rows, args.json)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the whole-process benchmark; a failed command ends it with one line and exit 1."""
    try:
        report(parse(build_parser("bench_process.py", DESCRIPTION), argv))
    except BenchError as error:
        print(f"bench_process: {error}", file=sys.stderr)
        return 1
    return 0
