"""The git index file format (versions 2 and 3 read, 2 written), one struct call per entry.

dulwich's ``Index`` builds an object per entry and makes a dozen small writes per entry: at
10,000 entries reading costs ~0.2 s and writing ~0.1 s, more than the rest of a ``status``
(measured on this project's 10,000-file benchmark agent). memfs keeps the index only as a
stat cache (``gitindex.py`` reads it, ``gitindexwrite.py`` writes it), so it needs the
fields git compares and nothing else; a version 4 index (path prefix compression) is read
through dulwich. The small record of the tree an index file was written for (``index-tree``,
below) is here too: the reader and the writer both consult it.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
from collections.abc import Mapping

from memfs.trees import Files, TreeEntry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

ENTRY = struct.Struct(">10L20sH")
U32 = 0xFFFFFFFF
NAME_LENGTH_MASK = 0xFFF
RACY_NS = 50_000_000  # an entry this near the index's own mtime is racily clean (gitindex)


def pack_entry(path: str, entry: TreeEntry, st: os.stat_result | None) -> bytes:
    """One version 2 index entry: stat data (zeros without ``st``), mode, sha, name."""
    key = path.encode("utf-8", "surrogateescape")
    if st is None:
        fields: tuple[int, ...] = (0, 0, 0, 0, 0, 0, entry.mode, 0, 0, 0)
    else:
        ctime_s, ctime_ns = divmod(st.st_ctime_ns, 1_000_000_000)
        mtime_s, mtime_ns = divmod(st.st_mtime_ns, 1_000_000_000)
        fields = (
            ctime_s & U32, ctime_ns, mtime_s & U32, mtime_ns, st.st_dev & U32,
            st.st_ino & U32, entry.mode, st.st_uid & U32, st.st_gid & U32,
            st.st_size & U32,
        )  # fmt: skip
    name_length = min(len(key), NAME_LENGTH_MASK)
    packed = ENTRY.pack(*fields, bytes.fromhex(entry.sha), name_length)
    return packed + key + b"\0" * (8 - (ENTRY.size + len(key)) % 8)


def serialize(tree: Files, stats: Mapping[str, os.stat_result]) -> bytes:
    """``tree`` as a version-2 git index, with the stat data of the files in ``stats``.

    One ``struct`` call per entry: dulwich's ``Index.write`` builds an object and makes a
    dozen small writes per entry, a tenth of a second for a fresh 10,000-file checkout.
    Times are taken in whole nanoseconds, as git compares them.
    """
    parts = [b"DIRC", struct.pack(">LL", 2, len(tree))]
    for path in sorted(tree, key=git_order):
        parts.append(pack_entry(path, tree[path], stats.get(path)))
    import hashlib  # on use: a status answered from its record reads no index

    data = b"".join(parts)
    return data + hashlib.sha1(data).digest()


Entry = tuple[int, int, int, int, int, str]  # mode, mtime_ns, ctime_ns, size, ino, sha


def git_order(path: str) -> bytes:
    """The key git sorts index entries by: the path's bytes."""
    return path.encode("utf-8", "surrogateescape")


_EXTENDED = 0x4000
_STAGE_MASK = 0x3000


def read_entries(data: bytes) -> dict[str, Entry | None]:
    """The entries of a version 2 or 3 git index, by path (None: conflicted)."""
    return read(data)[0]


def read(data: bytes) -> tuple[dict[str, Entry | None], dict[str, bytes] | None]:
    """The entries of a git index by path (None: conflicted), and for a version 2 index
    each entry's bytes as stored (``splice`` copies them into the next index). Paths are
    decoded once here (surrogateescape keeps any byte), as every caller looks them up by
    the work tree's names.

    One ``struct`` call per entry: dulwich's ``Index`` builds an object per entry and costs
    ~0.3 s at 10,000 entries, more than the rest of a ``status``; a version 4 index (path
    prefix compression, written by ``git update-index --index-version 4``) is read by dulwich.
    ValueError for anything that is not a well-formed index.
    """
    if data[:4] != b"DIRC" or len(data) < 32:
        raise ValueError("not a git index")
    import hashlib

    checksum = data[-20:]
    if checksum != bytes(20) and hashlib.sha1(data[:-20]).digest() != checksum:
        raise ValueError("index checksum mismatch")  # all zeros: git's index.skipHash
    version, count = struct.unpack_from(">LL", data, 4)
    if version == 4:
        return _read_with_dulwich(data), None
    if version not in (2, 3):
        raise ValueError(f"index version {version}")
    entries: dict[str, Entry | None] = {}
    raw: dict[str, bytes] | None = {} if version == 2 else None
    unpack = ENTRY.unpack_from
    size = ENTRY.size
    offset = 12
    for _ in range(count):
        ctime_s, ctime_ns, mtime_s, mtime_ns, _dev, ino, mode, _uid, _gid, file_size, sha, flags = (
            unpack(data, offset)
        )
        header = size + (2 if flags & _EXTENDED and version == 3 else 0)
        name_end = data.index(b"\0", offset + header)
        encoded = data[offset + header : name_end]
        name = encoded.decode("utf-8", "surrogateescape")
        end = offset + ((header + len(encoded) + 8) & ~7)
        if raw is not None:
            raw[name] = data[offset:end]
        offset = end
        if flags & _STAGE_MASK:
            entries[name] = None
            continue
        entries[name] = (
            mode,
            mtime_s * 1_000_000_000 + mtime_ns,
            ctime_s * 1_000_000_000 + ctime_ns,
            file_size,
            ino,
            sha.hex(),
        )
    if offset > len(data) - 20:
        raise ValueError("index cut short")
    return entries, raw


def offsets(data: bytes) -> dict[str, int] | None:
    """Where each entry of a version 2 index starts, by path (no checksum check: the caller
    knows the file); None for another version or a conflicted entry."""
    if data[:4] != b"DIRC" or struct.unpack_from(">L", data, 4)[0] != 2:
        return None
    count = struct.unpack_from(">L", data, 8)[0]
    found: dict[str, int] = {}
    offset = 12
    flags_at = ENTRY.size - 2
    for _ in range(count):
        (flags,) = struct.unpack_from(">H", data, offset + flags_at)
        if flags & _STAGE_MASK:
            return None
        name_end = data.index(b"\0", offset + ENTRY.size)
        found[data[offset + ENTRY.size : name_end].decode("utf-8", "surrogateescape")] = offset
        offset += (ENTRY.size + name_end - offset - ENTRY.size + 8) & ~7
    if offset > len(data) - 20:
        raise ValueError("index cut short")
    return found


def entry_length(data: bytes | bytearray, offset: int) -> int:
    """The length in bytes of the version 2 entry at ``offset``."""
    name_end = data.index(b"\0", offset + ENTRY.size)
    return (name_end - offset + 8) & ~7


def _read_with_dulwich(data: bytes) -> dict[str, Entry | None]:
    """A version 4 index, through dulwich (rare: git writes v2 unless told otherwise)."""
    from dulwich.index import IndexEntry, read_index_dict_with_version

    found, _version, _extensions = read_index_dict_with_version(io.BytesIO(data[:-20]))
    entries: dict[str, Entry | None] = {}
    for encoded, entry in found.items():
        name = encoded.decode("utf-8", "surrogateescape")
        if not isinstance(entry, IndexEntry):
            entries[name] = None
            continue
        ctime, mtime = entry.ctime, entry.mtime
        entries[name] = (
            entry.mode,
            _ns(mtime),
            _ns(ctime),
            entry.size,
            entry.ino,
            entry.sha.decode(),
        )
    return entries


def _ns(stamp: int | float | tuple[int, int]) -> int:
    if isinstance(stamp, tuple):
        return stamp[0] * 1_000_000_000 + stamp[1]
    return int(stamp * 1_000_000_000)


def splice(
    raw: Mapping[str, bytes],
    entries: Mapping[str, Entry | None],
    index_mtime_ns: int,
    replacements: Mapping[str, bytes | None],
) -> bytes:
    """The version 2 index read as ``raw``/``entries`` (``read``), written at
    ``index_mtime_ns``, with ``replacements`` (path -> ``pack_entry``, None to drop
    it). An entry copied over that was racily clean (modified no earlier than
    the old index was written) is smudged, as git does: its size is zeroed so the next read
    hashes the file instead of trusting a stat the new index's later time would vouch for.

    ``raw`` is in the index's order (git's): when no name is new the entries keep it and
    nothing is sorted (10,000 names encoded and sorted cost a commit ~5 ms)."""
    racy_from = index_mtime_ns - RACY_NS
    smudged = {
        name: chunk[:36] + bytes(4) + chunk[40:]
        for name, chunk in raw.items()
        if (entry := entries.get(name)) is not None
        and entry[1] >= racy_from
        and name not in replacements
    }
    overrides: dict[str, bytes | None] = {**smudged, **replacements}
    if overrides.keys() <= raw.keys():
        kept = (overrides.get(name, chunk) for name, chunk in raw.items())
        parts = [part for part in kept if part is not None]
    else:  # a name that is new: sorted in
        chunks = {**raw, **overrides}
        parts = [
            chunk for name in sorted(chunks, key=git_order) if (chunk := chunks[name]) is not None
        ]
    data = b"".join([b"DIRC", struct.pack(">LL", 2, len(parts)), *parts])
    import hashlib

    return data + hashlib.sha1(data).digest()


# The index as git's cache-tree: ``.git/memfs/index-tree`` names the tree object the index
# was written for, with the index file's mtime, size and inode then. While both still hold,
# the index lists that tree exactly, and reading it (one struct call per entry) is cheaper
# than flattening the tree's objects. Removed before every index write, written after, so a
# crash between leaves no record, never a wrong one; git replacing the index (a new file)
# changes its inode and mtime.
INDEX_TREE = "index-tree"


def record_key(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns} {st.st_size} {st.st_ino}"


def forget_index_tree(control_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (control_dir / "memfs" / INDEX_TREE).unlink()


def record_index_tree(control_dir: Path, tree_sha: str, key: str) -> None:
    record = f"{tree_sha} {key}\n".encode()
    path = control_dir / "memfs" / INDEX_TREE
    with contextlib.suppress(OSError):
        if path.read_bytes() == record:
            return
    with contextlib.suppress(OSError):
        path.parent.mkdir(exist_ok=True)
        # not fsynced, as the index it describes is not: after a power cut it is whole,
        # absent or names another index (its key), and then it is simply not used
        temp = path.with_name(f".{INDEX_TREE}.{os.getpid()}")
        temp.write_bytes(record)
        os.replace(temp, path)


def recorded_tree(control_dir: Path, st: os.stat_result | None) -> str | None:
    """The tree sha the record names, if it was made for the index file of stat ``st``."""
    try:
        tree_sha, _, key = (control_dir / "memfs" / INDEX_TREE).read_text().strip().partition(" ")
    except (OSError, UnicodeDecodeError):
        return None
    return tree_sha if st is not None and key == record_key(st) else None
