"""An .af document: reading it, checking its shape, and Letta's first schema in and out.

Everything else in ``memfs.agentfile`` works on the document ``read_agent_file`` returns: a dict
with an ``agents`` list and a ``blocks`` list, each agent naming its blocks by id
(``block_ids``). A file of Letta's first schema (one agent, its blocks inline in
``core_memory``) is read as such a document, marked with ``FIRST_SCHEMA_KEY`` so that export
writes it back in the schema it came in. A document whose shape import or export could not work
with is refused here, once, with the reason (``AgentFileError``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from memfs.errors import MemfsError
from memfs.jsonbound import loads as bounded_loads
from memfs.util import utc_now

# A document read from Letta's first .af schema carries this key until it is written back.
FIRST_SCHEMA_KEY = "memfs_first_schema"
FIRST_SCHEMA_LIMIT = 100000  # Letta's CORE_MEMORY_BLOCK_CHAR_LIMIT, for a block made in memfs


class AgentFileError(MemfsError):
    """An .af file memfs cannot read, or cannot import or export without losing something."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} is not a usable Letta Agent File: {why}")


def read_agent_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The .af document, decoding it twice if it is a JSON string holding the JSON."""
    try:
        data: Any = bounded_loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(data, str):
            data = bounded_loads(data)
    except FileNotFoundError:
        raise AgentFileError(str(path), "no such file") from None
    except IsADirectoryError:
        raise AgentFileError(str(path), "it is a folder") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise AgentFileError(str(path), f"not valid JSON ({error})") from error
    if isinstance(data, dict) and "core_memory" in data and "agents" not in data:
        data = _from_first_schema(data, str(path))
    if not isinstance(data, dict) or not isinstance(data.get("agents"), list):
        raise AgentFileError(str(path), "it has no 'agents' list")
    if not data["agents"]:
        raise AgentFileError(str(path), "its 'agents' list is empty")
    why = shape_problem(data)
    if why:
        raise AgentFileError(str(path), why)
    return data


def _from_first_schema(data: dict[str, Any], source: str) -> dict[str, Any]:
    """A file of Letta's first agent file schema (letta/serialize_schemas/
    pydantic_agent_schema.py: one agent, its blocks inline in ``core_memory``, no ids) as a
    current document, marked so export writes it back in the first schema."""
    core_memory = data["core_memory"]
    if not isinstance(core_memory, list) or not all(isinstance(b, dict) for b in core_memory):
        raise AgentFileError(source, "its 'core_memory' is not a list of blocks")
    agent = {key: value for key, value in data.items() if key != "core_memory"}
    blocks = [{**block, "id": f"block-{i}"} for i, block in enumerate(core_memory)]
    agent["block_ids"] = [block["id"] for block in blocks]
    return {"agents": [agent], "blocks": blocks, FIRST_SCHEMA_KEY: 1}


def to_first_schema(document: dict[str, Any]) -> dict[str, Any]:
    """The exported document back in the first schema (a new block gets its required fields)."""
    (agent,) = document["agents"]
    agent = dict(agent)
    by_id = {block["id"]: block for block in document.get("blocks", [])}
    core_memory = []
    for block_id in agent.pop("block_ids", None) or []:
        block = {key: value for key, value in by_id[block_id].items() if key != "id"}
        if "metadata" in block:  # made by memfs for a new file: the first schema's names
            now = utc_now().isoformat()
            block["metadata_"] = block.pop("metadata")
            block.setdefault("limit", FIRST_SCHEMA_LIMIT)
            block.update(is_template=False, template_name=None, created_at=now, updated_at=now)
            if block.pop("read_only", False):
                block["read_only"] = True  # not in the first schema, kept when it is set
        core_memory.append(block)
    return {**agent, "core_memory": core_memory}


def shape_problem(data: dict[str, Any]) -> str:
    """What in the document's shape import and export could not work with ('' if nothing)."""
    for key in ("blocks", "groups", "mcp_servers"):
        if data.get(key) is not None and not isinstance(data[key], list):
            return f"'{key}' is not a list"
    for agent in data["agents"]:
        if not isinstance(agent, dict):
            return "an entry of 'agents' is not an object"
        ids = agent.get("block_ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            return f"agent {agent.get('name')!r} has 'block_ids' that are not a list of ids"
    ids: set[str] = set()
    for block in data.get("blocks") or []:
        if not isinstance(block, dict):
            return "an entry of 'blocks' is not an object"
        if "id" in block and not isinstance(block["id"], str):
            return f"block {block.get('label')!r} has an id that is not text"
        if "id" in block:
            if block["id"] in ids:
                return f"two blocks have the id {block['id']!r}"
            ids.add(block["id"])
    return ""
