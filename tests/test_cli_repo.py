"""The repository commands as a user runs them: output, --json, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import memfs
from memfs.cli import cli
from memfs.conflicts import find

from .conftest import assert_git_agrees, git, run_cli, write


def test_every_command_has_help() -> None:
    for name, command in cli.commands.items():
        result = run_cli(name, "--help")
        assert result.exit_code == 0, name
        assert command.help, f"{name} has no help text"
        assert "Usage: memfs " + name in result.output


def test_init_then_status_commit_log(tmp_path: Path) -> None:
    result = run_cli("init", str(tmp_path / "ada"), "--description", "Ada's agent")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Create agent ada in ")
    root = tmp_path / "ada"
    assert run_cli("status", cwd=root).output.endswith(
        "Nothing to commit: the memory matches the last commit.\n"
    )
    (root / "system/human.md").write_text("Name: Ada\n")
    status = run_cli("status", cwd=root / "system")  # found from a sub-folder
    assert "  modified:  system/human.md" in status.output
    committed = run_cli("commit", cwd=root)
    assert committed.exit_code == 0
    assert committed.output.endswith("] memfs: update system/human.md\n")
    assert run_cli("commit", cwd=root).output == "Nothing to commit.\n"
    log = run_cli("log", "-n", "1", cwd=root).output
    assert "test-host/cli" in log and "memfs: update system/human.md" in log
    assert_git_agrees(root)


def test_dash_c_and_env_select_the_agent(agent: memfs.Agent, tmp_path: Path) -> None:
    assert run_cli("-C", str(agent.root), "status").exit_code == 0
    os.environ["MEMFS_AGENT"] = str(agent.root)
    try:
        assert run_cli("ls", cwd=tmp_path).exit_code == 0
    finally:
        del os.environ["MEMFS_AGENT"]


def test_json_outputs(agent: memfs.Agent) -> None:
    write(agent.root, "notes/new.md", "---\ndescription: new note\n---\nhi\n")
    status = json.loads(run_cli("-C", str(agent.root), "status", "--json").output)
    assert status["changes"] == [{"path": "notes/new.md", "status": "added"}]
    assert status["clean"] is False
    listing = json.loads(run_cli("-C", str(agent.root), "ls", "--json").output)
    assert [item["label"] for item in listing] == ["notes/new", "system/human", "system/persona"]
    assert listing[0] == {
        "label": "notes/new", "path": "notes/new.md", "description": "new note",
        "pinned": False, "read_only": False, "size": 3, "limit": None,
    }  # fmt: skip
    run_cli("-C", str(agent.root), "commit")
    log = json.loads(run_cli("-C", str(agent.root), "log", "--json").output)
    assert log[0]["summary"] == "memfs: add notes/new.md"
    assert log[0]["origin"] == "cli" and log[0]["host"] == "test-host"
    check = json.loads(run_cli("-C", str(agent.root), "check", "--json").output)
    assert check == {"ok": True, "problems": []}


def test_ls_text(agent: memfs.Agent) -> None:
    output = run_cli("-C", str(agent.root), "ls").output.splitlines()
    assert output[0].split()[:3] == ["system/human", "pinned", "13/5000"]


def test_ls_lists_what_the_memory_files_say_from_a_cold_warm_or_stale_cache(
    agent: memfs.Agent,
) -> None:
    """ls reads the parse cache: its listing is the one the files themselves give, whether
    the cache is empty, warm, or older than an edit (same size, other content)."""
    root = agent.root
    write(root, "notes/ro.md", "---\ndescription: fixed\nread_only: true\nlimit: 9\n---\nabc\n")
    write(root, "notes/broken.md", "---\ndescription: [unclosed\n---\nbody\n")
    (root / "notes/latin1.md").write_bytes(b"caf\xe9\n")
    write(root, "notes/facts.yaml", "description: a mapping\nkey: value\n")

    def expected() -> list[dict[str, object]]:
        return [m.to_dict() for m in memfs.open(root).memory.values()]

    def listed() -> tuple[list[dict[str, object]], str]:
        result = run_cli("-C", str(root), "ls", "--json")
        return json.loads(result.stdout), result.stderr

    cold, warnings = listed()
    assert cold == expected()
    assert "notes/broken.md" in warnings and "notes/latin1.md" in warnings
    assert listed() == (cold, warnings)  # warm: the same
    ro = root / "notes/ro.md"
    before = ro.stat()
    ro.write_text(ro.read_text().replace("fixed", "moved"))  # same size
    os.utime(ro, ns=(before.st_atime_ns, before.st_mtime_ns))
    stale, _ = listed()
    assert stale == expected()
    assert next(item for item in stale if item["path"] == "notes/ro.md")["description"] == "moved"


def test_diff_show_restore_revert(agent: memfs.Agent) -> None:
    root = str(agent.root)
    (agent.root / "system/human.md").write_text("Name: Ada\n")
    assert "+Name: Ada" in run_cli("-C", root, "diff").output
    run_cli("-C", root, "commit")
    assert "+Name: Ada" in run_cli("-C", root, "diff", "HEAD~1", "HEAD", "system").output
    assert run_cli("-C", root, "show", "HEAD:system/human.md").output == "Name: Ada\n"
    restored = run_cli("-C", root, "restore", "system/human.md", "--to", "HEAD~1")
    assert restored.exit_code == 0 and "memfs: restore system/human.md to" in restored.output
    again = run_cli("-C", root, "restore", "system/human.md", "--to", "HEAD")
    assert again.output == "System/human.md already is as at HEAD.\n"
    reverted = run_cli("-C", root, "revert", "HEAD")
    assert reverted.exit_code == 0 and 'memfs: revert "memfs: restore' in reverted.output
    assert (agent.root / "system/human.md").read_text() == "Name: Ada\n"


def test_check_reports_problems_and_exit_code(agent: memfs.Agent) -> None:
    root = str(agent.root)
    write(agent.root, "system/human.md", "---\nlimit: nine\ncolour: red\n---\ntoo long\n")
    result = run_cli("-C", root, "check")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "system/human.md:2: limit: must be a whole number, got 'nine'",
        "system/human.md:3: warning: unknown front matter key 'colour' (kept)",
    ]
    write(agent.root, "system/human.md", "---\nlimit: 3\n---\ntoo long\n")
    result = run_cli("-C", root, "check")
    assert result.exit_code == 0, "a limit is advisory: over it is a warning"
    assert result.output == (
        "system/human.md:2: warning: body is 9 characters, over its limit of 3 (advisory)\n"
    )
    write(agent.root, "system/human.md", "---\ncolour: red\n---\nok\n")
    assert run_cli("-C", root, "check").exit_code == 0
    assert run_cli("-C", root, "check", "--strict").exit_code == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("show", "nope"), 4, "memfs: unknown revision 'nope': see 'memfs log' for valid ones\n"),
        (("show", "HEAD:missing.md"), 4, "memfs: missing.md does not exist in revision HEAD\n"),
        (("diff", "nope"), 4, "memfs: unknown revision 'nope': see 'memfs log' for valid ones\n"),
        (("restore", "system/human.md", "--to", "zzz"), 4, "memfs: unknown revision 'zzz': see 'memfs log' for valid ones\n"),
        (("revert", "HEAD~5"), 4, "memfs: unknown revision 'HEAD~5': see 'memfs log' for valid ones\n"),
    ],
)  # fmt: skip
def test_bad_revisions_are_one_line_errors(
    agent: memfs.Agent, args: tuple[str, ...], code: int, message: str
) -> None:
    head = agent.history.head()
    result = run_cli("-C", str(agent.root), *args)
    assert (result.exit_code, result.stderr) == (code, message)
    assert agent.history.head() == head


def test_not_an_agent(tmp_path: Path) -> None:
    result = run_cli("status", cwd=tmp_path)
    assert result.exit_code == 3
    assert result.stderr == (
        f"memfs: {tmp_path} is not a memfs agent (no agent.yaml or Letta memory repo here or in a parent folder); "
        "run 'memfs init' there first\n".replace(str(tmp_path), ".")
    )
    result = run_cli("-C", str(tmp_path / "nope"), "log")
    assert result.exit_code == 3 and "no such directory" in result.stderr
    assert run_cli("init", str(tmp_path / "x"), "--name", "bad/name").exit_code == 2


def test_commit_exits_1_when_files_are_left_out(agent: memfs.Agent, tmp_path: Path) -> None:
    os.symlink(tmp_path, agent.root / "escape")
    write(agent.root, "ok.md", "fine")
    result = run_cli("-C", str(agent.root), "commit")
    assert result.exit_code == 1
    assert "memfs: add ok.md" in result.output
    assert result.stderr.startswith("memfs: not versioned: escape: symlink to an absolute path")
    assert "ok.md" in git(agent.root, "ls-files")


def test_a_broken_agent_yaml_is_reported_not_a_crash(agent: memfs.Agent) -> None:
    (agent.root / "agent.yaml").write_text("name: [unclosed\n")
    status = run_cli("-C", str(agent.root), "status")
    assert status.exit_code == 0
    assert "agent.yaml:2: invalid YAML" in status.output
    commit = run_cli("-C", str(agent.root), "commit")
    assert commit.exit_code == 0 and "update agent.yaml" in commit.output


def test_busy_agent_is_a_clear_error(agent: memfs.Agent, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(agent.root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        os.environ["MEMFS_LOCK_TIMEOUT"] = "0.2"
        (agent.root / "system/human.md").write_text("edit")
        result = run_cli("-C", str(agent.root), "commit")
    finally:
        os.environ.pop("MEMFS_LOCK_TIMEOUT", None)
        holder.kill()
        holder.wait(timeout=10)
    assert result.exit_code == 5
    assert result.stderr.startswith(f"memfs: the agent is busy: process {holder.pid} held ")
    assert (agent.root / "system/human.md").read_text() == "edit"


HOLD_LOCK = """
import sys, time, memfs
agent = memfs.open(sys.argv[1])
with agent.history.locked():
    print("locked", flush=True)
    sys.stdin.read() if False else time.sleep(60)
"""


def test_demo_runs(tmp_path: Path) -> None:
    result = run_cli("demo", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Name: Ada Lovelace." in result.output and "in French." in result.output
    assert "same head on A and B: True" in result.output
    assert (
        "<memory_blocks>" in result.output
        and "harvest.md: What was harvested when" in result.output
    )
    for machine in ("machine-a", "machine-b"):
        assert_git_agrees(tmp_path / machine / "garden")


def test_internal_errors_are_one_line_without_traceback(agent: memfs.Agent) -> None:
    head = agent.history.head()
    assert head is not None
    (agent.root / ".git/objects" / head[:2] / head[2:]).unlink()  # a corrupted repository
    result = run_cli("-C", str(agent.root), "log")
    assert result.exit_code == 9
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("memfs: the agent's git repository is damaged or unreadable")
    assert result.stderr.count("\n") == 1


def test_status_lists_open_conflicts_in_text_and_json(tmp_path: Path) -> None:
    from memfs import sync

    from .test_sync import bare_repo, two_machines

    a, b = two_machines(tmp_path, str(bare_repo(tmp_path / "hub.git")))
    write(a.root, "system/human.md", "A's human\n")
    write(b.root, "system/human.md", "B's human\n")
    write(a.root, "notes/p.md", "one\ntwo\nthree\n")
    sync.sync(a)
    sync.sync(b)
    write(a.root, "notes/p.md", "one\nA two\nthree\n")
    write(b.root, "notes/p.md", "one\nB two\nthree\n")
    sync.sync(a)
    sync.sync(b, policy="copy")
    copy = next(p for p in b.worktree_files() if p.startswith("system/human.conflict-"))
    write(b.root, "notes/q.md", "<<<<<<< mine\nx\n=======\ny\n>>>>>>> theirs\n")
    text = run_cli("-C", str(b.root), "status")
    assert text.exit_code == 0, text.output
    assert "Open conflicts (reconcile, then 'memfs resolve PATH --keep" in text.output
    assert f"  system/human.md: other version at {copy}\n" in text.output
    assert "  notes/q.md: conflict markers\n" in text.output
    report = json.loads(run_cli("-C", str(b.root), "status", "--json").output)
    assert {"path": "system/human.md", "kind": "copy", "copy_path": copy} in report["conflicts"]
    assert {"path": "notes/q.md", "kind": "markers", "copy_path": None} in report["conflicts"]
    assert memfs.open(b.root).status().conflicts == find(b)
    again = json.loads(run_cli("-C", str(b.root), "status", "--json").output)  # from the cache
    assert again["conflicts"] == report["conflicts"]
    write(b.root, "notes/q.md", "settled\n")
    write(b.root, "notes/r.md", "<<<<<<< mine\nx\n=======\ny\n>>>>>>> theirs\n")
    paths = [
        c["path"]
        for c in json.loads(run_cli("-C", str(b.root), "status", "--json").output)["conflicts"]
    ]
    assert "notes/r.md" in paths and "system/human.md" in paths and "notes/q.md" not in paths
