"""What the benchmark scripts share: a git identity, a git runner, a realistic agent."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def git(cwd: Path, *args: str) -> None:
    """Run the git CLI quietly; fail loudly."""
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


def populate(root: Path, files: int) -> None:
    """``files`` small memory files spread over 100 folders, as a real agent's are."""
    for i in range(files):
        folder = root / "reference" / f"topic-{i % 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"note-{i:05d}.md").write_text(f"---\ndescription: note {i}\n---\nfact {i}\n")
