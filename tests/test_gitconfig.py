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


PLAIN_CONFIGS = [
    b"",
    b"[core]\n\trepositoryformatversion = 0\n\tbare = false\n",
    b'[core]\n\tbare = false\n[remote "origin"]\n\turl = s3://b/p\n\tfetch = +refs/*:refs/*\n'
    b'\tmemfs-mirror = true\n[remote "Other"]\n\turl = /x\n',
    b"# a comment\n; another\n[Memfs]\n\tLayout = letta-v1\n[memfs]\n\tname = a b  c\n"
    b'\tname = second\n[remote "o"]\n\turl=x\n[REMOTE "o"]\n\tfetch = y\n[remote "O"]\n\turl = z\n',
    b'[letta "memoryRepository"]\n\turl = ../mirror.git\n[remote ""]\n\turl = e\n',
    b'[remote "m"]\n\tmemfs-mirror = TRUE\n\tempty =\n',
]
NOT_PLAIN = [
    b'[remote "a"]\n\turl = "quoted"\n',
    b"[core]\n\tbare = false # comment\n",
    b"[core]\n\tbare\n",
    b"[a.b]\n\tc = d\n",
    b"[core] bare = false\n",
    b"[include]\n\tpath = other\n",
    b'[includeIf "gitdir:/x"]\n\tpath = other\n',
    b"[core]\n\tx = a\\\n\tb\n",
    b"[core]\r\n\tbare = false\r\n",
    b"\xef\xbb\xbf[core]\n\tbare = false\n",
    b"orphan = 1\n",
]
PROBES = [
    ((b"core",), b"bare"),
    ((b"CORE",), b"Bare"),
    ((b"remote", b"origin"), b"url"),
    ((b"remote", b"o"), b"url"),
    ((b"remote", b"o"), b"fetch"),
    ((b"remote", b"O"), b"url"),
    ((b"remote", b"nope"), b"url"),
    ((b"memfs",), b"layout"),
    ((b"memfs",), b"name"),
    ((b"memfs", b"sub"), b"name"),  # falls back to [memfs], as dulwich does
    ((b"letta", b"memoryRepository"), b"url"),
    ((b"remote", b""), b"url"),
    ((b"remote", b"m"), b"memfs-mirror"),
    ((b"remote", b"m"), b"empty"),
]


def _answers(config: object) -> list[object]:
    out: list[object] = [list(config.sections())]  # type: ignore[attr-defined]
    for section, name in PROBES:
        for method in ("get", "get_boolean", "items"):
            args = (section,) if method == "items" else (section, name)
            try:
                out.append(list(getattr(config, method)(*args)) if method == "items" else
                           getattr(config, method)(*args))  # fmt: skip
            except (KeyError, ValueError) as error:
                out.append(type(error).__name__)
        out.append(config.has_section(section))  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("text", PLAIN_CONFIGS)
def test_the_plain_reader_answers_as_dulwich(tmp_path: Path, text: bytes) -> None:
    from memfs.gitconfig import read_config

    path = tmp_path / "config"
    path.write_bytes(text)
    plain = read_config(str(path))
    assert plain is not None
    assert _answers(plain) == _answers(ConfigFile.from_path(str(path)))


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_anything_else_is_left_to_dulwich(tmp_path: Path, text: bytes) -> None:
    from memfs.gitconfig import read_config

    path = tmp_path / "config"
    path.write_bytes(text)
    assert read_config(str(path)) is None


def test_a_write_through_the_plain_reader_goes_through_dulwich(tmp_path: Path) -> None:
    from memfs.gitconfig import read_config

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    path = tmp_path / ".git" / "config"
    config = read_config(str(path))
    assert config is not None
    config.set((b"memfs",), b"layout", b"letta-v1")
    assert config.get((b"memfs",), b"layout") == b"letta-v1"
    save_config(config)
    assert ConfigFile.from_path(str(path)).get((b"memfs",), b"layout") == b"letta-v1"
    assert config.get((b"core",), b"bare") == b"false"
