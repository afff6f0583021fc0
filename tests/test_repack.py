"""Pack consolidation (memfs/repack.py) and automatic remote compaction (issue 12).

Local: many packs and loose objects become one pack without losing an object, whatever
point a kill lands on, while readers in other processes keep reading, and without fetching
again the remote packs merged away. Remote: a push compacts a long manifest by itself, under
the same compare-and-swap as every push, and other machines still clone and pull.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import memfs
from memfs import repack, sync
from memfs.errors import LockTimeoutError
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote

from .conftest import S3Bucket, git, memfs_process, write
from .harness import KILLED
from .servers import wait_for
from .test_sync import contents, two_machines


def folder_url(tmp_path: Path) -> str:
    cloud = tmp_path / "cloud" / "agent"
    cloud.mkdir(parents=True)
    return f"memfs::{cloud.as_uri()}"


def all_objects(root: Path) -> set[str]:
    """Every object git finds in the repository, packed or loose, reachable or not."""
    out = git(root, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return set(out.split())


def packs_of(root: Path) -> list[Path]:
    return sorted((root / ".git" / "objects" / "pack").glob("*.pack"))


def loose_of(root: Path) -> int:
    objects = root / ".git" / "objects"
    return sum(1 for d in objects.iterdir() if len(d.name) == 2 for _ in d.iterdir())


def pushed_agent(tmp_path: Path, pushes: int, url: str | None = None) -> memfs.Agent:
    """An agent with a bucket remote and ``pushes`` one-file pushes: a pack and loose objects
    per push."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    add_remote(agent.history, "origin", url or folder_url(tmp_path))
    for i in range(pushes):
        write(agent.root, f"notes/n{i % 3}.md", f"edit {i}\n")
        assert sync.push(agent).ok
    return agent


# -- local consolidation ---------------------------------------------------------------------


def test_consolidation_keeps_every_object(tmp_path: Path) -> None:
    agent = pushed_agent(tmp_path, 6)
    write(agent.root, "notes/uncommitted-then-committed.md", "loose only\n")
    agent.commit()  # loose objects no pack holds
    before = all_objects(agent.root)
    assert len(packs_of(agent.root)) == 6 and loose_of(agent.root) > 0
    done = repack.consolidate(agent.history, everything=True)
    assert done.packs == 6 and done.name is not None
    assert [p.stem for p in packs_of(agent.root)] == [done.name]
    assert loose_of(agent.root) == 0
    assert all_objects(agent.root) == before
    git(agent.root, "fsck", "--strict")
    assert agent.status().clean  # memfs still reads every object it needs


def test_damage_is_left_in_place_and_named(tmp_path: Path) -> None:
    agent = pushed_agent(tmp_path, 3)
    write(agent.root, "notes/loose.md", "only loose\n")
    agent.commit()
    blob = agent.history.tree_of(agent.history.head())["notes/loose.md"].sha  # in no pack
    garbled = agent.root / ".git" / "objects" / blob[:2] / blob[2:]
    garbled.chmod(0o644)
    garbled.write_bytes(b"not zlib")
    repack.consolidate(agent.history, everything=True)
    assert garbled.exists(), "a damaged loose object is never removed"
    assert len(packs_of(agent.root)) == 1
    pack = packs_of(agent.root)[0]
    pack.chmod(0o644)
    data = bytearray(pack.read_bytes())
    data[40:60] = bytes(20)  # inside the first object's deflated data
    pack.write_bytes(bytes(data))
    write(agent.root, "notes/more.md", "more\n")
    agent.commit()
    agent.close()
    result = memfs_process("gc", cwd=agent.root)
    assert result.returncode == 9, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert pack.exists()


def test_geometric_rollup_keeps_the_big_pack() -> None:
    sizes = {"base": 1000, "a": 10, "b": 12, "c": 11}
    assert sorted(repack.rollup(sizes)) == ["a", "b", "c"]
    assert sorted(repack.rollup({**sizes, "d": 600})) == ["a", "b", "base", "c", "d"]
    assert repack.rollup({"one": 5}) == []


def test_sync_consolidates_past_the_pack_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMFS_PACK_LIMIT", "4")
    agent = pushed_agent(tmp_path, 12)
    assert 1 <= len(packs_of(agent.root)) <= 4, "a push past the limit consolidated"
    git(agent.root, "fsck", "--strict")
    fresh = sync.clone(get_url(agent), tmp_path / "fresh")
    assert contents(fresh) == contents(agent)


def get_url(agent: memfs.Agent) -> str:
    return git(agent.root, "config", "remote.origin.url").strip()


def test_a_bad_limit_is_one_clear_line(tmp_path: Path) -> None:
    agent = pushed_agent(tmp_path, 1)
    env = dict(__import__("os").environ, MEMFS_PACK_LIMIT="many")
    write(agent.root, "notes/x.md", "x\n")
    result = memfs_process("push", cwd=agent.root, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().endswith("MEMFS_PACK_LIMIT='many' is not a whole number (e.g. 50)")


HOLDER = """
import sys, time
from pathlib import Path
import memfs
root, ready, stop = (Path(arg) for arg in sys.argv[1:4])
with memfs.open(root) as agent, agent.history.locked():
    ready.write_text("held")
    while not stop.exists():
        time.sleep(0.01)
"""


def test_automatic_consolidation_leaves_a_busy_agent_for_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a sync, consolidation waits half a second for the lock, not the lock's 60 s: a
    watcher or command at work in another process is not held up, nor is the sync."""
    agent = pushed_agent(tmp_path, 3)
    monkeypatch.setenv("MEMFS_PACK_LIMIT", "1")
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(agent.root), str(ready), str(stop)]
    )
    try:
        wait_for(ready.exists, what="the other process to hold the lock")
        started = time.monotonic()
        with pytest.raises(LockTimeoutError):
            repack.consolidate_if_due(agent.history)
        assert time.monotonic() - started < 10
        assert len(packs_of(agent.root)) == 3, "left for a later sync"
    finally:
        stop.write_text("stop")
        assert holder.wait(timeout=30) == 0
    assert sync.fetch(agent).ok
    assert len(packs_of(agent.root)) == 1


@pytest.mark.parametrize(
    "point", ["repack.pack", "repack.index", "repack.loose", "repack.old", "repack.old:3"]
)
def test_a_kill_at_any_point_of_consolidation_loses_nothing(tmp_path: Path, point: str) -> None:
    agent = pushed_agent(tmp_path, 5)
    write(agent.root, "notes/loose.md", "only loose\n")
    agent.commit()
    before = all_objects(agent.root)
    agent.close()
    killed = memfs_process("gc", cwd=agent.root, crash_at=point)
    assert killed.returncode == KILLED, f"{point} not reached: {killed.stderr}"
    assert all_objects(agent.root) >= before
    git(agent.root, "fsck", "--strict")
    assert memfs_process("status", cwd=agent.root).returncode == 0
    finished = memfs_process("gc", cwd=agent.root)
    assert finished.returncode == 0, finished.stderr
    assert all_objects(agent.root) == before
    assert len(packs_of(agent.root)) == 1
    git(agent.root, "fsck", "--strict")


def test_a_reader_opened_before_consolidation_reads_after_it(tmp_path: Path) -> None:
    agent = pushed_agent(tmp_path, 5)
    write(agent.root, "notes/loose.md", "only loose\n")
    agent.commit()
    commits = [entry.sha for entry in agent.history.log()]
    reader = memfs.open(agent.root)  # lists and opens the packs there are now
    assert reader.history.file_at(commits[-2], "notes/n0.md") == b"edit 0\n"
    gc = memfs_process("gc", cwd=agent.root)  # another process consolidates meanwhile
    assert gc.returncode == 0, gc.stderr
    for sha in commits:  # every object, from packs it listed before and loose files gone now
        assert reader.history.tree_of(sha)
    assert reader.history.file_at(commits[0], "notes/loose.md") == b"only loose\n"
    assert reader.status().clean
    reader.close()


def test_a_miss_while_another_process_consolidates_looks_again(tmp_path: Path) -> None:
    """The narrow race: a reader misses in its packs (none new yet), the other process then
    packs the loose object and removes it, and the reader's loose lookup finds nothing.
    ``reads_objects`` re-scans and retries, as git does; dulwich alone would fail here."""
    agent = pushed_agent(tmp_path, 2)
    write(agent.root, "notes/loose.md", "only loose\n")
    agent.commit()
    head = agent.history.head()
    assert head is not None
    reader = memfs.open(agent.root)
    reader.history._objects.plain = False  # dulwich's reads (LightObjects': the test below)
    store = reader.history.repo.object_store
    reader.history.tree_of(head)  # packs listed and opened
    blob = agent.history.tree_of(head)["notes/loose.md"].sha.encode()
    plain_lookup = store._get_loose_object
    raced: list[bool] = []

    def lookup_during_consolidation(sha: bytes):  # type: ignore[no-untyped-def]
        if sha == blob and not raced:
            raced.append(True)
            assert memfs_process("gc", cwd=agent.root).returncode == 0
        return plain_lookup(sha)

    store._get_loose_object = lookup_during_consolidation  # type: ignore[method-assign]
    assert reader.history.file_at(head, "notes/loose.md") == b"only loose\n"
    assert raced
    reader.close()


def test_a_light_read_finds_an_object_another_process_packed_after_it_listed_the_packs(
    tmp_path: Path,
) -> None:
    """The same race for the reads without dulwich (memfs/history/lightobjects.py): the
    reader has listed the packs, the other process packs the loose object and removes it,
    then the reader looks for it: loose first, then the packs listed again."""
    agent = pushed_agent(tmp_path, 2)
    write(agent.root, "notes/loose.md", "only loose\n")
    agent.commit()
    head = agent.history.head()
    assert head is not None
    blob = agent.history.tree_of(head)["notes/loose.md"].sha
    first = [entry.sha for entry in agent.history.log()][-1]
    reader = memfs.open(agent.root)
    assert reader.history._objects.contains(first)  # in a pack: the packs are listed now
    assert reader.history._objects.contains(blob)  # loose
    assert memfs_process("gc", cwd=agent.root).returncode == 0
    assert not (agent.root / ".git/objects" / blob[:2] / blob[2:]).exists()
    assert reader.history._objects.raw(blob) == (3, b"only loose\n")
    assert reader.history.file_at(head, "notes/loose.md") == b"only loose\n"
    assert reader.history._repo is None, "answered without dulwich"
    reader.close()


def test_consolidated_remote_packs_are_not_fetched_again(tmp_path: Path, s3: S3Bucket) -> None:
    url = s3.url("agents/held")
    a, b = two_machines(tmp_path, url)
    for i in range(4):
        write(a.root, f"n{i}.md", f"{i}\n")
        assert sync.push(a).ok
        assert sync.pull(b).ok  # b imports each pack by its remote name
    repack.consolidate(b.history, everything=True)
    assert len(packs_of(b.root)) == 1
    write(a.root, "last.md", "last\n")
    assert sync.push(a).ok
    s3.server.requests.clear()
    assert sync.pull(b).ok
    fetched = [path for method, path in s3.server.requests if method == "GET" and "/packs/" in path]
    assert len(fetched) == 1, f"only the one new pack is downloaded: {fetched}"
    assert contents(b) == contents(a)
    git(b.root, "fsck", "--strict")


# -- remote compaction -------------------------------------------------------------------------


def manifest_of(s3: S3Bucket, prefix: str) -> dict:  # type: ignore[type-arg]
    body = s3.client.get_object(Bucket=s3.name, Key=f"{prefix}/manifest.json")["Body"]  # type: ignore[attr-defined]
    return json.loads(body.read())  # type: ignore[no-any-return]


def test_a_push_compacts_past_the_threshold_and_others_still_clone_and_pull(
    tmp_path: Path, s3: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMFS_COMPACT_PACKS", "3")
    monkeypatch.setenv("MEMFS_COMPACT_GRACE", "0")  # retired packs go at the next compaction
    url = s3.url("agents/auto")
    a, b = two_machines(tmp_path, url)
    stale = BucketRemote("memfs::" + url)
    lengths = []
    for i in range(9):
        write(a.root, f"n{i}.md", f"{i}\n")
        assert sync.push(a).ok
        lengths.append(len(manifest_of(s3, "agents/auto")["packs"]))
        if i == 1:
            stale.read_manifest()  # lists 3 packs, 2 that b lacks, all deleted by now
    assert lengths == [2, 3, 1, 2, 3, 1, 2, 3, 1], "compacted at the 4th pack, each time"
    assert manifest_of(s3, "agents/auto")["retired"], "replaced packs wait out their grace"
    assert stale.fetch(b.history, "main") == a.history.head()  # its packs gone: re-read
    assert sync.pull(b).ok and contents(b) == contents(a)
    fresh = sync.clone(url, tmp_path / "fresh")
    assert contents(fresh) == contents(a)
    for machine in (a.root, b.root, fresh.root):
        git(machine, "fsck", "--strict")
    write(b.root, "from-b.md", "b\n")
    assert sync.push(b).ok and sync.pull(a).ok
    assert contents(a) == contents(b)


def test_the_incremental_push_stays_at_4_requests_below_the_threshold(
    tmp_path: Path, s3: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMFS_COMPACT_PACKS", "6")
    agent = pushed_agent(tmp_path, 1, s3.url("agents/budget"))
    counts = []
    for i in range(6):
        write(agent.root, "notes/log.md", f"{i}\n")
        agent.commit()
        s3.server.requests.clear()
        assert sync.push(agent).ok
        counts.append(len(s3.server.requests))
    assert counts[:5] == [4] * 5, counts  # manifest lists 2..6 packs: no compaction
    assert counts[5] > 4, "the 7th pack made this push compact"
    assert len(manifest_of(s3, "agents/budget")["packs"]) == 1
    s3.server.requests.clear()
    write(agent.root, "notes/log.md", "after\n")
    assert sync.push(agent).ok
    assert len(s3.server.requests) == 4
    assert not any("/packs/" in path for m, path in s3.server.requests if m == "GET")


def held_then_pruned(tmp_path: Path, url: str) -> memfs.Agent:
    """Machine b after its held-packs record came to vouch for objects git gc pruned: a
    pushes branch exp (never fetched by b), b compacts the remote (importing exp's pack and
    holding the new one), then git gc drops exp's objects, unreachable in b."""
    a, b = two_machines(tmp_path, url)
    git(a.root, "checkout", "-q", "-b", "exp")
    write(a.root, "exp.md", "on a branch b never fetched\n")
    assert sync.push(a).ok
    write(b.root, "b.md", "b\n")
    assert sync.push(b).ok
    sync.compact_remote(b, "origin", 3600.0)
    git(b.root, "gc", "-q", "--prune=now")
    return b


def test_a_compaction_that_fails_after_a_push_landed_does_not_fail_the_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B's held-packs record vouches for a branch's objects that git gc then pruned, so the
    compaction a push runs by itself cannot build its pack. The push had landed: it said
    'repository damaged' (exit 9, git fsck clean), left the tracking ref behind ('1 ahead'),
    and every later push did the same."""
    url = folder_url(tmp_path)
    b = held_then_pruned(tmp_path, url)
    write(b.root, "b.md", "b again\n")
    pushed = memfs_process("push", cwd=b.root, env={**os.environ, "MEMFS_COMPACT_PACKS": "1"})
    assert pushed.returncode == 0, pushed.stderr
    assert b.history.ref("refs/remotes/origin/main") == b.history.head()
    assert BucketRemote(url).head("main") == b.history.head()
    manifest, _ = BucketRemote(url).read_manifest()
    assert manifest is not None and len(manifest.packs) == 1, "compacted: pruned packs fetched"
    git(b.root, "fsck", "--strict")


def test_a_held_pack_whose_objects_git_gc_pruned_is_downloaded_again(tmp_path: Path) -> None:
    """A held-packs record outlives the objects it vouches for when git gc prunes them (a
    branch this machine never fetched): a pull of that branch said 'the manifest names X but
    no pack holds it', for good, of a remote that a fresh clone read whole."""
    url = folder_url(tmp_path)
    b = held_then_pruned(tmp_path, url)
    git(b.root, "checkout", "-q", "-b", "exp")
    pulled = memfs_process("pull", cwd=b.root)
    assert pulled.returncode == 0, pulled.stderr
    assert (b.root / "exp.md").exists() and (b.root / "b.md").exists()
    git(b.root, "fsck", "--strict")


# -- the benchmark -----------------------------------------------------------------------------


@pytest.mark.timeout(180)  # a dozen processes: seconds alone, longer on a loaded machine
def test_bench_cycles_runs_at_a_tiny_size(tmp_path: Path) -> None:
    """benchmarks/bench_cycles.py cannot rot unnoticed; nothing here is timed."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_cycles.py"
    result = subprocess.run(
        [sys.executable, str(script), "--cycles", "1,2", "--repeat", "1", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = [line.split(" | ") for line in lines if line[:1].isdigit() and " | " in line]
    assert [row[0] for row in rows[-2:]] == ["1", "4"]  # 3 more cycles per pull measured
    assert all(len(row) == 14 for row in rows)  # with the clone's requests and KiB


def test_a_push_that_compacts_leaves_unlisted_packs_to_a_manual_gc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack no manifest lists may belong to a push still in flight (asleep mid-push, or a
    retry that finds its pack there from a killed try): a push's own compaction must not
    delete it, or that push would then list a pack that is gone. ``gc --remote`` does."""
    monkeypatch.setenv("MEMFS_COMPACT_PACKS", "2")
    monkeypatch.setenv("MEMFS_COMPACT_GRACE", "0")
    url = folder_url(tmp_path)
    agent = pushed_agent(tmp_path, 1, url)
    cloud = Path(url.removeprefix("memfs::file://"))
    in_flight = cloud / "packs" / ("pack-" + "c" * 40 + ".pack")
    in_flight.write_bytes(b"PACK of a push not yet listed")
    hour_ago = time.time() - 7200
    os.utime(in_flight, (hour_ago, hour_ago))
    for i in range(3):
        write(agent.root, f"notes/x{i}.md", f"{i}\n")
        assert sync.push(agent).ok
    manifest = json.loads((cloud / "manifest.json").read_text())
    assert len(manifest["packs"]) < 3, "the pushes compacted"
    assert in_flight.exists(), "an unlisted pack outlives a push's compaction"
    sync.compact_remote(agent, "origin", 0.0)
    assert not in_flight.exists(), "gc --remote deletes it"


def test_a_git_repack_beside_a_pull_keeps_the_pack_the_pull_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found from outside (session 10): ``git repack -a -d`` (or ``git gc``) running while a
    pull had imported its pack but not yet written the remote-tracking ref dropped the pack's
    objects, which no ref reached yet: the pull said fast-forward, exit 0, and the branch then
    named a missing commit (exit 9 for every command). The imported pack is kept (a ``.keep``
    beside it, as git's own fetch does) until the ref reaches it. The repack is the real git
    CLI, run at the one moment of the race: just before the pull writes the tracking ref."""
    from memfs.history import History

    url = "memfs::" + (tmp_path / "cloud").as_uri()
    a, b = two_machines(tmp_path, url)
    write(a.root, "notes.md", "from A\n")
    assert sync.push(a).ok
    original = History.set_ref
    repacked: list[str] = []

    def set_ref_after_a_repack(self: History, name: str, sha: str, reason: str) -> None:
        if self.root == b.root and not repacked:
            git(b.root, "repack", "-a", "-d", "-q")
            repacked.append(name)
        original(self, name, sha, reason)

    monkeypatch.setattr(History, "set_ref", set_ref_after_a_repack)
    report = sync.pull(b)
    assert report.ok and repacked
    assert (b.root / "notes.md").read_text() == "from A\n"
    git(b.root, "fsck", "--strict")
    assert b.history.head() == a.history.head()
    assert list((b.history.control_dir / "objects/pack").glob("*.keep")) == []  # released


def test_a_keep_left_by_a_killed_import_is_removed_by_a_later_consolidation(
    tmp_path: Path,
) -> None:
    from memfs.history.packing import FETCH_KEEP, STALE_KEEP_SECONDS

    agent = memfs.init(tmp_path / "agent", name="kept")
    folder = agent.history.control_dir / "objects" / "pack"
    folder.mkdir(parents=True, exist_ok=True)
    stale, fresh, theirs = (folder / f"pack-{c * 40}.keep" for c in "abc")
    stale.write_bytes(FETCH_KEEP)
    fresh.write_bytes(FETCH_KEEP)
    theirs.write_bytes(b"kept by a person\n")
    old = time.time() - STALE_KEEP_SECONDS - 60
    for path in (stale, theirs):
        os.utime(path, (old, old))
    orphan = folder / f"pack-{'d' * 40}.keep"  # names a process that is gone: at once
    orphan.write_bytes(FETCH_KEEP + b"pid %d start 1\n" % os.getpid())
    repack.consolidate(agent.history, everything=True)
    assert not stale.exists() and fresh.exists() and theirs.exists()
    assert not orphan.exists()


def test_a_pull_killed_before_its_ref_leaves_no_keep_after_the_next_pull(tmp_path: Path) -> None:
    """Found from outside (review10 F8): a pull killed between a pack's import and the
    tracking ref left the pack's ``.keep`` for good (neither memfs gc nor git gc merged that
    pack again). The keep names its process; the next pull takes over the keeps whose process
    is gone and removes them once its ref is written. The kill is a whole process's SIGKILL
    after the first of two packs is imported."""
    url = "memfs::" + (tmp_path / "cloud").as_uri()
    a, b = two_machines(tmp_path, url)
    for i in range(2):  # two pushes: two packs for b's pull to import
        write(a.root, f"notes/n{i}.md", f"from A {i}\n")
        assert sync.push(a).ok
    killed = memfs_process("-C", str(b.root), "pull", crash_at="fetch.import:2")
    assert killed.returncode == KILLED, killed.stderr
    folder = b.history.control_dir / "objects" / "pack"
    assert len(list(folder.glob("*.keep"))) == 1  # what the kill leaves
    done = memfs_process("-C", str(b.root), "pull")
    assert done.returncode == 0, done.stderr
    assert list(folder.glob("*.keep")) == []
    assert (b.root / "notes/n1.md").read_text() == "from A 1\n"
    git(b.root, "fsck", "--strict")


def test_a_keep_whose_process_runs_or_that_names_none_is_left_to_its_owner(
    tmp_path: Path,
) -> None:
    """The next fetch takes over only the keeps of processes that are gone: a running
    fetch's (this test process's, another pid's that runs) and one naming no process (memfs
    before keeps named theirs: the hour-old rule) stay; a dead pid's, or a pid that runs but
    started at another time (reused), are removed after the fetch."""
    from memfs.history.packing import FETCH_KEEP, owner_line

    url = "memfs::" + (tmp_path / "cloud").as_uri()
    a, b = two_machines(tmp_path, url)
    folder = b.history.control_dir / "objects" / "pack"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        keeps = {
            "mine": FETCH_KEEP + owner_line(),
            "running": FETCH_KEEP + b"pid %d start 0\n" % sleeper.pid,
            "no owner": FETCH_KEEP,
            "dead": FETCH_KEEP + b"pid %s start 0\n" % gone.encode(),
            "reused": FETCH_KEEP + b"pid %d start 1\n" % os.getpid(),
        }
        paths = {what: folder / f"pack-{i:040d}.keep" for i, what in enumerate(keeps)}
        for what, text in keeps.items():
            paths[what].write_bytes(text)
        write(a.root, "notes.md", "from A\n")
        assert sync.push(a).ok
        assert sync.pull(b).ok
        left = {what for what, path in paths.items() if path.exists()}
        assert left == {"mine", "running", "no owner"}
    finally:
        sleeper.kill()
        sleeper.wait(timeout=30)
