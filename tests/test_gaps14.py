"""Issue 14's known gaps after session 7 (its notes' "Needs its own issue"), each with a test
that failed before its fix: whole ``memfs`` processes where the bug is user-visible.

1. ``memfs serve`` over an ``--encrypt`` cloud opens each agent as configured encrypted (a
   plain agent planted there is a downgrade, never written to in the clear), and a server
   machine without a slot answers with an error naming ``memfs key add``.
2. ``memfs key rotate`` refuses to seal again a secrets blob changed unseen (exit 10).
3. A forked manifest history is a ForkError; a rollback names ``memfs key trust-rollback``.
4. ``memfs run`` masks base64 wrapped at 76 / 64; a held file's name is shown redacted.
5. A machine without a slot asks only whether keys.json changed (one conditional GET).
6. Compacting an encrypted remote appends to its base pack (indexed here).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .machines import (
    CLOUD,
    Store,
    box,
    make_store,
    plaintext_hits,
    start_encrypted_agent,
)
from .serve import running_server

MAGIC = b"MFE1"  # the envelope's first bytes

# -- 1. memfs serve over an encrypted cloud ----------------------------------------------------


def _patch(url: str, agent: str, label: str, value: str) -> tuple[int, str]:
    """PATCH a block's value through the server's Letta API: (status, body)."""
    request = urllib.request.Request(
        f"{url}/v1/agents/{agent}/core-memory/blocks/{label}",
        data=json.dumps({"value": value}).encode(),
        method="PATCH",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _assert_all_sealed(store: Store, name: str, markers: list[str]) -> None:
    """Every object but the three plain ones (and a folder cloud's empty locks) is an
    envelope; no marker in the clear anywhere."""
    objects = store.objects(name)
    plain = {"memfs.json", "manifest.json", "keys.json"}
    sealed = {k for k in objects if k not in plain and not (k.endswith(".lock") and not objects[k])}
    assert all(k.endswith(".enc") and objects[k].startswith(MAGIC) for k in sealed), sorted(sealed)
    assert plaintext_hits(objects, markers) == {}


@pytest.mark.timeout(180)
def test_serve_over_an_encrypted_cloud_pushes_sealed(tmp_path: Path) -> None:
    """A server machine with a slot edits a block of an encrypted agent: everything the
    store holds after is sealed, and another machine with a slot reads the edit."""
    store = make_store("file", tmp_path)
    a, s, b = box(tmp_path, "a", store), box(tmp_path, "s", store), box(tmp_path, "b", store)
    name = "zebu-served"
    markers = start_encrypted_agent(store, a, name, "DESCR-served")
    a.at("key", "add", s.recipient(), "--name", "s")
    a.at("key", "add", b.recipient(), "--name", "b")
    s.ok("cloud", "add", CLOUD, store.cloud_url, "--encrypt")
    edited = "EDITED-THROUGH-THE-SERVER"
    with running_server(CLOUD, tmp_path / "s", env=s.env()) as server:
        status, body = _patch(server.url, name, "reference/marker", edited + "\n")
        assert status == 200, body
    _assert_all_sealed(store, name, [*markers, edited])
    b.ok("cloud", "add", CLOUD, store.cloud_url, "--encrypt")
    b.ok("checkout", name, str(b.root), "--cloud", CLOUD)
    assert edited in (b.root / "reference" / "marker.md").read_text()


@pytest.mark.timeout(180)
def test_serve_over_an_encrypted_cloud_refuses_plain_agents_and_names_key_add(
    tmp_path: Path,
) -> None:
    """An agent stored in the clear in an --encrypt cloud (planted, or pushed by an old
    memfs) is a downgrade to the server too: refused, and nothing the server writes goes to
    the store in the clear (this failed: the server wrote it plain). An encrypted agent
    the server machine holds no slot for: an error naming `memfs key add` and its
    recipient, not a 500."""
    store = make_store("file", tmp_path)
    p, a, s = box(tmp_path, "p", store), box(tmp_path, "a", store), box(tmp_path, "s", store)
    planted, noslot = "zebu-planted", "zebu-noslot"
    p.ok("cloud", "add", CLOUD, store.cloud_url)
    p.ok("cloud", "default", CLOUD)
    p.ok("init", str(p.root), "--name", planted, "--description", "plain")
    (p.root / "reference").mkdir()
    (p.root / "reference" / "marker.md").write_text("---\ndescription: m\n---\nplain\n")
    p.at("commit", "-m", "plain agent")
    p.at("push")
    start_encrypted_agent(store, a, noslot, "DESCR-noslot")
    before = store.objects(planted)
    who = s.recipient()
    s.ok("cloud", "add", CLOUD, store.cloud_url, "--encrypt")
    with running_server(CLOUD, tmp_path / "s", env=s.env()) as server:
        status, body = _patch(server.url, planted, "reference/marker", "PUSHED-IN-THE-CLEAR\n")
        assert status >= 400 and "encrypted" in body, (status, body)
        status, body = _patch(server.url, noslot, "reference/marker", "x\n")
        assert status in (403, 502), body
        assert "memfs key add" in body and who in body, body
        assert "Traceback" not in server.output()
    after = store.objects(planted)
    assert not [k for k in after if k not in before and not k.startswith("envs/")], sorted(after)
    assert b"PUSHED-IN-THE-CLEAR" not in b"".join(after.values())


# -- 2. key rotate never launders a secrets blob it has not seen -------------------------------


def _plant_secrets(tmp_path: Path, url: str, key: bytes, epoch: int, planted: dict) -> None:
    """Seal a secrets blob under ``epoch`` with ``key`` and put it in the plain manifest, as
    a removed machine with the store's credentials could."""
    import base64

    from memfs.crypto.envelope import Role, seal
    from memfs.keys import storage_for_url

    storage = storage_for_url(url)
    got = storage.get("keys.json")
    assert got is not None
    repo = bytes.fromhex(json.loads(got[0])["repo_id"])
    values = {
        n: {"value": v, "set_at": "2026-01-01T00:00:00Z", "set_by": "c"} for n, v in planted.items()
    }
    doc = {"format": 1, "generation": 1000, "prev": "", "secrets": values}
    blob = seal(key, epoch, Role.SECRETS, repo, "manifest.json#secrets", json.dumps(doc).encode())
    got = storage.get("manifest.json")
    assert got is not None
    manifest = json.loads(got[0])
    manifest["secrets"] = base64.b64encode(blob).decode()
    (tmp_path / "cloud" / "agent" / "manifest.json").write_text(json.dumps(manifest))


def test_key_rotate_refuses_a_secrets_blob_changed_unseen(tmp_path: Path) -> None:
    """C, removed (it keeps epoch 1's key), plants a secrets blob under epoch 1. A's sync
    refuses it; `memfs key rotate` must not seal it again under the new epoch (every machine
    would then take it): exit 10 naming the object and the way out, and the planted values
    reach no `memfs run`."""
    import sys

    from .test_keys import a_machine_removed, cached_keys, run

    url = "memfs::" + (tmp_path / "cloud" / "agent").as_uri()
    a, c = a_machine_removed(tmp_path, url)
    _plant_secrets(tmp_path, url, cached_keys(c)[1], 1, {"API_TOKEN": "planted-by-c-0123456"})
    done = run(a, "key", "rotate")
    assert done.returncode == 10, done.stdout + done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert "manifest.json#secrets" in line and "memfs key trust-rollback origin" in line, line
    assert run(a, "sync").returncode == 10  # still refused: it was not laundered
    shown = run(a, "run", "--", sys.executable, "-c", "import os; print(os.environ['API_TOKEN'])")
    assert "planted" not in shown.stdout


# -- 3. a forked manifest history is a ForkError; a rollback names the way out ----------------


def test_a_forked_manifest_history_is_a_fork_error(tmp_path: Path) -> None:
    """B saw A's generation n+1; the store puts generation n back and C (a member shown that
    old state) pushes its own generation n+1 on it: B is shown two different histories.
    That is a fork (ForkError, exit 10, its own message), not a flipped byte."""
    import memfs
    from memfs import sync
    from memfs.errors import ForkError

    from .conftest import run_cli, write
    from .test_sealed import grant, on, shared
    from .test_tamper import Store as Raw
    from .test_tamper import push_one, state_of

    url = f"memfs::{(tmp_path / 'cloud' / 'agent').as_uri()}"
    a, b = shared(tmp_path, url)
    grant(tmp_path, url, "a", "c")
    with on(tmp_path, "c"):
        c = sync.clone(url, tmp_path / "c" / "agent")
    raw = Raw(url)
    old = raw.read("manifest.json.enc")
    push_one(tmp_path, a, "one\n")
    with on(tmp_path, "b"):
        assert sync.pull(memfs.open(b.root)).ok
    raw.replace("manifest.json.enc", old)
    with on(tmp_path, "c"):
        write(c.root, "notes/c.md", "c's own\n")
        assert sync.push(c).ok
    before = state_of(b.root)
    with on(tmp_path, "b"):
        result = run_cli("-C", str(b.root), "pull")
        assert result.exit_code == 10, result.output
        assert "manifest.json" in result.output and "fork" in result.output, result.output
        assert "Traceback" not in result.output
        from memfs.remotes import open_remote

        with pytest.raises(ForkError):
            open_remote(url).read_manifest()  # type: ignore[attr-defined]
    assert state_of(b.root) == before


def test_a_manifest_rollback_names_trust_rollback(tmp_path: Path) -> None:
    """An old manifest put back: exit 10, naming `memfs key trust-rollback` for a store
    restored from a backup on purpose."""
    import memfs
    from memfs import sync

    from .conftest import run_cli
    from .test_sealed import on, shared
    from .test_tamper import Store as Raw
    from .test_tamper import push_one

    url = f"memfs::{(tmp_path / 'cloud' / 'agent').as_uri()}"
    a, b = shared(tmp_path, url)
    raw = Raw(url)
    old = raw.read("manifest.json.enc")
    push_one(tmp_path, a, "one\n")
    with on(tmp_path, "b"):
        assert sync.pull(memfs.open(b.root)).ok
        raw.replace("manifest.json.enc", old)
        result = run_cli("-C", str(b.root), "pull")
    assert result.exit_code == 10, result.output
    assert "memfs key trust-rollback" in result.output, result.output


# -- 4. memfs run masks line-wrapped forms; a held file's name is never printed -------------

WRAPPED = "wrapped-Secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ-XYZ"
PRINT_WRAPPED = """
import base64, os, sys
v = os.environ["LONG_TOKEN"].encode()
sys.stdout.write(base64.encodebytes(b"xy" + v + b"!").decode())  # base64(1): 76 a line
sys.stdout.write(base64.b64encode(v).decode().replace("\\n", ""))
sys.stdout.write("\\n")
pem = base64.b64encode(b"z" + v)
for i in range(0, len(pem), 64):  # PEM: 64 a line, CRLF
    sys.stdout.write(pem[i : i + 64].decode() + "\\r\\n")
    sys.stdout.flush()
print("done")
"""


def test_memfs_run_masks_base64_wrapped_at_76_and_pem_at_64(tmp_path: Path) -> None:
    """base64(1) wraps its output at 76 characters and PEM at 64: the value's base64 forms
    cut by a line break are masked too; the rest of the output keeps its line breaks."""
    import base64
    import sys

    from .conftest import memfs_process
    from .secretsfix import agent_with_secrets

    root = agent_with_secrets(tmp_path, {"LONG_TOKEN": WRAPPED})
    shown = memfs_process("-C", str(root), "run", "--", sys.executable, "-c", PRINT_WRAPPED)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout.encode()
    flat = out.replace(b"\n", b"").replace(b"\r", b"")
    raw = WRAPPED.encode()
    for encoded in (base64.b64encode(b"xy" + raw + b"!"), base64.b64encode(b"z" + raw)):
        assert encoded[8:-8] not in flat, out  # no stretch of the value's base64 survives
    assert base64.b64encode(raw)[:40] not in flat
    assert out.count(b"LONG_TOKEN=<REDACTED>") == 3, out
    assert out.endswith(b"done\n"), out


def test_the_scrubber_keeps_line_breaks_around_a_wrapped_form() -> None:
    """Split anywhere, a wrapped form is masked with its line breaks, the text around it
    keeps its own; a stream with no form passes through unchanged."""
    import base64

    from memfs.secrets.scrub import Scrubber

    raw = WRAPPED.encode()
    text = base64.encodebytes(raw)  # ends with b"\n"
    data = b"head\n" + text + b"tail\n"
    whole = Scrubber({"T": WRAPPED}).scrub(data)
    assert whole == b"head\nT=<REDACTED>\ntail\n"
    for cut in range(len(data) + 1):
        scrubber = Scrubber({"T": WRAPPED})
        assert scrubber.feed(data[:cut]) + scrubber.feed(data[cut:]) + scrubber.close() == whole
    plain = b"no secret here\r\nnor here\n"
    assert Scrubber({"T": WRAPPED}).scrub(plain) == plain


NAMED = "sk-test-4c1d9e0f7a2b5c8d"


def test_a_file_named_with_a_value_is_shown_redacted(tmp_path: Path) -> None:
    """A file whose name holds a secret's value is held (review7); `status` (text and
    --json) and the refused commit's error name it with that part redacted, never the
    value."""
    from .conftest import memfs_process, write
    from .secretsfix import agent_with_secrets

    root = agent_with_secrets(tmp_path, {"API_KEY": NAMED})
    write(root, f"reference/{NAMED}.md", "---\ndescription: k\n---\nhello\n")
    for args in (("status",), ("status", "--json"), ("commit",)):
        done = memfs_process("-C", str(root), *args)
        shown = done.stdout + done.stderr
        assert "Traceback" not in shown, shown
        assert NAMED not in shown, (args, shown)
        assert "reference/API_KEY=<REDACTED>.md" in shown, (args, shown)
    held = json.loads(memfs_process("-C", str(root), "status", "--json").stdout)["held"]
    assert [h["path"] for h in held] == ["reference/API_KEY=<REDACTED>.md"]
    assert (root / f"reference/{NAMED}.md").exists()  # kept on disk
    from memfs.secrets.guard import review

    path = f"reference/{NAMED}.md"
    allowed, refusals = review({path: (0o100644, b"hello\n")}, {"API_KEY": NAMED})
    assert allowed == {} and [r.path for r in refusals] == [path]  # held by its real path
    logged = refusals[0].render()  # what the watcher logs
    assert NAMED not in logged and "reference/API_KEY=<REDACTED>.md" in logged


# -- 5. a machine without a slot does not re-read the keyring on every sync -----------------


@pytest.fixture
def metered(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A moto S3 of this test's own recording each request and response, bucket 'noslot'."""
    import boto3

    from .s3 import CREDENTIALS
    from .s3meter import metered_moto_s3

    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with metered_moto_s3() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1").create_bucket(
            Bucket="noslot"
        )
        yield server


def test_a_machine_without_a_slot_asks_for_the_keyring_only_if_it_changed(
    metered: object, tmp_path: Path
) -> None:
    """On a plain cloud with secrets, B holds no slot: its syncs keep syncing memory, and
    after the first no longer GET memfs.json and keys.json (and import the crypto) each
    time; one conditional GET of keys.json (304, no body) says the keyring is unchanged.
    Once A adds B's slot (keys.json changes), B's next sync reads the secrets."""
    import memfs
    from memfs import sync
    from memfs.remotes.configure import add_remote
    from memfs.secrets.store import SecretStore, push_secrets

    from .conftest import write
    from .test_sealed import grant, on

    url = "memfs::s3://noslot/agent"
    with on(tmp_path, "a"):
        a = memfs.init(tmp_path / "a" / "agent", name="noslot")
        add_remote(a.history, "origin", url)
        assert sync.push(a).ok
        SecretStore.load(a).set("API_KEY", "value-0123456789-abc")
        assert push_secrets(a)
    with on(tmp_path, "b"):
        b = sync.clone(url, tmp_path / "b" / "agent")
        assert sync.sync(b).ok
    served = metered.served  # type: ignore[attr-defined]
    for n in range(3):
        with on(tmp_path, "a"):
            write(a.root, f"notes/n{n}.md", f"note {n}\n")
            assert sync.sync(a).ok
        served.clear()
        with on(tmp_path, "b"):
            assert sync.sync(b).ok
            assert (b.root / f"notes/n{n}.md").read_text() == f"note {n}\n"
            assert SecretStore.load(b).names() == []
        asked = [s for s in served if s.path.endswith(("/keys.json", "/memfs.json"))]
        assert [(s.path.rsplit("/", 1)[1], s.status, s.body_bytes) for s in asked] == [
            ("keys.json", 304, 0)
        ], asked
    grant(tmp_path, url, "a", "b")
    with on(tmp_path, "b"):
        assert sync.sync(b).ok
        assert SecretStore.load(b).names() == ["API_KEY"]


# -- 6. compacting an encrypted remote appends to its base pack ------------------------------


def test_compacting_an_encrypted_remote_appends_to_the_base_pack(tmp_path: Path) -> None:
    """An encrypted store holds no .idx: the compaction indexes the base pack it opened
    here, so the second compaction keeps the first one's pack byte for byte and appends
    what was pushed since (it used to pack the whole history again every time)."""
    from memfs import sync
    from memfs.remotes import open_remote
    from memfs.remotes.bucket import BucketRemote

    from .conftest import write
    from .test_sealed import assert_sealed, on, shared
    from .test_sync import contents

    url = f"memfs::{(tmp_path / 'cloud' / 'agent').as_uri()}"
    a, _ = shared(tmp_path, url)

    def compact_packs(n: int) -> bytes:
        with on(tmp_path, "a"):
            for i in range(3):
                write(a.root, f"notes/n{n}-{i}.md", f"{n} {i}\n" * 40)
                assert sync.push(a).ok
            remote = open_remote(url, encrypt=True)
            assert isinstance(remote, BucketRemote)
            merged, _ = remote.compact(a.history, grace_s=3600)
            assert merged >= 3
            manifest, _ = remote.read_manifest()
            assert manifest is not None and len(manifest.packs) == 1
            got = remote.storage.get(f"packs/{manifest.packs[0]}.pack")
            assert got is not None
            return got[0]

    first = compact_packs(1)
    second = compact_packs(2)
    assert second[12 : len(first) - 20] == first[12:-20]  # the base, byte for byte
    assert_sealed(url)
    with on(tmp_path, "b"):
        fresh = sync.clone(url, tmp_path / "b" / "fresh")
    assert contents(fresh) == contents(a)


def test_wrapped_streams_split_anywhere_equal_the_whole_stream() -> None:
    """Seeded: values base64-wrapped at 76 or 64 (LF or CRLF), inside ordinary lines, a
    multi-line PEM-like value printed as it is; fed in random chunks the output is the
    whole stream's, and every encoding is masked."""
    import base64
    import random

    from memfs.secrets.scrub import Scrubber

    rng = random.Random(1414)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/+="
    for _ in range(30):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(40, 120)))
        pem = (
            "-----BEGIN KEY-----\n"
            + "\n".join(value[i : i + 64] for i in range(0, len(value), 64))
            + "\n-----END KEY-----"
        )
        values = {"V": value, "P": pem + "\n" + value[:9]}
        parts, shown = [], 0
        for _ in range(6):
            parts.append(rng.choice([b"log line e\n", b"x" * 64 + b"\n", b"", b"ok "]))
            pad = rng.choice([b"", b"a", b"ab"])
            encoded = base64.b64encode(pad + value.encode() + rng.choice([b"", b"!"]))
            width = rng.choice([64, 76])
            lines = [encoded[i : i + width] for i in range(0, len(encoded), width)]
            end = rng.choice([b"\n", b"\r\n"])
            parts.append(end.join(lines) + end)
            shown += 1
        parts.append(values["P"].encode() + b"\n")
        data = b"".join(parts)
        whole = Scrubber(values).scrub(data)
        assert whole.count(b"V=<REDACTED>") >= shown, whole
        assert value.encode()[:20] not in whole
        cuts = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(1, 40)))
        scrubber, out, last = Scrubber(values), [], 0
        for cut in [*cuts, len(data)]:
            out.append(scrubber.feed(data[last:cut]))
            last = cut
        assert b"".join(out) + scrubber.close() == whole


def test_an_ordinary_line_is_passed_on_with_its_line_break() -> None:
    """Only a break after a line of a wrap width is held back with what could begin a form:
    a short line ending in such a character goes out at once, line break included."""
    import base64

    from memfs.secrets.scrub import Scrubber

    scrubber = Scrubber({"T": WRAPPED})
    first = base64.b64encode(WRAPPED.encode())[:1]
    line = b"progress " + first + b"\n"
    assert scrubber.feed(line) == line
