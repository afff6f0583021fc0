"""Export of agents imported before sidecar format 2, as they exported then.

Such a sidecar is the .af document itself, each block of this agent naming its file by
``PATH_KEY``; its memory files are checked (memfs front matter) and each becomes its block
again, with the pinned Markdown files no block names added as new blocks.
"""

from __future__ import annotations

import uuid
from typing import Any

from memfs.agent import Agent
from memfs.agentfile.sidecar import PATH_KEY
from memfs.errors import SchemaError
from memfs.memory import MemoryFile, label_of


def export_legacy(agent: Agent, document: dict[str, Any]) -> dict[str, Any]:
    """An agent imported before SIDECAR_FORMAT 2: blocks as files named by ``memfs_path``."""
    agent_data = document["agents"][0]
    stubs = {b.get(PATH_KEY): b for b in document.get("blocks", []) if isinstance(b, dict)}
    memory = {
        m.path: m
        for m in agent.memory.values()
        if m.kind == "markdown" and (m.pinned or m.path in stubs)
    }
    problems = [p for m in memory.values() for p in m.problems() if p.severity == "error"]
    if problems:
        raise SchemaError(problems)
    blocks = []
    for block in document.get("blocks", []):
        path = block.get(PATH_KEY) if isinstance(block, dict) else None
        if path is None:
            blocks.append(block)  # a block of another agent in the file: untouched
        elif path in memory:
            blocks.append(_legacy_block(block, memory[path]))
    for path in sorted(set(memory) - set(stubs)):
        new = {"id": f"block-{uuid.uuid4()}", "metadata": {}, PATH_KEY: path}
        blocks.append(_legacy_block(new, memory[path]))
        agent_data.setdefault("block_ids", []).append(new["id"])
    kept_ids = {b.get("id") for b in blocks if isinstance(b, dict)}
    agent_data["block_ids"] = [i for i in agent_data.get("block_ids") or [] if i in kept_ids]
    document["blocks"] = blocks
    return document


def _legacy_block(stub: dict[str, Any], memory: MemoryFile) -> dict[str, Any]:
    block = {key: value for key, value in stub.items() if key != PATH_KEY}
    path = stub[PATH_KEY]
    block["label"] = stub.get("label") or label_of(path).removeprefix("system/")
    block["value"] = memory.value
    block["description"] = memory.metadata.get("description")
    block["limit"] = memory.metadata.get("limit")
    block["read_only"] = bool(memory.metadata.get("read_only", False))
    return block
