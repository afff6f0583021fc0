"""Letta memory blocks over an agent's memory files: what the REST API reads and writes.

A block is a memory file (Letta's path_mapping: label = path without ``.md``, a skill's
``skills/<name>/SKILL.md`` is ``skills/<name>``; memfs-native agents also have ``*.yaml``
blocks), read as Letta reads it: value = the body after the front matter, exactly; description,
``read_only`` and ``limit`` from the front matter. Blocks are read from the last commit, as
Letta's server and Letta Code read them, never from whatever a work tree holds.

Block ids are Letta's own synthetic ids for git-backed memory (letta-ai/letta
``memfs_client_base.py``): ``block-`` + the UUID spelled by md5(``"<agent id>:<label>"``), so
every server, and Letta's own, gives one block the same id with no state kept.

An update (``apply_update``) is the change a PATCH commits: it is refused before anything is
written when the block is read-only (403, :class:`BlockReadOnlyError`), when Letta's rules for
the repo (memfs.lettahook: read_only, and its pre-commit hook when installed) would refuse the
commit (400, :class:`BlockRefusedError`), or when the file would be too large for memfs to
version (400). With a base (the ETag a client read, ``If-Match``) the new value is merged
line by line with whatever changed since; edits that touch the same lines raise
:class:`BlockChangedError` (409): a whole-value replace never silently drops another's edit.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from memfs import lettahook
from memfs.errors import MemfsError, UnsafePathError
from memfs.layout import Layout, is_memory_path, label_of
from memfs.memory import MemoryFile
from memfs.trees import MODE_EXECUTABLE, MODE_FILE, TreeEntry, blob_sha
from memfs.worktree import DEFAULT_MAX_FILE_SIZE, check_path

if TYPE_CHECKING:
    from memfs.agent import Agent

LETTA_DEFAULT_LIMIT = 100_000  # letta.constants.CORE_MEMORY_BLOCK_CHAR_LIMIT
STORED_FIELDS = ("value", "description", "limit", "read_only")
# Letta's BlockUpdate fields that a memory file has no place for: accepted when null (or the
# default), refused otherwise, rather than dropped without a word.
UNSTORED_FIELDS = (
    "label",
    "metadata",
    "tags",
    "project_id",
    "template_name",
    "is_template",
    "template_id",
    "base_template_id",
    "deployment_id",
    "entity_id",
    "preserve_on_migration",
    "hidden",
)
_DEFAULTS: dict[str, Any] = {"is_template": False, "preserve_on_migration": False}


class BlockNotFoundError(MemfsError):
    """No block with that label or id (HTTP 404)."""


class BlockReadOnlyError(MemfsError):
    """The block is read-only, or the update would set or lift read_only (HTTP 403)."""


class BlockRefusedError(MemfsError):
    """Letta's rules for this repo, or memfs's size cap, refuse the update (HTTP 400)."""


class BlockUnreadableError(MemfsError):
    """The memory file cannot be read as a block (not UTF-8, broken front matter) (HTTP 422)."""


class BlockChangedError(MemfsError):
    """The block changed since the client's ``If-Match`` and the edits overlap (HTTP 409)."""


class BlockUpdate(BaseModel):
    """Letta's ``BlockUpdate`` body, strictly typed; unknown keys are an error (a typo must
    not look like a saved edit). Null means "not given", as in Letta (exclude_none)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    value: str | None = None
    description: str | None = None
    limit: int | None = Field(default=None, ge=1)
    read_only: bool | None = None
    label: str | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    project_id: str | None = None
    template_name: str | None = None
    is_template: bool | None = None
    template_id: str | None = None
    base_template_id: str | None = None
    deployment_id: str | None = None
    entity_id: str | None = None
    preserve_on_migration: bool | None = None
    hidden: bool | None = None

    def unstored(self, label: str) -> list[str]:
        """The fields given a value memfs cannot store for block ``label``."""
        found = []
        for name in UNSTORED_FIELDS:
            value = getattr(self, name)
            if value is None or value == _DEFAULTS.get(name) or value in ({}, []):
                continue
            if name == "label" and value == label:
                continue
            found.append(name)
        return found


def block_id(agent_id: str, label: str) -> str:
    """Letta's synthetic id of block ``label`` of agent ``agent_id``."""
    digest = hashlib.md5(f"{agent_id}:{label}".encode(), usedforsecurity=False).hexdigest()
    return f"block-{uuid.UUID(digest)}"


@dataclass(frozen=True)
class StoredBlock:
    """A block as the last commit holds it."""

    label: str
    path: str
    entry: TreeEntry

    @property
    def etag(self) -> str:
        """The blob's sha: changes exactly when the file does (a strong ETag)."""
        return self.entry.sha


def committed_blocks(agent: Agent) -> dict[str, StoredBlock]:
    """Every block at HEAD, by label, in path order (the first path wins a shared label)."""
    history = agent.history
    tree = history.tree_of(history.head())
    layout = agent.layout
    found: dict[str, StoredBlock] = {}
    for path in sorted(tree):
        entry = tree[path]
        if entry.mode not in (MODE_FILE, MODE_EXECUTABLE) or not is_memory_path(path, layout):
            continue
        label = _label(path, layout)
        found.setdefault(label, StoredBlock(label, path, entry))
    return found


def _label(path: str, layout: Layout) -> str:
    """``label_of`` without a PurePosixPath per file (a tenth of the time at 10,000 files)."""
    name = path.rsplit("/", 1)[-1]
    if name.startswith(".") or (layout.is_letta and name == "SKILL.md"):
        return label_of(path, layout)
    return path.rsplit(".", 1)[0]


def find_block(agent: Agent, label: str) -> StoredBlock:
    """The block ``label`` at HEAD; BlockNotFoundError if there is none.

    Only the paths that could hold ``label`` are looked up (not the whole tree), and only a
    path the commit lists matches, so no label reaches outside the agent."""
    history = agent.history
    head = history.head()
    layout = agent.layout
    for path in _candidates(label, layout):
        try:
            check_path(path)
        except UnsafePathError:
            break
        entry = history.entries_at(head, path).get(path)
        if (
            entry is not None
            and entry.mode in (MODE_FILE, MODE_EXECUTABLE)
            and is_memory_path(path, layout)
            and label_of(path, layout) == label
        ):
            return StoredBlock(label, path, entry)
    raise BlockNotFoundError(f"No block with label '{label}' found for agent '{agent.name}'")


def _candidates(label: str, layout: Layout) -> list[str]:
    """The paths a block ``label`` may live at, in the order ``committed_blocks`` prefers."""
    if layout.is_letta:
        skill = [f"{label}/SKILL.md"] if label.startswith("skills/") else []
        return [*skill, f"{label}.md"]
    return sorted(f"{label}{suffix}" for suffix in (".md", ".yaml", ".yml"))


def load(agent: Agent, block: StoredBlock) -> MemoryFile:
    """The committed file of ``block``, parsed as its layout reads it."""
    return MemoryFile(agent.root, block.path, agent.history.blob(block.entry.sha), agent.layout)


def to_json(agent_id: str, block: StoredBlock, memory_file: MemoryFile) -> dict[str, Any]:
    """Letta's ``BlockResponse`` for a block; BlockUnreadableError if memfs cannot read it."""
    if memory_file.unreadable:
        problems = memory_file.problems()
        detail = problems[0].render() if problems else block.path
        raise BlockUnreadableError(f"{detail}: this file cannot be read as a block")
    limit = memory_file.limit
    return {
        "id": block_id(agent_id, block.label),
        "label": block.label,
        "value": memory_file.value,
        "description": memory_file.description,
        "limit": limit if limit is not None else LETTA_DEFAULT_LIMIT,
        "read_only": memory_file.read_only,
        "metadata": {},
        "tags": [],
        "is_template": False,
        "preserve_on_migration": False,
        "hidden": None,
        "project_id": None,
        "template_name": None,
        "template_id": None,
        "base_template_id": None,
        "deployment_id": None,
        "entity_id": None,
        "created_by_id": None,
        "last_updated_by_id": None,
    }


def readable_blocks(agent: Agent, agent_id: str) -> list[dict[str, Any]]:
    """Every block memfs can read, as Letta's JSON; a file it cannot read is left out (it never
    fails the whole agent: ``memfs check`` names it)."""
    out = []
    for block in committed_blocks(agent).values():
        try:
            out.append(to_json(agent_id, block, load(agent, block)))
        except BlockUnreadableError:
            continue
    return out


def apply_update(
    agent: Agent, label: str, update: BlockUpdate, if_match: str | None = None
) -> tuple[StoredBlock, MemoryFile]:
    """Write ``update`` to block ``label`` in ``agent``'s work tree (not committed); the block
    as written (its entry is the new file's) and the file.

    Refuses before writing: see the module docstring. ``if_match`` is the blob sha the client
    read; when HEAD has moved on since, a new ``value`` is merged with the changes made since.
    """
    block = find_block(agent, label)
    if if_match is not None and if_match not in ("*", block.etag):
        base_data = _blob_or_none(agent, if_match)
        if base_data is None:
            raise BlockChangedError(f"block '{label}' changed since the version you read")
    else:
        base_data = None
    memory_file = load(agent, block)
    if memory_file.unreadable:
        raise BlockUnreadableError(f"{block.path}: this file cannot be read as a block")
    unstored = update.unstored(label)
    if unstored:
        raise BlockRefusedError(
            f"memfs does not store {', '.join(repr(n) for n in unstored)} for a block "
            f"(a memory file keeps {', '.join(STORED_FIELDS)})"
        )
    if memory_file.read_only:
        raise BlockReadOnlyError(f"block '{label}' is read-only")
    if update.read_only is not None and update.read_only != memory_file.read_only:
        if agent.layout.is_letta:
            raise BlockReadOnlyError(f"block '{label}': read_only cannot be set or lifted")
        memory_file.read_only = update.read_only
    if update.value is not None:
        memory_file.value = _merged_value(agent, label, base_data, memory_file, update.value)
    if update.description is not None:
        memory_file.description = update.description
    if update.limit is not None and update.limit != memory_file.limit:
        if agent.layout.is_letta:  # Letta's git memory writes no limit (deprecated in Letta)
            raise BlockRefusedError(
                f"block '{label}': a Letta Code repo keeps no 'limit' in its files"
            )
        memory_file.limit = update.limit
    data = memory_file.render()
    _check_size(agent, block.path, data)
    _check_letta_rules(agent, block, data)
    memory_file.save()
    written = StoredBlock(label, block.path, TreeEntry(block.entry.mode, blob_sha(data)))
    return written, memory_file


def _blob_or_none(agent: Agent, sha: str) -> bytes | None:
    if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
        return None
    try:
        return agent.history.blob(sha)
    except (KeyError, MemfsError, ValueError):
        return None


def _merged_value(
    agent: Agent, label: str, base_data: bytes | None, current: MemoryFile, value: str
) -> str:
    """``value``, or with a base the client read, ``value`` merged with what changed since."""
    if base_data is None:
        return value
    base = MemoryFile(agent.root, current.path, base_data, agent.layout)
    if base.unreadable:
        raise BlockChangedError(f"block '{label}' changed since the version you read")
    merged = merge_text(base.value, value, current.value)
    if merged is None:
        raise BlockChangedError(
            f"block '{label}' changed since the version you read, on the lines you edited"
        )
    return merged


def merge_text(base: str, ours: str, theirs: str) -> str | None:
    """A clean line merge of two edits of ``base``, or None when they touch the same lines."""
    from merge3 import Merge3

    merged: list[str] = []
    groups = Merge3(
        base.splitlines(True), ours.splitlines(True), theirs.splitlines(True)
    ).merge_groups()
    for group in groups:
        if group[0] != "conflict":
            merged.extend(group[1])
            continue
        _, base_lines, our_lines, their_lines = group
        if our_lines == their_lines or their_lines == base_lines:
            merged.extend(our_lines)
        elif our_lines == base_lines:
            merged.extend(their_lines)
        else:
            return None
    return "".join(merged)


def _check_size(agent: Agent, path: str, data: bytes) -> None:
    cap = agent.manifest_setting("max_file_size") or DEFAULT_MAX_FILE_SIZE
    if len(data) > cap:
        raise BlockRefusedError(
            f"{path} would be {len(data)} bytes, over the {cap} bytes memfs versions a file"
        )


def _check_letta_rules(agent: Agent, block: StoredBlock, data: bytes) -> None:
    """What the commit would hold back under Letta's rules, refused up front instead."""
    history = agent.history
    rules = agent.letta_rules()
    if not rules.active:
        return
    verdict = lettahook.review(
        rules,
        history.head_tree(history.head()),
        {block.path: (block.entry.mode, data)},
        history.blob,
    )
    refusals = verdict.errors or verdict.refusals
    if not refusals:
        return
    text = "; ".join(refusal.render() for refusal in refusals)
    if any("read_only" in refusal.message for refusal in refusals):
        raise BlockReadOnlyError(text)
    raise BlockRefusedError(text)
