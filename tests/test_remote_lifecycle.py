"""Where remotes are and what a push or a checkout does to folders: relative URLs, pushes into
agent folders, mount's SOURCE rule, unrelated histories, and clones killed midway."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.checkout import MARKER
from memfs.errors import RemoteError
from memfs.history import History
from memfs.remotes import list_remotes
from memfs.remotes.configure import add_remote
from memfs.remotes.git import GitRemote

from .conftest import assert_git_agrees, git, memfs_process, run_cli, write
from .servers import bare_repo
from .test_sync import contents

# -- item 7: relative URLs --------------------------------------------------------------------


def test_a_relative_remote_path_is_relative_to_the_agent_not_the_caller(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    agent = memfs.init(tmp_path / "agent", name="agent")
    assert run_cli("-C", str(agent.root), "remote", "add", "origin", "../hub.git").exit_code == 0
    elsewhere = tmp_path / "deep" / "er"
    elsewhere.mkdir(parents=True)
    result = run_cli("-C", str(agent.root), "push", cwd=elsewhere)
    assert result.exit_code == 0, result.stderr
    assert git(hub, "rev-parse", "main").strip() == agent.history.head()
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "deep" / "hub.git").exists()
    assert git(agent.root, "remote", "get-url", "origin").strip() == "../hub.git", "as git has it"


def test_clone_stores_a_relative_path_absolute(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    with memfs.init(tmp_path / "agent", name="agent") as agent:
        add_remote(agent.history, "origin", str(hub))
        assert sync.push(agent).ok
    work = tmp_path / "work"
    work.mkdir()
    assert run_cli("clone", "../hub.git", "copy", cwd=work).exit_code == 0
    with memfs.open(work / "copy") as copy:
        assert [r.url for r in list_remotes(copy.history)] == [str(hub)]
        write(copy.root, "notes.md", "from the copy\n")
        assert sync.sync(copy).ok, "the stored URL works from inside the agent"
    assert "notes.md" in git(hub, "ls-tree", "--name-only", "main")


# -- item 6: pushing into a folder with its files checked out -----------------------------------


def test_a_push_into_an_agent_folder_merges_there_and_is_never_undone(tmp_path: Path) -> None:
    source = memfs.init(tmp_path / "src", name="src")
    assert run_cli("clone", "./src", "copy", cwd=tmp_path).exit_code == 0
    copy = memfs.open(tmp_path / "copy")
    write(copy.root, "system/human.md", "pushed from the copy\n")
    write(source.root, "reference/local.md", "an edit in the source, not committed yet\n")
    result = run_cli("-C", str(copy.root), "push")
    assert result.exit_code == 0, result.stderr
    assert (source.root / "system/human.md").read_text() == "pushed from the copy\n"
    source.commit()  # the source's next commit...
    assert (source.root / "system/human.md").read_text() == "pushed from the copy\n"
    assert source.history.file_at(source.history.head(), "system/human.md") == (
        b"pushed from the copy\n"
    ), "...keeps the pushed edit"
    assert (source.root / "reference/local.md").exists(), "the source's own edit is kept"
    assert_git_agrees(source.root)
    assert sync.sync(copy).ok
    assert contents(copy) == contents(source)


def test_git_remote_refuses_to_move_a_checked_out_branch(tmp_path: Path) -> None:
    source = memfs.init(tmp_path / "src", name="src")
    copy = sync.clone(str(source.root), tmp_path / "copy")
    write(copy.root, "x.md", "x\n")
    copy.commit()
    before = source.history.head()
    with pytest.raises(RemoteError, match="checked out with its files"):
        GitRemote(str(source.root)).push(copy.history, "main", copy.history.head(), before)
    with pytest.raises(RemoteError, match="checked out with its files"):
        GitRemote(str(source.root / ".git")).push(copy.history, "main", copy.history.head(), before)
    assert source.history.head() == before


def test_mount_reads_a_bare_name_as_a_cloud_agent_never_a_folder(tmp_path: Path) -> None:
    cloud_agent = memfs.init(tmp_path / "laptop" / "garden", name="garden")
    write(cloud_agent.root, "from-cloud.md", "cloud\n")
    assert sync.push(cloud_agent).ok  # into the default cloud
    here = tmp_path / "here"
    folder = memfs.init(here / "garden", name="garden")
    write(folder.root, "from-folder.md", "folder\n")
    folder.commit()
    result = run_cli("mount", "garden", str(tmp_path / "m1"), "--rev", "HEAD", cwd=here)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "m1/from-cloud.md").exists() and not (
        tmp_path / "m1/from-folder.md"
    ).exists()
    result = run_cli("mount", "./garden", str(tmp_path / "m2"), "--rev", "HEAD", cwd=here)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "m2/from-folder.md").exists() and not (
        tmp_path / "m2/from-cloud.md"
    ).exists()
    memfs.init(here / "orchard", name="orchard")
    result = run_cli("mount", "orchard", str(tmp_path / "m3"), cwd=here)
    assert result.exit_code == 7
    assert "no agent 'orchard' in the cloud; to mount the folder, write ./orchard" in result.stderr


# -- item 9: unrelated histories ---------------------------------------------------------------


def _twin(tmp_path: Path, hub: Path) -> memfs.Agent:
    """An agent with the same identity as the one in ``hub`` but a history of its own."""
    original = sync.clone(str(hub), tmp_path / "original")
    twin = memfs.init(tmp_path / "twin", name=original.name)
    (twin.root / "agent.yaml").write_bytes((original.root / "agent.yaml").read_bytes())
    git(twin.root, "commit", "-qm", "the original's id", "agent.yaml")  # memfs holds an id change
    write(twin.root, "system/human.md", "the twin's own version\n")
    twin.commit()
    add_remote(twin.history, "origin", str(hub))
    return twin


@pytest.mark.parametrize("command", ["pull", "sync", "push"])
def test_unrelated_histories_are_refused_unless_asked(tmp_path: Path, command: str) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    with memfs.init(tmp_path / "a", name="a") as first:
        add_remote(first.history, "origin", str(hub))
        assert sync.push(first).ok
    remote_head = git(hub, "rev-parse", "main").strip()
    twin = _twin(tmp_path, hub)
    mine = twin.history.head()
    result = run_cli("-C", str(twin.root), command)
    assert result.exit_code == 6, result.stderr
    assert "share no history; nothing was merged" in result.stderr
    assert twin.history.head() == mine and git(hub, "rev-parse", "main").strip() == remote_head
    assert not list(twin.root.rglob("*.conflict-*"))
    result = run_cli("-C", str(twin.root), command, "--allow-unrelated-histories")
    assert result.exit_code == 0, result.stderr
    assert set(twin.history.merge_bases(twin.history.head(), remote_head)) == {remote_head}


def test_new_agents_and_empty_remotes_are_not_unrelated(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    agent = memfs.init(tmp_path / "a", name="a")
    add_remote(agent.history, "origin", str(hub))
    assert sync.sync(agent).ok, "a new agent pushing to an empty remote"
    empty = tmp_path / "empty"
    git(tmp_path, "init", "-q", "-b", "main", str(empty))
    fresh = memfs.Agent(empty, History.open(empty))
    config = add_remote(fresh.history, "origin", str(hub))
    outcome, _ = sync.integrate(fresh, sync.fetch_remote(fresh, config), "origin")
    assert outcome == "fast-forward", "an agent with no commit simply takes the remote's"
    assert fresh.history.head() == agent.history.head()


# -- item 9: a clone or checkout killed midway ---------------------------------------------------


def _memfs(
    *args: str, crash_at: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return memfs_process(*args, cwd=cwd, crash_at=crash_at)


def _published(tmp_path: Path) -> tuple[memfs.Agent, Path]:
    hub = bare_repo(tmp_path / "hub.git")
    agent = memfs.init(tmp_path / "laptop" / "garden", name="garden")
    for i in range(5):
        write(agent.root, f"reference/note-{i}.md", f"note {i}\n")
    add_remote(agent.history, "origin", str(hub))
    assert sync.push(agent).ok
    return agent, hub


@pytest.mark.parametrize("kind", ["clone", "checkout"])
def test_a_checkout_killed_midway_is_recognised_and_finished(tmp_path: Path, kind: str) -> None:
    laptop, hub = _published(tmp_path)
    if kind == "checkout":
        add_remote(laptop.history, "cloud", f"memfs::{(tmp_path / 'cloud').as_uri()}/garden")
        assert sync.push(laptop, "cloud").ok
        command = ["checkout", "garden", "--cloud", (tmp_path / "cloud").as_uri()]
    else:
        command = ["clone", str(hub)]
    target = tmp_path / "sandbox"
    killed = _memfs(*command, str(target), crash_at="checkout.write:3")
    assert killed.returncode == -9, killed.stderr
    assert (target / MARKER).exists() and not (target / "agent.yaml").exists()
    for args in (["status"], ["commit"], ["sync"], ["log"]):
        result = _memfs("-C", str(target), *args)
        assert result.returncode == 3, (args, result.stderr)
        assert "is an unfinished checkout of" in result.stderr and "again" in result.stderr
    inside = _memfs("status", cwd=target / "reference")
    assert inside.returncode == 3 and "unfinished checkout" in inside.stderr
    adopted = _memfs("init", str(target))
    assert adopted.returncode == 3 and "unfinished checkout" in adopted.stderr
    finished = _memfs(*command, str(target))
    assert finished.returncode == 0, finished.stderr
    assert not (target / MARKER).exists()
    with memfs.open(target) as agent:
        assert contents(agent) == contents(laptop)
        assert agent.history.head() == laptop.history.head()
        assert sync.sync(agent).ok
    assert_git_agrees(target)
    assert git(hub, "rev-list", "--max-parents=0", "main").strip().count("\n") == 0, "one root"


def test_a_second_clone_never_deletes_what_was_put_in_the_unfinished_folder(tmp_path: Path) -> None:
    _, hub = _published(tmp_path)
    target = tmp_path / "sandbox"
    assert _memfs("clone", str(hub), str(target), crash_at="checkout.write:4").returncode == -9
    write(target, "reference/mine.md", "written by someone since\n")
    refused = _memfs("clone", str(hub), str(target))
    assert refused.returncode == 1
    assert "reference/mine.md is not what it wrote" in refused.stderr
    assert (target / "reference/mine.md").read_text() == "written by someone since\n"
    (target / "reference/mine.md").unlink()
    assert _memfs("clone", str(hub), str(target)).returncode == 0


def test_a_url_memfs_refuses_is_still_listed_and_refused_only_when_used(tmp_path: Path) -> None:
    agent = memfs.init(tmp_path / "agent", name="agent")
    git(agent.root, "remote", "add", "odd", "::")  # written by git, not memfs
    listed = run_cli("-C", str(agent.root), "remote", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert '"kind": "invalid"' in listed.output
    pushed = run_cli("-C", str(agent.root), "push", "odd")
    assert pushed.exit_code == 7 and "neither a local path nor" in pushed.stderr


def test_a_clone_killed_at_every_write_is_finished_by_the_next(tmp_path: Path) -> None:
    with memfs.init(tmp_path / "laptop" / "garden", name="garden") as laptop:
        hub = bare_repo(tmp_path / "hub.git")
        add_remote(laptop.history, "origin", str(hub))
        assert sync.push(laptop).ok
        expected, files = contents(laptop), len(laptop.worktree_files())
    points = [f"checkout.write:{n}" for n in range(1, files + 1)] + ["checkout.finish"]
    for point in points:
        target = tmp_path / point.replace(":", "-")
        assert _memfs("clone", str(hub), str(target), crash_at=point).returncode == -9, point
        assert _memfs("-C", str(target), "sync").returncode == 3, point
        finished = _memfs("clone", str(hub), str(target))
        assert finished.returncode == 0, (point, finished.stderr)
        with memfs.open(target) as agent:
            assert contents(agent) == expected, point
    assert git(hub, "rev-list", "--count", "main").strip() == "1", "nothing was pushed back"
