"""A bucket's compaction appends to its base pack with deltas (memfs.compaction): the base's
bytes kept, the history smaller, clones git fsck clean; a base that is not whole is rebuilt."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.remotes.configure import add_remote

from .conftest import git, write


def folder_agent(tmp_path: Path) -> tuple[memfs.Agent, Path, str]:
    """An agent with a folder cloud remote; the cloud's folder and URL."""
    cloud = tmp_path / "cloud" / "agent"
    agent = memfs.init(tmp_path / "agent", name="agent")
    url = f"memfs::{cloud.as_uri()}"
    add_remote(agent.history, "origin", url)
    return agent, cloud, url


def edit_and_push(agent: memfs.Agent, n: int) -> None:
    """One watcher cycle: a one-file edit in a 60-entry folder, committed and pushed."""
    write(agent.root, f"reference/note-{n % 60:02d}.md", f"---\ndescription: d\n---\nedit {n}\n")
    agent.commit()
    assert sync.push(agent).ok


def listed(cloud: Path) -> list[str]:
    return json.loads((cloud / "manifest.json").read_text())["packs"]


def pack_bytes(cloud: Path, name: str) -> bytes:
    return (cloud / "packs" / f"{name}.pack").read_bytes()


def verify_pack(idx: Path) -> str:
    return subprocess.run(
        ["git", "verify-pack", "-v", str(idx)], check=True, capture_output=True, text=True
    ).stdout


def test_compaction_keeps_the_base_and_appends_deltas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMFS_COMPACT_PACKS", "8")
    agent, cloud, url = folder_agent(tmp_path)
    for i in range(60):
        write(agent.root, f"reference/note-{i:02d}.md", f"---\ndescription: d\n---\nfact {i}\n")
    agent.commit()
    assert sync.push(agent).ok
    bases = [listed(cloud)[0]]
    for n in range(40):
        edit_and_push(agent, n)
        if listed(cloud)[0] != bases[-1]:
            bases.append(listed(cloud)[0])
    assert len(bases) >= 4, "compacted every 8 pushes or so"
    for old, new in itertools.pairwise(bases):
        assert pack_bytes(cloud, new)[12:].startswith(pack_bytes(cloud, old)[12:-20])
    last = cloud / "packs" / f"{bases[-1]}.idx"
    shown = verify_pack(last)
    deltas = [line for line in shown.splitlines() if " tree " in line and len(line.split()) > 5]
    assert len(deltas) >= 20, "the folder's tree is stored as deltas"
    whole = agent.history.pack_between([agent.history.head() or ""], [])
    assert whole is not None
    assert len(pack_bytes(cloud, bases[-1])) * 2 < len(whole.pack)
    fresh = sync.clone(url, tmp_path / "fresh")
    assert fresh.history.head() == agent.history.head()
    assert (fresh.root / "reference/note-39.md").read_text().endswith("edit 39\n")
    git(fresh.root, "fsck", "--strict")
    assert len(git(fresh.root, "rev-list", "--all").split()) == 42


def test_a_compactor_without_the_base_reads_it_from_the_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine B compacts after A did: B has A's base pack's objects under another pack,
    so it reads the base from the bucket, and appends to it."""
    monkeypatch.setenv("MEMFS_COMPACT_PACKS", "4")
    a, cloud, url = folder_agent(tmp_path)
    assert sync.push(a).ok
    for n in range(6):
        edit_and_push(a, n)
    base = listed(cloud)[0]
    b = sync.clone(url, tmp_path / "b")
    for n in range(6, 12):
        edit_and_push(b, n)
    now = listed(cloud)[0]
    assert now != base
    assert pack_bytes(cloud, now)[12:].startswith(pack_bytes(cloud, base)[12:-20])
    assert sync.pull(a).ok
    fresh = sync.clone(url, tmp_path / "fresh")
    assert fresh.history.head() == b.history.head() == a.history.head()
    git(fresh.root, "fsck", "--strict")


def test_a_first_pack_that_is_not_whole_is_rebuilt_not_appended_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest whose first pack is one push's (its commit's unchanged folders are in
    other packs): appending to it would lose them; the compaction packs everything again."""
    agent, cloud, url = folder_agent(tmp_path)
    assert sync.push(agent).ok
    for n in range(3):
        edit_and_push(agent, n)
    manifest = json.loads((cloud / "manifest.json").read_text())
    manifest["packs"] = manifest["packs"][1:] + manifest["packs"][:1]  # a push's pack first
    (cloud / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("MEMFS_COMPACT_PACKS", "1")
    edit_and_push(agent, 3)
    (compacted,) = listed(cloud)
    fresh = sync.clone(url, tmp_path / "fresh")
    assert fresh.history.head() == agent.history.head()
    git(fresh.root, "fsck", "--strict")
    assert compacted in {p.stem for p in (fresh.root / ".git/objects/pack").glob("*.pack")}
