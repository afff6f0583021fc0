"""The push guard (review11 F12): a commit another tool made (Letta Code's memory tool, git)
holding a secret's value is refused by the push before anything is uploaded, naming the
secret and the path, never the value; the local repository and the cloud are untouched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import memfs
from memfs.remotes import add_remote
from memfs.secrets.outgoing import SecretInPushError
from memfs.sync import push

from .harness import fresh_python, git, memfs_command
from .secretsfix import agent_with_secrets

VALUE = "sk-live-0123456789abcdef"


def _commit_with_git(root: Path, path: str, text: str) -> str:
    """What Letta Code's memory tool does: write a file and commit it with git itself."""
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)
    git(root, "add", path)
    git(root, "commit", "-q", "-m", f"Update memory: {path}")
    return git(root, "rev-parse", "HEAD").strip()


def _cloud_files(cloud: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cloud)): p.read_bytes() for p in cloud.rglob("*") if p.is_file()}


def test_push_refuses_a_git_commit_holding_a_secret_value(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"OPENAI_API_KEY": VALUE})
    cloud = tmp_path / "cloud" / "keeper"
    before_cloud = _cloud_files(cloud)
    head = _commit_with_git(root, "system/keys.md", f"openai: {VALUE}\n")
    done = subprocess.run(
        memfs_command("-C", str(root), "push"),
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "OPENAI_API_KEY" in lines[0] and "system/keys.md" in lines[0]
    assert head[:12] in lines[0] and "nothing was pushed" in lines[0]
    assert VALUE not in done.stdout + done.stderr
    assert _cloud_files(cloud) == before_cloud  # no pack, no manifest change: nothing uploaded
    assert git(root, "rev-parse", "HEAD").strip() == head  # the local repository untouched
    # the way out: the commit rewritten without the value, then the push goes through
    git(root, "reset", "-q", "--hard", "HEAD~1")
    with memfs.open(root) as agent:
        assert push(agent).ok
    assert VALUE.encode() not in b"".join(_cloud_files(cloud).values())


def test_push_to_git_remote_is_guarded_too_and_plain_agents_are_not(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    with memfs.open(root) as agent:
        add_remote(agent.history, "mirror", str(bare))
        _commit_with_git(root, "notes/old.md", f"key {VALUE} (moved later)\n")
        git(root, "rm", "-q", "notes/old.md")
        git(root, "commit", "-q", "-m", "remove it again")  # still in the history pushed
        with pytest.raises(SecretInPushError) as caught:
            push(agent, remote="mirror")
        assert "API_KEY" in str(caught.value) and "notes/old.md" in str(caught.value)
        assert VALUE not in str(caught.value)
    assert git(bare, "for-each-ref").strip() == ""
    with memfs.init(tmp_path / "plain", name="plain") as plain:
        (plain.root / "notes.md").write_text(f"not a secret here: {VALUE}\n")
        add_remote(plain.history, "origin", "memfs::" + (tmp_path / "cloud2").as_uri())
        assert push(plain).ok
        assert plain.history.outgoing_check is None
        (plain.root / "notes.md").write_text("more\n")
    probe = (
        "import sys, memfs\n"
        "from memfs.sync import push\n"
        f"with memfs.open({str(tmp_path / 'plain')!r}) as agent:\n"
        "    assert push(agent).ok\n"
        "print(sorted(m for m in sys.modules if m.startswith('memfs.secrets.')))\n"
    )
    assert "outgoing" not in fresh_python(probe)  # a plain agent's push pays a stat


def test_whole_entries_reused_from_local_packs_are_checked_too(tmp_path: Path) -> None:
    """A pack of 64 objects or more copies whole entries out of the local packs without
    reading them (packwrite.LocalPacks): the guard inflates those too."""
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    for i in range(70):
        (root / "notes" / f"n{i}.md").parent.mkdir(exist_ok=True)
        (root / "notes" / f"n{i}.md").write_text(f"note {i}\n")
    _commit_with_git(root, "system/keys.md", f"key: {VALUE}\n")
    git(root, "repack", "-a", "-d", "-q")  # every object whole in one local pack
    second = tmp_path / "second"
    with memfs.open(root) as agent:
        add_remote(agent.history, "second", "memfs::" + second.as_uri())
        with pytest.raises(SecretInPushError) as caught:
            push(agent, remote="second")
    assert "system/keys.md" in str(caught.value) and VALUE not in str(caught.value)
    assert not list(second.rglob("*.pack"))  # nothing uploaded
