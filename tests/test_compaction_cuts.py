"""Which pairs a compaction tries to deltify (memfs.compaction.worth_trying).

Found from outside (review11 F09): every added object was diffed (dulwich's Myers
create_delta, superlinear on unrelated data) against the 10 before it whatever their sizes
and contents: eight unrelated 300 KB notes took a compaction ~3 minutes, in a push or in
``memfs serve`` holding the GIL. Now a pair is tried only if it is small, or its sizes and
shared lines say a delta can save half at a bounded cost; versions of a file still are.
Its figures are in the session's notes (CPU of ``memfs gc --remote``), not in a timed test.
"""

from __future__ import annotations

import base64
import os
import random

from memfs.compaction import TREE, _entry, _lines, worth_trying
from memfs.packs import OFS_DELTA

BLOB = 3


def _note(size: int) -> bytes:
    raw = base64.b64encode(os.urandom(size * 3 // 4))
    return b"\n".join(raw[i : i + 100] for i in range(0, len(raw), 100))


def _try(base: bytes, data: bytes, kind: int = BLOB) -> bool:
    return worth_trying(base, _lines(base, kind), data, _lines(data, kind))


def test_unrelated_big_notes_are_not_diffed_and_versions_are() -> None:
    first, second = _note(300_000), _note(300_000)
    assert not _try(first, second)
    lines = first.split(b"\n")
    for i in random.Random(1).sample(range(len(lines)), 20):
        lines[i] = b"edited " + lines[i][:40]
    edited = b"\n".join(lines)
    assert _try(first, edited)
    entry, depth = _entry(BLOB, edited, 10_000, [(BLOB, 12, first, 0, _lines(first, BLOB))])
    assert (entry[0] >> 4) & 7 == OFS_DELTA and depth == 1 and len(entry) < 20_000
    assert not _try(first, first[:5000] + _note(295_000))  # mostly new: no half to save
    assert not _try(_note(300_000), _note(5_000))  # git's cut: a target under 1/32 of the base


def test_small_pairs_and_trees_are_always_tried() -> None:
    assert _try(b"a" * 3000, b"b" * 3000)
    entries = [b"100644 note-%02d.md\0" % i + os.urandom(20) for i in range(400)]
    tree = b"".join(entries)
    changed = list(entries)
    changed[7] = changed[7][:-20] + os.urandom(20)  # one file's new version
    assert len(tree) > 8 * 1024 and _try(tree, b"".join(changed), TREE)
