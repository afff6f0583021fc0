"""Bounding what a pushed pack inflates to, before dulwich inflates any of it.

A git push through ``memfs serve`` carries a pack whose objects are zlib streams: a request of
~100 KB can declare and hold a blob of 100 MB of zeros (~1000:1), and dulwich inflates each
object whole in memory. So the pack is walked first, from its object headers: each object's
declared size (a delta's: the size of the object it makes) must be within the agent's size
cap (``max_file_size``: memfs keeps no larger file, and every checkout would write it), and
their sum within the request limit. Each stream is inflated in 64 KiB steps and thrown away,
only to find where the next object starts; one inflating past its declared size is refused
too. Memory stays bounded whatever the pack says; a pack this walk cannot follow (cut short,
a version it does not know) is left to dulwich, which reports it as before.
"""

from __future__ import annotations

import struct
import zlib

STEP = 64 * 1024
_OFS_DELTA, _REF_DELTA = 6, 7


def _size(n: int) -> str:
    """``10.0 MiB``, as memfs/worktree.py says a file's size."""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def pack_offset(body: bytes) -> int | None:
    """Where the pack starts in a receive-pack request (after its pkt-line sections)."""
    pos = 0
    for _ in range(3):  # the commands, then push options when the client sends them
        while True:
            try:
                length = int(body[pos : pos + 4], 16)
            except ValueError:
                return None
            if length == 0:
                pos += 4
                break
            if length < 4:
                return None
            pos += length
        if body[pos : pos + 4] == b"PACK":
            return pos
    return None


def refusal(body: bytes, object_cap: int, total_cap: int) -> str | None:
    """Why the pack of receive-pack request ``body`` is refused, or None."""
    start = pack_offset(body)
    if start is None or len(body) < start + 12:
        return None
    data = memoryview(body)
    version, count = struct.unpack(">II", data[start + 4 : start + 12])
    if version not in (2, 3):
        return None
    pos, total = start + 12, 0
    for _ in range(count):
        if pos >= len(data):
            return None
        byte = data[pos]
        kind, size, shift = (byte >> 4) & 7, byte & 15, 4
        pos += 1
        while byte & 0x80:
            if pos >= len(data):
                return None
            byte = data[pos]
            size |= (byte & 0x7F) << shift
            shift += 7
            pos += 1
        if kind == _OFS_DELTA:
            while pos < len(data) and data[pos] & 0x80:
                pos += 1
            pos += 1
        elif kind == _REF_DELTA:
            pos += 20
        total += size
        if total > total_cap:
            limit = _size(total_cap)
            return f"memfs: the pack's objects inflate to more than {limit} (the request limit)"
        if kind not in (_OFS_DELTA, _REF_DELTA) and size > object_cap:
            return _over_cap(size, object_cap)
        walked = _inflate(data, pos, size, kind in (_OFS_DELTA, _REF_DELTA))
        if walked is None:
            return None  # cut short or not zlib: dulwich says so
        if isinstance(walked, str):
            return walked
        pos, target = walked
        if target > object_cap:
            return _over_cap(target, object_cap)
    return None


def _over_cap(size: int, cap: int) -> str:
    return (
        f"memfs: the pack holds an object of {_size(size)} ({size} bytes), over the "
        f"{_size(cap)} size cap "
        "(max_file_size in agent.yaml): memfs keeps no file that large"
    )


def _inflate(data: memoryview, pos: int, size: int, delta: bool) -> tuple[int, int] | str | None:
    """Inflate the stream at ``pos`` in steps, keeping nothing: (where it ends, the size a
    delta makes or 0), a refusal if it inflates past ``size``, None if it cannot be read."""
    inflater = zlib.decompressobj()
    produced, head = 0, b""
    end = pos
    try:
        while not inflater.eof:
            chunk = inflater.unconsumed_tail
            if not chunk:
                chunk = data[end : end + STEP]
                end += len(chunk)
                if not chunk:
                    return None
            out = inflater.decompress(chunk, STEP)
            produced += len(out)
            if produced > size:
                return f"memfs: malformed pack: an object inflates past its declared {size} bytes"
            if delta and len(head) < 20:
                head += out[: 20 - len(head)]
    except zlib.error:
        return None
    if produced != size:
        return None  # dulwich reports the mismatch
    end -= len(inflater.unused_data)
    return end, _delta_target(head) if delta else 0


def _delta_target(head: bytes) -> int:
    """The size of the object a delta makes (its second varint)."""
    pos = 0
    for _ in range(2):
        value, shift = 0, 0
        while pos < len(head):
            byte = head[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
    return value
