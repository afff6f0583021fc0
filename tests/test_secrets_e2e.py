"""Issue 14's secrets line, end to end (docs/design-encryption.md §10): a secret set on machine
A is usable by ``memfs run`` on machine B after a sync, and its value, in any form, appears in
no file of either machine (work trees, .git, watcher logs, key caches), no git object, no
commit message, no context, no status, no output of any command, and no object of the store.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from memfs.secrets.forms import forms

from .harness import Machine, git, setup_two_machines, start_watcher, stop_watcher
from .s3 import CREDENTIALS
from .servers import wait_for

CHILD = """
import base64, hashlib, json, os, sys
from urllib.parse import quote, quote_plus
v = os.environ["API_KEY"]
raw = v.encode()
print(hashlib.sha256(raw).hexdigest(), flush=True)
shown = [raw, quote(v, safe="").encode(), quote_plus(v).encode(), json.dumps(v).encode(),
         raw.hex().encode(), raw.hex().upper().encode()]
for encode in (base64.b64encode, base64.urlsafe_b64encode):
    for pad in (b"", b"x", b"xy"):
        shown += [encode(pad + raw), encode(pad + raw).rstrip(b"=")]
for text in shown:
    for i in range(len(text)):  # one byte per write: every chunk boundary
        os.write(1, text[i : i + 1])
    os.write(1, b"\\n")
    os.write(2, text + b"\\n")
"""


class Outputs:
    """Every command's stdout and stderr, kept for the final grep."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def memfs(self, machine: Machine, *args: str, stdin: str | None = None) -> str:
        command = [sys.executable, "-m", "memfs", "-C", str(machine.root), *args]
        done = subprocess.run(
            command, env=machine.env(), input=stdin, capture_output=True, text=True, timeout=120
        )
        self.texts += [done.stdout, done.stderr]
        assert done.returncode == 0, f"{machine.name}: memfs {' '.join(args)}: {done.stderr}"
        assert "Traceback" not in done.stderr
        return done.stdout


def python_on(machine: Machine, code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=machine.env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def give_b_a_slot(a: Machine, b: Machine, url: str) -> None:
    """What 'memfs key add <B's recipient>' run on A does (memfs.crypto.keyring.add_slot)."""
    recipient = python_on(
        b, "from memfs.crypto.identity import ensure_identity; print(ensure_identity().recipient)"
    )
    python_on(
        a,
        "from memfs.remotes.bucket import BucketRemote\n"
        "from memfs.keys import agent_keys\n"
        "from memfs.crypto.keyring import add_slot\n"
        f"remote = BucketRemote({url!r})\n"
        f"add_slot(remote.raw, agent_keys(remote.raw), {recipient!r}, 'b')\n",
    )


def store_objects(tmp_path: Path, store: str, request: pytest.FixtureRequest) -> dict[str, bytes]:
    """Every object of the store, whole, by name."""
    if store.startswith("file"):
        cloud = tmp_path / "cloud"
        return {str(p.relative_to(cloud)): p.read_bytes() for p in cloud.rglob("*") if p.is_file()}
    s3 = request.getfixturevalue("s3")
    listed = s3.client.list_objects_v2(Bucket=s3.name).get("Contents", [])
    assert listed
    return {
        o["Key"]: s3.client.get_object(Bucket=s3.name, Key=o["Key"])["Body"].read() for o in listed
    }


def all_forms(value: str) -> list[bytes]:
    raw = value.encode()
    found = set(forms(value)) | {raw, quote(value, safe="").encode(), quote_plus(value).encode()}
    found |= {json.dumps(value).encode(), raw.hex().encode(), base64.b64encode(raw)}
    return sorted(found)


def assert_nowhere(value: str, places: dict[str, bytes]) -> None:
    for where, data in places.items():
        for form in all_forms(value):
            assert form not in data, f"a form of the secret's value is in {where}"


def machine_files(base: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in base.rglob("*") if p.is_file() and not p.is_symlink()}


def git_contents(machine: Machine) -> dict[str, bytes]:
    objects = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=machine.root,
        capture_output=True,
        check=True,
    ).stdout
    assert objects
    messages = git(machine.root, "log", "--all", "--format=%B").encode()
    return {f"{machine.name}: git objects": objects, f"{machine.name}: git log": messages}


def the_store(tmp_path: Path, store: str, request: pytest.FixtureRequest) -> tuple[str, dict]:
    if store == "s3":
        s3 = request.getfixturevalue("s3")
        return s3.url(f"agents/{tmp_path.name}"), dict(
            CREDENTIALS, AWS_ENDPOINT_URL=s3.server.endpoint
        )
    return f"memfs::{(tmp_path / 'cloud' / 'shared').as_uri()}", {}


def run_on_b(out: Outputs, b: Machine, value: str) -> None:
    """B's ``memfs run``: the value is usable (its sha256) and masked in every form."""
    shown = out.memfs(b, "run", "--", sys.executable, "-c", CHILD)
    lines = shown.splitlines()
    assert lines[0] == hashlib.sha256(value.encode()).hexdigest()
    assert len(lines) == 19
    assert all("API_KEY=<REDACTED>" in line for line in lines[1:])


def encrypted_pair(tmp_path: Path, url: str, env: dict[str, str]) -> tuple[Machine, Machine]:
    """Machine A pushes an agent to an encrypted remote, gives B a slot; B clones it."""
    a = Machine.create(tmp_path, "a", env)
    b = Machine.create(tmp_path, "b", env)
    for args in (
        ("init", str(a.root), "--name", "shared"),
        ("-C", str(a.root), "remote", "add", "origin", url, "--encrypt"),
        ("-C", str(a.root), "push"),
    ):
        done = a.memfs(*args, agent=False)
        assert done.returncode == 0, f"memfs {' '.join(args)}: {done.stderr}"
    give_b_a_slot(a, b, url)
    done = b.memfs("clone", url, str(b.root), agent=False)
    assert done.returncode == 0, done.stderr
    return a, b


@pytest.mark.timeout(180)
@pytest.mark.parametrize("store", ["s3", "file", "file-encrypted"])
def test_set_on_a_run_on_b(tmp_path: Path, store: str, request: pytest.FixtureRequest) -> None:
    url, env = the_store(tmp_path, store.removesuffix("-encrypted"), request)
    out = Outputs()
    value = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    if store.endswith("-encrypted"):
        a, b = encrypted_pair(tmp_path, url, env)
        out.memfs(a, "secret", "set", "API_KEY", stdin=value + "\n")
    else:
        a, b = setup_two_machines(tmp_path, url, env)
        out.memfs(a, "secret", "set", "API_KEY", stdin=value + "\n")
        give_b_a_slot(a, b, url)
    out.memfs(a, "sync")
    out.memfs(b, "sync")
    assert json.loads(out.memfs(b, "secret", "list", "--json"))["secrets"][0]["name"] == "API_KEY"
    run_on_b(out, b, value)
    for machine in (a, b):
        assert "values hidden): API_KEY" in out.memfs(machine, "context")
        out.memfs(machine, "status", "--json")
        out.memfs(machine, "context", "--format", "json")
    places = {**machine_files(tmp_path), **git_contents(a), **git_contents(b)}
    stored = store_objects(tmp_path, store, request)
    if store.endswith("-encrypted"):  # the secrets went into the sealed manifest
        assert any(name.endswith("/manifest.json.enc") for name in stored), sorted(stored)
    places.update({f"store object {name}": data for name, data in stored.items()})
    places.update({f"output {i}": t.encode() for i, t in enumerate(out.texts)})
    assert_nowhere(value, places)


@pytest.mark.timeout(180)
def test_watcher_takes_the_secret_and_holds_a_file_with_its_value(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """B's watcher sees a secret pushed by A (no memory change needed), and keeps a memory
    file holding its value out of commits, saying why in its log (naming the secret only)."""
    url, env = the_store(tmp_path, "file", request)
    a, b = setup_two_machines(tmp_path, url, env)
    out = Outputs()
    give_b_a_slot_first = "".join(secrets.choice(string.ascii_letters) for _ in range(40))
    value = give_b_a_slot_first
    out.memfs(a, "secret", "set", "OTHER_TOKEN", stdin="placeholder-value-1234\n")
    give_b_a_slot(a, b, url)
    start_watcher(b)
    try:
        out.memfs(a, "secret", "set", "API_KEY", stdin=value)
        meta = b.root / ".git" / "memfs" / "secrets.json"
        wait_for(
            lambda: meta.exists() and "API_KEY" in json.loads(meta.read_text())["names"],
            timeout=60,
            what="B's watcher to take the secret",
        )
        run_on_b(out, b, value)
        leak = b.root / "system" / "leak.md"
        leak.write_text(f"---\ndescription: oops\n---\nthe key is {value}\n")
        log = b.root / ".git" / "memfs" / "watch.log"
        wait_for(
            lambda: log.exists() and "holds the value of secret API_KEY" in log.read_text(),
            timeout=60,
            what="the watcher to hold the file",
        )
        assert "system/leak.md" not in git(b.root, "ls-tree", "-r", "--name-only", "HEAD")
        status = json.loads(out.memfs(b, "status", "--json"))
        assert any("secret API_KEY" in p["message"] for p in status["held"])
        assert leak.exists()
        leak.unlink()
    finally:
        done = stop_watcher(b)
        out.texts += [done.stdout, done.stderr]
    places = {**machine_files(tmp_path), **git_contents(a), **git_contents(b)}
    places.update({f"output {i}": t.encode() for i, t in enumerate(out.texts)})
    assert_nowhere(value, places)
