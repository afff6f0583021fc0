"""``memfs key``: machines join, leave and recover an agent's keyring (issue 14, design §4).

Every "machine" is its own HOME and config folder (its identity and key cache beside the
config file), running whole ``memfs`` processes (tests/harness.py), on file:// stores and on
moto's S3 over HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from memfs.crypto.envelope import Role, open_sealed, seal
from memfs.crypto.keyfile import commitment, link_name
from memfs.keys import storage_for_url

from .harness import Machine, assert_exit_is_documented, memfs_command

FAST = str(Path(__file__).resolve().parent / "fastscrypt")  # cheap scrypt: fastscrypt/agescrypt.py

b64d = base64.b64decode
KEY_EXIT = 10
USAGE_EXIT = 2
SLOT_FIELDS = {
    "id", "kind", "name", "host", "added_at", "added_by", "recipient", "this_machine", "epoch",
}  # fmt: skip
KEYRING = """
import sys
from memfs.keys import agent_keys, storage_for_url
agent_keys(storage_for_url(sys.argv[1]), create_name=sys.argv[2])
"""


def run(
    machine: Machine, *args: str, stdin: str = "", agent: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """``memfs [-C root] ARGS`` on ``machine``, ``stdin`` piped in (passphrases)."""
    command = memfs_command(*((("-C", str(machine.root)) if agent else ()) + args))
    done = subprocess.run(
        command,
        env=machine.env(**env),
        cwd=machine.home,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_exit_is_documented(done, f"{machine.name}: memfs {' '.join(args)}")
    return done


def ok(machine: Machine, *args: str, stdin: str = "", agent: bool = True, **env: str) -> str:
    done = run(machine, *args, stdin=stdin, agent=agent, **env)
    assert done.returncode == 0, f"{machine.name}: memfs {' '.join(args)}: {done.stderr}"
    return done.stdout


def key_id(machine: Machine) -> str:
    return ok(machine, "key", "id", agent=False).strip()


def slots(machine: Machine) -> list[dict]:
    return json.loads(ok(machine, "key", "list", "--json"))["slots"]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return "memfs::" + (tmp_path / "cloud" / "agent").as_uri()


def machine(tmp_path: Path, name: str) -> Machine:
    made = Machine.create(tmp_path, name)
    for setting in (("user.name", name), ("user.email", f"{name}@x.org")):
        subprocess.run(["git", "config", "--file", str(made.home / ".gitconfig"), *setting])
    return made


def keyed_agent(tmp_path: Path, url: str) -> Machine:
    """Machine a: an agent pushed to ``url`` with a keyring whose one slot is a's."""
    a = machine(tmp_path, "a")
    ok(a, "init", str(a.root), "--name", "shared", agent=False)
    ok(a, "remote", "add", "origin", url)
    ok(a, "push")
    subprocess.run([*memfs_command()[:1], "-c", KEYRING, url, "a"], env=a.env(), check=True)
    return a


def join(a: Machine, other: Machine, url: str) -> None:
    """``other`` is added by a, then clones the agent."""
    ok(a, "key", "add", key_id(other), "--name", other.name)
    ok(other, "clone", url, str(other.root), agent=False)


def plain_cloud_with_a_secret(tmp_path: Path, url: str) -> Machine:
    """Machine a: an agent on a plain cloud at ``url`` holding secret API_TOKEN, pushed."""
    a = machine(tmp_path, "a")
    ok(a, "init", str(a.root), "--name", "shared", agent=False)
    ok(a, "remote", "add", "origin", url)
    ok(a, "secret", "set", "API_TOKEN", stdin="value-one-0123456789")
    ok(a, "push")
    return a


def a_machine_removed(tmp_path: Path, url: str) -> tuple[Machine, Machine]:
    """Machines a and c of ``plain_cloud_with_a_secret``: c joined, synced the secrets, then
    was removed by a (``key rm c``: a rotation) and a synced: c keeps its old epoch's key."""
    a = plain_cloud_with_a_secret(tmp_path, url)
    c = machine(tmp_path, "c")
    join(a, c, url)
    ok(c, "sync")
    ok(a, "key", "rm", "c")
    ok(a, "sync")
    return a, c


# -- id, add, list -------------------------------------------------------------------------


def test_key_id_needs_no_agent_and_is_this_machines_for_good(tmp_path: Path) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    first = key_id(a)
    assert first.startswith("age1") and key_id(a) == first
    assert key_id(b) != first
    identity = a.home / ".config/memfs/identity"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    assert "AGE-SECRET-KEY-1" in identity.read_text()  # stock age reads it (age -d -i)


def test_add_and_list_show_every_slot_and_this_machine(tmp_path: Path, url: str) -> None:
    a = keyed_agent(tmp_path, url)
    b = machine(tmp_path, "b")
    added = ok(a, "key", "add", key_id(b), "--name", "laptop-b")
    assert "Added slot s-" in added
    listed = slots(a)
    assert [s["name"] for s in listed] == ["a", "laptop-b"]
    assert all(set(s) == SLOT_FIELDS for s in listed)
    assert [s["this_machine"] for s in listed] == [True, False]
    assert listed[1]["recipient"] == key_id(b) and listed[1]["added_by"] == listed[0]["id"]
    assert {s["epoch"] for s in listed} == {1} and {s["kind"] for s in listed} == {"x25519"}
    again = ok(a, "key", "add", key_id(b), "--name", "other-name")  # no second slot
    assert listed[1]["id"] in again and len(slots(a)) == 2

    ok(b, "clone", url, str(b.root), agent=False)
    on_b = json.loads(ok(b, "key", "list", "--json"))
    assert on_b["verified"] and on_b["epoch"] == 1 and on_b["remote"] == "origin"
    assert [s["this_machine"] for s in on_b["slots"]] == [False, True]
    text = ok(b, "key", "list")
    assert "* s-" in text and "laptop-b" in text and "epoch 1, 2 slots" in text

    c = machine(tmp_path, "c")  # no slot: it sees the slots (keys.json is plain), unverified
    ok(c, "clone", url, str(c.root), agent=False)  # a plain agent: its memory needs no key
    listing = json.loads(ok(c, "key", "list", "--json"))
    assert not listing["verified"] and not any(s["this_machine"] for s in listing["slots"])
    done = run(c, "key", "add", key_id(c), "--name", "c")
    assert done.returncode == KEY_EXIT and key_id(c) in done.stderr
    assert len(slots(a)) == 2


def test_bad_input_gets_one_line_and_its_exit_code(tmp_path: Path, url: str) -> None:
    a = keyed_agent(tmp_path, url)
    cases = [
        (("key", "add", "age1notarecipient", "--name", "x"), USAGE_EXIT, "not an age recipient"),
        (("key", "add", "--name", "x"), USAGE_EXIT, "RECIPIENT"),
        (("key", "rm", "s-nothere"), USAGE_EXIT, "no slot 's-nothere'"),
        (("key", "rm", "a", "--force"), KEY_EXIT, "last slot"),
        (("key", "list", "--remote", "nope"), USAGE_EXIT, "nope"),
        (("key", "add", "--passphrase"), USAGE_EXIT, "passphrases differ"),
    ]
    for args, code, words in cases:
        stdin = "one\ntwo\n" if "--passphrase" in args else ""
        done = run(a, *args, stdin=stdin)
        assert done.returncode == code, (args, done.stderr)
        assert words in done.stderr, done.stderr
        if "Usage:" not in done.stderr:  # click's own usage errors show the usage line too
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    ok(a, "remote", "add", "hub", str(tmp_path / "hub.git"))
    done = run(a, "key", "list", "--remote", "hub")
    assert done.returncode == USAGE_EXIT and "git host" in done.stderr
    assert [s["name"] for s in slots(a)] == ["a"]  # nothing was changed
    ok(a, "key", "add", key_id(machine(tmp_path, "b")), "--name", "b")
    ok(a, "key", "add", key_id(machine(tmp_path, "c")), "--name", "b")
    for args, code, words in [
        (("key", "rm", "a"), USAGE_EXIT, "this machine's own slot: it could no longer read"),
        (("key", "rm", "b"), USAGE_EXIT, "several slots are named 'b'"),
    ]:
        done = run(a, *args)
        assert done.returncode == code and words in done.stderr, done.stderr
    assert [s["epoch"] for s in slots(a)] == [1, 1, 1]


# -- rotation ------------------------------------------------------------------------------


def test_forged_rotation_refused(tmp_path: Path, url: str) -> None:
    """keys.json rewritten by someone with the store's credentials and no key: a new epoch of
    their own, wrapped to every real recipient, its link sealed under a wrong key."""
    import pyrage

    a = keyed_agent(tmp_path, url)
    b = machine(tmp_path, "b")
    join(a, b, url)
    ok(b, "key", "list")  # b holds epoch 1
    storage = storage_for_url(url)
    data, etag = storage.get("keys.json")  # type: ignore[misc]
    ring = json.loads(data)
    repo = bytes.fromhex(ring["repo_id"])
    own, wrong = os.urandom(32), os.urandom(32)
    from memfs.crypto.keyfile import kid

    for slot in ring["slots"]:
        wrapped = pyrage.encrypt(own, [pyrage.x25519.Recipient.from_str(slot["recipient"])])
        slot["wrapped"] = base64.b64encode(wrapped).decode()
    history = json.dumps({"1": base64.b64encode(wrong).decode()}).encode()
    ring.update(
        epoch=2,
        kid=kid(own, repo),
        history=base64.b64encode(
            seal(own, 2, Role.HISTORY, repo, "keys.json#history", history)
        ).decode(),
        link=base64.b64encode(
            seal(wrong, 1, Role.LINK, repo, link_name(2), commitment(own, repo))
        ).decode(),
    )
    assert storage.put_if_match("keys.json", json.dumps(ring).encode(), etag)
    for who in (a, b):
        done = run(who, "key", "list")
        assert done.returncode == KEY_EXIT, done.stderr
        assert "keys.json" in done.stderr and "does not hold the agent's key" in done.stderr
    done = run(a, "key", "add", key_id(machine(tmp_path, "d")), "--name", "d")
    assert done.returncode == KEY_EXIT


def test_trust_rollback_accepts_a_store_restored_on_purpose(tmp_path: Path) -> None:
    """An older sealed manifest put back is refused (exit 10) until the user says the restore
    was deliberate; then it is taken as the remote's state, and later pushes go on from it."""
    url = "memfs::" + (tmp_path / "cloud" / "agent").as_uri()
    (a,) = encrypted_agent(tmp_path, url)
    storage = storage_for_url(url)
    old = storage.get("manifest.json.enc")
    assert old is not None
    (a.root / "reference/notes.md").write_text("---\ndescription: notes\n---\nnewer\n")
    ok(a, "push")
    now = storage.get("manifest.json.enc")
    assert now is not None and storage.put_if_match("manifest.json.enc", old[0], now[1])
    done = run(a, "fetch")
    assert done.returncode == KEY_EXIT and "an older copy was put back" in done.stderr
    assert "its next state is accepted" in ok(a, "key", "trust-rollback", "origin")
    ok(a, "fetch")
    ok(a, "push")  # the newer commit goes back up on top of the restored state
    done = run(a, "key", "trust-rollback", "nope")
    assert done.returncode == USAGE_EXIT


# -- an encrypted agent: rotation re-seals, a removed machine is locked out ---------------------


@pytest.fixture(params=["file", "s3"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An agent's place in a store: a local folder cloud, or a bucket on moto's S3."""
    if request.param == "file":
        return "memfs::" + (tmp_path / "cloud" / "agent").as_uri()
    return request.getfixturevalue("s3").url("agents/agent")


def encrypted_agent(tmp_path: Path, url: str, *others: str) -> list[Machine]:
    """Machine a pushes an encrypted agent to ``url``; each of ``others`` is added and clones."""
    a = machine(tmp_path, "a")
    ok(a, "init", str(a.root), "--name", "shared", agent=False)
    ok(a, "remote", "add", "origin", url, "--encrypt")
    (a.root / "reference").mkdir(exist_ok=True)
    (a.root / "reference/notes.md").write_text("---\ndescription: notes\n---\nmarker-one\n")
    ok(a, "push")
    team = [a]
    for name in others:
        team.append(machine(tmp_path, name))
        join(a, team[-1], url)
    return team


def cached_keys(who: Machine) -> dict[int, bytes]:
    """Every epoch key ``who`` holds (its key cache)."""
    found: dict[int, bytes] = {}
    for path in (who.home / ".config/memfs/keys").glob("*.json"):
        if len(path.stem) != 32:  # not a key cache (a repo id's): the pins of sealed remotes
            continue
        epochs = json.loads(path.read_text())["epochs"]
        found.update({int(e): base64.b64decode(k) for e, k in epochs.items()})
    return found


def store_objects(url: str) -> dict[str, bytes]:
    storage = storage_for_url(url)
    return {key: storage.get(key)[0] for key in storage.list("")}  # type: ignore[index]


def opened_with(keys: dict[int, bytes], repo: bytes, objects: dict[str, bytes]) -> dict[str, bytes]:
    """The sealed objects of ``objects`` that open with one of ``keys``: name -> plaintext."""
    from memfs.crypto.envelope import open_sealed, peek, role_for_name
    from memfs.errors import TamperError

    opened = {}
    for stored, blob in objects.items():
        name = stored.removesuffix(".enc")
        role = role_for_name(name)
        if not stored.endswith(".enc") or role is None:
            continue
        peek(blob)  # malformed headers raise: the store holds none
        for key in keys.values():
            try:
                opened[stored] = open_sealed(key, repo, name, role, blob)
                break
            except TamperError:
                continue
    return opened


def repo_id(url: str) -> bytes:
    got = storage_for_url(url).get("memfs.json")
    assert got is not None
    return bytes.fromhex(json.loads(got[0])["encryption"]["repo_id"])


def test_rm_locks_out(tmp_path: Path, any_url: str) -> None:
    """A, B, C share an encrypted agent; A removes C and pushes: C's fetch is refused (exit 10,
    NoKeyError), and of every object in the store, only those there before the removal open
    with the keys C holds; after the grace period and a compaction, no pack or manifest does."""
    a, b, c = encrypted_agent(tmp_path, any_url, "b", "c")
    assert "marker-one" in (c.root / "reference/notes.md").read_text()
    before = store_objects(any_url)
    repo = repo_id(any_url)
    assert cached_keys(c) == {1: cached_keys(a)[1]}

    out = ok(a, "key", "rm", "c", MEMFS_COMPACT_GRACE="0")
    assert "epoch 2" in out and "manifest re-sealed" in out and "packs re-sealed" in out
    own = f"envs/{(a.root / '.git/memfs/env-id').read_text().strip()}.json.enc"
    assert own in before and own not in opened_with(cached_keys(c), repo, store_objects(any_url))
    (a.root / "reference/notes.md").write_text("---\ndescription: notes\n---\nmarker-two\n")
    ok(a, "push")
    ok(b, "pull")
    assert "marker-two" in (b.root / "reference/notes.md").read_text()

    ring = json.loads(storage_for_url(any_url).get("keys.json")[0])  # type: ignore[index]
    link = open_sealed(cached_keys(c)[1], repo, link_name(2), Role.LINK, b64d(ring["link"]))
    assert link == commitment(cached_keys(a)[2], repo) != cached_keys(a)[2]  # no key for C
    assert [s["name"] for s in slots(b)] == ["machine-a", "b"]  # B opens epoch 2
    assert not json.loads(ok(c, "key", "list", "--json"))["verified"]
    head = c.head()
    done = run(c, "fetch")
    assert done.returncode == KEY_EXIT, done.stderr
    assert "holds no key for it" in done.stderr and key_id(c) in done.stderr
    assert c.head() == head and "marker-one" in (c.root / "reference/notes.md").read_text()

    assert opened_with(cached_keys(c), repo, before)  # else the checks below prove nothing
    objects = store_objects(any_url)
    opened = opened_with(cached_keys(c), repo, objects)
    assert {k for k in opened if before.get(k) != objects[k]} == set()
    assert not any(b"marker-two" in plain for plain in opened.values())

    ok(a, "gc", "--remote", "origin", "--grace", "0")
    objects = store_objects(any_url)
    opened = opened_with(cached_keys(c), repo, objects)
    assert [k for k in opened if k.startswith(("packs/", "manifest"))] == []
    assert opened_with(cached_keys(a), repo, objects)  # while A reads all of it
    ok(b, "pull")


def listed_packs(url: str, keys: dict[int, bytes]) -> list[str]:
    """The packs the sealed manifest lists (opened with ``keys``)."""
    manifest = opened_with(keys, repo_id(url), store_objects(url))["manifest.json.enc"]
    return list(json.loads(manifest)["packs"])


def pack_epoch(url: str, name: str) -> int:
    from memfs.crypto.envelope import peek

    got = storage_for_url(url).get(f"packs/{name}.pack.enc")
    assert got is not None
    return peek(got[0])[1]


def test_push_racing_rotation(tmp_path: Path) -> None:
    """B holds only epoch 1 when A rotates; B's next push (its pack uploaded while it reads
    the manifest, under the newest epoch it knew) lists no pack sealed under epoch 1."""
    url = "memfs::" + (tmp_path / "cloud" / "agent").as_uri()
    a, b = encrypted_agent(tmp_path, url, "b")
    assert set(cached_keys(b)) == {1}
    ok(a, "key", "rotate", "--no-reseal")
    before = listed_packs(url, cached_keys(a))
    (b.root / "reference/from-b.md").write_text("---\ndescription: b\n---\nfrom b\n")
    ok(b, "push")
    assert set(cached_keys(b)) == {1, 2}
    new = [name for name in listed_packs(url, cached_keys(a)) if name not in before]
    assert new and {name: pack_epoch(url, name) for name in new} == {name: 2 for name in new}
    ok(a, "pull")
    assert (a.root / "reference/from-b.md").exists()
    assert "epoch 1" not in ok(a, "key", "list")  # the older packs wait for a compaction:
    ok(a, "gc", "--remote", "origin")  # it seals the packs it keeps under the newest epoch
    assert {pack_epoch(url, name) for name in listed_packs(url, cached_keys(a))} == {2}


def test_passphrase_slot_survives_rotation(tmp_path: Path) -> None:
    """A passphrase slot is re-wrapped by every rotation without its passphrase; a machine
    nobody added clones with it (one scrypt unlock), gets its own slot, and needs the
    passphrase no more. A wrong passphrase leaves no folder."""
    url = "memfs::" + (tmp_path / "cloud" / "agent").as_uri()
    a, _ = encrypted_agent(tmp_path, url, "b")
    secret = "correct horse battery staple"
    # written at a cheap scrypt work factor (tests/fastscrypt/: the same reader opens it);
    # tests/test_crypto_keys.py writes and opens one at pyrage's real ~1 s cost
    added = ok(a, "key", "add", "--passphrase", stdin=f"{secret}\n{secret}\n", PYTHONPATH=FAST)
    assert "passphrase" in added
    ok(a, "key", "rm", "b")
    ok(a, "key", "rotate")
    (a.root / "reference/notes.md").write_text("---\ndescription: notes\n---\nmarker-three\n")
    ok(a, "push")
    listed = json.loads(ok(a, "key", "list", "--json"))
    assert listed["epoch"] == 3 and [s["kind"] for s in listed["slots"]] == ["x25519", "passphrase"]

    d = machine(tmp_path, "d")
    target = tmp_path / "d-agent"
    done = run(d, "clone", "--passphrase", url, str(target), stdin="wrong horse\n", agent=False)
    assert done.returncode == KEY_EXIT and "passphrase opens no slot" in done.stderr
    assert not target.exists()
    ok(d, "clone", "--passphrase", url, str(d.root), stdin=f"{secret}\n", agent=False)
    assert "marker-three" in (d.root / "reference/notes.md").read_text()
    mine = [s for s in slots(d) if s["this_machine"]]
    assert [(s["kind"], s["name"]) for s in mine] == [("x25519", "machine-d")]
    assert mine[0]["added_by"] == next(s["id"] for s in slots(d) if s["kind"] == "passphrase")
    (a.root / "reference/notes.md").write_text("---\ndescription: notes\n---\nmarker-four\n")
    ok(a, "push")
    ok(d, "pull")  # no passphrase asked: its own slot opens the agent
    assert "marker-four" in (d.root / "reference/notes.md").read_text()


def test_rm_re_seals_the_secrets_of_a_plain_cloud(tmp_path: Path, url: str) -> None:
    """On a plain cloud only the secrets are sealed: a rotation seals them again (one more
    generation, which B takes as an ordinary change), so C, removed, opens no later blob."""
    from memfs.crypto.envelope import Role, open_sealed
    from memfs.errors import TamperError

    a = plain_cloud_with_a_secret(tmp_path, url)
    b, c = machine(tmp_path, "b"), machine(tmp_path, "c")
    join(a, b, url)
    join(a, c, url)
    for who in (b, c):
        ok(who, "sync")
        listed = json.loads(ok(who, "secret", "list", "--json"))["secrets"]
        assert [row["name"] for row in listed] == ["API_TOKEN"]
    ok(a, "key", "rm", "c")
    ok(a, "secret", "set", "LATER", stdin="value-two-0123456789")
    ok(a, "sync")
    ok(b, "sync")
    listed = json.loads(ok(b, "secret", "list", "--json"))["secrets"]
    assert [row["name"] for row in listed] == ["API_TOKEN", "LATER"]
    manifest = json.loads(storage_for_url(url).get("manifest.json")[0])  # type: ignore[index]
    blob = base64.b64decode(manifest["secrets"])
    repo = bytes.fromhex(json.loads(storage_for_url(url).get("keys.json")[0])["repo_id"])  # type: ignore[index]
    for key in cached_keys(c).values():
        with pytest.raises(TamperError):
            open_sealed(key, repo, "manifest.json#secrets", Role.SECRETS, blob)
    ok(c, "sync")  # its memory still syncs (a plain cloud); the secrets stay as they were
    listed = json.loads(ok(c, "secret", "list", "--json"))["secrets"]
    assert [row["name"] for row in listed] == ["API_TOKEN"]
