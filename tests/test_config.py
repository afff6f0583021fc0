"""The user config: identity, clouds, and clear errors when it is broken."""

from __future__ import annotations

import os
from pathlib import Path

import memfs
from memfs.cloud import add_cloud

from .conftest import git, run_cli, write


def config_file() -> Path:
    return Path(os.environ["MEMFS_CONFIG"])


def test_identity_from_the_config_is_the_author(tmp_path: Path) -> None:
    write(
        config_file().parent,
        config_file().name,
        "identity:\n  name: Ada\n  email: ada@example.com\n",
    )
    agent = memfs.init(tmp_path / "agent")
    assert git(agent.root, "log", "-1", "--format=%an <%ae>").strip() == "Ada <ada@example.com>"


def test_git_identity_is_used_when_the_config_names_none(tmp_path: Path) -> None:
    write(
        Path(os.environ["GIT_CONFIG_GLOBAL"]).parent,
        ".gitconfig",
        "[user]\n\tname = Git Person\n\temail = gp@example.com\n",
    )
    agent = memfs.init(tmp_path / "agent")
    assert agent.log()[0].author == "Git Person <gp@example.com>"


def test_a_broken_config_is_one_clear_line(tmp_path: Path) -> None:
    agent = memfs.init(tmp_path / "agent")
    write(config_file().parent, config_file().name, "identity:\n  name: [unclosed\n")
    (agent.root / "system/human.md").write_text("edit")
    result = run_cli("-C", str(agent.root), "commit")
    assert result.exit_code == 2
    assert result.stderr == f"memfs: {config_file()}:3: invalid YAML\n"
    write(config_file().parent, config_file().name, "identity: just a string\n")
    result = run_cli("-C", str(agent.root), "commit")
    assert result.exit_code == 2 and result.stderr.startswith(f"memfs: {config_file()}:1: identity")
    assert (agent.root / "system/human.md").read_text() == "edit", "nothing the user wrote is lost"


def test_cloud_add_keeps_what_it_does_not_know(tmp_path: Path) -> None:
    write(config_file().parent, config_file().name, "future_setting: 42\n")
    add_cloud("team", (tmp_path / "cloud").as_uri())
    text = config_file().read_text()
    assert "future_setting: 42" in text and "team:" in text
