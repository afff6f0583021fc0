"""A clone killed before its unfinished marker (memfs.checkout) is finished by the next one.

Found from outside (review11 F06): a clone killed between making the folder's ``.git`` and
writing ``.git/memfs/checkout.json`` left a folder holding only a fresh ``.git``; running the
same clone again refused ("already exists and is not an empty folder"), though the README
says to run it again. A folder holding nothing but such a repository (dulwich's layout, no
ref, no object) is taken over; an empty repository git made is not.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import memfs
from memfs.remotes import add_remote
from memfs.sync import push

from .conftest import memfs_process


def test_a_clone_killed_before_its_marker_is_finished_by_the_next(tmp_path: Path) -> None:
    url = f"memfs::{(tmp_path / 'cloud' / 'garden').as_uri()}"
    with memfs.init(tmp_path / "garden", name="garden") as agent:
        add_remote(agent.history, "origin", url)
        assert push(agent).ok
        head = agent.history.head()
    target = tmp_path / "copy"
    killed = memfs_process("clone", url, str(target), crash_at="clone.created")
    assert killed.returncode == -9
    assert [p.name for p in target.iterdir()] == [".git"]
    done = memfs_process("clone", url, str(target))
    assert done.returncode == 0, done.stderr
    with memfs.open(target) as copy:
        assert copy.history.head() == head and copy.status().clean


def test_an_empty_repository_git_made_is_not_taken_over(tmp_path: Path) -> None:
    url = f"memfs::{(tmp_path / 'cloud' / 'garden').as_uri()}"
    with memfs.init(tmp_path / "garden", name="garden") as agent:
        add_remote(agent.history, "origin", url)
        assert push(agent).ok
    target = tmp_path / "mine"
    subprocess.run(["git", "init", "-q", str(target)], check=True)
    done = memfs_process("clone", url, str(target))
    assert done.returncode == 1 and "already exists and is not an empty folder" in done.stderr
    assert (target / ".git" / "description").exists()
