"""The push's pack writer (memfs.packwrite): entries copied from local packs, others deflated,
checked against git's own reader; a damaged local pack is never uploaded."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.errors import RepositoryDamagedError
from memfs.history import History
from memfs.packwrite import REUSE_MIN_OBJECTS, entry_header
from memfs.remotes.configure import add_remote

from .conftest import assert_git_agrees

AUTHOR = "t <t@t>"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def _files(count: int, tag: str) -> dict[str, tuple[int, bytes] | None]:
    return {
        f"d{n % 7}/f{n}.md": (0o100644, "".join(f"{tag} line {i}\n" for i in range(n)).encode())
        for n in range(count)
    }


def _mixed_history(root: Path) -> History:
    """An agent whose objects sit in a pack git wrote with deltas, in memfs's own pack and
    loose: every way the writer finds an object."""
    history = memfs.init(root, name="agent").history
    parent = history.head()
    for n in range(4):
        parent = history.commit(parent, _files(40, f"v{n}"), f"c{n}", AUTHOR)
    git(root, "repack", "-adfq", "--depth=10")  # deltas: the writer inflates those
    history.close()
    history = History.open(root)
    parent = history.commit(parent, _files(REUSE_MIN_OBJECTS * 2, "new"), "big", AUTHOR)
    history.store_blob(b"a loose blob no commit names\n")
    parent = history.commit(parent, {"loose.md": (0o100644, b"loose\n")}, "loose", AUTHOR)
    return history


def test_a_pack_built_for_a_push_is_what_git_index_pack_makes_of_it(tmp_path: Path) -> None:
    history = _mixed_history(tmp_path / "agent")
    assert "delta" in git(
        tmp_path,
        "verify-pack",
        "-v",
        *map(str, (tmp_path / "agent/.git/objects/pack").glob("*.idx")),
    )
    head = history.head()
    assert head is not None
    built = history.pack_between([head], [])
    assert built is not None and built.count >= REUSE_MIN_OBJECTS
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{built.name}.pack").write_bytes(built.pack)
    git(out, "index-pack", "--strict", f"{built.name}.pack")  # writes git's own .idx beside it
    assert (out / f"{built.name}.idx").read_bytes() == built.index
    verified = git(out, "verify-pack", "-v", f"{built.name}.idx")
    assert "delta" not in verified.split("non delta")[0]  # self-contained: no deltas at all
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    (bare / "objects/pack" / f"{built.name}.pack").write_bytes(built.pack)
    (bare / "objects/pack" / f"{built.name}.idx").write_bytes(built.index)
    git(bare, "update-ref", "refs/heads/main", head)
    git(bare, "fsck", "--strict", "--no-dangling")
    history.close()


@pytest.mark.parametrize("size", [0, 15, 16, 127, 2048, 1 << 20])
def test_entry_headers_read_back_as_git_writes_them(size: int) -> None:
    header = entry_header(3, size)
    type_num, shift, value = (header[0] >> 4) & 7, 4, header[0] & 0x0F
    for byte in header[1:]:
        value |= (byte & 0x7F) << shift
        shift += 7
    assert (type_num, value) == (3, size)
    assert all(byte & 0x80 for byte in header[:-1]) and not header[-1] & 0x80


def test_a_damaged_local_pack_is_never_uploaded(tmp_path: Path) -> None:
    root = tmp_path / "agent"
    history = memfs.init(root, name="agent").history
    head = history.commit(history.head(), _files(REUSE_MIN_OBJECTS * 2, "x"), "big", AUTHOR)
    git(root, "repack", "-adfq", "--window=0")  # one pack, every object whole
    (idx,) = (root / ".git/objects/pack").glob("*.idx")
    blob = history.entries_at(head, "d3/f101.md")["d3/f101.md"].sha
    offset = next(
        int(line.split()[4])
        for line in git(root, "verify-pack", "-v", str(idx)).splitlines()
        if line.startswith(blob)
    )
    pack = idx.with_suffix(".pack")
    data = bytearray(pack.read_bytes())
    data[offset + 8] ^= 0x40  # inside the blob's zlib stream; the index's CRC now disagrees
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    history.close()
    history = History.open(root)
    with pytest.raises(RepositoryDamagedError):
        history.pack_between([head], [])
    history.close()


# -- reading back: a fetch keeps every pack's objects; trees flattened once --------------------


def test_a_fetch_of_several_packs_keeps_the_objects_of_all_of_them(tmp_path: Path) -> None:
    url = f"memfs::{(tmp_path / 'cloud' / 'agent').as_uri()}"
    a = memfs.init(tmp_path / "a", name="shared")
    add_remote(a.history, "origin", url)
    assert sync.push(a).ok
    b = sync.clone(url, tmp_path / "b")
    wanted = set()
    for n in range(3):  # three pushes: three packs B lacks
        (a.root / f"note-{n}.md").write_text(f"fact {n}\n")
        a.commit()
        assert sync.push(a).ok
        wanted.add(a.history.entries_at(a.history.head(), f"note-{n}.md")[f"note-{n}.md"].sha)
    sync.fetch(b)
    # a checkout of what was fetched reads every blob from memory, none from the packs again
    assert wanted <= {sha.decode() for sha in b.history._unpacked}
    assert sync.pull(b).ok
    assert {p.name for p in b.root.glob("note-*.md")} == {f"note-{n}.md" for n in range(3)}
    a.close()
    b.close()


def test_a_flattened_tree_is_the_callers_own_copy(tmp_path: Path) -> None:
    history = memfs.init(tmp_path / "agent", name="agent").history
    head = history.commit(history.head(), _files(20, "x"), "c", AUTHOR)
    first = history.tree_of(head)
    first.pop("d1/f1.md")
    first["made-up.md"] = first["d2/f2.md"]
    again = history.tree_of(head)
    assert "d1/f1.md" in again and "made-up.md" not in again
    assert again == History.open(tmp_path / "agent").tree_of(head)  # what a fresh read finds
    history.close()


def test_a_first_push_big_enough_to_reuse_packed_entries_clones_whole(tmp_path: Path) -> None:
    url = f"memfs::{(tmp_path / 'cloud' / 'agent').as_uri()}"
    a = memfs.init(tmp_path / "a", name="shared")
    for path, (_, data) in _files(REUSE_MIN_OBJECTS * 2, "first").items():
        (a.root / path).parent.mkdir(parents=True, exist_ok=True)
        (a.root / path).write_bytes(data)
    add_remote(a.history, "origin", url)
    assert sync.push(a).ok
    b = sync.clone(url, tmp_path / "b")
    assert b.history.head() == a.history.head()
    git(b.root, "fsck", "--strict", "--no-dangling")
    assert_git_agrees(b.root)  # the files checked out are the commit's
    a.close()
    b.close()
