"""The whole-process table: medians per side, ratios, traffic, and each row against issue 12.

Targets (issue 12, whole processes, ratios from one run):
  first push, clone, 1-file push, 1-file pull   memfs / git-remote-s3 < 1.0 at every size
  1-file push, 1-file pull                      memfs / plain git <= 5.0
  status, context, ls at 100 files              <= 80 ms each
  status at 10,000 files                        memfs / git status <= 4.0
  commit 1 file at 10,000 files                 memfs / (git add -A && git commit) <= 2.0
A row with no target at its size says "-"; a target that needs the missing peer says "?".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.process.rows import (
    CLONE,
    COMMIT,
    CONTEXT,
    FIRST_PUSH,
    LS,
    PULL_ONE,
    PUSH_ONE,
    ROWS,
    STATUS,
)
from benchmarks.process.runner import Median, Sample, median

HARNESS_MS = 80.0
REMOTE_ROWS = (FIRST_PUSH, CLONE, PUSH_ONE, PULL_ONE)


@dataclass(frozen=True)
class Check:
    """One target of a row: what it asks and whether it is met (None: cannot tell)."""

    target: str
    met: bool | None


@dataclass(frozen=True)
class Row:
    """A row of the table at one size: the median of each side that ran it."""

    what: str
    files: int
    medians: dict[str, Median]

    def ratio(self, other: str) -> float | None:
        ours, theirs = self.medians.get("memfs"), self.medians.get(other)
        if ours is None or theirs is None or theirs.seconds <= 0:
            return None
        return ours.seconds / theirs.seconds

    def checks(self) -> list[Check]:
        """The targets issue 12 sets for this row at this size."""
        peer, git = self.ratio("peer"), self.ratio("git")
        checks = []
        if self.what in REMOTE_ROWS:
            checks.append(Check("< 1.0x peer", None if peer is None else peer < 1.0))
        if self.what in (PUSH_ONE, PULL_ONE):
            checks.append(Check("<= 5x git", None if git is None else git <= 5.0))
        if self.what in (STATUS, CONTEXT, LS) and self.files <= 100:
            ms = self.medians["memfs"].seconds * 1000
            checks.append(Check(f"<= {HARNESS_MS:.0f} ms", ms <= HARNESS_MS))
        if self.what == STATUS and self.files >= 10_000:
            checks.append(Check("<= 4x git", None if git is None else git <= 4.0))
        if self.what == COMMIT and self.files >= 10_000:
            checks.append(Check("<= 2x git", None if git is None else git <= 2.0))
        return checks

    def verdict(self) -> str:
        """PASS when every target is met, MISS when one is not, ? when one cannot be told."""
        results = [check.met for check in self.checks()]
        if not results:
            return "-"
        if False in results:
            return "MISS"
        return "?" if None in results else "PASS"


def collect(samples: dict[tuple[str, int, str], list[Sample]]) -> list[Row]:
    """The table's rows from the runner's samples, in the issue's order, smallest size first."""
    sizes = sorted({files for _, files, _ in samples})
    rows = []
    for files in sizes:
        for what in ROWS:
            medians = {
                side: median(found)
                for (row, size, side), found in samples.items()
                if row == what and size == files
            }
            if medians:
                rows.append(Row(what, files, medians))
    return rows


def _duration(median: Median | None) -> str:
    if median is None:
        return "-"
    if median.seconds >= 1:
        return f"{median.seconds:.2f} s"
    ms = median.seconds * 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _traffic(row: Row, side: str) -> str:
    found = row.medians.get(side)
    if found is None or row.what not in REMOTE_ROWS:
        return "-"
    return f"{found.requests} req, {_bytes(found.bytes_up)} up, {_bytes(found.bytes_down)} down"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


HEADER = (
    "row", "files", "memfs", "git-remote-s3", "plain git", "memfs/peer", "memfs/git",
    "memfs S3 traffic", "peer S3 traffic", "target", "verdict",
)  # fmt: skip
BASE_HEADER = ("base memfs", "memfs/base", "base S3 traffic")


def markdown(rows: Iterable[Row]) -> str:
    """The table as Markdown, ready for a note or an issue; with a base build measured, three
    more columns: its time, the ratio memfs/base (< 1: this build is faster) and its traffic."""
    rows = list(rows)
    with_base = any("base" in row.medians for row in rows)
    header = HEADER + BASE_HEADER if with_base else HEADER
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = (
            row.what, f"{row.files:,}",
            _duration(row.medians.get("memfs")), _duration(row.medians.get("peer")),
            _duration(row.medians.get("git")), _ratio(row.ratio("peer")), _ratio(row.ratio("git")),
            _traffic(row, "memfs"), _traffic(row, "peer"),
            "; ".join(check.target for check in row.checks()) or "-", row.verdict(),
        )  # fmt: skip
        if with_base:
            base = (_duration(row.medians.get("base")), _ratio(row.ratio("base")))
            cells += (*base, _traffic(row, "base"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_markdown(rows: Iterable[Row]) -> str:
    """The CPU seconds (user + system) of the same runs, medians: what each side costs the
    machine, less swayed than the wall clock by whatever else the machine runs meanwhile."""
    rows = list(rows)
    ran = {side for row in rows for side in row.medians}
    sides = [side for side in ("memfs", "base", "peer", "git") if side in ran]
    names = {"memfs": "memfs", "base": "base memfs", "peer": "git-remote-s3", "git": "plain git"}
    header = ("row", "files", *(f"{names[side]} CPU" for side in sides), "memfs/git CPU")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cpu = {side: found.cpu_seconds for side, found in row.medians.items()}
        ratio = cpu["memfs"] / cpu["git"] if cpu.get("git") and "memfs" in cpu else None
        cells = (
            row.what, f"{row.files:,}",
            *(f"{cpu[side] * 1000:.0f} ms" if side in cpu else "-" for side in sides),
            _ratio(ratio),
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(rows: Iterable[Row], path: Path) -> None:
    """The same figures for machines: seconds, requests and bytes per side, and the verdict."""
    records = [
        {
            "row": row.what,
            "files": row.files,
            "sides": {side: asdict(found) for side, found in row.medians.items()},
            "ratio_peer": row.ratio("peer"),
            "ratio_git": row.ratio("git"),
            "ratio_base": row.ratio("base"),
            "targets": [asdict(check) for check in row.checks()],
            "verdict": row.verdict(),
        }
        for row in rows
    ]
    path.write_text(json.dumps(records, indent=2) + "\n")
