"""The agent repository: init/adopt, status, commit, history, rollbacks, checked with real git."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import memfs
from memfs.errors import (
    AgentExistsError,
    InvalidNameError,
    NotAnAgentError,
    PathNotFoundError,
    RevertConflictError,
    RevisionNotFoundError,
)
from memfs.layout import Layout

from .conftest import assert_git_agrees, git, write


def changes(agent: memfs.Agent) -> list[tuple[str, str]]:
    return [(c.status, c.path) for c in agent.status().changes]


# -- init and adopt ------------------------------------------------------------------------


def test_init_creates_the_layout_and_first_commit(tmp_path: Path) -> None:
    agent = memfs.init(tmp_path / "bob", description="a test agent")
    manifest = yaml.safe_load((agent.root / "agent.yaml").read_text())
    assert manifest["name"] == "bob"
    assert manifest["description"] == "a test agent"
    assert manifest["format"] == 1
    assert manifest["id"].startswith("agent-")
    assert set(agent.memory) == {"system/persona", "system/human"}
    assert agent.memory["system/persona"].limit == 5000
    assert git(agent.root, "config", "gc.auto").strip() == "0"
    assert git(agent.root, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert git(agent.root, "log", "--format=%s").strip() == "memfs: create agent bob"
    assert git(agent.root, "ls-files").split() == [
        "agent.yaml", "system/human.md", "system/persona.md",
    ]  # fmt: skip
    assert_git_agrees(agent.root)
    assert agent.check() == []


def test_init_adopts_a_letta_code_git_repo_keeping_history(tmp_path: Path) -> None:
    root = tmp_path / "letta-memory"
    write(root, "system/persona.md", "---\ndescription: me\n---\nI am Letta.\n")
    write(root, "notes/project.md", "project notes\n")
    git(tmp_path, "init", "-q", "-b", "master", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "letta code memory")
    write(root, "notes/uncommitted.md", "not yet committed\n")

    agent = memfs.init(root, name="letta-agent")
    assert git(root, "log", "--format=%s").splitlines() == [
        "memfs: adopt agent letta-agent", "letta code memory",
    ]  # fmt: skip
    assert (root / "system/persona.md").read_text() == "---\ndescription: me\n---\nI am Letta.\n"
    assert not (root / "system/human.md").exists(), "adoption must not add template files"
    assert not (root / "agent.yaml").exists(), "a Letta repo keeps memfs's metadata in .git"
    assert agent.layout is Layout.LETTA_V1 and agent.name == "letta-agent"
    assert git(root, "config", "memfs.name").strip() == "letta-agent"
    assert set(agent.memory) == {"system/persona", "notes/project", "notes/uncommitted"}
    assert agent.history.branch() == "master"
    assert_git_agrees(root)
    reopened = memfs.open(root)
    assert reopened.name == "letta-agent" and reopened.layout is Layout.LETTA_V1


def test_init_adopts_a_plain_folder(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    write(root, "system/human.md", "Name: Ada\n")
    agent = memfs.init(root)
    assert agent.name == "plain"
    assert (root / "system/human.md").read_text() == "Name: Ada\n"
    assert git(root, "log", "--format=%s").strip() == "memfs: adopt agent plain"
    assert git(root, "ls-files").split() == ["system/human.md"], "nothing added to the tree"
    assert_git_agrees(root)


def test_init_refuses_an_existing_agent_and_bad_names(tmp_path: Path) -> None:
    memfs.init(tmp_path / "a")
    with pytest.raises(AgentExistsError):
        memfs.init(tmp_path / "a")
    with pytest.raises(InvalidNameError):
        memfs.init(tmp_path / "b", name="../escape")
    assert not (tmp_path / "b").exists()


def test_open_refuses_folders_that_are_not_agents(tmp_path: Path) -> None:
    with pytest.raises(NotAnAgentError, match="no such directory"):
        memfs.open(tmp_path / "missing")
    git(tmp_path, "init", "-q", str(tmp_path / "repo"))
    with pytest.raises(NotAnAgentError, match=r"no agent\.yaml, and not a Letta memory repo"):
        memfs.open(tmp_path / "repo")


# -- status and commit ---------------------------------------------------------------------


def test_status_and_commit_of_added_modified_deleted(agent: memfs.Agent) -> None:
    write(agent.root, "reference/topic.md", "---\ndescription: t\n---\nbody\n")
    (agent.root / "system/human.md").write_text("Name: Ada\n")
    (agent.root / "system/persona.md").unlink()
    assert changes(agent) == [
        ("added", "reference/topic.md"),
        ("modified", "system/human.md"),
        ("deleted", "system/persona.md"),
    ]
    info = agent.commit()
    assert info is not None
    assert info.summary == (
        "memfs: 3 files changed: reference/topic.md, system/human.md, system/persona.md"
    )
    assert info.trailers == {"Memfs-Host": "test-host", "Memfs-Origin": "cli"}
    assert agent.status().clean
    assert agent.commit() is None
    assert_git_agrees(agent.root)
    body = git(agent.root, "log", "-1", "--format=%B")
    assert "Memfs-Host: test-host\nMemfs-Origin: cli" in body


def test_single_file_message_and_custom_message(agent: memfs.Agent) -> None:
    (agent.root / "system/human.md").write_text("changed\n")
    assert agent.commit().summary == "memfs: update system/human.md"  # type: ignore[union-attr]
    write(agent.root, "new.md", "x")
    assert agent.commit(message="remember x").summary == "remember x"  # type: ignore[union-attr]
    (agent.root / "new.md").unlink()
    assert agent.commit().summary == "memfs: delete new.md"  # type: ignore[union-attr]


def test_git_agrees_on_modes_symlinks_and_layout_changes(agent: memfs.Agent) -> None:
    script = write(agent.root, "tools/run.sh", "#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    os.symlink("../system/human.md", agent.root / "tools/human-link.md")
    write(agent.root, "deep/a/b/c.md", "deep")
    agent.commit()
    assert_git_agrees(agent.root)
    assert "100755" in git(agent.root, "ls-files", "-s", "tools/run.sh")
    assert "120000" in git(agent.root, "ls-files", "-s", "tools/human-link.md")
    # a file becomes a folder and a folder becomes a file
    (agent.root / "deep/a/b/c.md").unlink()
    (agent.root / "deep/a/b").rmdir()
    write(agent.root, "deep/a/b", "now a file")
    (agent.root / "system/human.md").unlink()
    write(agent.root, "system/human.md/inner.md", "now a folder")
    agent.commit()
    assert_git_agrees(agent.root)
    assert git(agent.root, "show", "HEAD:deep/a/b") == "now a file"


def test_commit_made_by_git_is_seen_by_memfs_and_back(agent: memfs.Agent) -> None:
    write(agent.root, "by-git.md", "from git\n")
    git(agent.root, "add", "-A")
    git(agent.root, "commit", "-qm", "committed with git")
    assert agent.status().clean
    (agent.root / "by-git.md").write_text("from memfs\n")
    agent.commit()
    assert git(agent.root, "log", "--format=%s").splitlines()[:2] == [
        "memfs: update by-git.md", "committed with git",
    ]  # fmt: skip
    assert_git_agrees(agent.root)


def test_broken_files_are_committed_and_reported(agent: memfs.Agent) -> None:
    write(agent.root, "system/broken.md", "---\nlimit: [\n---\nbody\n")
    write(agent.root, "latin.md", "caf\xe9".encode("latin-1"))
    write(agent.root, "image.png", b"\x89PNG\r\n\x1a\n\x00\x00binary")
    status = agent.status()
    assert {p.path for p in status.problems} == {"system/broken.md", "latin.md"}
    agent.commit()
    assert git(agent.root, "show", "HEAD:latin.md") == "caf\udce9"
    assert (agent.root / "image.png").read_bytes() == b"\x89PNG\r\n\x1a\n\x00\x00binary"
    assert_git_agrees(agent.root)
    assert {p.path for p in agent.check()} == {"system/broken.md", "latin.md"}


# -- what is left out ----------------------------------------------------------------------


def test_secrets_and_litter_are_ignored_and_git_agrees(agent: memfs.Agent) -> None:
    for name in (".env", "keys/server.pem", "id_rsa", "id_rsa.pub", "api.key", "notes.md.swp",
                 "draft~", ".#lock", "4913", "#persona.md#", "system/#human.md#"):  # fmt: skip
        write(agent.root, name, "secret or litter")
    status = agent.status()
    assert sorted(status.secrets) == [".env", "api.key", "id_rsa", "id_rsa.pub", "keys/server.pem"]
    assert status.clean
    assert agent.commit() is None
    assert_git_agrees(agent.root)


def test_memfsignore_adds_rules_and_can_opt_secrets_back_in(agent: memfs.Agent) -> None:
    write(agent.root, ".memfsignore", "scratch/\n*.log\n!public.key\n")
    write(agent.root, "scratch/tmp.md", "x")
    write(agent.root, "run.log", "x")
    write(agent.root, "public.key", "not secret")
    agent.commit()
    tracked = git(agent.root, "ls-files").split()
    assert ".memfsignore" in tracked
    assert "public.key" in tracked
    assert "run.log" not in tracked
    assert "scratch/tmp.md" not in tracked
    assert_git_agrees(agent.root)


def test_a_tracked_file_stays_tracked_when_a_rule_ignores_it(agent: memfs.Agent) -> None:
    write(agent.root, "logs/keep.log", "v1")
    agent.commit()
    write(agent.root, ".memfsignore", "logs/\n")
    (agent.root / "logs/keep.log").write_text("v2")
    assert ("modified", "logs/keep.log") in changes(agent)
    agent.commit()
    assert git(agent.root, "show", "HEAD:logs/keep.log") == "v2"


def test_oversize_files_are_skipped_not_lost(agent: memfs.Agent) -> None:
    manifest = yaml.safe_load((agent.root / "agent.yaml").read_text())
    manifest["max_file_size"] = 1000
    (agent.root / "agent.yaml").write_text(yaml.safe_dump(manifest))
    write(agent.root, "big.bin", b"x" * 2000)
    write(agent.root, "small.md", "fits")
    agent.commit()
    tracked = git(agent.root, "ls-files").split()
    assert "small.md" in tracked and "big.bin" not in tracked
    skipped = agent.status().skipped
    assert [s.path for s in skipped] == ["big.bin"]
    assert "over the 1000 B size cap" in skipped[0].reason
    assert (agent.root / "big.bin").stat().st_size == 2000


def test_a_tracked_file_that_grows_too_large_keeps_its_last_version(agent: memfs.Agent) -> None:
    manifest = yaml.safe_load((agent.root / "agent.yaml").read_text())
    manifest["max_file_size"] = 1000
    (agent.root / "agent.yaml").write_text(yaml.safe_dump(manifest))
    write(agent.root, "grows.md", "small")
    agent.commit()
    write(agent.root, "grows.md", "y" * 5000)
    assert agent.status().clean
    assert agent.commit() is None
    assert git(agent.root, "show", "HEAD:grows.md") == "small"


def test_symlinks_leaving_the_agent_are_skipped(agent: memfs.Agent, tmp_path: Path) -> None:
    outside = write(tmp_path, "outside.txt", "private")
    os.symlink(outside, agent.root / "absolute-link")
    os.symlink("../../outside.txt", agent.root / "system/relative-link")
    os.symlink("system/human.md", agent.root / "inside-link")
    agent.commit()
    tracked = git(agent.root, "ls-files").split()
    assert "inside-link" in tracked
    assert "absolute-link" not in tracked and "system/relative-link" not in tracked
    reasons = {s.path: s.reason for s in agent.status().skipped}
    assert "absolute path" in reasons["absolute-link"]
    assert "outside the agent" in reasons["system/relative-link"]
    assert outside.read_text() == "private"


def test_nested_git_repositories_are_skipped(agent: memfs.Agent, tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", str(agent.root / "vendor/lib"))
    write(agent.root, "vendor/lib/file.md", "x")
    status = agent.status()
    assert any(s.path == "vendor/lib/.git" for s in status.skipped)


NAMES_NO_CHECKOUT_TAKES = [
    "reference/back\\slash.md",  # a checkout elsewhere refuses the whole agent over it
    "Git~1/config",
    ".GIT/hooks/post-checkout",
    "notes/.git./x.md",
    os.fsdecode(b"reference/caf\xe9.md"),  # Latin-1, not UTF-8
]


def test_what_a_checkout_would_refuse_is_never_committed(
    agent: memfs.Agent, tmp_path: Path
) -> None:
    for name in NAMES_NO_CHECKOUT_TAKES:
        write(agent.root, name, "kept on disk")
    write(agent.root, "reference/fine.md", "committed")
    agent.commit()
    tracked = git(agent.root, "ls-files", "-z").split("\0")
    assert "reference/fine.md" in tracked
    assert not [path for path in tracked if path.startswith(("Git~1", ".GIT", "notes"))]
    assert not [path for path in tracked if "\\" in path or "caf" in path]
    reasons = {s.shown: s.reason for s in agent.status().skipped}
    assert "backslash" in reasons["reference/back\\slash.md"]
    assert "not valid UTF-8" in reasons["reference/caf\\xe9.md"]
    assert {"Git~1/config", ".GIT/hooks/post-checkout", "notes/.git./x.md"} <= set(reasons)
    for name in NAMES_NO_CHECKOUT_TAKES:
        assert (agent.root / name).read_text() == "kept on disk"
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(agent.root), str(bare))
    with memfs.clone(str(bare), tmp_path / "elsewhere") as other:
        assert (other.root / "reference/fine.md").read_text() == "committed"


def test_a_tracked_file_with_a_refused_name_keeps_its_last_version(agent: memfs.Agent) -> None:
    write(agent.root, "reference/back\\slash.md", "v1")
    git(agent.root, "add", "reference/back\\slash.md")
    git(agent.root, "commit", "-q", "-m", "committed by git itself")
    write(agent.root, "reference/back\\slash.md", "v2")
    assert agent.commit() is None
    assert git(agent.root, "show", "HEAD:reference/back\\slash.md") == "v1"
    assert (agent.root / "reference/back\\slash.md").read_text() == "v2"


def test_a_tracked_file_with_a_non_utf8_name_keeps_its_last_version(agent: memfs.Agent) -> None:
    name = os.fsdecode(b"reference/caf\xe9.md")
    write(agent.root, name, "v1")
    subprocess.run(["git", "add", "--", os.fsencode(name)], cwd=agent.root, check=True)
    git(agent.root, "commit", "-q", "-m", "committed by git itself")
    write(agent.root, name, "v2")
    write(agent.root, "system/human.md", "edited\n")
    assert [s.shown for s in agent.status().skipped] == ["reference/caf\\xe9.md"]
    agent.commit()
    assert name in agent.history.tree_of(agent.history.head()), "never deleted from history"
    assert (agent.root / name).read_text() == "v2"


def test_an_invalid_ignore_line_is_a_problem_not_a_crash(agent: memfs.Agent) -> None:
    write(agent.root, ".memfsignore", "*.log\n\\\n")
    write(agent.root, "run.log", "x")
    problems = [p.render() for p in agent.status().problems]
    assert any(p.startswith(".memfsignore:2: not a valid ignore pattern") for p in problems)
    agent.commit()
    assert "run.log" not in git(agent.root, "ls-files").split()


# -- history -------------------------------------------------------------------------------


def test_log_of_a_file_follows_renames(agent: memfs.Agent) -> None:
    write(agent.root, "notes/a.md", "line one\nline two\nline three\nline four\n")
    agent.commit(message="add a")
    (agent.root / "notes/a.md").rename(agent.root / "notes/b.md")
    agent.commit(message="rename a to b")
    (agent.root / "notes/b.md").write_text("line one\nline two\nline three\nline four\nfive\n")
    agent.commit(message="edit b")
    assert [e.summary for e in agent.log("notes/b.md")] == ["edit b", "rename a to b", "add a"]
    assert [e.summary for e in agent.log(limit=2)] == ["edit b", "rename a to b"]


def test_diff_work_tree_revisions_and_paths(agent: memfs.Agent) -> None:
    (agent.root / "system/human.md").write_text("Name: Ada\n")
    work = agent.diff().decode()
    assert "--- a/system/human.md\n+++ b/system/human.md" in work
    assert "+Name: Ada" in work
    agent.commit()
    write(agent.root, "other.md", "x\n")
    agent.commit()
    both = agent.diff("HEAD~2", "HEAD").decode()
    assert "+Name: Ada" in both and "other.md" in both
    only = agent.diff("HEAD~2", "HEAD", paths=("system",)).decode()
    assert "other.md" not in only
    assert agent.split_revisions(("HEAD~1", "system/human.md")) == (
        ("HEAD~1",),
        ("system/human.md",),
    )
    with pytest.raises(RevisionNotFoundError):
        agent.split_revisions(("nope",))
    expected = git(agent.root, "diff", "HEAD~2", "HEAD", "--", "system")
    assert only == expected


def test_show_a_commit_and_a_file_at_a_revision(agent: memfs.Agent) -> None:
    original = (agent.root / "system/human.md").read_bytes()
    (agent.root / "system/human.md").write_text("v2\n")
    agent.commit()
    assert agent.show("HEAD~1:system/human.md") == original
    shown = agent.show("HEAD").decode()
    assert shown.startswith("commit ")
    assert "memfs: update system/human.md" in shown and "+v2" in shown
    with pytest.raises(PathNotFoundError):
        agent.show("HEAD:missing.md")
    with pytest.raises(RevisionNotFoundError):
        agent.show("deadbeef")


def test_restore_is_a_new_commit_and_keeps_pending_edits(agent: memfs.Agent) -> None:
    v1 = (agent.root / "system/human.md").read_text()
    (agent.root / "system/human.md").write_text("v2\n")
    agent.commit()
    (agent.root / "system/human.md").write_text("v3, never committed\n")
    info = agent.restore("system/human.md", to="HEAD~1")
    assert info is not None and info.summary.startswith("memfs: restore system/human.md to ")
    assert (agent.root / "system/human.md").read_text() == v1
    summaries = [e.summary for e in agent.log()]
    assert summaries[1] == "memfs: update system/human.md", "the pending edit was committed first"
    assert agent.show("HEAD~1:system/human.md") == b"v3, never committed\n"
    assert_git_agrees(agent.root)


def test_restore_a_folder_and_errors(agent: memfs.Agent) -> None:
    first = agent.history.head()
    write(agent.root, "system/extra.md", "added later")
    (agent.root / "system/human.md").write_text("changed")
    agent.commit()
    agent.restore("system", to=first)  # type: ignore[arg-type]
    assert not (agent.root / "system/extra.md").exists()
    assert "changed" not in (agent.root / "system/human.md").read_text()
    with pytest.raises(PathNotFoundError):
        agent.restore("never/existed.md", to="HEAD")
    with pytest.raises(RevisionNotFoundError):
        agent.restore("system/human.md", to="no-such-rev")


def test_revert_undoes_one_commit_and_refuses_conflicts(agent: memfs.Agent) -> None:
    write(agent.root, "a.md", "one\ntwo\nthree\n")
    agent.commit(message="add a")
    write(agent.root, "b.md", "b\n")
    agent.commit(message="add b")
    info = agent.revert("HEAD~1")
    assert info is not None and info.summary == 'memfs: revert "add a"'
    assert not (agent.root / "a.md").exists()
    assert (agent.root / "b.md").exists()
    assert_git_agrees(agent.root)

    write(agent.root, "c.md", "one\ntwo\n")
    agent.commit(message="c v1")
    write(agent.root, "c.md", "one\nTWO\n")
    agent.commit(message="c v2")
    write(agent.root, "c.md", "one\nTwo!\n")
    agent.commit(message="c v3")
    head = agent.history.head()
    with pytest.raises(RevertConflictError, match=r"c\.md"):
        agent.revert("HEAD~1")
    assert agent.history.head() == head
    assert (agent.root / "c.md").read_text() == "one\nTwo!\n"


# -- the lock ------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import memfs

    root, name, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    agent = memfs.open(root)
    with open(out, "w") as results:
        for i in range(count):
            Path(root, f"writer-{name}.md").write_text(f"{name} edit {i}\\n")
            info = agent.commit(message=f"{name} {i}")
            if info is not None:
                results.write(info.sha + "\\n")
                results.flush()
    """
)


def test_concurrent_committers_never_lose_a_commit(agent: memfs.Agent, tmp_path: Path) -> None:
    script = write(tmp_path, "writer.py", WRITER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(agent.root), str(n), "15", str(tmp_path / f"out-{n}")]
        )
        for n in range(4)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    returned = [sha for n in range(4) for sha in (tmp_path / f"out-{n}").read_text().split()]
    history = set(git(agent.root, "rev-list", "HEAD").split())
    assert len(returned) >= 4
    assert set(returned) <= history, "a commit that returned success is missing from history"
    for n in range(4):
        assert (agent.root / f"writer-{n}.md").read_text() == f"{n} edit 14\n"
    assert agent.status().clean
    assert_git_agrees(agent.root)


def test_stale_git_lock_files_never_lose_an_edit(agent: memfs.Agent) -> None:
    (agent.root / ".git/index.lock").write_text("")
    (agent.root / "system/human.md").write_text("edit one")
    assert agent.commit() is not None, "a locked index is only a cache miss"
    # a ref lock left by a crash (older than any live git command holds one) is cleared
    branch_lock = agent.root / ".git/refs/heads/main.lock"
    branch_lock.write_text("")
    os.utime(branch_lock, (time.time() - 60, time.time() - 60))
    (agent.root / "system/human.md").write_text("edit two")
    assert agent.commit() is not None
    assert not branch_lock.exists()
    assert agent.history.file_at(agent.history.head(), "system/human.md") == b"edit two"
    (agent.root / ".git/index.lock").unlink()
    (agent.root / "system/human.md").write_text("edit three")
    assert agent.commit() is not None
    assert_git_agrees(agent.root)


def test_a_stale_loose_object_lock_never_blocks_a_commit(agent: memfs.Agent) -> None:
    """A kill while dulwich wrote a loose object leaves ``objects/xx/<sha>.lock``: the same
    content committed again (a revert, a merge) must clear it, not fail with exit 9 forever
    (found by test_crash under load)."""
    content = b"edit that a killed commit was writing\n"
    sha = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    lock = agent.root / ".git/objects" / sha[:2] / f"{sha[2:]}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_bytes(b"half")
    os.utime(lock, (time.time() - 60, time.time() - 60))
    (agent.root / "system/human.md").write_bytes(content)
    assert agent.commit() is not None
    assert not lock.exists()
    assert agent.history.file_at(agent.history.head(), "system/human.md") == content
    assert_git_agrees(agent.root)


def test_init_in_an_empty_git_repo(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "trunk", str(tmp_path / "empty"))
    agent = memfs.init(tmp_path / "empty")
    assert agent.history.branch() == "trunk"
    assert set(agent.memory) == {"system/persona", "system/human"}
    assert_git_agrees(agent.root)


def test_memory_edits_through_repeated_lookups_are_saved(agent: memfs.Agent) -> None:
    agent.memory["system/human"].value = "Name: Ada\n"
    agent.memory["system/human"].save()
    assert agent.memory["system/human"].value == "Name: Ada\n"
    assert "Name: Ada\n" in (agent.root / "system/human.md").read_text()
    write(agent.root, "system/human.md", "---\ndescription: changed on disk\n---\nby an editor\n")
    assert agent.memory["system/human"].value == "by an editor\n", "a changed file is read afresh"


@pytest.mark.parametrize(
    "bad",
    ["notes/..", "notes/.git", "notes/.GIT", "notes/git~1", "notes/a\\b", "notes/", "link/x.md"],
)
def test_an_unsafe_path_is_refused_even_among_safe_ones_in_its_folder(
    tmp_path: Path, bad: str
) -> None:
    from memfs.errors import UnsafePathError
    from memfs.pathcheck import check_incoming_tree
    from memfs.trees import MODE_SYMLINK

    entries = {f"notes/n{i}.md": (0o100644, b"x") for i in range(5)}
    entries["link"] = (MODE_SYMLINK, b"notes")
    entries[bad] = (0o100644, b"payload")
    with pytest.raises(UnsafePathError):
        check_incoming_tree(tmp_path, entries)
    del entries[bad]
    check_incoming_tree(tmp_path, entries)  # the rest is fine


def test_status_works_where_memfs_cannot_write_its_state(agent: memfs.Agent) -> None:
    """As on a read-only agent: the caches of status cannot be written, status still works."""
    import shutil

    shutil.rmtree(agent.history.control_dir / "memfs", ignore_errors=True)
    (agent.history.control_dir / "memfs").write_text("a file where the state folder would be")
    write(agent.root, "system/human.md", "edited\n")
    write(agent.root, "notes/q.md", "<<<<<<< mine\nx\n=======\ny\n>>>>>>> theirs\n")
    status = agent.status()
    assert ("modified", "system/human.md") in changes(agent)
    assert [c.path for c in status.conflicts] == ["notes/q.md"]
    assert agent.check() == []
