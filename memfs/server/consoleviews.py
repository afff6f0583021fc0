"""What the web console shows and does, as data: each page's dict is also its JSON twin.

The console never does work the library does not expose: the memory overview is
``memfs.context.build_context`` plus ``Agent.check`` (what ``memfs context`` and ``memfs check``
show), a block's history is ``Agent.log`` with each commit's diff of that file, a restore is
``Agent.restore``. A save is guarded by the version of the file the editor was opened on
(``base``, a git blob sha): an edit made meanwhile elsewhere is merged line by line when the two
touch different lines, and is otherwise a ``WriteConflictError`` (HTTP 409) with nothing written,
never a silent overwrite.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import PurePosixPath
from typing import Any

from memfs.agent import Agent
from memfs.errors import MemfsError, PathNotFoundError
from memfs.layout import V2_CONFIG, Layout, in_context, is_memory_path
from memfs.memory import MemoryFile
from memfs.pathcheck import read_inside
from memfs.server.agents import WriteConflictError
from memfs.trees import blob_sha, compare_trees, write_diff
from memfs.util import atomic_write

REGULAR_MODES = (0o100644, 0o100755)
SHA = re.compile(r"[0-9a-f]{40}")
HISTORY_LIMIT = 50
LAYOUT_NAMES = {
    Layout.NATIVE: "memfs",
    Layout.LETTA_V1: "Letta MemFS v1",
    Layout.LETTA_V2: "Letta MemFS v2",
}


class ReadOnlyBlockError(MemfsError):
    """The block is read-only (Letta's ``read_only``): the console does not change it."""


def checked_path(path: str) -> str:
    """``path`` as a clean relative posix path, or PathNotFoundError: never ``..``, never
    absolute, never a backslash or a NUL (the agent's tree decides the rest)."""
    parts = path.split("/")
    if (
        not path
        or "\\" in path
        or "\0" in path
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or parts[0] == ".git"
    ):
        raise PathNotFoundError(path, "this agent")
    return path


def _memory_path(agent: Agent, path: str) -> str:
    """``path`` if it is a regular memory file of the agent's last commit."""
    path = checked_path(path)
    entry = agent.history.tree_of(agent.history.head()).get(path)
    if entry is None or entry.mode not in REGULAR_MODES or not is_memory_path(path, agent.layout):
        raise PathNotFoundError(path, "this agent's memory")
    return path


def limits(agent: Agent) -> tuple[int | None, int | None]:
    """Characters allowed a file and all pinned files together, as Letta Code checks them
    (``.memfs.config.json`` or its defaults in a v2 repo); (None, None) where nothing limits."""
    from memfs.lettaconstraints import DEFAULT_CONFIG, parse_config

    if not agent.layout.is_letta:
        return None, None
    config: dict[str, Any] | None = None
    with contextlib.suppress(OSError, UnicodeDecodeError):
        config, _ = parse_config((agent.root / V2_CONFIG).read_text(encoding="utf-8"))
    if config is None:
        if agent.layout is not Layout.LETTA_V2:
            return None, None
        config = DEFAULT_CONFIG
    core = config.get("maxCoreMemoryCharacters") if agent.layout is Layout.LETTA_V2 else None
    return config.get("maxFileCharacters"), core


def _size(
    raw: bytes, value: str, limit: int | None, file_limit: int | None
) -> tuple[int, int | None]:
    """Characters and the limit they are held against: the whole file against Letta's limits
    (as its pre-commit hook counts them), else the value against the block's own ``limit``
    (advisory)."""
    if file_limit is not None:
        return len(raw.decode("utf-8", "replace")), limit or file_limit
    return len(value), limit


def overview(agent: Agent, served: dict[str, Any]) -> dict[str, Any]:
    """An agent's memory as Letta shows it: pinned blocks first, the other files as a tree,
    open conflicts and validation problems (``memfs check``)."""
    from memfs.context import build_context

    context = build_context(agent)
    file_limit, core_limit = limits(agent)
    pinned = []
    for block in context.blocks:
        try:
            raw = read_inside(agent.root, block.path)
        except (OSError, MemfsError):
            raw = block.value.encode("utf-8")
        chars, limit = _size(raw, block.value, block.limit, file_limit)
        pinned.append(block._asdict() | {"chars": chars, "limit": limit})
    return {
        "agent": served,
        "layout": LAYOUT_NAMES[agent.layout],
        "head": agent.history.head(),
        "core": {"chars": sum(b["chars"] for b in pinned), "limit": core_limit},
        "pinned": pinned,
        "files": [entry._asdict() for entry in context.files],
        "conflicts": [c.to_dict() for c in context.conflicts],
        "problems": [p.to_dict() for p in agent.check()],
    }


def block(agent: Agent, path: str) -> dict[str, Any]:
    """One memory file as the editor opens it: its value, description, size and ``base``."""
    path = _memory_path(agent, path)
    memory_file = MemoryFile.load(agent.root, path, agent.layout)
    file_limit, _ = limits(agent)
    chars, limit = _size(memory_file.raw, memory_file.value, memory_file.limit, file_limit)
    readable = not memory_file.unreadable
    return {
        "path": path,
        "label": memory_file.label,
        "description": memory_file.description,
        "value": memory_file.value if readable else memory_file.raw.decode("utf-8", "replace"),
        "raw": not readable,  # the editor shows the whole file: memfs cannot split it
        "pinned": in_context(path, agent.layout),
        "read_only": memory_file.read_only,
        "chars": chars,
        "limit": limit,
        "base": blob_sha(memory_file.raw),
        "problems": [p.to_dict() for p in memory_file.problems()],
    }


def save_block(
    agent: Agent, path: str, base: str, value: str, description: str | None
) -> dict[str, Any]:
    """Write the editor's ``value`` (and ``description``) into the file it was opened on.

    If the file changed since ``base``, the two edits are merged line by line; edits of the
    same lines raise WriteConflictError and nothing is written. Returns what was written."""
    path = _memory_path(agent, path)
    current = MemoryFile.load(agent.root, path, agent.layout)
    if current.read_only:
        raise ReadOnlyBlockError(f"{path} is read-only")
    ours = _edited(agent, path, base, current, value, description)
    data = ours if blob_sha(current.raw) == base else _merged(agent, path, base, current.raw, ours)
    target = agent.root / path
    if not target.resolve().is_relative_to(agent.root.resolve()):
        raise PathNotFoundError(path, "this agent's memory")
    if data != current.raw:
        atomic_write(target, data)
    return {"path": path, "base": blob_sha(data), "changed": data != current.raw}


def _edited(
    agent: Agent, path: str, base: str, current: MemoryFile, value: str, description: str | None
) -> bytes:
    """The file's bytes with the editor's edit applied to the version it was opened on."""
    original = current
    if blob_sha(current.raw) != base:
        original = MemoryFile(agent.root, path, _blob(agent, path, base), agent.layout)
    if original.unreadable:  # the editor held the whole file
        return value.encode("utf-8")
    if b"\r\n" in original.raw and "\r" not in value:  # the form sent LF: keep the file's CRLF
        value = value.replace("\n", "\r\n")
    edited = MemoryFile(agent.root, path, original.raw, agent.layout)
    edited.value = value
    if description is not None and description != (edited.description or ""):
        edited.description = description
    return edited.render()


def _blob(agent: Agent, path: str, sha: str) -> bytes:
    try:
        if not SHA.fullmatch(sha):
            raise ValueError(sha)
        return agent.history.blob(sha)
    except (KeyError, ValueError, MemfsError):
        raise WriteConflictError(
            f"{path} changed since it was opened, and the version it was opened on is unknown"
        ) from None


def _merged(agent: Agent, path: str, base: str, theirs: bytes, ours: bytes) -> bytes:
    """A clean line merge of both edits of ``path`` since ``base``, else WriteConflictError."""
    from merge3 import Merge3

    merged: list[bytes] = []
    original = _blob(agent, path, base)
    groups = Merge3(original.splitlines(True), theirs.splitlines(True), ours.splitlines(True))
    for group in groups.merge_groups():
        if group[0] != "conflict":
            merged.extend(group[1])
        elif group[2] == group[3]:
            merged.extend(group[2])
        else:
            raise WriteConflictError(
                f"{path} was changed meanwhile on the same lines: nothing was saved"
            )
    return b"".join(merged)


def history(agent: Agent, path: str, limit: int = HISTORY_LIMIT) -> dict[str, Any]:
    """The commits that changed ``path``, newest first, each with its diff of that file."""
    path = checked_path(path)
    commits = []
    for info in agent.log(path, limit):
        parent = info.parents[0] if info.parents else None
        old, new = agent.history.tree_of(parent), agent.history.tree_of(info.sha)
        out = io.BytesIO()
        for change in compare_trees(old, new, (path,)):
            before = agent.history.blob(change.old.sha) if change.old else b""
            after = agent.history.blob(change.new.sha) if change.new else b""
            write_diff(out, change, before, after)
        commits.append(
            info.to_dict()
            | {
                "summary": info.summary,
                "host": info.host,
                "exists": path in new,
                "diff": out.getvalue().decode("utf-8", "replace"),
            }
        )
    return {"path": path, "label": str(PurePosixPath(path).with_suffix("")), "commits": commits}


def restore(agent: Agent, path: str, rev: str) -> dict[str, Any]:
    """Put ``path`` back in the work tree as it was at ``rev``; the caller's commit records it
    (``AgentCache.write``): a new commit, history is never rewritten."""
    path = checked_path(path)
    sha = agent.history.resolve(rev)
    entry = agent.history.tree_of(sha).get(path)
    if entry is None or entry.mode not in REGULAR_MODES:
        raise PathNotFoundError(path, f"revision {rev}")
    target = agent.root / path
    if not target.parent.resolve().is_relative_to(agent.root.resolve()):
        raise PathNotFoundError(path, "this agent's memory")
    target.parent.mkdir(parents=True, exist_ok=True)  # the file may be gone since
    atomic_write(target, agent.history.blob(entry.sha))
    return {"path": path, "rev": sha}


def conflict(agent: Agent, path: str, copy_path: str | None = None) -> dict[str, Any]:
    """An open conflict at ``path``: the version there and the other one (a conflict copy), or
    the file with its conflict markers."""
    from memfs.conflicts import find

    path = checked_path(path)
    matches = [c for c in find(agent) if c.path == path]
    chosen = next((c for c in matches if copy_path and c.copy_path == copy_path), None)
    found = chosen or (matches[0] if matches else None)
    if found is None:
        raise PathNotFoundError(path, "this agent's open conflicts")
    theirs = None
    if found.copy_path is not None:
        theirs = read_inside(agent.root, found.copy_path).decode("utf-8", "replace")
    return found.to_dict() | {
        "ours": read_inside(agent.root, found.path).decode("utf-8", "replace"),
        "theirs": theirs,
    }


def settle_conflict(agent: Agent, path: str, copy_path: str | None, keep: str) -> dict[str, Any]:
    """Settle a conflict in the work tree (``memfs.conflicts.settle``): the caller commits."""
    from memfs.conflicts import settle

    if keep not in ("ours", "theirs", "both"):
        raise MemfsError(f"keep must be ours, theirs or both, not {keep!r}")
    target = checked_path(copy_path) if copy_path else checked_path(path)
    settled = settle(agent, target, keep)  # type: ignore[arg-type]
    return settled.to_dict() | {"kept": keep}


def as_json(data: Any) -> bytes:
    """A page's data as its JSON twin."""
    return json.dumps(data, default=str, ensure_ascii=False, indent=1).encode("utf-8")
