"""Writing the self-contained pack a push uploads, reusing what the local packs hold.

A pack entry is a small header (type, size) followed by the object's zlib stream, and an
object stored whole (not as a delta) in a local pack is the same entry wherever it sits: it
is copied as it is, as ``git pack-objects`` reuses packed data, with no inflate and no
deflate. Each copied entry is checked against the CRC32 its local index records, so a
damaged local pack is never uploaded. Other objects (loose, stored as deltas, or in a pack
whose index cannot be read here) are read through the object store and deflated here.

dulwich's ``write_pack_objects`` reads every object through the store and compresses it
again, at about 150 us an object: most of a first push of 10,000 files.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

from memfs.digests import sha1_for
from memfs.packs import TYPE_NAMES, index_v2
from memfs.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REUSE_MIN_OBJECTS = 64  # below this a pack is small: reading local indexes would cost more
IDX_MAGIC = b"\377tOc"
SHA_LENGTH = 20

RawReader = Callable[[bytes], tuple[int, bytes]]
"""(type number, content) of an object by hex sha (an object store's ``get_raw``)."""


class BuiltPack(FrozenRecord):
    """A pack in memory: its bytes, its ``.idx``, its checksum, how many objects it holds."""

    __slots__ = _fields = ("pack", "index", "checksum", "count")
    pack: bytes
    index: bytes
    checksum: bytes
    count: int

    def __init__(self, pack: bytes, index: bytes, checksum: bytes, count: int) -> None:
        self._set(pack, index, checksum, count)


def entry_header(type_num: int, size: int) -> bytes:
    """The variable-length (type, size) header git puts before an entry's zlib stream."""
    byte = (type_num << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def build_pack(
    shas: Iterable[bytes],
    read_raw: RawReader,
    pack_dir: Path | None,
    check: Callable[[bytes, int, bytes], None] | None = None,
) -> BuiltPack:
    """A version 2 pack (no deltas) of the objects ``shas`` (hex), in that order, and its index.

    ``pack_dir`` is the local store's pack folder, whose entries are reused when the pack is
    big enough for that to pay; None reads every object through ``read_raw``. ``check``
    (the push guard of an agent with secrets, memfs.secrets.outgoing) sees every object's
    content and may refuse the pack (a reused entry is inflated for it).
    """
    wanted = list(dict.fromkeys(shas))  # once each, in order
    binary = [bytes.fromhex(sha.decode()) for sha in wanted]
    local = (
        LocalPacks(pack_dir).find(set(binary))
        if pack_dir is not None and len(binary) >= REUSE_MIN_OBJECTS
        else {}
    )
    # ~256 bytes an object: a big pack's objects are hashed by OpenSSL (its checksum loads it)
    new_sha1 = sha1_for(len(binary) * 256)
    chunks: list[bytes] = []
    entries: list[tuple[bytes, int, int]] = []
    header = b"PACK" + struct.pack(">II", 2, len(binary))
    chunks.append(header)
    offset = len(header)
    for hex_sha, sha in zip(wanted, binary, strict=True):
        found = local.get(sha)
        if found is not None:
            entry, crc = found
            if check is not None:
                check(sha, *_inflated(entry))
        else:
            type_num, data = read_raw(hex_sha)
            _check_object(new_sha1, sha, type_num, data)
            if check is not None:
                check(sha, type_num, data)
            entry = entry_header(type_num, len(data)) + zlib.compress(data)
            crc = zlib.crc32(entry)
        chunks.append(entry)
        entries.append((sha, offset, crc))
        offset += len(entry)
    pack = b"".join(chunks)
    checksum = sha1_for(len(pack))(pack).digest()
    entries.sort()
    return BuiltPack(pack + checksum, index_v2(entries, checksum), checksum, len(binary))


def _inflated(entry: bytes) -> tuple[int, bytes]:
    """(type number, content) of a whole pack entry: its header skipped, its data inflated
    (cheaper than reading the object again and deflating it anew)."""
    at = 1
    while entry[at - 1] & 0x80:
        at += 1
    return (entry[0] >> 4) & 7, zlib.decompress(entry[at:])


class ObjectMismatchError(ValueError):
    """An object read for a pack does not hold what its name (its sha) says: the local store
    is damaged (a flipped type or byte in a pack entry, a loose file overwritten). Raised
    before anything is uploaded; ``memfs.damage`` reports it as damage (exit 9)."""


def _check_object(new_sha1: Callable[[bytes], Any], sha: bytes, type_num: int, data: bytes) -> None:
    """Refuse an object whose (type, content) does not hash to ``sha``: neither dulwich nor
    memfs's own readers check an object's sha on read, and a push must never carry to a
    cloud what every later clone would refuse (packs with whole entries reused from local
    packs are checked by their CRC32 instead: ``LocalPacks``)."""
    kind = TYPE_NAMES.get(type_num)
    digest = new_sha1(b"%s %d\0" % (kind or b"?", len(data)))
    digest.update(data)
    if kind is None or digest.digest() != sha:
        raise ObjectMismatchError(f"object {sha.hex()} does not hold what its name says")


class LocalPacks:
    """The local store's packs, read straight from their files to copy whole entries out."""

    def __init__(self, pack_dir: Path) -> None:
        self.pack_dir = pack_dir

    def find(self, wanted: set[bytes]) -> dict[bytes, tuple[bytes, int]]:
        """The packed entry (bytes, CRC32) of each of ``wanted`` stored whole in a local pack.

        Newest packs first; stops once every object is found. A pack whose files do not
        check out is passed over: its objects are then read through the object store, which
        reports the damage.
        """
        found: dict[bytes, tuple[bytes, int]] = {}
        missing = set(wanted)
        for idx_path in self._newest_first():
            if not missing:
                break
            try:
                found.update(_entries_of(idx_path, missing))
            except (OSError, ValueError, struct.error):
                continue
            missing.difference_update(found)
        return found

    def _newest_first(self) -> list[Path]:
        """The packs' indexes, newest first; one removed meanwhile (a repack) is left out."""
        stamped = []
        for path in self.pack_dir.glob("pack-*.idx"):
            try:
                stamped.append((path.stat().st_mtime, path))
            except OSError:
                continue
        return [path for _, path in sorted(stamped, reverse=True)]


def _entries_of(idx_path: Path, wanted: set[bytes]) -> dict[bytes, tuple[bytes, int]]:
    """Whole (non-delta) entries of ``wanted`` in the pack beside ``idx_path``, CRC-checked."""
    index = idx_path.read_bytes()
    if index[:4] != IDX_MAGIC or struct.unpack_from(">L", index, 4)[0] != 2:
        raise ValueError("not a version 2 index")
    if sha1_for(len(index))(index[:-SHA_LENGTH]).digest() != index[-SHA_LENGTH:]:
        raise ValueError("index checksum")
    count = struct.unpack_from(">L", index, 8 + 255 * 4)[0]
    shas_at = 8 + 256 * 4
    crcs_at = shas_at + count * SHA_LENGTH
    offsets_at = crcs_at + count * 4
    if len(index) < offsets_at + count * 4 + 2 * SHA_LENGTH:
        raise ValueError("index too short")
    crcs = struct.unpack_from(f">{count}L", index, crcs_at)
    offsets = struct.unpack_from(f">{count}L", index, offsets_at)
    if any(offset & 0x80000000 for offset in offsets):
        raise ValueError("a pack over 2 GiB")  # rare: read through the store instead
    pack_checksum = index[-2 * SHA_LENGTH : -SHA_LENGTH]
    positions = {
        index[shas_at + i * SHA_LENGTH : shas_at + (i + 1) * SHA_LENGTH]: i for i in range(count)
    }
    hits = [(sha, positions[sha]) for sha in wanted if sha in positions]
    if not hits:
        return {}
    import mmap  # a pack big enough to reuse local entries only

    with (
        open(idx_path.with_suffix(".pack"), "rb") as file,
        mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data,
    ):
        end_of_data = len(data) - SHA_LENGTH
        if data[:4] != b"PACK" or data[end_of_data:] != pack_checksum:
            raise ValueError("the pack is not the one its index describes")
        ordered = sorted(offsets)
        next_offset = dict(zip(ordered, [*ordered[1:], end_of_data], strict=True))
        result: dict[bytes, tuple[bytes, int]] = {}
        for sha, i in hits:
            start = offsets[i]
            if (data[start] >> 4) & 7 not in TYPE_NAMES:
                continue  # a delta: its base may not be in the new pack
            entry = data[start : next_offset[start]]
            if zlib.crc32(entry) != crcs[i]:
                continue  # damaged: the store's read reports it
            result[sha] = (entry, crcs[i])
    return result
