"""The README documents every command and opens with the two commands that work."""

from __future__ import annotations

import re
from pathlib import Path

from memfs.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_command_is_in_the_readme() -> None:
    text = README.read_text()
    for name in cli.commands:
        assert f"memfs {name}" in text, f"README does not show 'memfs {name}'"


def test_readme_opens_with_install_and_test_commands() -> None:
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", README.read_text(), re.DOTALL)
    first = blocks[0].strip().splitlines()
    assert len(first) == 2
    assert "memfs demo" in first[0]
    assert "pytest" in first[1]


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", README.read_text(), re.DOTALL)
    test_command = blocks[0].strip().splitlines()[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert test_command in ci
