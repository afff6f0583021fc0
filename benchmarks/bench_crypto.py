"""What encryption costs (issue 14): encrypted vs plain, whole processes, same run.

    python benchmarks/bench_crypto.py [--sizes 100,1000 | --full] [--repeat 5]
                                      [--stores s3,file] [--rows "first push,clone"]
                                      [--base-memfs PATH] [--dir FOLDER] [--json FILE]

For each store (moto S3 over HTTP on 127.0.0.1, a file:// folder cloud) and agent size (N small
memory files over 100 folders, benchmarks._common.populate) two agents of the same files are
pushed: one to a plain remote, one to a remote added with ``--encrypt``. Rows: first push,
clone, one-file push (edit and commit untimed, push timed), one-file pull on the clone. Plain
and encrypted take turns (plain, encrypted, plain, ...) so a slow spell of a loaded machine
falls on both; each figure is the median of --repeat runs; the S3 server counts requests and
body bytes per operation. Target (issue 14): encrypted / plain <= 1.2 on every row; the CPU
ratio (user + sys of the command) says the same without a loaded machine's waits.
``--base-memfs``: another build's ``memfs`` script (main's, say) runs a plain and an encrypted
agent of its own in the same turns, so a change is measured against its base in one run
(the base's ratios beside this build's).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import populate
from benchmarks.process.runner import (
    BenchError,
    Median,
    Runner,
    interleaved,
    isolated_environment,
    median,
    memfs_script,
)
from benchmarks.process.s3server import counting_moto_s3

BUCKET = "bench-crypto"
SIDES = ("plain", "encrypted")
BASE = "base-"  # the sides a --base-memfs build runs: base-plain, base-encrypted
STORES = ("s3", "file")
FIRST_PUSH, CLONE, PUSH_ONE, PULL_ONE = "first push", "clone", "1-file push", "1-file pull"
ROWS = (FIRST_PUSH, CLONE, PUSH_ONE, PULL_ONE)
TARGET = 1.2


@dataclass
class Setup:
    """One store and size: where each side's agent lives and where it pushes."""

    store: str
    files: int
    folder: Path
    script: str
    base: str | None = None  # the --base-memfs script

    @property
    def sides(self) -> tuple[str, ...]:
        return SIDES if self.base is None else (*SIDES, *(BASE + side for side in SIDES))

    def origin(self, side: str) -> Path:
        return self.folder / f"{side}-origin"

    def remote(self, side: str, n: int) -> str:
        """The n-th fresh remote of a side (memfs knows it as ``push-n``)."""
        if self.store == "s3":
            return f"s3://{BUCKET}/{side}-{self.files}/push-{n}"
        return f"memfs::{(self.folder / 'cloud' / side / f'push-{n}').as_uri()}"

    def clone_dir(self, side: str, n: int) -> Path:
        return self.folder / f"{side}-clone-{n}"

    def memfs(self, side: str, *args: str) -> list[str]:
        """A command of the build that runs ``side``."""
        return [self.base if side.startswith(BASE) and self.base else self.script, *args]


def edit(setup: Setup, side: str, tag: str) -> None:
    """Change one memory file of a side's agent (untimed)."""
    i = min(7, setup.files - 1)
    path = setup.origin(side) / "reference" / f"topic-{i % 100:03d}" / f"note-{i:05d}.md"
    path.write_text(f"---\ndescription: note {i}\n---\nfact edited, {tag}\n")


def measure(runner: Runner, setup: Setup, repeat: int, rows: Sequence[str] = ROWS) -> None:
    """The rows (and those they need) at one store and size; plain and encrypted in turns."""
    files, key = setup.files, f"{setup.store}"
    setup.folder.mkdir(parents=True)
    for side in setup.sides:
        populate(setup.origin(side), files)
        init = setup.memfs(side, "init", str(setup.origin(side)), "--name", side)
        runner.run(init, setup.folder)
        for n in range(repeat):
            flags = ["--encrypt"] if side.endswith("encrypted") else []
            add = setup.memfs(side, "remote", "add", f"push-{n}", setup.remote(side, n), *flags)
            runner.run(add, setup.origin(side))

    def row(what: str) -> str:
        return f"{key}|{what}"

    def first_push(n: int, side: str) -> None:
        command = setup.memfs(side, "push", f"push-{n}")
        runner.time(row(FIRST_PUSH), files, side, [command], setup.origin(side))

    def clone(n: int, side: str) -> None:
        where = str(setup.clone_dir(side, n))
        command = setup.memfs(side, "clone", setup.remote(side, 0), where)
        runner.time(row(CLONE), files, side, [command], setup.folder)

    def one_file(n: int, side: str) -> None:
        edit(setup, side, f"push {n}")
        runner.run(setup.memfs(side, "commit"), setup.origin(side))
        push = setup.memfs(side, "push", "push-0")
        runner.time(row(PUSH_ONE), files, side, [push], setup.origin(side))
        pull = setup.memfs(side, "pull")
        runner.time(row(PULL_ONE), files, side, [pull], setup.clone_dir(side, 0))

    interleaved(repeat, setup.sides, first_push)  # every other row reads what these pushed
    if {CLONE, PUSH_ONE, PULL_ONE} & set(rows):  # a pull is on a clone
        interleaved(repeat, setup.sides, clone)
    if {PUSH_ONE, PULL_ONE} & set(rows):
        interleaved(repeat, setup.sides, one_file)
    shutil.rmtree(setup.folder, ignore_errors=True)


@dataclass(frozen=True)
class Line:
    """One row of the table: a store, a row, a size, the median of each side."""

    store: str
    row: str
    files: int
    plain: Median
    encrypted: Median
    base: tuple[Median, Median] | None = None  # the --base-memfs build's plain, encrypted

    @property
    def ratio(self) -> float:
        return _ratio(self.plain.seconds, self.encrypted.seconds)

    @property
    def cpu_ratio(self) -> float:
        """encrypted / plain of the child's CPU time (user + sys): what the wall ratio says
        without the waits of a loaded machine (2 cores shared by many processes)."""
        return _ratio(self.plain.cpu_seconds, self.encrypted.cpu_seconds)

    @property
    def verdict(self) -> str:
        return "PASS" if self.ratio <= TARGET else "MISS"

    def to_json(self) -> dict[str, object]:
        return {
            "store": self.store,
            "row": self.row,
            "files": self.files,
            "plain": asdict(self.plain),
            "encrypted": asdict(self.encrypted),
            "ratio": round(self.ratio, 3),
            "cpu_ratio": round(self.cpu_ratio, 3),
            "target": TARGET,
            "verdict": self.verdict,
            **(
                {"base_plain": asdict(self.base[0]), "base_encrypted": asdict(self.base[1])}
                if self.base
                else {}
            ),
        }


def _ratio(plain: float, encrypted: float) -> float:
    return encrypted / plain if plain > 0 else 0.0


def collect(runner: Runner) -> list[Line]:
    """The medians of every (store, row, size), in table order."""
    lines = []
    for (key, files, side), _ in sorted(runner.samples.items()):
        if side != "plain":
            continue
        store, what = key.split("|")
        plain = median(runner.samples[(key, files, "plain")])
        encrypted = median(runner.samples[(key, files, "encrypted")])
        base = None
        if (key, files, BASE + "plain") in runner.samples:
            base = (
                median(runner.samples[(key, files, BASE + "plain")]),
                median(runner.samples[(key, files, BASE + "encrypted")]),
            )
        lines.append(Line(store, what, files, plain, encrypted, base))
    order = {(store, row): i for i, (store, row) in enumerate(
        (store, row) for store in STORES for row in ROWS)}  # fmt: skip
    return sorted(lines, key=lambda line: (order[(line.store, line.row)], line.files))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _traffic(m: Median) -> str:
    return f"{m.requests} / {m.bytes_up / 1024:.0f} / {m.bytes_down / 1024:.0f}"


def markdown(lines: Sequence[Line]) -> str:
    """The table: times, ratio and verdict, then what each side cost the S3 server."""
    based = any(line.base for line in lines)
    base_header = " base plain | base encrypted | base ratio | base CPU | base CPU ratio |"
    out = [
        "| store | row | files | plain | encrypted | ratio | target | verdict "
        "| plain req / KiB up / KiB down | encrypted req / KiB up / KiB down "
        "| plain CPU | encrypted CPU | CPU ratio |" + (base_header if based else ""),
        "|---|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|"
        + ("---:|---:|---:|---:|---:|" if based else ""),
    ]
    for line in lines:
        s3 = line.store == "s3"
        text = (
            f"| {line.store} | {line.row} | {line.files} | {_ms(line.plain.seconds)} "
            f"| {_ms(line.encrypted.seconds)} | {line.ratio:.2f} | {TARGET}x | {line.verdict} "
            f"| {_traffic(line.plain) if s3 else '-'} | {_traffic(line.encrypted) if s3 else '-'} "
            f"| {_ms(line.plain.cpu_seconds)} | {_ms(line.encrypted.cpu_seconds)} "
            f"| {line.cpu_ratio:.2f} |"
        )
        if line.base:
            plain, encrypted = line.base
            text += (
                f" {_ms(plain.seconds)} | {_ms(encrypted.seconds)} "
                f"| {_ratio(plain.seconds, encrypted.seconds):.2f} "
                f"| {_ms(plain.cpu_seconds)} / {_ms(encrypted.cpu_seconds)} "
                f"| {_ratio(plain.cpu_seconds, encrypted.cpu_seconds):.2f} |"
            )
        out.append(text)
    return "\n".join(out)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_crypto.py",
        description=(__doc__ or "").split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="100,1000", help="agent sizes in files")
    parser.add_argument("--full", action="store_true", help="100, 1,000 and 10,000 files")
    parser.add_argument("--repeat", type=int, default=5, help="runs per side and row")
    parser.add_argument("--stores", default=",".join(STORES), help="s3, file or both")
    parser.add_argument(
        "--rows", default=",".join(ROWS), help="rows to measure, comma-separated (default all)"
    )
    parser.add_argument(
        "--base-memfs",
        type=Path,
        default=None,
        help="another build's memfs script, measured in the same turns (its own agents)",
    )
    parser.add_argument("--dir", default=None, help="where to write (default: temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.full:
        args.sizes = "100,1000,10000"
    try:
        args.sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes takes numbers separated by commas, not {args.sizes!r}")
    args.stores = [store.strip() for store in args.stores.split(",") if store.strip()]
    if not args.stores or any(store not in STORES for store in args.stores):
        parser.error(f"--stores: choose from {', '.join(STORES)}")
    args.rows = [row.strip() for row in args.rows.split(",") if row.strip()]
    if not args.rows or any(row not in ROWS for row in args.rows):
        parser.error(f"--rows: choose from {', '.join(ROWS)}")
    if args.repeat < 1 or any(size < 1 for size in args.sizes):
        parser.error("--repeat and --sizes must be at least 1")
    if args.base_memfs is not None and not args.base_memfs.is_file():
        parser.error(f"--base-memfs: no such file: {args.base_memfs}")
    return args


def run(args: argparse.Namespace) -> list[Line]:
    """Measure every row for every store and size."""
    script = memfs_script()
    base = str(args.base_memfs.resolve()) if args.base_memfs is not None else None
    work = Path(tempfile.mkdtemp(prefix="memfs-bench-crypto-", dir=args.dir))
    try:
        with counting_moto_s3() as server:
            request = urllib.request.Request(f"{server.endpoint}/{BUCKET}", method="PUT")
            urllib.request.urlopen(request, timeout=30).close()
            runner = Runner(isolated_environment(work, server.endpoint), server)
            for store in args.stores:
                for files in args.sizes:
                    setup = Setup(store, files, work / f"{store}-{files}", script, base)
                    measure(runner, setup, args.repeat, args.rows)
                    print(f"  measured {store}, {files:,} files", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [line for line in collect(runner) if line.row in args.rows]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        lines = run(args)
    except BenchError as error:
        print(f"bench_crypto: {error}", file=sys.stderr)
        return 1
    print(f"Whole processes, medians of {args.repeat}; ratio = encrypted / plain")
    print(markdown(lines), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps([line.to_json() for line in lines], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
