"""A received pack with the ``.idx`` its pusher uploaded: checked, not rebuilt (issue 12).

``packs.index_pack`` inflates and hashes every object of a pack to build its index: for a
clone, whose packs hold the whole history, that is work in proportion to the history, paid
in Python per object. The pusher uploads the index beside each pack, so a clone can take it
instead, without trusting it:

- ``check_index``: the pack's trailing SHA-1 matches its bytes; the index's own SHA-1
  matches, it is version 2, its fan-out agrees with its names, the names are sorted and
  unique, it records the pack's checksum and object count, its offsets are distinct and
  lie between the pack's header and its trailer (the first right after the header). This
  costs a few C calls over the whole pack and index, nothing per object in Python: the
  entries' CRC32s are left to ``git fsck`` (one call each, they cost more than the rest);
- each object read is inflated from exactly the bytes between its offset and the next one,
  so an offset that is not an entry's start fails the read;
- ``PackSet.read``: every object memfs reads from such a pack is inflated to its declared
  size from exactly its entry's bytes, deltas resolved within the same pack, and hashed:
  it must hash to the name the index gives it. ``checkout_objects`` reads a commit, every
  tree and blob of its tree this way (what a checkout reads), before anything is stored.

A lie (a name that is not the content's, a count, a checksum, an offset, a delta base
outside the pack) is a ``PackError``: the fetch stops and nothing is kept. An object that
no checkout reads is not hashed here; ``git fsck`` and a local consolidation (which reads
every object of the packs it merges) hash it.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import stat
import struct
import zlib
from dataclasses import dataclass

from dulwich.objects import parse_tree
from dulwich.pack import apply_delta

from memfs.packs import (
    MAX_INFLATE_RATIO,
    OFS_DELTA,
    REF_DELTA,
    SHA_LENGTH,
    TYPE_NAMES,
    PackError,
    RawObject,
    index_pack,
    object_header,
    object_id,
)

IDX_MAGIC = b"\377tOc"
FANOUT_AT = 8
SHAS_AT = FANOUT_AT + 256 * 4
MAX_DELTA_CHAIN = 10_000  # git's pack.depth tops out at 4095
COMMIT_TYPE, TREE_TYPE, BLOB_TYPE = 1, 2, 3


@dataclass(frozen=True)
class CheckedPack:
    """A pack and what its checked index says: each object's offset, each entry's end."""

    name: str
    pack: bytes
    index: bytes
    shas: list[bytes]  # binary, sorted
    offsets: tuple[int, ...]  # of each of ``shas``
    crcs: tuple[int, ...]  # of each of ``shas``' entries, as the index records them
    starts: list[int]  # every entry's offset, sorted, then the trailer's

    def offset_of(self, sha: bytes) -> int | None:
        """Where the entry of object ``sha`` starts, or None if this pack lacks it."""
        i = bisect.bisect_left(self.shas, sha)
        return self.offsets[i] if i < len(self.shas) and self.shas[i] == sha else None

    def end_of(self, offset: int) -> int | None:
        """Where the entry starting at ``offset`` ends; None if no entry starts there."""
        i = bisect.bisect_left(self.starts, offset)
        if i + 1 >= len(self.starts) or self.starts[i] != offset:
            return None
        return self.starts[i + 1]


def check_index(name: str, pack: bytes, index: bytes) -> CheckedPack:
    """Check that ``index`` describes ``pack`` (see the module docstring); PackError if not."""
    if len(pack) < 12 + SHA_LENGTH or pack[:4] != b"PACK":
        raise PackError("not a pack (no PACK header)")
    checksum = pack[-SHA_LENGTH:]
    if hashlib.sha1(memoryview(pack)[:-SHA_LENGTH]).digest() != checksum:
        raise PackError("its checksum does not match its content (truncated or corrupted)")
    if f"pack-{checksum.hex()}" != name:
        raise PackError("its checksum does not match its name")
    version, count = struct.unpack_from(">II", pack, 4)
    if version not in (2, 3):
        raise PackError(f"unsupported pack version {version}")
    size = SHAS_AT + count * (SHA_LENGTH + 8) + 2 * SHA_LENGTH
    if len(index) < SHAS_AT + 2 * SHA_LENGTH or index[:4] != IDX_MAGIC:
        raise PackError("its index is not a version 2 pack index")
    if struct.unpack_from(">L", index, 4)[0] != 2:
        raise PackError("its index is not a version 2 pack index")
    if hashlib.sha1(memoryview(index)[:-SHA_LENGTH]).digest() != index[-SHA_LENGTH:]:
        raise PackError("its index's checksum does not match the index")
    if index[-2 * SHA_LENGTH : -SHA_LENGTH] != checksum:
        raise PackError("its index describes another pack")
    fanout = struct.unpack_from(">256L", index, FANOUT_AT)
    if fanout[255] != count or len(index) != size:
        raise PackError(f"its index lists {fanout[255]} objects, the pack holds {count}")
    shas_end = SHAS_AT + count * SHA_LENGTH
    shas = [index[at : at + SHA_LENGTH] for at in range(SHAS_AT, shas_end, SHA_LENGTH)]
    if any(a >= b for a, b in itertools.pairwise(shas)):
        raise PackError("its index's names are not sorted and unique")
    firsts = index[SHAS_AT:shas_end:SHA_LENGTH]  # each name's first byte
    if any(fanout[b] != bisect.bisect_right(firsts, b) for b in range(256)):
        raise PackError("its index's fan-out table does not match its names")
    crcs = struct.unpack_from(f">{count}L", index, shas_end)
    offsets = struct.unpack_from(f">{count}L", index, shas_end + 4 * count)
    return CheckedPack(name, pack, index, shas, offsets, crcs, _starts(pack, offsets))


def _starts(pack: bytes, offsets: tuple[int, ...]) -> list[int]:
    """The entries' offsets sorted, then the trailer's: the first right after the header,
    none at or past the trailer, no two alike."""
    end = len(pack) - SHA_LENGTH
    if not offsets:
        if end != 12:
            raise PackError(f"{end - 12} bytes of garbage after its last object")
        return [end]
    ordered = sorted(offsets)
    if ordered[-1] & 0x80000000:
        raise PackError("its index has 64-bit offsets (a pack over 2 GiB)")
    if ordered[0] != 12 or ordered[-1] >= end or len(set(ordered)) != len(ordered):
        raise PackError("its index's offsets are not the pack's entries")
    ordered.append(end)
    return ordered


def check_received(
    received: list[tuple[str, bytes, bytes | None]], tip: bytes
) -> tuple[list[CheckedPack], dict[bytes, RawObject]]:
    """Check a clone's packs, each (name, pack, uploaded index or None), and read the objects
    a checkout of commit ``tip`` reads: the checked packs, and those objects by binary sha.

    A pack without an index is indexed here (``packs.index_pack``: every object hashed).
    PackError, naming the pack, if any of it does not check out.
    """
    checked = []
    for name, pack, index in received:
        try:
            checked.append(check_index(name, pack, index or index_pack(pack).index_bytes()))
        except PackError as error:
            raise PackError(f"{name} is corrupt ({error})") from error
    if all(item.offset_of(tip) is None for item in checked):
        raise PackError(f"the manifest names {tip.hex()[:7]} but no pack holds it")
    try:
        return checked, PackSet(checked).checkout_objects(tip)
    except PackError as error:
        raise PackError(f"a pack is corrupt ({error})") from error


class PackSet:
    """Checked packs, read object by object, every object hashed against its name."""

    def __init__(self, packs: list[CheckedPack]) -> None:
        self.packs = packs
        self._resolved: dict[tuple[int, int], RawObject] = {}  # (pack, offset) -> object

    def read(self, sha: bytes) -> RawObject:
        """The (type, content) of object ``sha`` (binary); PackError if no pack holds it, or
        if what the pack holds at that place does not hash to ``sha``."""
        for number, checked in enumerate(self.packs):
            offset = checked.offset_of(sha)
            if offset is None:
                continue
            type_num, data = self._object_at(number, offset)
            if object_id(type_num, data) != sha:
                raise PackError(
                    f"its index names the object at {offset} {sha.hex()}, "
                    "which is not what it holds"
                )
            return type_num, data
        raise PackError(f"no pack holds {sha.hex()}")

    def _object_at(self, number: int, offset: int) -> RawObject:
        """The object whose entry starts at ``offset``, its delta chain resolved in that
        pack; the chain's objects are kept, for other deltas on the same bases."""
        checked = self.packs[number]
        chain: list[tuple[int, bytes]] = []  # (offset, delta), newest first
        seen: set[int] = set()
        while (number, offset) not in self._resolved:
            if offset in seen or len(chain) > MAX_DELTA_CHAIN:
                raise PackError(f"delta at {offset} is part of a loop or a chain too long")
            seen.add(offset)
            type_num, base, data = _entry(checked, offset)
            if base is None:
                self._resolved[number, offset] = (type_num, data)
                break
            chain.append((offset, data))
            offset = base
        type_num, data = self._resolved[number, offset]
        for delta_offset, delta in reversed(chain):
            try:
                data = b"".join(apply_delta(data, delta))
            except Exception as error:  # dulwich raises ApplyDeltaError or ValueError
                raise PackError(f"delta at {delta_offset} does not apply: {error}") from error
            self._resolved[number, delta_offset] = (type_num, data)
        return type_num, data

    def checkout_objects(self, commit: bytes) -> dict[bytes, RawObject]:
        """Commit ``commit`` (binary sha), every tree and every blob of its tree, by binary
        sha, each read and hashed (what a checkout of it reads); PackError on a lie."""
        type_num, data = self.read(commit)
        if type_num != COMMIT_TYPE or not data.startswith(b"tree ") or data[45:46] != b"\n":
            raise PackError(f"{commit.hex()} is not a commit")
        try:
            root = bytes.fromhex(data[5:45].decode("ascii"))
        except ValueError as error:
            raise PackError(f"{commit.hex()} is not a commit") from error
        found: dict[bytes, RawObject] = {commit: (type_num, data)}
        trees = [root]
        while trees:
            sha = trees.pop()
            if sha in found:
                continue
            type_num, data = self.read(sha)
            if type_num != TREE_TYPE:
                raise PackError(f"{sha.hex()} is named as a tree but is not one")
            found[sha] = (type_num, data)
            try:
                items = list(parse_tree(data, SHA_LENGTH))
            except Exception as error:  # dulwich raises ObjectFormatException
                raise PackError(f"tree {sha.hex()} does not parse: {error}") from error
            for _, mode, hex_sha in items:
                entry = bytes.fromhex(hex_sha.decode("ascii"))
                if stat.S_ISDIR(mode):
                    trees.append(entry)
                elif mode != 0o160000 and entry not in found:  # a submodule: refused later
                    blob = self.read(entry)
                    if blob[0] != BLOB_TYPE:
                        raise PackError(f"{entry.hex()} is named as a file but is not one")
                    found[entry] = blob
        return found


def _entry(checked: CheckedPack, offset: int) -> tuple[int, int | None, bytes]:
    """(type, base offset or None, inflated data) of the entry at ``offset``: a delta's
    type is that of its base, found later; its base is in the same pack or nowhere."""
    pack, end = checked.pack, checked.end_of(offset)
    if end is None:
        raise PackError(f"a delta points at {offset}, where no object starts")
    type_num, size, at, base = object_header(pack, offset, end)
    if type_num == REF_DELTA:
        base = checked.offset_of(pack[at : at + SHA_LENGTH])
        at += SHA_LENGTH
        if base is None:
            raise PackError(f"delta at {offset} has no base in the pack")
    elif type_num != OFS_DELTA and type_num not in TYPE_NAMES:
        raise PackError(f"object at {offset} has unknown type {type_num}")
    return type_num, base, _inflate_exact(pack, at, end, size, offset)


def _inflate_exact(pack: bytes, at: int, end: int, size: int, offset: int) -> bytes:
    """The zlib stream filling ``pack[at:end]`` exactly, inflated to exactly ``size`` bytes."""
    if size > MAX_INFLATE_RATIO * (end - at) + 64:
        raise PackError(f"object at {offset} claims {size} bytes, more than the pack can hold")
    decompressor = zlib.decompressobj()
    try:
        data = decompressor.decompress(memoryview(pack)[at:end], size + 1)
    except zlib.error as error:
        raise PackError(f"object at {offset} does not inflate: {error}") from error
    if len(data) != size or not decompressor.eof:
        raise PackError(f"object at {offset} does not inflate to its {size} bytes")
    if decompressor.unused_data or decompressor.unconsumed_tail:
        raise PackError(f"object at {offset} is followed by bytes no object holds")
    return data
