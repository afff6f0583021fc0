"""The benchmark harness runs: a tiny whole-process run, so the script cannot rot unnoticed.

Nothing here is timed: the figures are only checked to exist and to be counted. The
git-remote-s3 column runs when the `bench` extra is installed and is skipped otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.process.report import Row, markdown
from benchmarks.process.rows import ROWS
from benchmarks.process.runner import Median

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "bench_process.py"
PEER = shutil.which("git-remote-s3", path=str(Path(sys.executable).parent)) is not None
REMOTE_ROWS = {"first push", "clone", "1-file push", "1-file pull"}


@pytest.mark.timeout(180)  # about 20 processes: seconds alone, longer on a loaded machine
def test_whole_process_harness_measures_every_row_at_a_tiny_size(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--sizes", "10", "--repeat", "1", "--json", str(figures)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert ("git-remote-s3 is not installed" in result.stderr) is not PEER
    table = result.stdout.splitlines()
    assert all(any(line.startswith(f"| {row} | 10 |") for line in table) for row in ROWS)

    records = {record["row"]: record for record in json.loads(figures.read_text())}
    assert set(records) == set(ROWS)
    for name, record in records.items():
        expected = {"memfs"}
        if name in REMOTE_ROWS and PEER:
            expected.add("peer")
        if name not in ("context", "ls"):
            expected.add("git")
        assert set(record["sides"]) == expected, name
        assert all(side["runs"] == 1 and side["seconds"] > 0 for side in record["sides"].values())
        assert record["verdict"] in ("PASS", "MISS", "?", "-")
    # the S3 server counted what each push and pull cost, and nothing for local commands
    for side in ("memfs", "peer") if PEER else ("memfs",):
        assert records["first push"]["sides"][side]["bytes_up"] > 0
        assert records["1-file push"]["sides"][side]["requests"] > 0
        assert records["1-file pull"]["sides"][side]["bytes_down"] > 0
    assert records["status"]["sides"]["memfs"]["requests"] == 0
    # CPU time of the measured processes, in the JSON and in a table of its own
    assert all(side["cpu_seconds"] > 0 for r in records.values() for side in r["sides"].values())
    assert "| 1-file push | 10 |" in result.stdout.split("CPU time (user + system)")[1]


@pytest.mark.timeout(180)
def test_rows_measures_only_the_rows_named(tmp_path: Path) -> None:
    """--rows: the one-file rows alone (their first push and clone run untimed)."""
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--sizes", "10", "--repeat", "2", "--no-peer",
         "--rows", "1-file push,1-file pull", "--json", str(figures)],
        cwd=tmp_path, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = {record["row"]: record for record in json.loads(figures.read_text())}
    assert set(records) == {"1-file push", "1-file pull"}
    assert all(side["runs"] == 2 for r in records.values() for side in r["sides"].values())
    wrong = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", "push"], capture_output=True, text=True, check=False
    )
    assert wrong.returncode == 2 and "no such row 'push'" in wrong.stderr


def median(seconds: float) -> Median:
    return Median(seconds=seconds, requests=0, bytes_up=0, bytes_down=0, runs=5)


def test_rows_are_marked_against_issue_12_targets() -> None:
    fast_push = Row(
        "1-file push", 100, {"memfs": median(0.4), "peer": median(0.5), "git": median(0.1)}
    )
    assert fast_push.verdict() == "PASS"
    far_from_git = Row(
        "1-file pull", 100, {"memfs": median(0.4), "peer": median(0.5), "git": median(0.05)}
    )
    assert far_from_git.verdict() == "MISS"
    assert Row("clone", 100, {"memfs": median(0.4), "git": median(0.1)}).verdict() == "?"
    assert Row("status", 100, {"memfs": median(0.081), "git": median(0.01)}).verdict() == "MISS"
    assert Row("ls", 100, {"memfs": median(0.079)}).verdict() == "PASS"
    assert Row("status", 1000, {"memfs": median(0.5), "git": median(0.01)}).verdict() == "-"
    slow_commit = Row("commit 1 file", 10_000, {"memfs": median(0.21), "git": median(0.1)})
    assert slow_commit.verdict() == "MISS"


def test_a_base_build_gets_its_columns_and_ratio() -> None:
    row = Row("ls", 100, {"memfs": median(0.05), "base": median(0.2)})
    header, _, line = markdown([row]).splitlines()
    assert header.endswith("| base memfs | memfs/base | base S3 traffic |")
    assert line.endswith("| PASS | 200 ms | 0.25 | - |")
    assert "memfs/base" not in markdown([Row("ls", 100, {"memfs": median(0.05)})])


@pytest.mark.timeout(180)
def test_crypto_benchmark_measures_plain_and_encrypted_at_a_tiny_size(tmp_path: Path) -> None:
    """bench_crypto.py: every row, both sides, with the ratio and verdict (on moto S3 only: the
    folder cloud runs the same code, and each store costs the suite ~6 s)."""
    figures = tmp_path / "crypto.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_crypto.py"), "--sizes", "10",
         "--repeat", "1", "--stores", "s3", "--json", str(figures)],
        cwd=tmp_path, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[1]
    assert "| plain | encrypted | ratio | target | verdict |" in header
    records = {(r["store"], r["row"]): r for r in json.loads(figures.read_text())}
    rows = ("first push", "clone", "1-file push", "1-file pull")
    assert set(records) == {("s3", row) for row in rows}
    for record in records.values():
        assert record["plain"]["runs"] == record["encrypted"]["runs"] == 1
        assert record["ratio"] > 0 and record["verdict"] in ("PASS", "MISS")
    for side in ("plain", "encrypted"):
        assert records[("s3", "first push")][side]["bytes_up"] > 0
        assert records[("s3", "1-file pull")][side]["bytes_down"] > 0
