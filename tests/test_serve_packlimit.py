"""What a pack pushed through ``memfs serve`` may inflate to (memfs/server/packlimit.py).

Found from outside (review11 F02): a receive-pack request of ~100 KB holding a zlib-9 blob of
100 MB of zeros was taken whole (the server's RSS 48 -> 280 MB) and pushed to the cloud,
where every checkout then wrote a file over the agent's own size cap. Now the pack's object
headers are checked before anything is inflated: an object over the agent's ``max_file_size``
(a delta: the object it makes), or objects over the request limit in all, are an unpack error
and nothing reaches the bucket. The whole-process test pushes with the real git CLI.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import zlib
from pathlib import Path

from memfs.server.packlimit import refusal
from tests.serve import ServerHandle
from tests.test_serve_git import bucket_head, cloud, git, seed_agent, server

__all__ = ["cloud", "server"]  # the fixtures of tests/test_serve_git.py, used here

CAP = 10 * 1024 * 1024
OLD, NEW = "1" * 40, "2" * 40


def _request(objects: list[bytes]) -> bytes:
    """A receive-pack request body: one ref command, then a pack of ``objects`` (raw
    entries: header and zlib stream)."""
    command = f"{OLD} {NEW} refs/heads/main\0 report-status\n".encode()
    data = b"PACK" + struct.pack(">II", 2, len(objects)) + b"".join(objects)
    data += hashlib.sha1(data).digest()
    return b"%04x" % (len(command) + 4) + command + b"0000" + data


def _header(kind: int, size: int) -> bytes:
    byte, size, out = (kind << 4) | (size & 15), size >> 4, []
    while size:
        out.append(byte | 0x80)
        byte, size = size & 0x7F, size >> 7
    out.append(byte)
    return bytes(out)


def _entry(kind: int, body: bytes, declared: int | None = None) -> bytes:
    size = len(body) if declared is None else declared
    return _header(kind, size) + zlib.compress(body, 9)


def _varint(n: int) -> bytes:
    out = []
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_headers_decide_before_inflating() -> None:
    small = _entry(3, b"hello\n")
    assert refusal(_request([small, _entry(3, b"tree-ish")]), CAP, 1 << 20) is None
    big = _entry(3, b"\0" * (CAP + 1))
    said = refusal(_request([small, big]), CAP, 1 << 40)
    assert (
        said is not None
        and "an object of 10.0 MiB (10485761 bytes), over the 10.0 MiB size cap" in said
    )
    many = [_entry(3, b"x" * 1000) for _ in range(5)]
    said = refusal(_request(many), CAP, 4000)
    assert said is not None and "inflate to more than" in said
    lying = _entry(3, b"\0" * 5000, declared=10)  # its header says 10 bytes
    said = refusal(_request([lying]), CAP, 1 << 20)
    assert said is not None and "inflates past its declared 10 bytes" in said
    delta = _varint(10) + _varint(CAP * 4) + b"\x0a" + b"0123456789"  # makes 40 MiB
    said = refusal(
        _request([_header(7, len(delta)) + b"\x11" * 20 + zlib.compress(delta)]), CAP, 1 << 20
    )
    assert said is not None and "an object of 40.0 MiB" in said


def test_a_real_git_pack_passes(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for i in range(30):
        (repo / f"f{i}.md").write_text(f"line {i}\n" * (i * 50 + 1))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "files")
    (repo / "f3.md").write_text("changed\n" * 400)
    git(repo, "commit", "-q", "-am", "again")
    objects = git(repo, "rev-list", "--objects", "--all").stdout
    pack = subprocess.run(
        ["git", "pack-objects", "--stdout", "--delta-base-offset"],
        cwd=repo, input=objects.encode(), capture_output=True, check=True,
    ).stdout  # fmt: skip
    command = f"{OLD} {NEW} refs/heads/main\0 report-status\n".encode()
    body = b"%04x" % (len(command) + 4) + command + b"0000" + pack
    assert refusal(body, CAP, 1 << 30) is None
    assert refusal(body, 1000, 1 << 30) is not None  # f29.md is ~5 KB


def test_serve_refuses_a_push_of_a_file_over_the_size_cap(
    cloud: str, server: ServerHandle, tmp_path: Path
) -> None:
    agent = seed_agent(tmp_path, cloud)
    before = bucket_head(cloud)
    git(tmp_path, "clone", "-q", server.git_url("alpha"), "clone")
    clone = tmp_path / "clone"
    with (clone / "big.md").open("wb") as out:
        out.truncate(CAP + 4096)  # 10 MiB of zeros: a pack of ~10 KB
    git(clone, "add", "big.md")
    git(clone, "commit", "-q", "-m", "big")
    done = git(clone, "push", "origin", "main", check=False)
    assert done.returncode != 0
    assert "over the 10.0 MiB size cap (max_file_size in agent.yaml)" in done.stderr
    assert bucket_head(cloud) == before == agent.history.head()
    git(clone, "reset", "-q", "--hard", "HEAD~1")  # the pack carries every commit's blobs
    (clone / "big.md").write_bytes(b"small now\n")
    git(clone, "add", "big.md")
    git(clone, "commit", "-q", "-m", "small")
    done = git(clone, "push", "origin", "main", check=False)
    assert done.returncode == 0, done.stderr
    assert bucket_head(cloud) == git(clone, "rev-parse", "HEAD").stdout.strip()
