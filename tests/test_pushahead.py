"""A push uploads what is committed already before its own commit runs (memfs.outgoing.
upload_ahead): on moto's S3, the pack goes up once and is the one listed; when that commit
moves the branch, the early pack is left unlisted and both commits still arrive."""

from __future__ import annotations

import json
from pathlib import Path

import memfs
from memfs import sync
from memfs.remotes.configure import add_remote

from .conftest import S3Bucket, git, write


def pushed_agent(tmp_path: Path, s3: S3Bucket) -> memfs.Agent:
    agent = memfs.init(tmp_path / "agent", name="ahead")
    write(agent.root, "reference/a/b/x.md", "---\ndescription: x\n---\nx\n")
    add_remote(agent.history, "origin", s3.url("ahead"))
    assert sync.push(agent).ok
    return agent


def listed_packs(s3: S3Bucket) -> set[str]:
    body = s3.client.get_object(Bucket=s3.name, Key="ahead/manifest.json")["Body"].read()  # type: ignore[attr-defined]
    return set(json.loads(body)["packs"])


def stored_packs(s3: S3Bucket) -> set[str]:
    listing = s3.client.list_objects_v2(Bucket=s3.name, Prefix="ahead/packs/")  # type: ignore[attr-defined]
    return {Path(o["Key"]).stem for o in listing.get("Contents", []) if o["Key"].endswith(".pack")}


def test_a_push_after_a_commit_uploads_its_pack_once(tmp_path: Path, s3: S3Bucket) -> None:
    agent = pushed_agent(tmp_path, s3)
    write(agent.root, "reference/a/b/x.md", "---\ndescription: x\n---\nedited\n")
    agent.commit()
    s3.server.requests.clear()
    assert sync.push(agent).remotes[0].pushed == "pushed"
    assert s3.server.count("PUT", "/packs/") == 2  # the pack and its index, once
    assert stored_packs(s3) == listed_packs(s3)
    clone = sync.clone(s3.url("ahead"), tmp_path / "clone")
    assert (clone.root / "reference/a/b/x.md").read_text().endswith("edited\n")
    git(clone.root, "fsck", "--strict", "--no-progress")


def test_a_commit_made_by_the_push_itself_still_arrives(tmp_path: Path, s3: S3Bucket) -> None:
    agent = pushed_agent(tmp_path, s3)
    write(agent.root, "reference/a/b/x.md", "---\ndescription: x\n---\ncommitted\n")
    agent.commit()
    write(agent.root, "reference/a/b/y.md", "---\ndescription: y\n---\nnot yet\n")
    report = sync.push(agent)
    assert report.committed is not None and report.remotes[0].pushed == "pushed"
    unlisted = stored_packs(s3) - listed_packs(s3)
    assert len(unlisted) == 1  # the pack uploaded ahead, for the commit before this one
    clone = sync.clone(s3.url("ahead"), tmp_path / "clone")
    assert clone.history.head() == agent.history.head()
    assert (clone.root / "reference/a/b/x.md").read_text().endswith("committed\n")
    assert (clone.root / "reference/a/b/y.md").read_text().endswith("not yet\n")
    git(clone.root, "fsck", "--strict", "--no-progress")


def test_a_pull_downloads_the_new_pack_once_while_it_commits(tmp_path: Path, s3: S3Bucket) -> None:
    agent = pushed_agent(tmp_path, s3)
    other = memfs.open(sync.clone(s3.url("ahead"), tmp_path / "other").root)
    write(agent.root, "reference/a/b/x.md", "---\ndescription: x\n---\nfrom a\n")
    assert sync.push(agent).ok
    s3.server.requests.clear()
    write(other.root, "reference/a/b/y.md", "---\ndescription: y\n---\nlocal\n")  # a commit
    report = sync.pull(other)
    assert report.ok and report.committed is not None
    assert s3.server.count("GET", ".pack") == 1 and s3.server.count("GET", ".idx") == 0
    assert (other.root / "reference/a/b/x.md").read_text().endswith("from a\n")
    assert (other.root / "reference/a/b/y.md").read_text().endswith("local\n")
    git(other.root, "fsck", "--strict", "--no-progress")
    s3.server.requests.clear()
    assert sync.pull(other).remotes[0].integrated == "up to date"
    assert s3.server.count("GET", "/packs/") == 0  # the branch did not move: nothing ahead


def test_download_ahead_holds_the_packs_the_fetch_lacks(tmp_path: Path, s3: S3Bucket) -> None:
    agent = pushed_agent(tmp_path, s3)
    other = memfs.open(sync.clone(s3.url("ahead"), tmp_path / "other").root)
    write(agent.root, "reference/a/b/x.md", "---\ndescription: x\n---\nfrom a\n")
    assert sync.push(agent).ok
    new = listed_packs(s3) - set(
        p.stem for p in (other.history.control_dir / "objects" / "pack").glob("*.pack")
    )
    remote = sync.open_for(other, sync.get_remote(other.history, "origin"))
    seen = other.history.ref("refs/remotes/origin/main")
    remote.prefetch((other.history, "main", seen))  # type: ignore[attr-defined]
    remote.settle()  # type: ignore[attr-defined]
    held = remote.take_downloaded(sorted(new))  # type: ignore[attr-defined]
    assert set(held) == new and all(data.startswith(b"PACK") for data in held.values())
    assert remote.take_downloaded(sorted(new)) == {}  # type: ignore[attr-defined]
