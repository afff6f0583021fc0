"""A clone takes each pack's uploaded .idx, checked (memfs.packcheck): git's own packs and
indexes pass, every lie in an index or a pack is refused and the clone leaves nothing."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.errors import RemoteCorruptError
from memfs.packcheck import PackSet, check_index
from memfs.packs import PackError, index_pack, index_v2, object_id
from memfs.packwrite import entry_header
from memfs.remotes.configure import add_remote

from .conftest import S3Bucket, git, run_cli, write
from .test_packs import git_repo_with_deltas

Lie = Callable[[bytes, bytes], tuple[bytes, bytes]]


def test_git_packs_with_delta_chains_check_out_and_every_object_hashes(tmp_path: Path) -> None:
    pack_path = git_repo_with_deltas(tmp_path / "repo")
    pack, index = pack_path.read_bytes(), pack_path.with_suffix(".idx").read_bytes()
    checked = check_index(pack_path.stem, pack, index)
    packs = PackSet([checked])
    expected = index_pack(pack).objects
    for sha in checked.shas:
        assert packs.read(sha) == expected[sha]
    head = git(tmp_path / "repo", "rev-parse", "HEAD").strip()
    objects = packs.checkout_objects(bytes.fromhex(head))
    files = git(tmp_path / "repo", "ls-tree", "-r", "HEAD").splitlines()
    assert {line.split()[2] for line in files} <= {sha.hex() for sha in objects}


def agent_with_history(tmp_path: Path, commits: int = 12) -> tuple[memfs.Agent, Path]:
    """An agent pushed to a folder cloud after ``commits`` pushes; the cloud's folder."""
    cloud = tmp_path / "cloud" / "agent"
    agent = memfs.init(tmp_path / "agent", name="agent")
    add_remote(agent.history, "origin", f"memfs::{cloud.as_uri()}")
    for n in range(commits):
        write(agent.root, f"notes/n{n % 3}.md", f"---\ndescription: n\n---\nedit {n}\n")
        agent.commit()
        assert sync.push(agent).ok
    return agent, cloud


def listed_packs(cloud: Path) -> list[Path]:
    names = json.loads((cloud / "manifest.json").read_text())["packs"]
    return [cloud / "packs" / f"{name}.pack" for name in names]


def test_a_clone_stores_the_uploaded_index_and_git_agrees(tmp_path: Path) -> None:
    agent, cloud = agent_with_history(tmp_path)
    fresh = sync.clone(f"memfs::{cloud.as_uri()}", tmp_path / "fresh")
    assert fresh.history.head() == agent.history.head()
    assert (fresh.root / "notes/n2.md").read_text().endswith("edit 11\n")
    for pack in listed_packs(cloud):
        local = fresh.root / ".git/objects/pack" / pack.with_suffix(".idx").name
        assert local.read_bytes() == pack.with_suffix(".idx").read_bytes()
    git(fresh.root, "fsck", "--strict")
    assert fresh.status().clean


def test_a_pack_whose_index_is_missing_is_indexed_here(tmp_path: Path) -> None:
    agent, cloud = agent_with_history(tmp_path, commits=3)
    for pack in listed_packs(cloud):
        pack.with_suffix(".idx").unlink()
    fresh = sync.clone(f"memfs::{cloud.as_uri()}", tmp_path / "fresh")
    assert fresh.history.head() == agent.history.head()
    git(fresh.root, "fsck", "--strict")


def _resum(index: bytes) -> bytes:
    """``index`` with its trailing checksum made right again, as a liar would."""
    return index[:-20] + hashlib.sha1(index[:-20]).digest()


def _fields(index: bytes) -> tuple[int, int, int]:
    """(count, where the names start, where the offsets start) of a version 2 index."""
    count = struct.unpack_from(">L", index, 8 + 255 * 4)[0]
    return count, 8 + 256 * 4, 8 + 256 * 4 + 24 * count


def _swap_offsets(pack: bytes, index: bytes) -> tuple[bytes, bytes]:
    """Names stay sorted; the first two names now point at each other's objects."""
    count, _, at = _fields(index)
    offsets = list(struct.unpack_from(f">{count}L", index, at))
    offsets[0], offsets[1] = offsets[1], offsets[0]
    return pack, _resum(index[:at] + struct.pack(f">{count}L", *offsets) + index[at + 4 * count :])


def _shift_offset(pack: bytes, index: bytes) -> tuple[bytes, bytes]:
    """One offset moved a byte into its entry."""
    count, _, at = _fields(index)
    offsets = list(struct.unpack_from(f">{count}L", index, at))
    offsets[-1] += 1
    return pack, _resum(index[:at] + struct.pack(f">{count}L", *offsets) + index[at + 4 * count :])


def _rename_one(pack: bytes, index: bytes) -> tuple[bytes, bytes]:
    """The last name changed to a bigger one: still sorted, fan-out still right."""
    count, names, _ = _fields(index)
    last = names + 20 * (count - 1)
    renamed = index[last : last + 19] + bytes([min(255, index[last + 19] + 1)])
    if renamed == index[last : last + 20]:
        renamed = index[last : last + 18] + bytes([min(255, index[last + 18] + 1)]) + b"\0"
    return pack, _resum(index[:last] + renamed + index[last + 20 :])


def _flip_index_byte(pack: bytes, index: bytes) -> tuple[bytes, bytes]:
    return pack, index[:1100] + bytes([index[1100] ^ 1]) + index[1101:]


def _other_count(pack: bytes, index: bytes) -> tuple[bytes, bytes]:
    count, _, _ = _fields(index)
    return pack, _resum(index[:1028] + struct.pack(">L", count + 1) + index[1032:])


def _other_pack(pack: bytes, index: bytes) -> tuple[bytes, bytes]:
    return pack, _resum(index[:-40] + bytes(20) + index[-20:])


def _truncated_pack(pack: bytes, index: bytes) -> tuple[bytes, bytes]:
    return pack[:-25], index


LIES: list[tuple[str, Lie, str]] = [
    ("names swapped", _swap_offsets, "which is not what it holds"),
    ("offset inside an entry", _shift_offset, "is corrupt"),
    ("a name changed", _rename_one, "is corrupt|no pack holds it"),
    ("index damaged", _flip_index_byte, "index's checksum"),
    ("count", _other_count, r"lists (\d+) objects, the pack holds (?!\1)"),
    ("another pack's index", _other_pack, "describes another pack"),
    ("truncated pack", _truncated_pack, "checksum does not match"),
]


@pytest.mark.parametrize(
    ("lie", "message"), [(lie, m) for _, lie, m in LIES], ids=[n for n, *_ in LIES]
)
def test_a_lying_index_or_pack_fails_the_clone_and_leaves_nothing(
    tmp_path: Path, lie: Lie, message: str
) -> None:
    """The agent is one commit in one pack, so every object is one a checkout reads: a lie
    about an object no checkout reads (an older commit's) is not seen by the clone (only by
    ``git fsck``), see ``memfs.packcheck``."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    cloud = tmp_path / "cloud" / "agent"
    add_remote(agent.history, "origin", f"memfs::{cloud.as_uri()}")
    assert sync.push(agent).ok
    (pack_path,) = listed_packs(cloud)
    idx_path = pack_path.with_suffix(".idx")
    pack, index = lie(pack_path.read_bytes(), idx_path.read_bytes())
    pack_path.chmod(0o644)
    idx_path.chmod(0o644)
    pack_path.write_bytes(pack)
    idx_path.write_bytes(index)
    with pytest.raises(RemoteCorruptError, match=message) as caught:
        sync.clone(f"memfs::{cloud.as_uri()}", tmp_path / "fresh")
    assert "nothing local was changed" in str(caught.value)
    assert not (tmp_path / "fresh").exists()
    result = run_cli("clone", f"memfs::{cloud.as_uri()}", str(tmp_path / "by-cli"))
    assert result.exit_code == 7
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "by-cli").exists()


def _packed(*entries: bytes) -> bytes:
    body = b"PACK" + struct.pack(">II", 2, len(entries)) + b"".join(entries)
    return body + hashlib.sha1(body).digest()


def _checked(entries: list[bytes], names: list[bytes]) -> PackSet:
    """A pack of ``entries`` with an index that names them ``names``, in order."""
    pack = _packed(*entries)
    offsets = [12 + sum(len(entry) for entry in entries[:i]) for i in range(len(entries))]
    listed = sorted((name, offset, 0) for name, offset in zip(names, offsets, strict=True))
    checksum = pack[-20:]
    return PackSet([check_index(f"pack-{checksum.hex()}", pack, index_v2(listed, checksum))])


def _delta(base: bytes, target: bytes) -> bytes:
    from dulwich.pack import create_delta

    return b"".join(create_delta(base, target))


def test_deltas_whose_base_is_outside_the_pack_are_refused() -> None:
    base = b"x" * 200
    target = base + b"y"
    delta = _delta(base, target)
    blob = entry_header(3, len(base)) + zlib.compress(base)
    blob_sha, target_sha = object_id(3, base), object_id(3, target)
    # an offset delta pointing before the pack's first byte
    ofs = entry_header(6, len(delta)) + bytes([0x7F]) + zlib.compress(delta)
    entries = [blob, ofs]
    with pytest.raises(PackError, match="points outside the pack"):
        _checked(entries, [blob_sha, target_sha]).read(target_sha)
    # a ref delta whose base no entry of this pack holds (a thin pack)
    ref = entry_header(7, len(delta)) + b"\x01" * 20 + zlib.compress(delta)
    entries = [blob, ref]
    with pytest.raises(PackError, match="no base in the pack"):
        _checked(entries, [blob_sha, target_sha]).read(target_sha)
    # two ref deltas, each the other's base
    one, two = b"\x11" * 20, b"\x22" * 20
    entries = [
        entry_header(7, len(delta)) + two + zlib.compress(delta),
        entry_header(7, len(delta)) + one + zlib.compress(delta),
    ]
    with pytest.raises(PackError, match="loop"):
        _checked(entries, [one, two]).read(one)
    # and a good one reads, and hashes
    entries = [blob, entry_header(6, len(delta)) + bytes([len(blob)]) + zlib.compress(delta)]
    assert _checked(entries, [blob_sha, target_sha]).read(target_sha) == (3, target)


def test_an_entry_that_inflates_to_another_size_or_leaves_bytes_is_refused() -> None:
    data = b"hello\n"
    sha = object_id(3, data)
    entries = [entry_header(3, len(data) + 1) + zlib.compress(data)]
    with pytest.raises(PackError, match="does not inflate to its"):
        _checked(entries, [sha]).read(sha)
    entries = [entry_header(3, len(data)) + zlib.compress(data) + b"junk"]
    with pytest.raises(PackError, match="followed by bytes"):
        _checked(entries, [sha]).read(sha)


def test_a_clone_reads_the_manifest_once_and_each_pack_with_its_index(
    tmp_path: Path, s3: S3Bucket
) -> None:
    url = s3.url("agents/counted")
    agent = memfs.init(tmp_path / "agent", name="agent")
    add_remote(agent.history, "origin", url)
    for n in range(3):
        write(agent.root, f"notes/n{n}.md", f"---\ndescription: n\n---\n{n}\n")
        agent.commit()
        assert sync.push(agent).ok
    s3.server.requests.clear()
    fresh = sync.clone(url, tmp_path / "fresh")
    assert fresh.history.head() == agent.history.head()
    gets = [path for method, path in s3.server.requests if method == "GET"]
    assert sum(path.endswith("/manifest.json") for path in gets) == 1
    assert sum(path.endswith(".pack") for path in gets) == 3
    assert sum(path.endswith(".idx") for path in gets) == 3
