"""A cloud whose newest pack lacks an object the pushed commit names (a pusher's bug, or
anyone with write access to the store): the pull is refused as the remote's fault (exit 7),
no ref names the incomplete commit, and the local repository stays whole.

Found from outside (session 10): the pull moved the remote-tracking ref onto the incomplete
commit and exited 9, blaming the local repository, whose `git fsck` then failed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import git, write
from .harness import memfs_command
from .test_damaged_push import _env


@pytest.mark.parametrize("lacking", ["the edited file", "its folder's tree"])
def test_a_pull_of_a_commit_whose_objects_are_in_no_pack_is_refused_as_the_remotes(
    tmp_path: Path, lacking: str
) -> None:
    env = _env(tmp_path)
    cloud = tmp_path / "cloud"

    def memfs(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            memfs_command(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    assert memfs(a, "init", ".", "--name", "incomplete").returncode == 0
    write(a, "memory/a.md", "one\n")
    assert memfs(a, "commit", "-m", "c").returncode == 0
    assert memfs(a, "remote", "add", "origin", "memfs::" + cloud.as_uri()).returncode == 0
    assert memfs(a, "push").returncode == 0
    assert memfs(tmp_path, "clone", "memfs::" + cloud.as_uri(), str(b)).returncode == 0
    write(a, "memory/a.md", "one\ntwo\n")
    assert memfs(a, "push").returncode == 0
    # the newest pack rebuilt by git with its commit and trees but another blob
    manifest = json.loads((cloud / "manifest.json").read_text())
    newest = max((cloud / "packs").glob("*.pack"), key=lambda p: p.stat().st_mtime_ns)
    scratch = tmp_path / "scratch"
    git(tmp_path, "init", "-q", str(scratch))
    subprocess.run(
        ["git", "-C", str(scratch), "unpack-objects", "-q"],
        stdin=newest.open("rb"),
        check=True,
        timeout=60,
    )
    listing = git(scratch, "cat-file", "--batch-all-objects", "--batch-check")
    if lacking == "the edited file":  # its commit and trees, and another blob
        kept = [line.split()[0] for line in listing.splitlines() if line.split()[1] != "blob"]
    else:  # everything but the tree of memory/, which names the edited file
        folder = git(a, "rev-parse", "HEAD:memory").strip()
        kept = [line.split()[0] for line in listing.splitlines() if line.split()[0] != folder]
    evil = subprocess.run(
        ["git", "-C", str(scratch), "hash-object", "-w", "--stdin"],
        input="EVIL\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pack = subprocess.run(
        ["git", "-C", str(scratch), "pack-objects", "-q", "--stdout"],
        input=("\n".join([*kept, evil]) + "\n").encode(),
        capture_output=True,
        check=True,
    ).stdout
    name = "pack-" + pack[-20:].hex()
    newest.unlink()
    newest.with_suffix(".idx").unlink(missing_ok=True)
    (cloud / "packs" / f"{name}.pack").write_bytes(pack)
    text = (cloud / "manifest.json").read_text().replace(newest.stem, name)
    (cloud / "manifest.json").write_text(text)
    assert json.loads(text)["refs"] == manifest["refs"]
    tracking_before = git(b, "rev-parse", "refs/remotes/origin/main").strip()

    pulled = memfs(b, "pull")
    assert pulled.returncode == 7, (pulled.stdout, pulled.stderr)
    assert "incomplete" in pulled.stderr and "Traceback" not in pulled.stderr
    assert git(b, "rev-parse", "refs/remotes/origin/main").strip() == tracking_before
    git(b, "fsck", "--strict")  # the local repository is whole
    assert (b / "memory/a.md").read_text() == "one\n"
    assert memfs(b, "status").returncode == 0
