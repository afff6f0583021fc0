"""Machine identities, keys.json and the key cache (memfs/crypto/identity.py, keyfile.py,
keyring.py, keycache.py), on a file:// store and on moto's S3 over HTTP, with "machines" that
are separate config folders, as two computers would be."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyrage
import pytest

from memfs.crypto import keycache
from memfs.crypto.envelope import Role, open_sealed, peek, seal
from memfs.crypto.identity import (
    Identity,
    IdentityError,
    InvalidRecipientError,
    ensure_identity,
    identity_path,
    is_secret_key,
    load_identity,
    parse_recipient,
)
from memfs.crypto.keycache import KeyCache, Seen
from memfs.crypto.keyfile import (
    MAX_FILE,
    MAX_PASSPHRASE_SLOTS,
    MAX_SLOTS,
    commitment,
    kid,
    link_name,
    parse_keyring,
)
from memfs.crypto.keyring import (
    KEYS_OBJECT,
    RingKeys,
    add_slot,
    create_keyring,
    describe,
    open_keys,
    read_keyring,
    remove_slot,
    rotate,
    unlock_with_passphrase,
)
from memfs.errors import (
    ForkError,
    KeyringError,
    NoKeyError,
    RollbackError,
    TamperError,
)
from memfs.remotes.storage import Storage, open_storage

from .harness import fresh_python

REPO = bytes.fromhex("00112233445566778899aabbccddeeff")
MANIFEST = "manifest.json"


@dataclass
class Machine:
    """One computer: its config folder, identity and key cache for REPO."""

    name: str
    folder: Path
    identity: Identity

    @property
    def cache(self) -> KeyCache:
        return KeyCache.for_repo(REPO, self.folder)

    def keys(self, storage: Storage) -> RingKeys:
        return open_keys(storage, REPO, self.identity, self.cache)


@pytest.fixture
def machines(tmp_path: Path) -> Callable[[str], Machine]:
    def make(name: str) -> Machine:
        folder = tmp_path / "machines" / name
        return Machine(name, folder, ensure_identity(folder))

    return make


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """An agent's folder in a store: a local folder, or a bucket on moto's S3."""
    if request.param == "file":
        return open_storage((tmp_path / "cloud" / "agent").as_uri())
    s3 = request.getfixturevalue("s3")
    return open_storage(s3.url("agents/agent"))


@pytest.fixture
def file_store(tmp_path: Path) -> Storage:
    return open_storage((tmp_path / "cloud" / "agent").as_uri())


def ring_json(storage: Storage) -> dict:
    got = storage.get(KEYS_OBJECT)
    assert got is not None
    return json.loads(got[0])


def put_ring(storage: Storage, data: dict | bytes) -> None:
    """Replace keys.json as whoever holds the store's credentials could."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    got = storage.get(KEYS_OBJECT)
    assert got is not None
    assert storage.put_if_match(KEYS_OBJECT, raw, got[1])


def sealed_manifest(keys: RingKeys, text: bytes) -> bytes:
    epoch, key = keys.current()
    return seal(key, epoch, Role.MANIFEST, REPO, MANIFEST, text)


def open_manifest(keys: RingKeys, blob: bytes) -> bytes:
    return open_sealed(keys.key(peek(blob)[1]), REPO, MANIFEST, Role.MANIFEST, blob)


# --- identity ------------------------------------------------------------------------------


def test_identity_is_created_0600_in_a_0700_folder_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    made = ensure_identity(folder)
    path = identity_path(folder)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    text = path.read_text()
    assert f"# public key: {made.recipient}\n" in text
    assert text.strip().splitlines()[-1] == made.secret and made.secret.startswith(
        "AGE-SECRET-KEY-1"
    )
    assert made.recipient.startswith("age1") and made.secret not in repr(made)
    assert ensure_identity(folder) == made == load_identity(folder)
    assert [p.name for p in folder.iterdir()] == ["identity"]  # no temp file left


def test_the_secret_key_check_accepts_what_pyrage_accepts() -> None:
    """An identity is loaded without pyrage (its recipient is derived on first use): the
    bech32 check must refuse exactly the strings pyrage refuses, for real keys, lower case,
    and every single character changed."""

    def pyrage_says(text: str) -> bool:
        try:
            pyrage.x25519.Identity.from_str(text)
        except pyrage.IdentityError:
            return False
        return True

    alphabet = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L1Bqa-"
    for _ in range(20):
        real = str(pyrage.x25519.Identity.generate())
        assert is_secret_key(real) and is_secret_key(real.lower())
        assert Identity.from_secret(real).recipient == str(
            pyrage.x25519.Identity.from_str(real).to_public()
        )
        for i in range(0, len(real), 3):
            for c in alphabet[i % 7 :: 7]:
                changed = real[:i] + c + real[i + 1 :]
                assert is_secret_key(changed) == pyrage_says(changed), changed
    for text in ("", "AGE-SECRET-KEY-1", "AGE-SECRET-KEY-1XYZ", "age1" + "q" * 58):
        assert not is_secret_key(text) and not pyrage_says(text)


def test_loading_the_identity_loads_no_age(tmp_path: Path) -> None:
    """A command whose keys are cached needs the identity's file checked, not its public key:
    pyrage (~1 ms and more a process) loads when a recipient or a slot is used."""
    folder = tmp_path / "config"
    made = ensure_identity(folder)
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from memfs.crypto.identity import load_identity\n"
        f"found = load_identity(Path({str(folder)!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyrage'))\n"
        "print(found.recipient)\n"
    )
    assert fresh_python(probe).splitlines() == ["[]", made.recipient]


def test_an_existing_config_folder_is_tightened_to_0700(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    (folder / "config.yaml").write_text("identity: null\n")
    ensure_identity(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_no_identity_is_none(tmp_path: Path) -> None:
    assert load_identity(tmp_path / "none") is None


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o700])
def test_identity_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    ensure_identity(tmp_path)
    path = identity_path(tmp_path)
    path.chmod(mode)
    if mode & 0o077:
        with pytest.raises(
            IdentityError, match=f"mode {mode:04o} lets others read it: run chmod 600 {path}"
        ) as caught:
            load_identity(tmp_path)
        assert caught.value.exit_code == 10
    else:
        assert load_identity(tmp_path) is not None  # the owner's bits are the owner's business


def test_identity_symlink_foreign_owner_writable_folder_and_garbage_refused(tmp_path: Path) -> None:
    real = ensure_identity(tmp_path / "real")
    link_folder = tmp_path / "linked"
    link_folder.mkdir(mode=0o700)
    identity_path(link_folder).symlink_to(identity_path(tmp_path / "real"))
    with pytest.raises(IdentityError, match="symlink"):
        load_identity(link_folder)

    loose = tmp_path / "loose"
    ensure_identity(loose)
    loose.chmod(0o777)
    with pytest.raises(IdentityError, match="run chmod 700"):
        load_identity(loose)

    garbled = tmp_path / "garbled"
    garbled.mkdir(mode=0o700)
    for content in (
        "",
        "# only a comment\n",
        f"{real.secret}\n{real.secret}\n",
        "AGE-SECRET-KEY-1XYZ\n",
    ):
        fd = os.open(identity_path(garbled), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, content.encode())
        os.close(fd)
        with pytest.raises(IdentityError):
            load_identity(garbled)

    if os.geteuid() == 0:  # only root can give a file away
        os.chown(identity_path(tmp_path / "real"), 65534, -1)
        with pytest.raises(IdentityError, match="owned by another user"):
            load_identity(tmp_path / "real")


def test_identities_made_at_once_by_many_threads_are_one(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    found: list[Identity] = []
    threads = [
        threading.Thread(target=lambda: found.append(ensure_identity(folder))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(found) == 8 and len({i.recipient for i in found}) == 1
    assert [p.name for p in folder.iterdir()] == ["identity"]


def test_recipients_are_checked(machines: Callable[[str], Machine]) -> None:
    laptop = machines("laptop")
    assert parse_recipient(f"  {laptop.identity.recipient}\n") == laptop.identity.recipient
    for bad in ("age1abc", "", "ssh-ed25519 AAAA", laptop.identity.secret):
        with pytest.raises(InvalidRecipientError) as caught:
            parse_recipient(bad)
        assert caught.value.exit_code == 2
        assert laptop.identity.secret not in str(caught.value)
        assert "age1… that 'memfs key id' prints" in str(caught.value)


# --- keyring --------------------------------------------------------------------------------


def test_two_machines_share_rotate_and_list(
    store: Storage, machines: Callable[[str], Machine]
) -> None:
    laptop, server = machines("laptop"), machines("server")
    keys = create_keyring(store, REPO, laptop.identity, "laptop", cache=laptop.cache)
    assert keys.current()[0] == 1
    with pytest.raises(NoKeyError, match=server.identity.recipient) as caught:
        server.keys(store)
    assert caught.value.exit_code == 10 and "memfs key add" in str(caught.value)

    slot = add_slot(store, keys, server.identity.recipient, "server", host="srv")
    assert (slot.kind, slot.name, slot.host) == ("x25519", "server", "srv")
    assert add_slot(store, keys, server.identity.recipient, "again") == slot  # idempotent
    theirs = server.keys(store)
    assert theirs.current() == keys.current()
    blob = sealed_manifest(keys, b"from laptop")
    assert open_manifest(theirs, blob) == b"from laptop"

    ring, _ = read_keyring(store, REPO)
    listed = describe(ring, server.identity)
    assert [(s["name"], s["this_machine"], s["added_by"]) for s in listed] == [
        ("laptop", False, listed[0]["id"]),
        ("server", True, listed[0]["id"]),
    ]
    assert "wrapped" not in json.dumps(listed)

    assert rotate(store, theirs) == 2
    assert theirs.current()[0] == 2
    fresh = laptop.keys(store)  # the laptop learns epoch 2 on its first need of it
    assert fresh.current()[0] == 1
    assert fresh.key(2) == theirs.key(2) and fresh.key(1) == theirs.key(1)
    assert open_manifest(fresh, sealed_manifest(theirs, b"epoch 2")) == b"epoch 2"
    assert fresh.key(2) != fresh.key(1)
    assert laptop.cache.kids()[2] == kid(fresh.key(2), REPO) == ring_json(store)["kid"]


def test_removed_machine_keeps_old_epochs_and_cannot_open_new_ones(
    store: Storage, machines: Callable[[str], Machine]
) -> None:
    """What a removed machine keeps (docs: it could already read everything sealed before)."""
    a, b, c = machines("a"), machines("b"), machines("c")
    keys_a = create_keyring(store, REPO, a.identity, "a", cache=a.cache)
    add_slot(store, keys_a, b.identity.recipient, "b")
    slot_c = add_slot(store, keys_a, c.identity.recipient, "c")
    keys_b, keys_c = b.keys(store), c.keys(store)
    before = sealed_manifest(keys_a, b"before removal")

    assert remove_slot(store, keys_a, slot_c.id) == 2
    after = sealed_manifest(keys_a, b"after removal")
    assert peek(after) == (Role.MANIFEST, 2)
    assert open_manifest(keys_b, after) == b"after removal"
    assert c.identity.recipient not in json.dumps(ring_json(store))

    with pytest.raises(NoKeyError, match=r"\(epoch 2\)"):
        keys_c.key(2)
    with pytest.raises(NoKeyError):
        c.keys(store).refresh()
    assert open_manifest(keys_c, before) == b"before removal"  # its cache still holds epoch 1
    for key in c.cache.epochs().values():  # no key c holds opens what came after
        with pytest.raises(TamperError):
            open_sealed(key, REPO, MANIFEST, Role.MANIFEST, after)
    assert set(c.cache.epochs()) == {1}


def test_remove_refuses_the_last_slot_and_unknown_ones(
    file_store: Storage, machines: Callable[[str], Machine]
) -> None:
    a = machines("a")
    keys = create_keyring(file_store, REPO, a.identity, "a", cache=a.cache)
    before = file_store.get(KEYS_OBJECT)
    with pytest.raises(KeyringError, match="no slot 's-nope'"):
        remove_slot(file_store, keys, "s-nope")
    own = ring_json(file_store)["slots"][0]["id"]
    with pytest.raises(KeyringError, match="last slot") as caught:
        remove_slot(file_store, keys, own)
    assert caught.value.exit_code == 10
    assert file_store.get(KEYS_OBJECT) == before


def test_create_twice_opens_the_first(store: Storage, machines: Callable[[str], Machine]) -> None:
    a, b = machines("a"), machines("b")
    first = create_keyring(store, REPO, a.identity, "a", cache=a.cache)
    again = create_keyring(store, REPO, a.identity, "a again", cache=a.cache)
    assert again.current() == first.current()
    assert len(ring_json(store)["slots"]) == 1
    with pytest.raises(NoKeyError):
        create_keyring(store, REPO, b.identity, "b", cache=b.cache)


def test_concurrent_add_slot_all_land(store: Storage, machines: Callable[[str], Machine]) -> None:
    """Each thread is another machine's admin adding someone: every compare-and-swap that loses
    re-reads and retries, so no slot is lost."""
    a = machines("a")
    create_keyring(store, REPO, a.identity, "a", cache=a.cache)
    newcomers = [machines(f"n{i}") for i in range(4)]
    errors: list[BaseException] = []

    def add(machine: Machine) -> None:
        try:
            add_slot(store, a.keys(store), machine.identity.recipient, machine.name)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=add, args=(m,)) for m in newcomers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert errors == []
    names = sorted(s["name"] for s in ring_json(store)["slots"])
    assert names == ["a", "n0", "n1", "n2", "n3"]
    for machine in newcomers:
        assert machine.keys(store).current() == a.keys(store).current()


def test_concurrent_rotations_both_happen(
    file_store: Storage, machines: Callable[[str], Machine]
) -> None:
    a, b = machines("a"), machines("b")
    keys_a = create_keyring(file_store, REPO, a.identity, "a", cache=a.cache)
    add_slot(file_store, keys_a, b.identity.recipient, "b")
    keys_b = b.keys(file_store)
    epochs: list[int] = []
    threads = [
        threading.Thread(target=lambda k=k: epochs.append(rotate(file_store, k)))
        for k in (keys_a, keys_b)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(epochs) == [2, 3]
    assert ring_json(file_store)["epoch"] == 3
    assert a.keys(file_store).key(3) == b.keys(file_store).key(3)
    assert a.keys(file_store).key(2) == b.keys(file_store).key(2)


# --- refusals: forks, rollbacks, tampering, limits --------------------------------------------


def _forged_ring(template: dict, epoch: int, victims: list[Identity]) -> dict:
    """A keyring made by someone with write access to the store and no key: a key of their own
    wrapped to the real recipients (age lets anyone encrypt to a public key)."""
    own = os.urandom(32)
    forged = dict(template, epoch=epoch, kid=kid(own, REPO))
    forged["slots"] = [
        dict(
            slot,
            wrapped=base64.b64encode(
                pyrage.encrypt(own, [pyrage.x25519.Recipient.from_str(v.recipient)])
            ).decode(),
        )
        for slot, v in zip(template["slots"], victims, strict=True)
    ]
    if epoch > 1:
        fake = {str(e): base64.b64encode(os.urandom(32)).decode() for e in range(1, epoch)}
        forged["history"] = base64.b64encode(
            seal(own, epoch, Role.HISTORY, REPO, "keys.json#history", json.dumps(fake).encode())
        ).decode()
        prev = base64.b64decode(fake[str(epoch - 1)])
        forged["link"] = base64.b64encode(
            seal(prev, epoch - 1, Role.LINK, REPO, link_name(epoch), commitment(own, REPO))
        ).decode()
    return forged


def test_forged_keyrings_are_refused_by_a_machine_holding_a_key(
    store: Storage, machines: Callable[[str], Machine]
) -> None:
    a, b = machines("a"), machines("b")
    keys_a = create_keyring(store, REPO, a.identity, "a", cache=a.cache)
    add_slot(store, keys_a, b.identity.recipient, "b")
    b.keys(store)  # b holds epoch 1
    genuine = ring_json(store)

    put_ring(store, _forged_ring(genuine, 2, [a.identity, b.identity]))
    with pytest.raises(ForkError, match="history differs from epoch 1") as caught:
        b.keys(store).key(2)
    assert caught.value.exit_code == 10

    put_ring(store, _forged_ring(genuine, 1, [a.identity, b.identity]))
    with pytest.raises(ForkError, match="epoch 1 key is not the one this machine holds"):
        b.keys(store).refresh()
    assert b.cache.epochs() == {1: keys_a.key(1)}  # nothing forged was cached


def test_a_forged_link_is_refused(store: Storage, machines: Callable[[str], Machine]) -> None:
    """The genuine rotation's keys.json with its link replaced by one under a wrong key: a
    machine that holds epoch 1 says fork; one that joined later says tampered."""
    a, b, late = machines("a"), machines("b"), machines("late")
    keys_a = create_keyring(store, REPO, a.identity, "a", cache=a.cache)
    add_slot(store, keys_a, b.identity.recipient, "b")
    b.keys(store)
    rotate(store, keys_a)
    add_slot(store, keys_a, late.identity.recipient, "late")
    ring = ring_json(store)
    ring["link"] = base64.b64encode(
        seal(os.urandom(32), 1, Role.LINK, REPO, link_name(2), commitment(keys_a.key(2), REPO))
    ).decode()
    put_ring(store, ring)
    with pytest.raises(ForkError, match="rotation to epoch 2 is not sealed by epoch 1"):
        b.keys(store).key(2)
    with pytest.raises(TamperError, match=r"keys.json#link/2 failed authentication"):
        late.keys(store)
    ring["link"] = base64.b64encode(
        seal(keys_a.key(1), 1, Role.LINK, REPO, link_name(2), os.urandom(32))
    ).decode()
    put_ring(store, ring)
    with pytest.raises(ForkError, match="links another key"):
        b.keys(store).key(2)


def test_an_old_keyring_put_back_is_a_rollback(
    store: Storage, machines: Callable[[str], Machine]
) -> None:
    a, b = machines("a"), machines("b")
    keys_a = create_keyring(store, REPO, a.identity, "a", cache=a.cache)
    add_slot(store, keys_a, b.identity.recipient, "b")
    old = store.get(KEYS_OBJECT)
    assert old is not None
    rotate(store, keys_a)
    current = store.get(KEYS_OBJECT)
    assert current is not None
    keys_b = b.keys(store)
    assert keys_b.key(2) == keys_a.key(2)
    put_ring(store, old[0])
    with pytest.raises(
        RollbackError, match=r"keys\.json is at epoch 1, older than epoch 2"
    ) as caught:
        b.keys(store).refresh()
    assert caught.value.exit_code == 10
    put_ring(store, current[0])
    with pytest.raises(RollbackError, match="epoch 2, objects are sealed under epoch 3"):
        keys_b.key(3)  # an object claims an epoch keys.json does not have yet: keys.json is old


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda r: r.update(repo_id="ff" * 16), "belongs to another agent"),
        (lambda r: r.update(format=2), "format"),
        (lambda r: r.update(kid="0" * 16), "not the kid's"),
        (lambda r: r["slots"][1].update(wrapped=base64.b64encode(b"age junk").decode()), "slot s-"),
        (lambda r: r["slots"][1].update(wrapped="%%%"), "not base64"),
        (lambda r: r["slots"][0].update(recipient="age1nope"), "has no valid recipient"),
        (lambda r: r.update(history="AAAA"), "keys.json#history is malformed"),
        (lambda r: r.pop("slots"), "slots"),
        (lambda r: r.update(epoch=0), "epoch"),
    ],
)
def test_tampered_keyrings_are_refused(
    file_store: Storage,
    machines: Callable[[str], Machine],
    change: Callable[[dict], object],
    why: str,
) -> None:
    a, b = machines("a"), machines("b")
    keys_a = create_keyring(file_store, REPO, a.identity, "a", cache=a.cache)
    add_slot(file_store, keys_a, b.identity.recipient, "b")
    rotate(file_store, keys_a)
    ring = ring_json(file_store)
    change(ring)
    put_ring(file_store, ring)
    with pytest.raises(TamperError, match=why) as caught:
        b.keys(file_store)
    assert caught.value.exit_code == 10
    assert b.cache.epochs() == {}


def test_a_swapped_wrapped_key_fails_its_kid(
    file_store: Storage, machines: Callable[[str], Machine]
) -> None:
    """A slot wrapping another key than the others (age lets anyone wrap to a recipient)."""
    a, b = machines("a"), machines("b")
    keys_a = create_keyring(file_store, REPO, a.identity, "a", cache=a.cache)
    add_slot(file_store, keys_a, b.identity.recipient, "b")
    ring = ring_json(file_store)
    ring["slots"][1]["wrapped"] = base64.b64encode(
        pyrage.encrypt(os.urandom(32), [pyrage.x25519.Recipient.from_str(b.identity.recipient)])
    ).decode()
    put_ring(file_store, ring)
    with pytest.raises(TamperError, match="holds a key that is not the kid's"):
        b.keys(file_store)


def test_limits_on_read_and_on_write(
    file_store: Storage, machines: Callable[[str], Machine]
) -> None:
    a = machines("a")
    keys = create_keyring(file_store, REPO, a.identity, "a", cache=a.cache)
    ring = ring_json(file_store)
    template = ring["slots"][0]
    full = dict(
        ring,
        slots=[template]
        + [
            dict(template, id=f"s-{i:06x}", recipient=Identity.generate().recipient)
            for i in range(MAX_SLOTS - 1)
        ],
    )
    put_ring(file_store, full)
    assert len(parse_keyring("x", json.dumps(full).encode()).slots) == MAX_SLOTS
    newcomer = machines("newcomer")
    with pytest.raises(KeyringError, match=f"holds {MAX_SLOTS} slots") as caught:
        add_slot(file_store, keys, newcomer.identity.recipient, "newcomer")
    assert caught.value.exit_code == 10

    over = dict(full, slots=[*full["slots"], dict(template, id="s-over")])
    put_ring(file_store, over)
    with pytest.raises(TamperError, match=f"has {MAX_SLOTS + 1} slots, more than {MAX_SLOTS}"):
        a.keys(file_store).refresh()

    big = dict(ring, slots=[dict(template, wrapped=base64.b64encode(os.urandom(1025)).decode())])
    with pytest.raises(TamperError, match="oversize wrapped"):
        parse_keyring("x", json.dumps(big).encode())
    huge = json.dumps(dict(ring, padding="x" * MAX_FILE)).encode()
    with pytest.raises(TamperError, match=f"more than {MAX_FILE} allowed"):
        parse_keyring("x", huge)
    for junk in (b"", b"[]", b"{", b"null", "é".encode("latin-1")):
        with pytest.raises(TamperError, match="malformed"):
            parse_keyring("x", junk)


def test_passphrase_slots_are_few(file_store: Storage, machines: Callable[[str], Machine]) -> None:
    """Each passphrase slot costs a whole scrypt run to try: a keyring holds at most four, so a
    store cannot make an unlock run for minutes."""
    a = machines("a")
    keys = create_keyring(file_store, REPO, a.identity, "a", cache=a.cache)
    ring = ring_json(file_store)
    fake = dict(ring["slots"][0], kind="passphrase", identity=base64.b64encode(b"x").decode())
    four = [
        dict(fake, id=f"s-p{i}", recipient=Identity.generate().recipient)
        for i in range(MAX_PASSPHRASE_SLOTS)
    ]
    put_ring(file_store, dict(ring, slots=[ring["slots"][0], *four]))
    with pytest.raises(KeyringError, match=f"holds {MAX_PASSPHRASE_SLOTS} passphrase slots"):
        add_slot(file_store, keys, "", "one more", kind="passphrase", passphrase="pw")
    five = [*four, dict(fake, id="s-p9", recipient=Identity.generate().recipient)]
    put_ring(file_store, dict(ring, slots=[ring["slots"][0], *five]))
    with pytest.raises(TamperError, match=f"more than {MAX_PASSPHRASE_SLOTS} passphrase slots"):
        a.keys(file_store).refresh()


def test_a_missing_keyring_is_named(
    file_store: Storage, machines: Callable[[str], Machine]
) -> None:
    with pytest.raises(TamperError, match=r"keys\.json is missing"):
        machines("a").keys(file_store)


# --- passphrase slots and interop with age --------------------------------------------------


def test_passphrase_slot_unlocks_and_survives_rotation(
    file_store: Storage, machines: Callable[[str], Machine]
) -> None:
    a, new = machines("a"), machines("new")
    keys_a = create_keyring(file_store, REPO, a.identity, "a", cache=a.cache)
    slot = add_slot(
        file_store, keys_a, "", "recovery", kind="passphrase", passphrase="correct horse"
    )
    assert slot.kind == "passphrase" and slot.identity
    sealed = base64.b64decode(slot.identity)
    assert sealed.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert b"correct horse" not in file_store.get(KEYS_OBJECT)[0]  # type: ignore[index]
    rotate(file_store, keys_a)  # re-wrapped to the recovery recipient without the passphrase

    recovery = unlock_with_passphrase(file_store, REPO, "correct horse")
    assert recovery.recipient == slot.recipient
    keys_new = open_keys(file_store, REPO, recovery, new.cache)
    assert keys_new.current() == keys_a.current() and keys_new.key(1) == keys_a.key(1)
    add_slot(file_store, keys_new, new.identity.recipient, "new")  # later: no passphrase needed
    assert new.keys(file_store).current()[0] == 2

    with pytest.raises(KeyringError, match="the passphrase opens no slot") as caught:
        unlock_with_passphrase(file_store, REPO, "wrong horse")
    assert caught.value.exit_code == 10


def test_no_passphrase_slot_is_named(
    file_store: Storage, machines: Callable[[str], Machine]
) -> None:
    a = machines("a")
    create_keyring(file_store, REPO, a.identity, "a", cache=a.cache)
    with pytest.raises(KeyringError, match="has no passphrase slot"):
        unlock_with_passphrase(file_store, REPO, "anything")


def test_a_slot_is_a_real_age_file(file_store: Storage, machines: Callable[[str], Machine]) -> None:
    """pyrage's own decrypt opens a wrapped slot with the identity file's key; so does stock
    ``age -d -i identity`` when installed (disaster recovery without memfs)."""
    a = machines("a")
    keys = create_keyring(file_store, REPO, a.identity, "a", cache=a.cache)
    wrapped = base64.b64decode(ring_json(file_store)["slots"][0]["wrapped"])
    assert wrapped.startswith(b"age-encryption.org/v1\n-> X25519 ")
    secret = identity_path(a.folder).read_text().strip().splitlines()[-1]
    assert pyrage.decrypt(wrapped, [pyrage.x25519.Identity.from_str(secret)]) == keys.key(1)
    age = shutil.which("age") or shutil.which("rage")
    if age is None:
        pytest.skip("no age or rage binary to try the identity file with")
    result = subprocess.run(
        [age, "-d", "-i", str(identity_path(a.folder))],
        input=wrapped,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == keys.key(1)


# --- key cache ------------------------------------------------------------------------------


def test_key_cache_is_private_and_adds_only(tmp_path: Path) -> None:
    cache = KeyCache.for_repo(REPO, tmp_path / "config")
    assert cache.epochs() == {} and cache.newest() is None
    k1, k2 = kid(b"a" * 32, REPO), kid(b"c" * 32, REPO)
    cache.add({1: b"a" * 32}, {1: k1})
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.path.parent.stat().st_mode) == 0o700
    assert cache.add({1: b"b" * 32, 2: b"c" * 32}, {2: k2}) == {1: b"a" * 32, 2: b"c" * 32}
    assert cache.newest() == (2, b"c" * 32) and cache.kids() == {1: k1, 2: k2}
    cache.path.chmod(0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        cache.epochs()
    cache.path.chmod(0o600)
    cache.path.write_text("{not json")
    with pytest.raises(IdentityError, match="damaged"):
        cache.epochs()


@pytest.mark.parametrize("damage", ["key", "kid", "not base64", "short key", "no kid"])
def test_a_cached_key_its_kid_does_not_name_is_not_held_and_is_replaced(
    tmp_path: Path, damage: str
) -> None:
    """Found from outside (review10 F6): a key damaged in the cache file (a disk error, a bad
    restore) was used as the epoch's key for good, and every command blamed the store. A key
    is held only while its kid names it: a damaged one is as if never cached (so the keyring
    is opened for its epoch), the sound ones stay, and the keyring's key is written over it."""
    cache = KeyCache.for_repo(REPO, tmp_path / "config")
    good = {1: b"a" * 32, 2: b"c" * 32}
    cache.add(good, {e: kid(k, REPO) for e, k in good.items()})
    data = json.loads(cache.path.read_text())
    if damage == "key":
        data["epochs"]["2"] = base64.b64encode(os.urandom(32)).decode()
    elif damage == "kid":
        data["kids"]["2"] = "0" * 16
    elif damage == "not base64":
        data["epochs"]["2"] = "%%%"
    elif damage == "short key":
        data["epochs"]["2"] = base64.b64encode(b"c" * 31).decode()
    else:
        del data["kids"]["2"]
    cache.path.write_text(json.dumps(data))
    fresh = KeyCache.for_repo(REPO, tmp_path / "config")
    assert fresh.epochs() == {1: good[1]} and fresh.held() == {1: good[1]}
    assert fresh.key(2) is None and fresh.newest() == (1, good[1])
    assert fresh.add({2: good[2]}, {2: kid(good[2], REPO)}) == good  # the keyring's, written
    written = json.loads(cache.path.read_text())
    assert written["epochs"]["2"] == base64.b64encode(good[2]).decode()
    assert written["kids"]["2"] == kid(good[2], REPO)
    assert KeyCache.for_repo(REPO, tmp_path / "config").epochs() == good


def test_a_first_pushs_key_joins_the_cache_with_its_next_write(
    tmp_path: Path, file_store: Storage, machines: Callable[[str], Machine]
) -> None:
    """``create_keyring(defer_cache=True)`` (an encrypted first push): the key is used and
    read back in this process at once, written with the next change of the cache file (the
    manifest's rollback record: one write, not two), and if that never comes (a crash), the
    next process opens it from keys.json."""
    a = machines("a")
    keys = create_keyring(file_store, REPO, a.identity, "a", a.cache, defer_cache=True)
    epoch, key = keys.current()
    assert epoch == 1 and a.cache.key(1) == key and not a.cache.path.exists()
    a.cache.update_seen("s3://b/x", lambda current: Seen(1, "d", 1, "t"))
    assert json.loads(a.cache.path.read_text())["epochs"] == {"1": base64.b64encode(key).decode()}

    b, other = machines("b"), open_storage((tmp_path / "cloud" / "other").as_uri())
    keys = create_keyring(other, bytes(16), b.identity, "b", defer_cache=True)
    lost = KeyCache.for_repo(bytes(16), b.folder)
    assert lost.key(1) == keys.current()[1]
    keycache._HELD.clear()  # what a crash before the next write loses: the cached copy only
    assert lost.key(1) is None
    assert open_keys(other, bytes(16), b.identity, lost).current() == keys.current()
    assert lost.key(1) == keys.current()[1]


def test_seen_updates_are_serialised(tmp_path: Path) -> None:
    """Threads each with their own lock descriptor: every increment lands."""
    folder = tmp_path / "config"
    url = "s3://bucket/agents/a"

    def bump(current: Seen | None) -> Seen:
        generation = current.generation + 1 if current else 1
        return Seen(generation=generation, digest=f"{generation:064x}", epoch=1, at="t")

    def worker() -> None:
        cache = KeyCache.for_repo(REPO, folder)
        for _ in range(25):
            cache.update_seen(url, bump)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    cache = KeyCache.for_repo(REPO, folder)
    assert cache.seen(url) == Seen(generation=100, digest=f"{100:064x}", epoch=1, at="t")

    def refuse(current: Seen | None) -> Seen:
        raise RollbackError(url, "manifest.json.enc is generation 3, older than generation 100")

    with pytest.raises(RollbackError):
        cache.update_seen(url, refuse)
    assert cache.seen(url).generation == 100  # type: ignore[union-attr]
    assert cache.update_seen(url, lambda current: None) is None
    cache.update_seen(url, lambda c: Seen(101, "d", 2, "t", secrets_generation=4))
    assert cache.seen(url) == Seen(101, "d", 2, "t", 4)
    assert cache.seen("s3://other") is None
    cache.forget_seen(url)
    assert cache.seen(url) is None


def test_a_new_keyring_is_written_as_the_model_writes_it_without_loading_pydantic(
    tmp_path: Path, file_store: Storage
) -> None:
    """create_keyring writes keys.json by hand (the first encrypted push must not pay for
    pydantic): byte for byte what the model would write, parsed back by it, a long host or
    name cut to what the model allows."""
    folder = tmp_path / "machines" / "a"
    ensure_identity(folder)
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from memfs.crypto.identity import load_identity\n"
        "from memfs.crypto.keyring import create_keyring\n"
        "from memfs.remotes.storage import open_storage\n"
        f"store = open_storage({file_store.url!r})\n"
        f"me = load_identity(Path({str(folder)!r}))\n"
        f"create_keyring(store, bytes.fromhex({REPO.hex()!r}), me, 'n' * 300)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))\n"
    )
    assert fresh_python(probe) == "[]"
    got = file_store.get(KEYS_OBJECT)
    assert got is not None
    ring = parse_keyring(file_store.url, got[0])
    assert ring.dump() == got[0]
    assert len(ring.slots[0].name) == 200
