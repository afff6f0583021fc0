"""memfs.gitconfig: every value written to .git/config reads back intact, by git and dulwich."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dulwich.config import ConfigFile

from memfs.gitconfig import save_config

VALUES = [
    "s3://bucket/agents;v2",
    "file:///tmp/a#b",
    "notes; more # and more",
    " leading and trailing ",
    'a "quoted" word',
    "back\\slash",
    "tab\there",
    "plain",
]


@pytest.mark.parametrize("value", VALUES)
def test_a_value_reads_back_as_written_by_git_and_dulwich(tmp_path: Path, value: str) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    path = tmp_path / ".git" / "config"
    config = ConfigFile.from_path(str(path))
    config.set((b"remote", b'we"ird\\name'), b"url", value.encode())
    config.set((b"memfs",), b"description", value.encode())
    save_config(config)
    for key in ('remote.we"ird\\name.url', "memfs.description"):
        got = subprocess.run(
            ["git", "-C", str(tmp_path), "config", "--get", key],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert got == value + "\n"
    again = ConfigFile.from_path(str(path))
    assert again.get((b"memfs",), b"description") == value.encode()
    assert again.get((b"remote", b'we"ird\\name'), b"url") == value.encode()


def test_multivalued_keys_and_other_sections_are_kept(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    git = ["git", "-C", str(tmp_path), "config"]
    subprocess.run([*git, "--add", "remote.o.fetch", "+refs/heads/a:refs/remotes/o/a"], check=True)
    subprocess.run([*git, "--add", "remote.o.fetch", "+refs/heads/b:refs/remotes/o/b"], check=True)
    path = tmp_path / ".git" / "config"
    config = ConfigFile.from_path(str(path))
    config.set((b"remote", b"o"), b"url", b"x;y")
    save_config(config)
    fetches = subprocess.run(
        [*git, "--get-all", "remote.o.fetch"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert fetches == ["+refs/heads/a:refs/remotes/o/a", "+refs/heads/b:refs/remotes/o/b"]
    core = subprocess.run([*git, "--get", "core.bare"], capture_output=True, text=True).stdout
    assert core == "false\n"


def test_memfs_remote_add_keeps_a_url_with_a_semicolon(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    memfs = [sys.executable, "-m", "memfs"]
    subprocess.run([*memfs, "init", str(tmp_path / "a")], env=env, check=True, capture_output=True)
    url = f"file://{tmp_path}/cloud;v2#x"
    subprocess.run([*memfs, "remote", "add", "x", url], cwd=tmp_path / "a", env=env, check=True)
    listed = subprocess.run(
        [*memfs, "remote", "list"], cwd=tmp_path / "a", env=env, capture_output=True, text=True
    ).stdout
    assert f"x\t{url}" in listed.splitlines()
    got = subprocess.run(
        ["git", "-C", str(tmp_path / "a"), "config", "remote.x.url"], capture_output=True, text=True
    ).stdout
    assert got == url + "\n"
