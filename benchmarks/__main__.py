"""Every benchmark table in one command: whole processes first, then the in-process figures.

    python -m benchmarks [--sizes 100,1000,10000 | --quick] [--repeat 5] [--no-peer]
                         [--dir FOLDER] [--json FILE] [--skip-in-process]

1. What users wait for (benchmarks/bench_process.py): issue 12's table, every row a whole
   process, memfs beside git-remote-s3 and plain git on one moto S3 server, with PASS/MISS.
2. Library calls in one warm process (bench_local.py: status and commit vs git;
   bench_bucket.py: push, clone, incremental push on moto S3, 8 concurrent writers).
--quick measures 100 and 1,000 files only: the 10,000-file rows take most of the time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.process.main import build_parser, parse, report
from benchmarks.process.runner import BenchError

HERE = Path(__file__).resolve().parent


def in_process(sizes: list[int], repeat: int, folder: str | None) -> int:
    """Run the in-process scripts as they are run alone; 0 if both succeeded."""
    size_list = ",".join(str(size) for size in sizes)
    scripts = (
        ("Library calls in one process: local repository", "bench_local.py",
         ["--sizes", size_list, "--repeat", str(repeat)]),
        ("Library calls in one process: object-store remote (moto S3)", "bench_bucket.py",
         ["--sizes", size_list, *(["--dir", folder] if folder else [])]),
    )  # fmt: skip
    failed = 0
    for title, script, options in scripts:
        print(f"\n{title} ({script})", flush=True)
        command = [sys.executable, str(HERE / script), *options]
        failed |= subprocess.run(command, cwd=HERE.parent, check=False).returncode
    return failed


def main() -> int:
    parser = build_parser("python -m benchmarks", __doc__ or "")
    parser.add_argument(
        "--skip-in-process", action="store_true", help="only the whole-process table"
    )
    args = parse(parser, None)
    print("What users wait for (bench_process.py)", flush=True)
    try:
        report(args)
    except BenchError as error:
        print(f"benchmarks: {error}", file=sys.stderr)
        return 1
    return 0 if args.skip_in_process else in_process(args.sizes, args.repeat, args.dir)


if __name__ == "__main__":
    sys.exit(main())
