"""Machines and stores for the encrypted-cloud tests (issue 14), used from the outside only.

A ``Box`` is one computer as tests/harness.py's ``Machine`` is (its own HOME, its own
``MEMFS_CONFIG`` and so its own age identity ``<config dir>/identity`` and key cache
``<config dir>/keys/``), running whole ``memfs`` processes, with stdin for passphrases and
values. A ``Store`` is the cloud those machines share, moto S3 over real HTTP or a folder
(file://), read and written behind memfs's back: every object of an agent, to grep for
plaintext and to tamper with.

``plaintext_hits`` is the grep: a git pack or loose object holds its content zlib-deflated, so
a marker is searched in the raw bytes and in every zlib stream that inflates from any offset;
``share_encrypted`` sets up the story every test starts from (machine a pushes an agent to an
encrypted cloud, adds machine b's recipient, b checks it out).
"""

from __future__ import annotations

import os
import re
import subprocess
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .harness import Machine, assert_exit_is_documented, memfs_command
from .s3 import CREDENTIALS

CLOUD = "c"
RECIPIENT = re.compile(r"age1[0-9a-z]{20,}")
KEY_EXIT = 10


# -- stores ----------------------------------------------------------------------------------


@dataclass
class Store:
    """A cloud as its owner sees it: an S3 prefix or a folder, with memfs's URL for it."""

    kind: str  # "s3" or "file"
    cloud_url: str  # what `memfs cloud add` takes: s3://bucket/prefix or file:///folder
    env: dict[str, str] = field(default_factory=dict)  # what a machine needs to reach it
    folder: Path | None = None  # file: the cloud's folder
    client: Any = None  # s3: a boto3 client
    bucket: str = ""
    prefix: str = ""

    def agent_url(self, name: str) -> str:
        """The remote URL of agent ``name`` in this cloud (as `memfs clone` takes it)."""
        return f"memfs::{self.cloud_url}/{name}"

    def keys(self, agent: str) -> list[str]:
        """Every object of the agent, by its key below the agent's folder, sorted."""
        if self.folder is not None:
            base = self.folder / agent
            if not base.exists():
                return []
            return sorted(
                p.relative_to(base).as_posix()
                for p in base.rglob("*")
                if p.is_file() and not p.name.startswith(".")
            )
        start = f"{self.prefix}/{agent}/"
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start
        ):
            found += [entry["Key"][len(start) :] for entry in page.get("Contents", [])]
        return sorted(found)

    def read(self, agent: str, key: str) -> bytes:
        if self.folder is not None:
            return (self.folder / agent / key).read_bytes()
        got = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{agent}/{key}")
        return bytes(got["Body"].read())

    def write(self, agent: str, key: str, data: bytes) -> None:
        """Replace (or create) one object, as a hostile store or a bit flip would."""
        if self.folder is not None:
            target = self.folder / agent / key
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            target.write_bytes(data)
            return
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{agent}/{key}", Body=data)

    def delete(self, agent: str, key: str) -> None:
        if self.folder is not None:
            (self.folder / agent / key).unlink()
            return
        self.client.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{agent}/{key}")

    def replace_agent(self, agent: str, objects: dict[str, bytes]) -> None:
        """Put ``objects`` in the agent's place, removing every object it had."""
        for key in self.keys(agent):
            self.delete(agent, key)
        for key, data in objects.items():
            self.write(agent, key, data)

    def objects(self, agent: str) -> dict[str, bytes]:
        """Every object of the agent: key -> bytes."""
        return {key: self.read(agent, key) for key in self.keys(agent)}


def make_store(kind: str, base: Path, s3: Any = None) -> Store:
    """A fresh cloud: ``s3`` is tests.conftest's S3Bucket fixture value (kind "s3")."""
    if kind == "file":
        folder = base / "cloud"
        folder.mkdir(parents=True, exist_ok=True)
        return Store("file", folder.as_uri(), {}, folder=folder)
    env = dict(CREDENTIALS, AWS_ENDPOINT_URL=s3.server.endpoint)
    prefix = "agents"
    return Store(
        "s3", f"s3://{s3.name}/{prefix}", env, client=s3.client, bucket=s3.name, prefix=prefix
    )


# -- machines --------------------------------------------------------------------------------


@dataclass
class Box(Machine):
    """A machine that runs memfs with stdin, and knows its own age recipient."""

    def run(
        self, *args: str, input: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """``memfs args`` as a whole process on this machine (no ``-C`` added)."""
        return subprocess.run(
            memfs_command(*args),
            env=self.env(),
            cwd=self.home,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, input: str | None = None) -> str:
        """Run ``memfs args``; it must succeed. Its stdout."""
        done = self.run(*args, input=input)
        assert_exit_is_documented(done, f"{self.name}: memfs {' '.join(args)}")
        assert done.returncode == 0, f"{self.name}: memfs {' '.join(args)}: {done.stderr}"
        return done.stdout

    def at(self, *args: str, input: str | None = None) -> str:
        """``memfs -C <agent> args``; it must succeed."""
        return self.ok("-C", str(self.root), *args, input=input)

    def recipient(self) -> str:
        """``memfs key id``: this machine's age recipient (the identity is made if missing)."""
        out = self.ok("key", "id")
        found = RECIPIENT.findall(out)
        assert len(found) == 1, f"{self.name}: memfs key id printed {out!r}"
        return found[0]

    @property
    def config_dir(self) -> Path:
        return Path(self.env()["MEMFS_CONFIG"]).parent


def box(base: Path, name: str, store: Store) -> Box:
    """A new machine that can reach ``store``, with a git identity of its own."""
    home = base / f"machine-{name}" / "home"
    home.mkdir(parents=True, exist_ok=True)
    machine = Box(name, home, base / f"machine-{name}" / "agent", dict(store.env))
    for setting in (("user.name", name), ("user.email", f"{name}@x.org")):
        subprocess.run(["git", "config", "--file", str(home / ".gitconfig"), *setting], check=True)
    return machine


@dataclass
class Shared:
    """What ``share_encrypted`` made: the agent's name, its description, the markers it
    wrote, and the two machines holding it."""

    name: str
    description: str
    markers: list[str]
    a: Box
    b: Box


def start_encrypted_agent(store: Store, a: Box, name: str, description: str) -> list[str]:
    """On ``a``: an encrypted cloud as default, a new agent with a marker file and a marked
    commit message, pushed there. The markers (content, commit message)."""
    content, message = f"CONTENT-{name}-a1", f"MESSAGE-{name}-a1"
    a.ok("cloud", "add", CLOUD, store.cloud_url, "--encrypt")
    a.ok("cloud", "default", CLOUD)
    a.ok("init", str(a.root), "--name", name, "--description", description)
    (a.root / "reference").mkdir(exist_ok=True)
    (a.root / "reference" / "marker.md").write_text(f"---\ndescription: m\n---\n{content}\n")
    a.at("commit", "-m", message)
    a.at("push")
    return [content, message]


def share_encrypted(store: Store, base: Path, name: str = "") -> Shared:
    """Machine a pushes an agent to the encrypted cloud; b prints its recipient, a adds it,
    b (with the cloud added *without* --encrypt: it must find out) checks the agent out."""
    name = name or f"zebu-{os.urandom(4).hex()}"
    description = f"DESCR-{os.urandom(4).hex()}"
    a, b = box(base, "a", store), box(base, "b", store)
    markers = start_encrypted_agent(store, a, name, description)
    recipient = b.recipient()
    a.at("key", "add", recipient, "--name", "b")
    b.ok("cloud", "add", CLOUD, store.cloud_url)
    b.ok("checkout", name, str(b.root), "--cloud", CLOUD)
    return Shared(name, description, markers, a, b)


# -- looking for plaintext -------------------------------------------------------------------


def inflated(blob: bytes) -> Iterable[bytes]:
    """``blob`` itself, then every zlib stream found in it (git deflates each object)."""
    yield blob
    at = blob.find(b"\x78")
    while at != -1:
        if at + 1 < len(blob) and ((blob[at] << 8) | blob[at + 1]) % 31 == 0:
            piece = _inflate(blob[at:])
            if piece:
                yield piece
        at = blob.find(b"\x78", at + 1)


def _inflate(data: bytes) -> bytes:
    """The zlib stream at the start of ``data`` inflated (at most 4 MiB); b"" if none."""
    try:
        return zlib.decompressobj().decompress(data, 1 << 22)
    except zlib.error:
        return b""


def plaintext_hits(blobs: dict[str, bytes], markers: Iterable[str]) -> dict[str, list[str]]:
    """marker -> the objects holding it in the clear (raw or deflated); absent when none."""
    wanted = [marker.encode() for marker in markers]
    hits: dict[str, list[str]] = {}
    for key, blob in blobs.items():
        for piece in inflated(blob):
            for marker in wanted:
                if marker in piece and key not in hits.get(marker.decode(), []):
                    hits.setdefault(marker.decode(), []).append(key)
    return hits


def local_git_blobs(root: Path) -> dict[str, bytes]:
    """Every file under ``root/.git/objects`` (loose objects and packs): the control that
    proves ``plaintext_hits`` finds what git stores deflated."""
    base = root / ".git" / "objects"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


# -- what a failure must look like -----------------------------------------------------------


def assert_one_clear_line(done: subprocess.CompletedProcess[str], code: int, what: str) -> str:
    """Exit ``code``, one line on stderr, no traceback; that line."""
    assert_exit_is_documented(done, what)
    assert done.returncode == code, f"{what}: exit {done.returncode}, not {code}: {done.stderr}"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"{what}: not one line on stderr: {done.stderr!r}"
    return lines[0]


def absent_or_empty(folder: Path) -> bool:
    """The target of a refused clone: not there, or an empty folder."""
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


def snapshot(root: Path, skip: Iterable[Path] = ()) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file under ``root`` outside ``skip``: what a hostile
    store must not change (nothing written outside the agent)."""
    skipped = [str(path) for path in skip]
    found = {}
    for dirpath, _, names in os.walk(root):
        if any(dirpath == s or dirpath.startswith(s + os.sep) for s in skipped):
            continue
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            found[path] = (info.st_size, info.st_mtime_ns)
    return found


def repo_state(root: Path) -> dict[str, object]:
    """What an import would change: refs, the pack listing, the index, the work tree."""
    from .harness import git, worktree_files

    packs = sorted(p.name for p in (root / ".git" / "objects" / "pack").glob("*"))
    index = root / ".git" / "index"
    return {
        "refs": git(root, "for-each-ref", "--format=%(refname) %(objectname)"),
        "packs": packs,
        "index": index.read_bytes() if index.exists() else b"",
        "tree": worktree_files(root),
    }
