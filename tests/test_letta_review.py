"""Issue 11 tried from outside, as a Letta Code user would: each test is a bug the review found
(a repo left as Letta Code leaves it, and a memfs command that mishandled it)."""

from __future__ import annotations

from pathlib import Path

import pytest

import memfs
from memfs.errors import DetachedHeadError, GitOperationInProgressError, ManifestMissingError

from . import lettacode
from .conftest import git, run_cli, write
from .lettacode import LettaCode
from .test_letta_sync import HUMAN, V1_FILES, published

# -- a rebase Letta Code left in progress ----------------------------------------------------


def stopped_rebase(tmp_path: Path) -> Path:
    """A Letta Code clone whose ``pull --rebase`` stopped on a conflict in system/human.md, as
    Letta Code's pull leaves it (pullMemory: the rebase stays in progress for the agent)."""
    hub, letta = published(tmp_path, V1_FILES)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", hub, str(other))
    write(other, "system/human.md", HUMAN + "Likes tomatoes.\n")
    git(other, "commit", "-q", "-am", "other machine")
    git(other, "push", "-q", "origin", "main")
    write(letta, "system/human.md", HUMAN + "Likes potatoes.\n")
    git(letta, "commit", "-q", "-am", "this machine")
    rebased = git(letta, "pull", "-q", "--rebase", "origin", "main", check=False)
    assert (letta / ".git" / "rebase-merge").is_dir(), rebased
    return letta


def test_no_commit_lands_in_a_rebase_letta_code_left_in_progress(tmp_path: Path) -> None:
    """memfs used to commit the conflicted file, markers and all, onto the rebase's detached
    HEAD and overwrite git's index (its conflict stages): the agent's rebase --continue then
    had nothing to resolve, and an abort dropped memfs's commit."""
    letta = stopped_rebase(tmp_path)
    head = git(letta, "rev-parse", "HEAD").strip()
    conflicted = (letta / "system/human.md").read_bytes()
    assert b"<<<<<<<" in conflicted

    result = run_cli("commit", "-m", "x", cwd=letta)
    assert result.exit_code == 5, result.output
    assert "rebase" in result.output and "Traceback" not in result.output
    with memfs.open(letta) as agent:
        with pytest.raises(GitOperationInProgressError):
            agent.commit(message="watcher", origin="watch")
        with pytest.raises(GitOperationInProgressError):
            agent.commit_paths(["system/human.md"], origin="watch")
    assert run_cli("sync", cwd=letta).exit_code == 5
    resolved = run_cli("resolve", "system/human.md", "--keep", "ours", cwd=letta)
    assert resolved.exit_code == 5, resolved.output

    assert git(letta, "rev-parse", "HEAD").strip() == head
    assert (letta / "system/human.md").read_bytes() == conflicted
    assert git(letta, "diff", "--name-only", "--diff-filter=U").split() == ["system/human.md"]
    status = run_cli("status", cwd=letta)
    assert status.exit_code == 0 and "rebase" in status.output
    adopted = run_cli("init", cwd=letta)
    assert adopted.exit_code == 5, adopted.output
    assert "[memfs]" not in (letta / ".git" / "config").read_text(), "init changed nothing"


def test_memfs_works_again_once_the_rebase_is_finished(tmp_path: Path) -> None:
    letta = stopped_rebase(tmp_path)
    write(letta, "system/human.md", HUMAN + "Likes tomatoes.\nLikes potatoes.\n")
    git(letta, "add", "system/human.md")
    git(letta, "-c", "core.editor=true", "rebase", "--continue")
    write(letta, "system/persona.md", V1_FILES["system/persona.md"] + "More.\n")
    assert run_cli("commit", "-m", "after", cwd=letta).exit_code == 0
    assert "More." in git(letta, "show", "HEAD:system/persona.md")


# -- huge front matter -----------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_status_of_a_file_with_thousands_of_unknown_keys_is_quick(
    letta_code: LettaCode, tmp_path: Path
) -> None:
    """Each of Letta's hook messages was located by splitting the whole file again: 200,000
    unknown keys (one message each) kept `memfs status` busy for many minutes."""
    repo = lettacode.letta_repo(letta_code, tmp_path / "letta", "v1", V1_FILES)
    keys = [f"key{i}: value" for i in range(60_000)]
    big = "\n".join(["---", "description: big", *keys, "---", "body", ""])
    write(repo, "reference/big.md", big)
    with memfs.open(repo) as agent:
        held = agent.status().held
    assert len(held) == 60_000
    assert (held[0].line, held[-1].line) == (3, 60_002)
    assert (
        held[-1].message
        == "unknown frontmatter key 'key59999' (allowed: description read_only limit)"
    )


# -- a detached HEAD -------------------------------------------------------------------------


def test_no_commit_or_push_from_a_detached_head(tmp_path: Path) -> None:
    """After `git checkout <sha>` (a look at an old version), memfs committed onto the
    detached HEAD and pushed it as a branch named HEAD (refs/heads/HEAD) to the remote, while
    saying "up to date, pushed"; the edit never reached main."""
    hub, _ = published(tmp_path, V1_FILES)
    clone = tmp_path / "clone"
    assert run_cli("clone", hub, str(clone)).exit_code == 0
    write(clone, "system/persona.md", V1_FILES["system/persona.md"] + "Second.\n")
    assert run_cli("commit", "-m", "second", cwd=clone).exit_code == 0
    assert run_cli("push", cwd=clone).exit_code == 0
    git(clone, "checkout", "-q", "HEAD~1")
    head = git(clone, "rev-parse", "HEAD").strip()
    write(clone, "system/human.md", HUMAN + "Edited while detached.\n")

    for command in (("commit", "-m", "x"), ("sync",), ("push",), ("pull",)):
        result = run_cli(*command, cwd=clone)
        assert result.exit_code == 1, (command, result.output)
        assert "detached" in result.output and "Traceback" not in result.output
    assert git(clone, "rev-parse", "HEAD").strip() == head
    assert "Edited while detached." in (clone / "system/human.md").read_text()
    assert git(Path(hub), "for-each-ref", "--format=%(refname)").split() == ["refs/heads/main"]
    status = run_cli("status", cwd=clone)
    assert status.exit_code == 0 and "detached" in status.output

    git(clone, "checkout", "-q", "main")
    assert run_cli("sync", cwd=clone).exit_code == 0
    assert "Edited while detached." in git(Path(hub), "show", "main:system/human.md")


def test_a_native_agent_on_a_detached_head_commits_nothing(agent: memfs.Agent) -> None:
    write(agent.root, "system/human.md", "---\ndescription: d\n---\nfirst\n")
    agent.commit(message="first")
    git(agent.root, "checkout", "-q", "--detach")
    write(agent.root, "system/human.md", "---\ndescription: d\n---\nsecond\n")
    with pytest.raises(DetachedHeadError):
        agent.commit(message="second")
    git(agent.root, "checkout", "-q", "main")
    assert agent.commit(message="second") is not None


def test_init_again_on_an_adopted_letta_repo_names_no_agent_yaml(tmp_path: Path) -> None:
    _, letta = published(tmp_path, V1_FILES)
    assert run_cli("init", cwd=letta).exit_code == 0
    again = run_cli("init", cwd=letta)
    assert again.exit_code == 1
    assert "already a memfs agent (a Letta memory repo memfs already adopted)" in again.output
    assert not (letta / "agent.yaml").exists()


# -- a memfs-native agent that lost its agent.yaml ------------------------------------------


def test_a_native_agent_without_its_agent_yaml_is_not_taken_for_a_letta_repo(
    tmp_path: Path,
) -> None:
    """Before issue 11 such a folder was refused (exit 3); since, it opened as a Letta v1 repo
    (it has system/) and the next commit deleted agent.yaml from history, and a push made the
    remote a Letta repo that every other machine of the agent then refused to merge."""
    with memfs.init(tmp_path / "native", name="native") as agent:
        root = agent.root
        head = agent.history.head()
    (root / "agent.yaml").unlink()
    for command in (("status",), ("commit", "-m", "x"), ("init",), ("sync",)):
        result = run_cli(*command, cwd=root)
        assert result.exit_code == 3, (command, result.output)
        assert "agent.yaml was deleted" in result.output
    with pytest.raises(ManifestMissingError):
        memfs.open(root)
    assert git(root, "rev-parse", "HEAD").strip() == head
    assert "[memfs]" not in (root / ".git" / "config").read_text()
    git(root, "checkout", "--", "agent.yaml")
    with memfs.open(root) as agent:
        assert agent.commit(message="nothing") is None


# -- context --system ------------------------------------------------------------------------


def test_context_system_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    """It was 'internal error: UnicodeDecodeError' (exit 70)."""
    _, letta = published(tmp_path, V1_FILES)
    write(tmp_path, "prompt.bin", b"\xb1\x00{CORE_MEMORY}")
    result = run_cli(
        "context", "--format", "letta", "--system", str(tmp_path / "prompt.bin"), cwd=letta
    )
    assert result.exit_code == 2, result.output
    assert "is not UTF-8 text (byte 0)" in result.output
    write(tmp_path, "prompt.txt", "Système\n{CORE_MEMORY}\n")
    result = run_cli(
        "context", "--format", "letta", "--system", str(tmp_path / "prompt.txt"), cwd=letta
    )
    assert result.exit_code == 0 and result.output.startswith("Système\n")


def test_context_metadata_names_the_agent_letta_code_recorded(
    letta_code: LettaCode, tmp_path: Path
) -> None:
    """A repo Letta Code made outside ~/.letta/agents/<id>/memory: <memory_metadata> named
    memfs's own id (letta-<folder>), not the agent id Letta Code keeps in letta.agentId."""
    agent_id = "agent-11111111-2222-4333-8444-555555555555"
    repo = lettacode.letta_repo(
        letta_code, tmp_path / "memory-here", "v1", V1_FILES, agent_id=agent_id
    )
    now = "2026-01-02T03:04:05.000Z"
    expected = letta_code.compile_prompt(repo, agent_id=agent_id, now_iso=now)["coreMemory"]
    result = run_cli(
        "context", "--format", "letta", "--from-head", "--metadata", "--now", now, cwd=repo
    )
    assert result.exit_code == 0, result.output
    assert result.output == expected
