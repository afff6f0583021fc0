"""Every example runs, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "agent-file"


def run(script: str, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env={**os.environ, "TMPDIR": str(cwd)},  # the examples' scratch folders go with cwd
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == [
        "import_letta_agent.py", "s3_with_moto.py", "sandbox_mount.py", "two_machines.py",
    ]  # fmt: skip


def test_two_machines(tmp_path: Path) -> None:
    out = run("two_machines.py", str(tmp_path), cwd=tmp_path)
    assert "Name: Ada Lovelace.\nGrows tomatoes.\nAlso grows beans.\n" in out
    assert "<memory_blocks>" in out


def test_s3_with_moto(tmp_path: Path) -> None:
    out = run("s3_with_moto.py", cwd=tmp_path)
    assert "'pushed': 'pushed'" in out
    assert "fast-forward -> Met in the S3 example." in out


def test_sandbox_mount(tmp_path: Path) -> None:
    out = run("sandbox_mount.py", cwd=tmp_path)
    assert "Watered at 7." in out


@pytest.mark.parametrize("name", ["memgpt_agent.af", "loop.af"])
def test_import_letta_agent(tmp_path: Path, name: str) -> None:
    out = run("import_letta_agent.py", str(FIXTURES / name), cwd=tmp_path)
    assert out.startswith("blocks: ") and "exported: [" in out
