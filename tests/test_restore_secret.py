"""Restore and revert refuse a version holding a secret's value before anything moves, as
the commit guard would hold it (memfs.agentrules.refuse).

Found from outside (review11 F16): ``memfs restore`` of a version that held a value later
made a secret said "already is as at REV", exit 0, and left the value on disk uncommitted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import git, memfs_process, write
from .secretsfix import agent_with_secrets

VALUE = "restore-secret-value-2718"


def test_restore_of_a_version_holding_a_secrets_value_is_refused(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {})
    write(root, "notes.md", f"old key: {VALUE}\n")
    assert memfs_process("-C", str(root), "commit", "-m", "notes").returncode == 0
    old = git(root, "rev-parse", "HEAD").strip()
    write(root, "notes.md", "cleaned\n")
    assert memfs_process("-C", str(root), "commit", "-m", "clean").returncode == 0
    done = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(root), "secret", "set", "RS"],
        input=VALUE, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    head = git(root, "rev-parse", "HEAD").strip()
    done = memfs_process("-C", str(root), "restore", "notes.md", "--to", old)
    assert done.returncode == 1, done.stderr
    assert "cannot restore notes.md: notes.md:1: holds the value of secret RS" in done.stderr
    assert VALUE not in done.stdout + done.stderr
    assert (root / "notes.md").read_text() == "cleaned\n"
    assert git(root, "rev-parse", "HEAD").strip() == head
