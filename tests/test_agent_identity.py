"""agent.yaml keeps the agent the same agent (memfs/agentidentity.py): no commit memfs makes
deletes it or changes its id, since every other copy's pull would refuse that commit for good.

Found from outside (review11 F04, F04b): the watcher committed and pushed agent.yaml's
deletion, and ``memfs push`` an agent.yaml with another id; every other machine's sync then
failed with exit 7 until someone repaired the cloud. The change now stays in the work tree,
uncommitted, with one line saying why, and the rest is committed and pushed.
"""

from __future__ import annotations

import re
from pathlib import Path

from memfs.opening import open_agent

from .harness import Machine, git, setup_two_machines, start_watcher, stop_watcher
from .servers import wait_for

KEEPS = "every other copy of the agent would refuse this commit"


def _cloud(tmp_path: Path) -> str:
    return f"memfs::file://{tmp_path / 'cloud' / 'shared'}"


def _committed_agent_yaml(machine: Machine) -> str:
    return git(machine.root, "show", "HEAD:agent.yaml")


def test_the_watcher_holds_agent_yaml_deleted_and_pushes_the_rest(tmp_path: Path) -> None:
    a, b = setup_two_machines(tmp_path, _cloud(tmp_path))
    manifest = _committed_agent_yaml(a)
    start_watcher(a)
    log = a.root / ".git" / "memfs" / "watch.log"
    try:
        (a.root / "agent.yaml").unlink()
        (a.root / "system" / "human.md").write_text("likes tea\n")
        wait_for(
            lambda: "likes tea" in git(a.root, "show", "HEAD:system/human.md"),
            what="the watcher to commit human.md",
        )
        wait_for(
            lambda: (
                re.search(r"not committed|committed \w+ .*agent\.yaml", log.read_text()) is not None
            ),
            what="the watcher to take up agent.yaml's deletion",
        )
        assert f"agent.yaml:1: agent.yaml is deleted: a memfs agent keeps it, and {KEEPS}" in (
            log.read_text()
        )
        assert _committed_agent_yaml(a) == manifest  # HEAD and the cloud still hold it
        assert not (a.root / "agent.yaml").exists()  # the work tree stays as it was left
        git(a.root, "checkout", "--", "agent.yaml")  # what every command's refusal says
    finally:
        stopped = stop_watcher(a)
    assert stopped.returncode == 0, stopped.stderr
    assert git(a.root, "log", "--format=%h", "--diff-filter=D", "--", "agent.yaml") == ""
    done = b.memfs("sync")
    assert done.returncode == 0, done.stderr
    assert (b.root / "system" / "human.md").read_text() == "likes tea\n"
    assert _committed_agent_yaml(b) == manifest


def test_push_holds_an_agent_id_changed_and_status_says_why(tmp_path: Path) -> None:
    a, b = setup_two_machines(tmp_path, _cloud(tmp_path))
    manifest = _committed_agent_yaml(a)
    path = a.root / "agent.yaml"
    path.write_text(re.sub(r"(?m)^id: .*$", "id: agent-copied-from-elsewhere", manifest))
    (a.root / "system" / "persona.md").write_text("patient\n")
    done = a.memfs("push")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1
    assert (
        "not committed, kept in the work tree: agent.yaml:1: agent.yaml changes the agent id"
        in (done.stderr)
    )
    assert "-> agent-copied-from-elsewhere)" in done.stderr
    assert _committed_agent_yaml(a) == manifest
    assert "agent-copied-from-elsewhere" in path.read_text()  # the edit stays, uncommitted
    status = a.memfs("status")
    assert "modified:  agent.yaml  (kept out of commits, see below)" in status.stdout
    assert "agent.yaml changes the agent id" in status.stdout
    synced = b.memfs("sync")
    assert synced.returncode == 0, synced.stderr
    assert (b.root / "system" / "persona.md").read_text() == "patient\n"


def test_a_commit_keeps_agent_yaml_edits_that_leave_the_id(tmp_path: Path) -> None:
    a = Machine.create(tmp_path, "a")
    assert a.memfs("init", str(a.root), agent=False).returncode == 0
    agent = open_agent(a.root)
    try:
        path = a.root / "agent.yaml"
        path.write_text(path.read_text().replace("description: ''", "description: gardens"))
        info = agent.commit()
        assert info is not None and agent.held == []
        assert "gardens" in git(a.root, "show", "HEAD:agent.yaml")
        path.write_text(path.read_text().replace("id: agent-", "id: other-"))
        assert agent.commit() is None
        assert [refusal.path for refusal in agent.held] == ["agent.yaml"]
    finally:
        agent.close()


def test_revert_of_the_first_commit_is_refused_before_anything_moves(tmp_path: Path) -> None:
    """review11 F03: reverting a new agent's only commit deleted agent.yaml in a commit,
    and every command then exited 3 ("not a memfs agent")."""
    a = Machine.create(tmp_path, "a")
    assert a.memfs("init", str(a.root), agent=False).returncode == 0
    head = a.head()
    done = a.memfs("revert", "HEAD")
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"memfs: cannot revert HEAD: agent.yaml is deleted: a memfs agent keeps it, and {KEEPS}; "
        "nothing was changed\n"
    )
    assert a.head() == head and a.clean()
    assert a.memfs("status").returncode == 0
