"""The evidence a merge leaves in a work tree: conflict copies' names and git-style markers.

``memfs.merge`` writes them; ``memfs.conflicts`` and ``memfs.context`` find them (a harness's
``memfs context`` on every turn) without importing the merge itself.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

CONFLICT_COPY = re.compile(r"\.conflict-[0-9a-f]{7,40}(?:-\d+)?(?=\.[^./]*$|$)")
START_MARKER = b"<<<<<<< "
MID_MARKER = b"=======\n"
END_MARKER = b">>>>>>> "
LETTA_CONFLICTS = ".memfs-conflicts"


def is_conflict_copy(path: str) -> bool:
    # the name by string, not PurePosixPath: called for every file of a 10,000-file status
    return CONFLICT_COPY.search(path.rpartition("/")[2]) is not None


def has_markers(content: bytes) -> bool:
    """Whether a file holds unresolved conflict markers."""
    lines = content.splitlines(True)
    starts = any(line.startswith(START_MARKER) for line in lines)
    return starts and MID_MARKER in lines and any(line.startswith(END_MARKER) for line in lines)


def resolve_markers(content: bytes, keep: Literal["ours", "theirs", "both"]) -> bytes:
    """Remove conflict markers, keeping the upper side, the lower side, or both in order."""
    out: list[bytes] = []
    state = "outside"
    for line in content.splitlines(True):
        if state == "outside" and line.startswith(START_MARKER):
            state = "upper"
        elif state == "upper" and line == MID_MARKER:
            state = "lower"
        elif state == "lower" and line.startswith(END_MARKER):
            state = "outside"
        elif state == "outside" or keep == "both" or (state == "upper") == (keep == "ours"):
            out.append(line)
    return b"".join(out)
