"""The encrypted cloud tried from outside (issue 14, design-encryption.md §10): whole memfs
processes on separate machines (own HOME, own MEMFS_CONFIG and so own age identity), a cloud
on moto S3 over real HTTP or in a folder, and the store read behind memfs's back.

Two machines share an encrypted agent and sync both ways, by hand and with watchers; nothing
the store holds shows a file's content, the agent's name or description, or a commit message;
a third machine without a key gets exit 10 naming its recipient and `memfs key add`, and its
target folder stays empty; a machine removed with `memfs key rm` cannot read later pushes.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
from pathlib import Path

import pytest

from .harness import (
    Ledger,
    RandomEditor,
    committed_files,
    edit_for_a_while,
    fsck,
    git,
    memfs_command,
    start_watcher,
    stop_watcher,
    sync_until_converged,
    worktree_files,
)
from .machines import (
    CLOUD,
    KEY_EXIT,
    Box,
    Store,
    absent_or_empty,
    assert_one_clear_line,
    box,
    local_git_blobs,
    make_store,
    plaintext_hits,
    share_encrypted,
    start_encrypted_agent,
)
from .servers import wait_for

STUB = {"format": 2, "encryption": "memfs-enc-1"}
MAGIC = b"MFE1"


@pytest.fixture(params=["s3", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh cloud: a bucket on moto S3 over HTTP, or a folder."""
    s3 = request.getfixturevalue("s3") if request.param == "s3" else None
    return make_store(request.param, tmp_path, s3)


def assert_layout(store: Store, name: str) -> None:
    """The objects of design §2: a plain memfs.json naming no agent, the plain stub manifest,
    keys.json, and everything else sealed (.enc, starting with the envelope's magic)."""
    objects = store.objects(name)
    assert {"memfs.json", "manifest.json", "manifest.json.enc", "keys.json"} <= set(objects)
    assert json.loads(objects["manifest.json"]) == STUB
    identity = json.loads(objects["memfs.json"])
    assert identity["encryption"]["scheme"] == "memfs-enc-1"
    assert len(bytes.fromhex(identity["encryption"]["repo_id"])) == 16
    packs = [key for key in objects if key.startswith("packs/")]
    assert packs and all(key.endswith(".pack.enc") for key in packs), packs
    locks = {key for key in objects if key.endswith(".lock")}  # a folder cloud's CAS locks
    assert all(objects[key] == b"" for key in locks), sorted(locks)
    others = set(objects) - {"memfs.json", "manifest.json", "keys.json"} - locks
    assert all(key.endswith(".enc") for key in others), sorted(others)
    assert all(objects[key].startswith(MAGIC) for key in others)


def assert_no_plaintext(store: Store, name: str, markers: list[str], control: Path) -> None:
    """No stored object holds a marker, raw or deflated; the same grep finds every marker in
    a local repository (the control: it would have found them in a plain pack)."""
    assert plaintext_hits(store.objects(name), markers) == {}
    found = plaintext_hits(local_git_blobs(control), markers)
    missing = [marker for marker in markers if marker not in found]
    assert missing == [], f"the grep cannot see {missing} even in the local repository"


def edit(machine: Box, path: str, text: str) -> None:
    target = machine.root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"---\ndescription: {machine.name}\n---\n{text}\n")


@pytest.mark.timeout(180)
def test_two_machines_both_ways(store: Store, tmp_path: Path) -> None:
    shared = share_encrypted(store, tmp_path)
    a, b = shared.a, shared.b
    assert committed_files(b.root) == committed_files(a.root)
    assert git(b.root, "config", "remote.origin.memfs-encrypt").strip() == "true"
    markers = [*shared.markers, shared.name, shared.description]

    edit(a, "reference/from-a.md", "CONTENT-a2")
    edit(b, "reference/from-b.md", "CONTENT-b1")
    edit(b, "reference/marker.md", f"CONTENT-{shared.name}-a1 and CONTENT-b2")
    markers += ["CONTENT-a2", "CONTENT-b1", "CONTENT-b2"]
    a.at("sync")
    b.at("sync")
    a.at("sync")
    assert a.head() == b.head()
    assert committed_files(a.root) == committed_files(b.root)
    assert worktree_files(a.root) == committed_files(a.root)
    assert b"CONTENT-a2" in (b.root / "reference/from-a.md").read_bytes()
    assert b"CONTENT-b1" in (a.root / "reference/from-b.md").read_bytes()
    messages = git(a.root, "log", "--format=%B")
    assert shared.markers[1] in messages

    if store.kind == "s3":  # a mount (a checkout with its watcher) of the encrypted agent
        sandbox = b.home / "sandbox"
        b.ok("mount", store.agent_url(shared.name), str(sandbox))
        (sandbox / "reference" / "mounted.md").write_text("---\ndescription: m\n---\nCONTENT-m1\n")
        b.ok("unmount", str(sandbox))
        markers.append("CONTENT-m1")
        a.at("sync")
        assert b"CONTENT-m1" in (a.root / "reference" / "mounted.md").read_bytes()

    edit(a, "reference/race-a.md", "CONTENT-race-a")  # both push at once: one wins the swap,
    edit(b, "reference/race-b.md", "CONTENT-race-b")  # the other merges and pushes again
    markers += ["CONTENT-race-a", "CONTENT-race-b"]
    racing = [subprocess.Popen(memfs_command("-C", str(m.root), "sync"), env=m.env(), cwd=m.home,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in (a, b)]  # fmt: skip
    for process in racing:
        _, err = process.communicate(timeout=120)
        assert process.returncode in (0, 7), err  # 7: lost the race and gave up; sync again
        assert "Traceback" not in err
    sync_until_converged([a, b])
    for machine in (a, b):
        assert (machine.root / "reference/race-a.md").exists()
        assert (machine.root / "reference/race-b.md").exists()

    assert_layout(store, shared.name)
    assert_no_plaintext(store, shared.name, markers, a.root)
    assert fsck(a.root) == "" and fsck(b.root) == ""


@pytest.mark.timeout(180)
def test_watchers_converge(store: Store, tmp_path: Path) -> None:
    shared = share_encrypted(store, tmp_path)
    machines = [shared.a, shared.b]
    ledger = Ledger()
    rng = random.Random(14)
    editors = [RandomEditor(m.name, m.root, ledger, random.Random(rng.random())) for m in machines]

    def converged() -> bool:
        heads = {m.head() for m in machines}
        tracked = {git(m.root, "rev-parse", "refs/remotes/origin/main").strip() for m in machines}
        return len(heads) == 1 and tracked == heads and all(m.clean() for m in machines)

    for machine in machines:
        start_watcher(machine)
    try:
        threads = [
            threading.Thread(target=edit_for_a_while, args=(editor, 15)) for editor in editors
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # a plain folder or S3 cloud converges in a few seconds; 30 s leaves room for a loaded
        # machine, not for a watcher that only notices the other's push at its cold interval
        wait_for(converged, timeout=30, what="both watched machines to converge")
    finally:
        stopped = [stop_watcher(machine) for machine in machines]
    assert [done.returncode for done in stopped] == [0, 0], [d.stderr for d in stopped]
    assert converged()
    assert ledger.lost(committed_files(shared.a.root)) == {}
    assert committed_files(shared.a.root) == committed_files(shared.b.root)
    assert fsck(shared.a.root) == "" and fsck(shared.b.root) == ""
    tokens = list(ledger.expected())[:20]
    assert_layout(store, shared.name)
    assert_no_plaintext(store, shared.name, tokens, shared.a.root)


@pytest.mark.timeout(180)
def test_third_machine_no_key(store: Store, tmp_path: Path) -> None:
    name, a, c = "zebu-third", box(tmp_path, "a", store), box(tmp_path, "c", store)
    start_encrypted_agent(store, a, name, "DESCR-third")
    recipient = c.recipient()
    before = store.objects(name)

    def refused(done: object, what: str) -> None:
        line = assert_one_clear_line(done, KEY_EXIT, what)  # type: ignore[arg-type]
        assert recipient in line and "memfs key add" in line, f"{what}: {line}"

    target = tmp_path / "c-clone"
    refused(c.run("clone", store.agent_url(name), str(target)), "c: clone")
    assert absent_or_empty(target)

    c.ok("cloud", "add", CLOUD, store.cloud_url)
    checkout = tmp_path / "c-checkout"
    refused(c.run("checkout", name, str(checkout), "--cloud", CLOUD), "c: checkout")
    assert absent_or_empty(checkout)

    listed = c.run("agents", "--cloud", CLOUD, "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    entries = {entry["name"]: entry for entry in json.loads(listed.stdout)}
    assert name in entries, listed.stdout
    assert "encrypt" in json.dumps(entries[name]).lower(), entries[name]
    assert "DESCR-third" not in listed.stdout
    text = c.run("agents", "--cloud", CLOUD)
    assert text.returncode == 0 and name in text.stdout and "encrypt" in text.stdout.lower()

    refused(c.run("envs", name, "--cloud", CLOUD), "c: envs")
    refused(c.run("mount", store.agent_url(name), str(tmp_path / "c-mount")), "c: mount")
    assert absent_or_empty(tmp_path / "c-mount")

    c.ok("init", str(c.root), "--name", "other")
    c.at("remote", "add", "origin", store.agent_url(name))
    head = c.head()
    refused(c.run("-C", str(c.root), "fetch"), "c: fetch")
    assert c.head() == head and "CONTENT-" not in json.dumps(
        {k: v.decode(errors="replace") for k, v in worktree_files(c.root).items()}
    )
    keyring = store.read(name, "keys.json").decode()
    assert recipient not in keyring
    assert store.objects(name) == before, "a machine without a key changed the store"


@pytest.mark.timeout(180)
def test_removed_machine_cannot_read_later_pushes(s3: object, tmp_path: Path) -> None:
    """A black-box variant of test_keys.py::test_rm_locks_out, on moto S3 only (that one runs
    both): after `key rm b` on a, a's next push is unreadable to b (exit 10), b's tree stays."""
    store = make_store("s3", tmp_path, s3)
    shared = share_encrypted(store, tmp_path)
    a, b = shared.a, shared.b
    listed = json.loads(a.at("key", "list", "--json"))
    slots = listed["slots"] if isinstance(listed, dict) else listed
    assert {slot["name"] for slot in slots} >= {"b"}, listed
    a.at("key", "rm", "b")
    edit(a, "reference/after.md", "CONTENT-after-rm")
    a.at("sync")
    head = b.head()
    done = b.run("-C", str(b.root), "pull")
    assert_one_clear_line(done, KEY_EXIT, "b: pull after its removal")
    assert b.head() == head
    assert not (b.root / "reference/after.md").exists()
    assert fsck(b.root) == ""
