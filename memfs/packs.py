"""Verify a received pack and index it in one pass, keeping what it unpacked.

``git index-pack`` in miniature: every object is inflated once, its id hashed from its
content, its CRC taken over its packed bytes; deltas are resolved against their bases. The
result is the pack index (built here, never trusted from a remote) and the objects
themselves, so a fresh checkout reads its trees and blobs without touching the pack again.
dulwich's ``PackData.create_index`` does the same job object by object through its generic
reader, at several times the cost; this one reads the pack from memory in one sweep.
"""

from __future__ import annotations

import bisect
import io
import struct
import zlib

from memfs.digests import sha1_for
from memfs.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs.digests import Hasher

TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
OFS_DELTA = 6
REF_DELTA = 7
SHA_LENGTH = 20
MAX_INFLATE_RATIO = 1032  # deflate's best ratio: a larger declared size is a lie (or a bomb)

RawObject = tuple[int, bytes]
"""(type number, content) of one object."""


class PackError(ValueError):
    """The pack's bytes do not make a valid pack; the message says where and why."""


class IndexedPack(Record):
    """What one sweep over a pack found."""

    __slots__ = _fields = ("checksum", "entries", "objects")
    checksum: bytes
    entries: list[tuple[bytes, int, int]]  # (binary sha, offset, crc32), sorted by sha
    objects: dict[bytes, RawObject]  # every object, by binary sha

    def __init__(
        self,
        checksum: bytes,
        entries: list[tuple[bytes, int, int]],
        objects: dict[bytes, RawObject],
    ) -> None:
        self.checksum = checksum
        self.entries = entries
        self.objects = objects

    def index_bytes(self) -> bytes:
        """The pack's ``.idx`` (version 2)."""
        return index_v2(self.entries, self.checksum)


def index_v2(entries: list[tuple[bytes, int, int]], checksum: bytes) -> bytes:
    """A version 2 ``.idx`` for ``entries`` (binary sha, offset, crc32; sorted by sha), built
    with a few ``struct`` calls (dulwich's writer makes three small writes per object)."""
    if not entries:
        shas: tuple[bytes, ...] = ()
        offsets: tuple[int, ...] = ()
        crcs: tuple[int, ...] = ()
    else:
        shas, offsets, crcs = zip(*entries, strict=True)
    if offsets and max(offsets) >= 2**31:
        from dulwich.pack import write_pack_index_v2

        out = io.BytesIO()  # a pack over 2 GiB: rare enough for dulwich's general writer
        write_pack_index_v2(out, entries, checksum)
        return out.getvalue()
    firsts = bytes(sha[0] for sha in shas)  # sorted, as the shas are
    fanout = [bisect.bisect_right(firsts, first) for first in range(256)]
    count = len(entries)
    body = b"".join(
        (
            b"\377tOc",
            struct.pack(">L", 2),
            struct.pack(">256L", *fanout),
            b"".join(shas),
            struct.pack(f">{count}L", *crcs),
            struct.pack(f">{count}L", *offsets),
            checksum,
        )
    )
    return body + sha1_for(len(body))(body).digest()


def object_id(type_num: int, data: bytes) -> bytes:
    """The binary sha git gives an object of this type and content."""
    return _object_id(type_num, data, sha1_for(len(data)))


def _object_id(type_num: int, data: bytes, sha1: Hasher) -> bytes:
    header = TYPE_NAMES[type_num] + b" " + str(len(data)).encode() + b"\0"
    digest = sha1(header)
    digest.update(data)
    return digest.digest()  # type: ignore[no-any-return]


def index_pack(pack: bytes) -> IndexedPack:
    """Check ``pack`` (trailing checksum, header, every object) and index it.

    Raises PackError for anything a pack must not be: truncated, a checksum that does not
    match, an object that does not inflate to its declared size, trailing garbage, a delta
    whose base is not in the pack (a thin pack: a stored pack must stand alone).
    """
    if len(pack) < 12 + SHA_LENGTH or pack[:4] != b"PACK":
        raise PackError("not a pack (no PACK header)")
    view = memoryview(pack)
    checksum = bytes(view[-SHA_LENGTH:])
    sha1 = sha1_for(len(pack))  # one choice for the whole pack (memfs.digests)
    if sha1(view[:-SHA_LENGTH]).digest() != checksum:
        raise PackError("its checksum does not match its content (truncated or corrupted)")
    version, count = struct.unpack_from(">II", pack, 4)
    if version not in (2, 3):
        raise PackError(f"unsupported pack version {version}")
    end = len(pack) - SHA_LENGTH
    offset = 12
    by_offset: dict[int, bytes] = {}  # offset -> binary sha, for offset deltas
    objects: dict[bytes, RawObject] = {}
    entries: list[tuple[bytes, int, int]] = []
    deltas: list[tuple[int, int | bytes, bytes, int]] = []  # (offset, base, delta, crc)
    for _ in range(count):
        if offset >= end:
            raise PackError(f"it ends before its {count} objects")
        start = offset
        type_num, size, offset, ofs_base = object_header(pack, start, end)
        base: int | bytes | None = ofs_base
        if type_num == REF_DELTA:
            base = bytes(view[offset : offset + SHA_LENGTH])
            offset += SHA_LENGTH
        elif type_num != OFS_DELTA and type_num not in TYPE_NAMES:
            raise PackError(f"object at {start} has unknown type {type_num}")
        data, offset = inflate(view, offset, end, size, start)
        crc = zlib.crc32(view[start:offset])
        if base is None:
            sha = _object_id(type_num, data, sha1)
            objects[sha] = (type_num, data)
            by_offset[start] = sha
            entries.append((sha, start, crc))
        else:
            deltas.append((start, base, data, crc))
    if offset != end:
        raise PackError(f"{end - offset} bytes of garbage after its last object")
    _resolve_deltas(deltas, by_offset, objects, entries)
    entries.sort()
    return IndexedPack(checksum, entries, objects)


def object_header(pack: bytes, start: int, end: int) -> tuple[int, int, int, int | None]:
    """The header of the pack entry at ``start``: (type, inflated size, where what follows the
    header starts, an offset delta's base offset or None). A ref delta's base name follows
    the header. PackError for a truncated header or an offset delta pointing outside the pack.
    """
    at = start
    byte = pack[at]
    at += 1
    type_num = (byte >> 4) & 7
    size = byte & 0x0F
    shift = 4
    while byte & 0x80:
        if at >= end:
            raise PackError(f"object at {start} has a truncated header")
        byte = pack[at]
        at += 1
        size |= (byte & 0x7F) << shift
        shift += 7
    if type_num != OFS_DELTA:
        return type_num, size, at, None
    if at >= end:
        raise PackError(f"object at {start} has a truncated header")
    byte = pack[at]
    at += 1
    distance = byte & 0x7F
    while byte & 0x80:
        if at >= end:
            raise PackError(f"object at {start} has a truncated header")
        byte = pack[at]
        at += 1
        distance = ((distance + 1) << 7) | (byte & 0x7F)
    base = start - distance
    if base < 12 or base >= start:
        raise PackError(f"delta at {start} points outside the pack")
    return type_num, size, at, base


def inflate(view: memoryview, offset: int, end: int, size: int, start: int) -> tuple[bytes, int]:
    """Inflate the zlib stream at ``offset`` to exactly ``size`` bytes; (data, end offset)."""
    if size > MAX_INFLATE_RATIO * (end - offset) + 64:
        raise PackError(f"object at {start} claims {size} bytes, more than the pack can hold")
    decompressor = zlib.decompressobj()
    window_end = min(end, offset + size + 64)  # deflate adds a few bytes per block at worst
    try:
        out = [decompressor.decompress(view[offset:window_end], size + 1)]
        produced = len(out[0])
        while not decompressor.eof:
            if produced > size:
                break
            tail = decompressor.unconsumed_tail
            if tail:
                chunk = decompressor.decompress(tail, size + 1 - produced)
            elif window_end < end:
                next_end = min(end, window_end + max(size, 4096))
                chunk = decompressor.decompress(view[window_end:next_end], size + 1 - produced)
                window_end = next_end
            else:
                raise PackError(f"object at {start} is truncated")
            out.append(chunk)
            produced += len(chunk)
    except zlib.error as error:
        raise PackError(f"object at {start} does not inflate: {error}") from error
    if produced != size:
        raise PackError(f"object at {start} inflates to {produced} bytes, not {size}")
    consumed = window_end - offset - len(decompressor.unused_data)
    return (out[0] if len(out) == 1 else b"".join(out)), offset + consumed


def _resolve_deltas(
    deltas: list[tuple[int, int | bytes, bytes, int]],
    by_offset: dict[int, bytes],
    objects: dict[bytes, RawObject],
    entries: list[tuple[bytes, int, int]],
) -> None:
    """Apply every delta once its base is known; a base may be a delta itself."""
    if not deltas:
        return
    from dulwich.pack import apply_delta  # a pack with deltas only (git's, a compaction's)

    pending = deltas
    while pending:
        waiting: list[tuple[int, int | bytes, bytes, int]] = []
        for item in pending:
            start, base, delta, crc = item
            base_sha = by_offset.get(base) if isinstance(base, int) else base
            found = objects.get(base_sha) if base_sha is not None else None
            if found is None:
                waiting.append(item)
                continue
            type_num, base_data = found
            try:
                data = b"".join(apply_delta(base_data, delta))
            except Exception as error:  # dulwich raises ApplyDeltaError or ValueError
                raise PackError(f"delta at {start} does not apply: {error}") from error
            sha = object_id(type_num, data)
            objects[sha] = (type_num, data)
            by_offset[start] = sha
            entries.append((sha, start, crc))
        if len(waiting) == len(pending):
            raise PackError(f"delta at {waiting[0][0]} has no base in the pack")
        pending = waiting
