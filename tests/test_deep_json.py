"""review11 F13: JSON from outside nested ~100,000 deep (or just over the bound) is one line
and the documented exit code wherever memfs reads it, never an internal error (exit 70)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import memfs
from memfs.jsonbound import MAX_DEPTH, JSONTooDeep, loads
from memfs.remotes import add_remote
from memfs.sync import push

from .conftest import memfs_process
from .harness import assert_exit_is_documented, git

DEEP = "[" * 100_000
OVER = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)  # parses, but deeper than the bound


def test_the_bounded_reader() -> None:
    assert loads('{"a": [1, {"b": [2]}]}') == {"a": [1, {"b": [2]}]}
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    for text in (DEEP, OVER, '{"a":' * 5000 + "1" + "}" * 5000):
        with pytest.raises(JSONTooDeep):
            loads(text)
    with pytest.raises(ValueError):
        loads("{not json")


def _one_line(done: object, code: int) -> None:
    assert_exit_is_documented(done)  # type: ignore[arg-type]
    assert done.returncode == code, done.stderr  # type: ignore[attr-defined]
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", [DEEP, OVER])
def test_import_af_of_deep_json_is_exit_1(tmp_path: Path, text: str) -> None:
    (tmp_path / "deep.af").write_text(text)
    done = memfs_process("import-af", "deep.af", "x", cwd=tmp_path)
    _one_line(done, 1)
    assert "not a usable Letta Agent File" in done.stderr and "nested too deep" in done.stderr


def test_a_deep_manifest_or_identity_is_the_remote_s_fault(tmp_path: Path) -> None:
    cloud = tmp_path / "cloud"
    with memfs.init(tmp_path / "a", name="a") as agent:
        add_remote(agent.history, "origin", "memfs::" + cloud.as_uri())
        assert push(agent).ok
    shutil.copy(cloud / "manifest.json", tmp_path / "manifest.good")
    (cloud / "manifest.json").write_text(DEEP)
    _one_line(memfs_process("-C", str(tmp_path / "a"), "pull"), 7)
    _one_line(memfs_process("clone", "memfs::" + cloud.as_uri(), str(tmp_path / "b")), 7)
    shutil.copy(tmp_path / "manifest.good", cloud / "manifest.json")
    (cloud / "memfs.json").write_text(DEEP)
    done = memfs_process("clone", "memfs::" + cloud.as_uri(), str(tmp_path / "c"))
    assert_exit_is_documented(done)
    assert done.returncode in (0, 7), done.stderr


def test_check_of_a_deep_memfs_config_json_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "letta"
    (root / "system").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "system" / "persona.md").write_text("---\ndescription: p\n---\np\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial memory")
    (root / ".memfs.config.json").write_text(DEEP)
    done = memfs_process("check", cwd=root)  # problems are check's output: stdout, exit 1
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert ".memfs.config.json:1: invalid JSON (nested too deep" in done.stdout + done.stderr


def test_export_af_with_a_deep_sidecar_is_exit_1(tmp_path: Path) -> None:
    with memfs.init(tmp_path / "a", name="a"):
        pass
    (tmp_path / "a" / ".letta").mkdir(exist_ok=True)
    (tmp_path / "a" / ".letta" / "agent-file.json").write_text(DEEP)
    done = memfs_process("-C", str(tmp_path / "a"), "export-af", "-o", str(tmp_path / "o.af"))
    _one_line(done, 1)
    assert "agent-file.json" in done.stderr
