"""The watcher on Letta Code memory repos (v1 and v2): it commits and syncs them as they are,
adds nothing to their tree, and every commit it makes is one Letta's own hook accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import memfs
from memfs.layout import Layout
from memfs.watcher import Watcher, WatchSettings

from .conftest import git, write
from .lettacode import LettaCode, hook_rejections
from .servers import bare_repo, wait_for

FAST = WatchSettings(quiet_ms=100, max_delay_ms=1000, poll_s=0.2, rescan_s=3600, backoff_max_s=1.0)


def watch_commits(agent: memfs.Agent) -> list[str]:
    return [entry.summary for entry in agent.log() if entry.origin == "watch"]


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_the_watcher_commits_and_pushes_a_letta_repo_as_it_is(
    layout: str, request: pytest.FixtureRequest, letta_code: LettaCode, tmp_path: Path
) -> None:
    repo: Path = request.getfixturevalue(f"letta_{layout}_repo")
    hub = bare_repo(tmp_path / "hub.git")
    git(repo, "remote", "add", "origin", str(hub))
    git(repo, "push", "-q", "origin", "HEAD:main")
    base = git(repo, "rev-parse", "HEAD").strip()
    tracked = set(git(repo, "ls-files").split())
    agent = memfs.open(repo)
    assert agent.layout is (Layout.LETTA_V2 if layout == "v2" else Layout.LETTA_V1)
    target = "system/human.md" if layout == "v1" else "persona.md"
    text = (repo / target).read_text()
    watcher = Watcher(agent, FAST).start()
    try:
        write(repo, target, text + "Likes: tea\n")
        wait_for(lambda: watch_commits(agent) == [f"memfs: update {target}"], what="the commit")
        wait_for(
            lambda: git(hub, "rev-parse", "main").strip() == agent.history.head(),
            what="the push",
        )
    finally:
        watcher.stop()
    assert set(git(repo, "ls-files").split()) == tracked, "nothing added to a Letta repo's tree"
    assert "Likes: tea" in git(hub, "show", f"main:{target}")
    assert hook_rejections(letta_code, repo, f"{base}..HEAD") == []
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(hub), str(clone)], check=True)
    assert (clone / target).read_text() == text + "Likes: tea\n"


def test_the_watcher_lets_letta_code_commit_its_own_writes(
    letta_code: LettaCode, letta_v2_repo: Path
) -> None:
    """Letta Code's memory tool writes a file, then ``git add`` and ``git commit`` through its
    hooks (a v2 commit's hook takes a second or more). The watcher in the same folder must not
    commit that write under it: Letta's commit would fail ("nothing to commit", a moved ref)
    and the agent would see an error for a write that was kept."""
    repo = letta_v2_repo
    agent = memfs.open(repo)
    # a short quiet time, so the watcher is due while Letta Code is still committing
    quick = WatchSettings(quiet_ms=20, max_delay_ms=200, poll_s=0.2, rescan_s=3600)
    watcher = Watcher(agent, quick).start()
    try:
        for turn in range(4):
            written = letta_code.agent_write(
                repo,
                "create",
                {
                    "file_path": f"note-{turn}.md",
                    "description": f"note {turn}",
                    "file_text": f"turn {turn}\n",
                    "reason": "remember",
                },
                sync_mode="local",
            )
            assert written.get("sha"), written
        watcher.flush()
    finally:
        watcher.stop()
    assert watch_commits(agent) == [], "Letta Code committed each of its writes itself"
    assert agent.status().clean
