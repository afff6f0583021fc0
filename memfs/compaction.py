"""The pack a bucket's compaction writes: the base pack kept byte for byte, the objects
pushed since appended after it as deltas (issue 12).

A bucket lists its base pack first (the last compaction's pack, or the first push's), then
one small pack per push since. Rebuilding one pack of the whole history at every compaction
costs a walk of every commit and tree, and a pack with no deltas grows by every version of
every tree an edit touches (a 100-entry folder is ~2.8 KiB a commit, compressed). Instead:

- the commits since the base are found by walking back from the refs until the commits the
  base holds (the base holds each of its commits with all of its trees and blobs: it is
  either a whole compaction or a first push), and their objects the base lacks are listed
  as a push lists them (``walks.objects_of``);
- the new pack is the base's entries, byte for byte at the same offsets (its offset deltas
  stay right), then those objects, each stored as a delta against one of the previous
  ``DELTA_WINDOW`` objects of its type when that is smaller (git's ``pack.window``, with
  objects sorted by type and size, as git does without path hashes), chains at most
  ``DELTA_DEPTH`` long (git's ``pack.depth``);
- the index: the base's entries as its index records them, then the new ones.

The cost is that of the commits pushed since the last compaction, plus a SHA-1 and a copy
of the base's bytes. The base must hold each of its commits whole: memfs lists a pack first
only if it does. If it does not (a tree of one of its commits missing, or, in the pack built,
any object of a ref's tree, read and hashed as a clone reads it), ``append_to_base`` returns
None and the caller rebuilds the whole pack.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections import Counter
from typing import TYPE_CHECKING

from dulwich.objects import Commit
from dulwich.pack import create_delta

from memfs import walks
from memfs.history.packing import PackFiles
from memfs.packcheck import CheckedPack, PackSet, check_index
from memfs.packs import OFS_DELTA, PackError, index_v2
from memfs.packwrite import BuiltPack, entry_header

if TYPE_CHECKING:
    from memfs.history import History
    from memfs.remotes.manifest import BucketManifest
    from memfs.remotes.storage import Storage

Candidate = tuple[int, int, bytes, int, Counter[bytes]]  # type, offset, content, depth, lines
TREE = 2  # the pack type of a tree
DELTA_WINDOW = 10  # git's pack.window
DELTA_DEPTH = 50  # git's pack.depth
DELTA_MIN_SIZE = 64  # smaller objects are stored whole: a delta would save next to nothing
# dulwich's create_delta is a Myers diff: its time grows as (base + target) x the bytes that
# differ, ~5 s for two unrelated 300 KB files. A pair is tried only when its lines say the
# delta can save half and this product stays under DELTA_WORK (~0.5 s at most; a version of
# the same file with a few edits is milliseconds); git's own size cuts come first.
DELTA_WORK = 2 * 10**11
DELTA_ANY = 8 * 1024  # a pair this small is always tried (Myers: a few ms at worst)


def compacted_pack(
    history: History, storage: Storage, manifest: BucketManifest
) -> PackFiles | None:
    """One pack of everything the manifest's refs reach: its listed base pack with what was
    pushed since appended, or, if the base cannot serve as one, the whole history packed
    again (``History.pack_between``). The listed packs' objects must be here."""
    refs = list(manifest.refs.values())
    base = _base_pack(history, storage, manifest.packs[0])
    built = append_to_base(history, base, refs) if base is not None else None
    if built is None:
        return history.pack_between(refs, [])
    return PackFiles(f"pack-{built.checksum.hex()}", built.pack, built.index, built.count)


def _base_pack(history: History, storage: Storage, name: str) -> CheckedPack | None:
    """The base pack and its index, checked: the local copy, else the bucket's; None if
    neither is there and sound. The compactor does not keep the pack it built (its objects
    are here already, a second copy of the whole history would be merged again and again
    by local consolidation): the next compaction reads it from the bucket, two GETs."""
    folder = history.control_dir / "objects" / "pack"
    try:
        files = (folder / f"{name}.pack").read_bytes(), (folder / f"{name}.idx").read_bytes()
    except OSError:
        pack, index = storage.get_many([f"packs/{name}.pack", f"packs/{name}.idx"])
        if pack is None or index is None:
            return None
        files = pack[0], index[0]
    try:
        return check_index(name, *files)
    except PackError:
        return None


def append_to_base(history: History, base: CheckedPack, refs: list[str]) -> BuiltPack | None:
    """``base`` with every object reachable from ``refs`` that it lacks appended, deltified;
    None if ``base`` lacks a tree of a commit it holds (then it is not a compaction's pack,
    and the caller rebuilds the whole pack)."""
    store = history.repo.object_store

    def lookup(sha: bytes) -> Commit:
        commit = store[sha]
        assert isinstance(commit, Commit)
        return commit

    new: list[Commit] = []
    seen: set[bytes] = set()
    stack = [ref.encode() for ref in refs]
    while stack:
        sha = stack.pop()
        if sha in seen:
            continue
        seen.add(sha)
        commit = lookup(sha)
        if base.offset_of(bytes.fromhex(sha.decode())) is not None:
            if base.offset_of(bytes.fromhex(commit.tree.decode())) is None:
                return None
            continue
        new.append(commit)
        stack.extend(commit.parents)
    trees = walks.tree_lookup(store.__getitem__)
    listed = walks.objects_of(trees, lookup, walks.parents_first(new))
    added = [
        (sha, *store.get_raw(sha))
        for sha in dict.fromkeys(listed)
        if base.offset_of(bytes.fromhex(sha.decode())) is None
    ]
    built = _write(base, added)
    try:  # what a clone reads first must be there: every ref's commit, trees and blobs
        packs = PackSet([check_index(f"pack-{built.checksum.hex()}", built.pack, built.index)])
        for ref in refs:
            packs.checkout_objects(bytes.fromhex(ref))
    except PackError:
        return None
    return built


def _write(base: CheckedPack, added: list[tuple[bytes, int, bytes]]) -> BuiltPack:
    """The base's bytes and entries, then ``added`` (hex sha, type, content), deltified."""
    count = len(base.shas) + len(added)
    head = b"PACK" + struct.pack(">II", 2, count)
    chunks: list[bytes | memoryview] = [head, memoryview(base.pack)[12:-20]]
    offset = len(base.pack) - 20
    entries = list(zip(base.shas, base.offsets, base.crcs, strict=True))
    window: list[Candidate] = []  # newest last
    for hex_sha, type_num, data in sorted(added, key=lambda item: (item[1], -len(item[2]))):
        lines = _lines(data, type_num)
        entry, depth = _entry(type_num, data, offset, window, lines)
        chunks.append(entry)
        entries.append((bytes.fromhex(hex_sha.decode()), offset, zlib.crc32(entry)))
        window.append((type_num, offset, data, depth, lines))
        del window[:-DELTA_WINDOW]
        offset += len(entry)
    digest = hashlib.sha1()
    for chunk in chunks:
        digest.update(chunk)
    checksum = digest.digest()
    pack = b"".join(chunks) + checksum
    entries.sort()
    return BuiltPack(pack, index_v2(entries, checksum), checksum, count)


def _entry(
    type_num: int,
    data: bytes,
    offset: int,
    window: list[Candidate],
    lines: Counter[bytes] | None = None,
) -> tuple[bytes, int]:
    """The pack entry of one object at ``offset``: whole, or an offset delta against the
    object of ``window`` that gives the smallest one; and its delta chain's depth."""
    best: tuple[bytes, int, int] | None = None  # (delta, base offset, base depth)
    if len(data) >= DELTA_MIN_SIZE:
        lines = _lines(data, type_num) if lines is None else lines
        limit = len(data) // 2  # git's: a delta must save at least half to be worth a chain
        for base_type, base_offset, base_data, base_depth, base_lines in window:
            if base_type != type_num or base_depth >= DELTA_DEPTH:
                continue
            if not worth_trying(base_data, base_lines, data, lines):
                continue
            delta = b"".join(create_delta(base_data, data))
            if len(delta) < limit and (best is None or len(delta) < len(best[0])):
                best = (delta, base_offset, base_depth)
    if best is None:
        return entry_header(type_num, len(data)) + zlib.compress(data), 0
    delta, base_offset, base_depth = best
    head = entry_header(OFS_DELTA, len(delta)) + _ofs_distance(offset - base_offset)
    return head + zlib.compress(delta), base_depth + 1


def _lines(data: bytes, type_num: int) -> Counter[bytes]:
    """The lines of ``data``, counted (how ``worth_trying`` sees what two objects share); a
    tree's are its entries' ``mode name`` and their 20-byte shas, apart."""
    if type_num != TREE:
        return Counter(data.split(b"\n"))
    tokens: Counter[bytes] = Counter()
    pos = 0
    while pos < len(data):
        nul = data.find(b"\0", pos)
        if nul < 0:
            tokens[data[pos:]] += 1
            break
        tokens[data[pos:nul]] += 1
        tokens[data[nul + 1 : nul + 21]] += 1
        pos = nul + 21
    return tokens


def worth_trying(
    base: bytes, base_lines: Counter[bytes], data: bytes, lines: Counter[bytes]
) -> bool:
    """Whether a delta of ``data`` against ``base`` can save half of ``data`` at a bounded
    cost: any small pair (``DELTA_ANY``); else git's size cuts (try_delta: a target under
    1/32 of the base, sizes apart by half the target), then the bytes of the lines they
    share (a delta copies at most those; Myers' work grows with the rest, ``DELTA_WORK``)."""
    size, base_size = len(data), len(base)
    if size + base_size <= DELTA_ANY:
        return True
    if size < base_size // 32 or abs(size - base_size) >= size // 2:
        return False
    shared = sum((len(line) + 1) * count for line, count in (lines & base_lines).items())
    differ = max(size - shared, 0)
    if differ >= size // 2:
        return False
    return (size + base_size) * (differ + max(base_size - shared, 0)) <= DELTA_WORK


def _ofs_distance(distance: int) -> bytes:
    """git's variable-length encoding of an offset delta's distance back to its base."""
    out = [distance & 0x7F]
    distance >>= 7
    while distance:
        distance -= 1
        out.append(0x80 | (distance & 0x7F))
        distance >>= 7
    return bytes(reversed(out))
