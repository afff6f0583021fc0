"""Assertions that Letta Code's real pre-commit hook accepts (or refuses) commits memfs made.

Thin wrappers over tests/lettacode.py ``hook_verdict`` (a scratch clone at the commit's parent,
the commit's tree read into its index, Letta's hooks installed with the repo's layout policy,
the hook run as ``git commit`` runs it), so a test says what it expects in one line:

    base = head(repo)
    ... memfs commits ...
    assert_letta_hook_accepts(letta_code, repo, commits_since(repo, base))
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from .lettacode import LettaCode, hook_verdict


def assert_letta_hook_accepts(oracle: LettaCode, repo: Path, commits: Iterable[str]) -> None:
    """Each of ``commits`` (shas or revisions in ``repo``) passes Letta's pre-commit hook."""
    for commit in commits:
        verdict = hook_verdict(oracle, repo, commit)
        assert verdict.accepted, f"Letta's pre-commit hook refuses {commit}:\n{verdict.output}"


def assert_letta_hook_refuses(oracle: LettaCode, repo: Path, commit: str, message: str) -> None:
    """``commit`` is one Letta's pre-commit hook refuses, saying ``message``."""
    verdict = hook_verdict(oracle, repo, commit)
    assert not verdict.accepted and message in verdict.output, (
        f"the hook accepted {commit} or said something else:\n{verdict.output}"
    )


def hook_messages(oracle: LettaCode, repo: Path, commit: str) -> set[str]:
    """The problems Letta's hook prints for ``commit`` (its indented lines, stripped)."""
    verdict = hook_verdict(oracle, repo, commit)
    return {line.strip() for line in verdict.output.splitlines() if line.startswith("  ")}


def commits_since(repo: Path, base: str) -> list[str]:
    """The commits after ``base`` up to HEAD, oldest first, merges included."""
    completed = subprocess.run(
        ["git", "rev-list", "--reverse", f"{base}..HEAD"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.split()
