"""Object-store remotes: moto's S3 over real HTTP, local folders and memory://."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.cloud import add_cloud, agent_url, checkout, list_agents
from memfs.errors import (
    NotAMemfsRemoteError,
    RemoteAuthError,
    RemoteCorruptError,
    RemoteError,
    RemoteNotFoundError,
    RemoteUnreachableError,
    UnsupportedURLError,
)
from memfs.remotes import get_remote, list_remotes
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote

from .conftest import S3Bucket, assert_git_agrees, git, run_cli, write
from .test_sync import assert_converged, contents, two_machines


@pytest.fixture(params=["file", "memory", "s3"])
def bucket_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty agent location in each kind of object store."""
    if request.param == "file":
        yield f"memfs::{(tmp_path / 'cloud' / 'agent').as_uri()}"
    elif request.param == "memory":
        yield f"memfs::memory://memfs-tests/{uuid.uuid4().hex}/agent"
    else:
        bucket: S3Bucket = request.getfixturevalue("s3")
        yield bucket.url("agents/agent")  # typed without the prefix, as users do


def test_push_clone_sync_and_merge_on_every_store(tmp_path: Path, bucket_url: str) -> None:
    a, b = two_machines(tmp_path, bucket_url)
    assert get_remote(a.history, "origin").url.startswith("memfs::")
    assert contents(a) == contents(b)
    assert_git_agrees(b.root)
    write(a.root, "system/human.md", "---\ndescription: h\n---\none\ntwo\nthree\n")
    sync.sync(a)
    sync.sync(b)
    write(a.root, "system/human.md", "---\ndescription: h\n---\none by A\ntwo\nthree\n")
    write(b.root, "system/human.md", "---\ndescription: h\n---\none\ntwo\nthree by B\n")
    write(b.root, "notes/only-b.md", "b\n")
    for machine in (a, b, a):
        assert sync.sync(machine).ok
    assert_converged(a, b)
    assert (a.root / "system/human.md").read_text().endswith("one by A\ntwo\nthree by B\n")
    fresh = sync.clone(bucket_url, tmp_path / "fresh")
    assert contents(fresh) == contents(a)
    git(fresh.root, "fsck", "--strict")


def test_incremental_push_is_one_pack_one_index_one_manifest(tmp_path: Path, s3: S3Bucket) -> None:
    agent = memfs.init(tmp_path / "big")
    for i in range(1000):
        write(agent.root, f"reference/topic-{i % 20:02d}/note-{i:04d}.md", f"fact {i}\n")
    agent.commit()
    for i in range(5):
        write(agent.root, "reference/log.md", f"commit {i}\n")
        agent.commit()
    add_remote(agent.history, "origin", s3.url("agents/big"))
    assert sync.push(agent).ok
    write(agent.root, "reference/topic-03/note-0003.md", "one changed fact\n")
    agent.commit()
    s3.server.requests.clear()
    assert sync.push(agent).ok
    writes = [path for method, path in s3.server.requests if method == "PUT"]
    assert len(writes) == 3
    assert sorted(w.rsplit(".", 1)[1] for w in writes[:2]) == ["idx", "pack"]  # side by side
    assert writes[2].endswith("/manifest.json")  # only once both are there
    assert s3.server.by_method() == {"GET": 1, "PUT": 3}, s3.server.requests


# -- concurrency ---------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import memfs
    from memfs import sync

    url, root, name, count, out = sys.argv[1:6]
    agent = sync.clone(url, root)
    with open(out, "w") as results:
        for i in range(int(count)):
            Path(root, f"writer-{name}.md").write_text(f"{name} edit {i}\\n")
            info = agent.commit(message=f"writer {name} commit {i}")
            results.write(info.sha + "\\n")
            results.flush()
            report = sync.push(agent)
            assert report.ok, report.to_dict()
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import memfs
    from memfs import sync

    url, root, stop_file, out = sys.argv[1:5]
    agent = sync.clone(url, root)
    fetches = 0
    while not Path(stop_file).exists():
        report = sync.fetch(agent)
        assert report.ok, report.to_dict()
        head = report.remotes[0].fetched
        tree = agent.history.tree_of(head)  # every object of the fetched head is here
        assert "agent.yaml" in tree
        for entry in tree.values():
            agent.history.blob(entry.sha)
        fetches += 1
    Path(out).write_text(str(fetches))
    """
)


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
def test_eight_writers_and_a_reader_lose_nothing(
    tmp_path: Path, s3: S3Bucket, encrypt: bool
) -> None:
    """Eight processes push while one fetches; on an encrypted remote too (issue 14): the
    swap is then on the sealed manifest's ETag, and every process shares one machine's key
    cache and rollback record."""
    url = s3.url("agents/busy")
    seed = memfs.init(tmp_path / "seed", name="busy")
    add_remote(seed.history, "origin", url, encrypt=encrypt)
    assert sync.push(seed).ok
    writer = write(tmp_path, "writer.py", WRITER)
    reader = write(tmp_path, "reader.py", READER)
    stop = tmp_path / "stop"
    env = dict(os.environ)
    reader_proc = subprocess.Popen(
        [
            sys.executable,
            str(reader),
            url,
            str(tmp_path / "reader"),
            str(stop),
            str(tmp_path / "fetches"),
        ],
        env=env,
    )
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                str(writer),
                url,
                str(tmp_path / f"w{n}"),
                str(n),
                "10",
                str(tmp_path / f"out{n}"),
            ],
            env=env,
        )
        for n in range(8)
    ]
    try:
        codes = [proc.wait(timeout=400) for proc in writers]
    finally:
        stop.write_text("stop")
        reader_code = reader_proc.wait(timeout=60)
    assert codes == [0] * 8
    assert reader_code == 0, "the reader failed while writers pushed"
    assert int((tmp_path / "fetches").read_text()) > 0
    committed = [sha for n in range(8) for sha in (tmp_path / f"out{n}").read_text().split()]
    assert len(committed) == 80
    fresh = sync.clone(url, tmp_path / "fresh")
    assert get_remote(fresh.history, "origin").encrypt is encrypt
    git(fresh.root, "fsck", "--strict")
    reachable = set(git(fresh.root, "rev-list", "HEAD").split())
    assert set(committed) <= reachable, "a pushed commit is missing from the remote head"
    for n in range(8):
        assert (fresh.root / f"writer-{n}.md").read_text() == f"{n} edit 9\n"
    # every writer edits only its own file: a correct merge never sees a conflict
    assert not [path for path in fresh.worktree_files() if ".conflict-" in path]


# -- crash safety --------------------------------------------------------------------------


def test_partial_pushes_leave_a_usable_remote(tmp_path: Path, s3: S3Bucket) -> None:
    url = s3.url("agents/crashy")
    a, b = two_machines(tmp_path, url)
    remote = BucketRemote("memfs::" + url)
    write(a.root, "x.md", "x\n")
    a.commit()
    history = a.history
    manifest, _ = remote.read_manifest()
    assert manifest is not None
    pack = history.pack_between([history.head()], list(manifest.refs.values()))
    assert pack is not None
    # killed after the pack, before the index; then a lost race's pack of other content
    remote.storage.put_if_absent(f"packs/{pack.name}.pack", pack.pack)
    remote.storage.put_if_absent(
        "packs/pack-0123456789abcdef0123456789abcdef01234567.pack", b"junk"
    )
    assert sync.sync(b).ok  # readers ignore what no manifest lists
    # killed after pack and index, before the manifest
    remote.storage.put_if_absent(f"packs/{pack.name}.idx", pack.index)
    assert sync.sync(b).ok
    assert not (b.root / "x.md").exists()
    # the next push completes the job
    assert sync.push(a).ok
    assert sync.sync(b).ok
    assert (b.root / "x.md").read_text() == "x\n"
    fresh = sync.clone(url, tmp_path / "fresh")
    git(fresh.root, "fsck", "--strict")


PUSHER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import memfs
    from memfs import sync

    root = sys.argv[1]
    agent = memfs.open(root)
    for i in range(300):
        Path(root, "bulk", f"file-{i:04d}.md").write_text(f"bulk {i} {sys.argv[2]}\\n")
    agent.commit()
    print("pushing", flush=True)
    sync.push(agent)
    """
)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.4])
def test_a_push_killed_at_any_point_is_harmless(tmp_path: Path, s3: S3Bucket, delay: float) -> None:
    url = s3.url("agents/killed")
    a, b = two_machines(tmp_path, url)
    (a.root / "bulk").mkdir()
    pusher = write(tmp_path, "pusher.py", PUSHER)
    proc = subprocess.Popen(
        [sys.executable, str(pusher), str(a.root), str(delay)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "pushing\n"
    time.sleep(delay)  # a kill point, not synchronisation: every point must be safe
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert sync.sync(b).ok, "a fetch after the crash must work"
    assert sync.push(a).ok, "the next push must work"
    assert sync.sync(b).ok
    assert contents(a) == contents(b)
    assert (b.root / "bulk/file-0299.md").exists()
    git(sync.clone(url, tmp_path / "fresh").root, "fsck", "--strict")


def test_corrupted_and_truncated_packs_are_refused(tmp_path: Path, s3: S3Bucket) -> None:
    url = s3.url("agents/damaged")
    a, b = two_machines(tmp_path, url)
    write(a.root, "x.md", "x\n")
    assert sync.push(a).ok
    manifest, _ = BucketRemote("memfs::" + url).read_manifest()
    assert manifest is not None
    last = manifest.packs[-1]
    key = f"agents/damaged/packs/{last}.pack"
    original = s3.client.get_object(Bucket=s3.name, Key=key)["Body"].read()  # type: ignore[attr-defined]
    head, files = (
        b.history.head(),
        sorted(p.name for p in b.root.rglob("*") if ".git" not in p.parts),
    )
    for damaged in (original[:-25], original[:40] + bytes([original[40] ^ 0xFF]) + original[41:]):
        s3.client.put_object(Bucket=s3.name, Key=key, Body=damaged)  # type: ignore[attr-defined]
        report = sync.sync(b)
        assert not report.ok
        assert "is corrupt" in (report.remotes[0].error or "")
        assert b.history.head() == head
        assert sorted(p.name for p in b.root.rglob("*") if ".git" not in p.parts) == files
        assert not b.history.has_pack(last)
        with pytest.raises(RemoteCorruptError):
            sync.clone(url, tmp_path / "never")
        assert not (tmp_path / "never").exists()


# -- errors --------------------------------------------------------------------------------


def test_missing_bucket(tmp_path: Path, s3: S3Bucket) -> None:
    with pytest.raises(RemoteNotFoundError, match="does not exist"):
        sync.clone("s3://no-such-bucket-here/agents/x", tmp_path / "x")
    agent = memfs.init(tmp_path / "agent")
    add_remote(agent.history, "origin", "s3://no-such-bucket-here/agents/x")
    result = run_cli("-C", str(agent.root), "push")
    assert result.exit_code == 7
    assert result.stderr.startswith(
        "memfs: no repository at memfs::s3://no-such-bucket-here/agents/x"
    )


def test_access_denied(tmp_path: Path, s3: S3Bucket) -> None:
    agent = memfs.init(tmp_path / "agent")
    add_remote(agent.history, "origin", "s3://denied-bucket/agents/x")
    head = agent.history.head()
    result = run_cli("-C", str(agent.root), "push")
    assert result.exit_code == 7 and "refused the credentials" in result.stderr
    assert result.stderr.count("\n") == 1
    assert agent.history.head() == head
    with pytest.raises(RemoteAuthError):
        sync.clone("s3://denied-bucket/agents/x", tmp_path / "x")


def test_no_credentials(tmp_path: Path, s3: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(RemoteError, match="no credentials"):
        sync.clone(s3.url("agents/x"), tmp_path / "x")


def test_endpoint_unreachable(
    tmp_path: Path, s3: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    agent = memfs.init(tmp_path / "agent")
    add_remote(agent.history, "origin", s3.url("agents/x"))
    report = sync.push(agent)
    assert not report.ok and (report.remotes[0].error or "").startswith("cannot reach memfs::s3://")
    with pytest.raises(RemoteUnreachableError):
        sync.clone(s3.url("agents/x"), tmp_path / "x")


def test_filesystem_without_compare_and_swap_is_refused_for_push(tmp_path: Path) -> None:
    agent = memfs.init(tmp_path / "agent")
    target = tmp_path / "store"
    target.mkdir()
    add_remote(agent.history, "origin", f"memfs::simplecache::{target.as_uri()}")
    report = sync.push(agent)
    assert not report.ok
    assert "cannot compare-and-swap" in (report.remotes[0].error or "")


def test_not_an_agent_and_unsupported_format(tmp_path: Path, s3: S3Bucket) -> None:
    s3.client.put_object(Bucket=s3.name, Key="photos/cat.jpg", Body=b"meow")  # type: ignore[attr-defined]
    with pytest.raises(NotAMemfsRemoteError, match="holds files but no manifest"):
        sync.clone(s3.url("photos"), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    s3.client.put_object(  # type: ignore[attr-defined]
        Bucket=s3.name,
        Key="future/manifest.json",
        Body=json.dumps({"format": 2, "refs": {}}).encode(),
    )
    with pytest.raises(RemoteError, match="uses manifest format 2; this memfs reads format 1"):
        sync.clone(s3.url("future"), tmp_path / "y")


def test_a_url_holding_another_agent_is_refused(tmp_path: Path) -> None:
    url = f"memfs::{(tmp_path / 'cloud' / 'same-name').as_uri()}"
    first = memfs.init(tmp_path / "first", name="same-name")
    add_remote(first.history, "origin", url)
    assert sync.push(first).ok
    second = memfs.init(tmp_path / "second", name="same-name")
    add_remote(second.history, "origin", url)
    head = second.history.head()
    report = sync.push(second)
    assert not report.ok and "holds another agent" in (report.remotes[0].error or "")
    assert second.history.head() == head


# -- clouds --------------------------------------------------------------------------------


def test_default_cloud_push_agents_and_checkout(tmp_path: Path) -> None:
    agent = memfs.init(tmp_path / "laptop" / "garden", description="helps with the garden")
    result = run_cli("-C", str(agent.root), "push")
    assert result.exit_code == 0, result.stderr
    assert result.output.startswith("Added remote origin: memfs::file://")
    listing = json.loads(run_cli("agents", "--json").output)
    assert [entry["name"] for entry in listing] == ["garden"]
    assert listing[0]["description"] == "helps with the garden"
    assert listing[0]["head"] == agent.history.head()
    assert listing[0]["host"] == "test-host"
    out = run_cli("checkout", "garden", str(tmp_path / "sandbox" / "garden"))
    assert out.exit_code == 0 and "Checked out garden into" in out.output
    other = memfs.open(tmp_path / "sandbox" / "garden")
    assert contents(other) == contents(agent)
    missing = run_cli("checkout", "nobody", str(tmp_path / "x"))
    assert missing.exit_code == 7 and "has no agent 'nobody'" in missing.stderr


def test_one_unreadable_agent_does_not_hide_the_others(tmp_path: Path) -> None:
    for name in ("garden", "kitchen"):
        agent = memfs.init(tmp_path / name, description=f"helps in the {name}")
        assert run_cli("-C", str(agent.root), "push").exit_code == 0
    cloud = Path(os.environ["MEMFS_DATA_DIR"]) / "cloud"
    (cloud / "kitchen/manifest.json").write_text('{"generation": 1, "refs": {"main": "nope"}}')
    result = run_cli("agents")
    assert result.exit_code == 0, result.stderr
    garden, kitchen = result.output.splitlines()
    assert garden.startswith("garden") and garden.endswith("helps in the garden")
    assert kitchen.startswith("kitchen") and "unreadable: " in kitchen
    listing = json.loads(run_cli("agents", "--json").output)
    assert [(e["name"], e["problem"] is None) for e in listing] == [
        ("garden", True),
        ("kitchen", False),
    ]


def test_named_s3_cloud(tmp_path: Path, s3: S3Bucket) -> None:
    result = run_cli(
        "cloud", "add", "team", s3.url("memory"), "--option", "default_block_size=5242880"
    )
    assert result.exit_code == 0, result.stderr
    assert run_cli("cloud", "default", "team").output.startswith("Default cloud: team")
    clouds = json.loads(run_cli("cloud", "list", "--json").output)
    assert [c["name"] for c in clouds if c["default"]] == ["team"]
    for name in ("alpha", "beta"):
        agent = memfs.init(tmp_path / name)
        assert run_cli("-C", str(agent.root), "push").exit_code == 0
    name, entries = list_agents()
    assert name == "team" and [e.name for e in entries] == ["alpha", "beta"]
    assert entries[0].url == agent_url(s3.url("memory"), "alpha")
    copy = checkout("beta", tmp_path / "beta-copy", cloud="team")
    assert list_remotes(copy.history)[0].url == "memfs::" + s3.url("memory/beta")
    assert run_cli("agents", "--cloud", "nope").exit_code == 2  # bad usage, as an unknown remote
    with pytest.raises(UnsupportedURLError):
        add_cloud("bad", "gopher://x")


# -- compaction ----------------------------------------------------------------------------


def test_gc_remote_compacts_packs_with_a_grace_period(tmp_path: Path, s3: S3Bucket) -> None:
    url = s3.url("agents/compact")
    a, b = two_machines(tmp_path, url)
    for i in range(4):
        write(a.root, f"n{i}.md", f"{i}\n")
        assert sync.push(a).ok
    stale = BucketRemote("memfs::" + url)
    stale.read_manifest()  # a reader that read the manifest before the compaction
    result = run_cli("-C", str(a.root), "gc", "--remote", "origin", "--grace", "0")
    assert result.exit_code == 0, result.stderr
    assert "5 packs merged into one" in result.output
    manifest, _ = BucketRemote("memfs::" + url).read_manifest()
    assert manifest is not None and len(manifest.packs) == 1 and len(manifest.retired) == 5
    assert run_cli("-C", str(a.root), "gc", "--remote", "origin", "--grace", "0").exit_code == 0
    keys = s3.client.list_objects_v2(Bucket=s3.name, Prefix="agents/compact/packs/")["Contents"]  # type: ignore[attr-defined]
    assert len(keys) == 2, "only the compacted pack and its index are left"
    assert sync.sync(b).ok  # b had old packs; fetch of new ones after their deletion works
    fresh = sync.clone(url, tmp_path / "fresh")
    assert contents(fresh) == contents(a)
    git(fresh.root, "fsck", "--strict")


def test_progress_goes_to_the_callback(tmp_path: Path) -> None:
    url = f"memfs::{(tmp_path / 'cloud' / 'p').as_uri()}"
    a = memfs.init(tmp_path / "a")
    add_remote(a.history, "origin", url)
    messages: list[str] = []
    assert sync.push(a, progress=messages.append).ok
    assert messages and messages[0].startswith("uploading ")
    fetched: list[str] = []
    sync.clone(url, tmp_path / "b", progress=fetched.append)
    assert fetched == ["fetched pack 1/1, " + fetched[0].split(", ")[1]]
    quiet = run_cli("-C", str(a.root), "push")
    assert quiet.stderr == "", "no progress when stderr is not a terminal"


def test_gc_deletes_packs_left_by_lost_races_only_after_the_grace_period(
    tmp_path: Path, s3: S3Bucket
) -> None:
    url = s3.url("agents/orphans")
    a, _ = two_machines(tmp_path, url)
    remote = BucketRemote("memfs::" + url)
    orphan = "pack-0123456789abcdef0123456789abcdef01234567"
    remote.storage.put_if_absent(f"packs/{orphan}.pack", b"a pack a lost race uploaded")
    assert sync.compact_remote(a, "origin", grace_s=3600) == (0, 0), "too young to delete"
    assert remote.storage.get(f"packs/{orphan}.pack") is not None
    assert sync.compact_remote(a, "origin", grace_s=0) == (0, 1)
    assert remote.storage.get(f"packs/{orphan}.pack") is None
    manifest, _ = remote.read_manifest()
    assert manifest is not None
    assert all(remote.storage.get(f"packs/{name}.pack") for name in manifest.packs)
    git(sync.clone(url, tmp_path / "fresh").root, "fsck", "--strict")
