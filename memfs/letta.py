"""Letta Agent Files (.af) in and out.

Import: every memory block of the agent becomes a pinned memory file ``system/<label>.md``
(value -> body; description, limit, read_only -> front matter, written explicitly so they
round-trip). Everything else of the .af (agent settings, tools, messages, the blocks' other
fields) is kept verbatim in ``.letta/agent-file.json``, with the memory taken out, so there is
one copy of each memory and export gives back an equivalent .af with the memory as edited.
Export: the kept document, with one block per pinned memory file as it is now; new pinned files
become new blocks, deleted ones are dropped. Files holding a JSON string of the JSON document (as
some published .af files do) are read too.

Nothing is dropped on the way in: the import checks every block before writing anything and
refuses the file if two blocks would land in one memory file (``human`` and ``system/human``),
or a block could not be committed (over the size cap, a name memfs never commits, a name the
ignore rules leave out). After the first commit it checks that every file it wrote is in it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from memfs import frontmatter, worktree
from memfs.agent import Agent, init_agent
from memfs.errors import MemfsError, SchemaError
from memfs.ignore import IgnoreRules
from memfs.layout import Layout
from memfs.memory import MemoryFile, label_of
from memfs.schema import is_valid_name
from memfs.util import atomic_write

SIDECAR = ".letta/agent-file.json"
MEMORY_KEYS = ("value", "description", "limit", "read_only")  # the label stays in the stub
PATH_KEY = "memfs_path"


class AgentFileError(MemfsError):
    """An .af file memfs cannot read."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} is not a usable Letta Agent File: {why}")


def read_agent_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The .af document, decoding it twice if it is a JSON string holding the JSON."""
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(data, str):
            data = json.loads(data)
    except FileNotFoundError:
        raise AgentFileError(str(path), "no such file") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise AgentFileError(str(path), f"not valid JSON ({error})") from error
    if not isinstance(data, dict) or not isinstance(data.get("agents"), list):
        raise AgentFileError(str(path), "it has no 'agents' list")
    if len(data["agents"]) != 1 or not isinstance(data["agents"][0], dict):
        raise AgentFileError(str(path), f"memfs imports one agent, it holds {len(data['agents'])}")
    if not isinstance(data.get("blocks", []), list):
        raise AgentFileError(str(path), "'blocks' is not a list")
    return data


def block_path(label: str) -> str:
    """``human`` -> ``system/human.md``; a label with a folder keeps it (Letta Code's).

    The path is not checked here: ``_plan_blocks`` refuses one memfs would not commit.
    """
    return f"{label}.md" if "/" in label else f"system/{label}.md"


def import_agent_file(
    source: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None
) -> Agent:
    """Create an agent from an .af file; every memory block becomes a memory file."""
    document = read_agent_file(source)
    agent_data = document["agents"][0]
    name = _agent_name(agent_data.get("name"))
    root = Path(directory if directory is not None else name).expanduser().resolve()
    if root.exists() and any(root.iterdir()):
        raise MemfsError(f"{root} already exists and is not empty")
    created = not root.exists()
    try:
        return _import_into(root, document, name, str(source))
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise


def _import_into(root: Path, document: dict[str, Any], name: str, source: str) -> Agent:
    agent_data = document["agents"][0]
    planned = _plan_blocks(root, document, source)
    root.mkdir(parents=True, exist_ok=True)
    for block, path, data in planned:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data)
        for key in MEMORY_KEYS:
            block.pop(key, None)
        block[PATH_KEY] = path
    kept = json.dumps(document, indent=1, ensure_ascii=False).encode()
    if len(kept) > worktree.DEFAULT_MAX_FILE_SIZE:
        raise AgentFileError(
            source,
            f"its settings and messages take {len(kept)} bytes, over the "
            f"{worktree.DEFAULT_MAX_FILE_SIZE}-byte size cap, so {SIDECAR} could not be committed",
        )
    sidecar = root / SIDECAR
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(sidecar, kept)
    description = agent_data.get("description") or ""
    agent = init_agent(
        root, name=name, description=str(description), templates=False, layout=Layout.NATIVE
    )
    committed = agent.history.tree_of(agent.history.head())
    missing = [path for _, path, _ in planned if path not in committed]
    missing += [] if SIDECAR in committed else [SIDECAR]
    if missing:
        agent.close()
        raise AgentFileError(source, f"memfs could not commit {', '.join(missing)}")
    return agent


def _plan_blocks(
    root: Path, document: dict[str, Any], source: str
) -> list[tuple[dict[str, Any], str, bytes]]:
    """(block, path, file content) of every memory block, refusing what would lose one.

    Runs before anything is written: two blocks bound for one file, or a block that the
    first commit would leave out, make the whole import fail with the reason.
    """
    agent_data = document["agents"][0]
    block_ids = set(agent_data.get("block_ids") or [])
    rules = IgnoreRules(root)
    planned: list[tuple[dict[str, Any], str, bytes]] = []
    labels_by_path: dict[str, str] = {}
    for block in document.get("blocks", []):
        if not isinstance(block, dict) or block.get("id") not in block_ids:
            continue
        label = str(block.get("label", ""))
        path = block_path(label)
        refused = worktree.name_refusal(path) or (
            "memfs leaves such files out (see .memfsignore)" if rules.is_ignored(path) else ""
        )
        if refused:
            raise AgentFileError(
                source, f"block {label!r} cannot be the memory file {path}: {refused}"
            )
        same = labels_by_path.get(path.casefold())
        if same is not None:
            raise AgentFileError(
                source,
                f"blocks {same!r} and {label!r} would both be the memory file {path}: "
                "rename one in the .af file",
            )
        labels_by_path[path.casefold()] = label
        data = _render_block(block).encode()
        folded = path.casefold()
        for other_path, other in labels_by_path.items():
            if other_path.startswith(folded + "/") or folded.startswith(other_path + "/"):
                raise AgentFileError(
                    source,
                    f"blocks {other!r} and {label!r} would be a file and a folder of the same "
                    "name: rename one in the .af file",
                )
        if len(data) > worktree.DEFAULT_MAX_FILE_SIZE:
            raise AgentFileError(
                source,
                f"block {label!r} is {len(data)} bytes, over the "
                f"{worktree.DEFAULT_MAX_FILE_SIZE}-byte size cap for a memory file",
            )
        planned.append((block, path, data))
    return planned


def export_agent_file(agent: Agent, target: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the agent as an .af file: the kept document with the memory as it is now."""
    document = _kept_document(agent)
    agent_data = document["agents"][0]
    stubs = {b.get(PATH_KEY): b for b in document.get("blocks", []) if isinstance(b, dict)}
    # Pinned files, and files a block was imported into (a label with a folder, such as
    # "projects/garden", lives outside system/): each comes back as its block.
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
            blocks.append(_block_from(block, memory[path]))
    for path in sorted(set(memory) - set(stubs)):
        new = {"id": f"block-{uuid.uuid4()}", "metadata": {}, PATH_KEY: path}
        blocks.append(_block_from(new, memory[path]))
        agent_data.setdefault("block_ids", []).append(new["id"])
    kept_ids = {b.get("id") for b in blocks if isinstance(b, dict)}
    agent_data["block_ids"] = [i for i in agent_data.get("block_ids") or [] if i in kept_ids]
    document["blocks"] = blocks
    atomic_write(Path(target), json.dumps(document, indent=2, ensure_ascii=False).encode())
    return document


def _kept_document(agent: Agent) -> dict[str, Any]:
    try:
        document = json.loads((agent.root / SIDECAR).read_text(encoding="utf-8"))
    except FileNotFoundError:
        manifest = agent.manifest
        return {
            "agents": [
                {"name": manifest.name, "description": manifest.description, "block_ids": []}
            ],
            "blocks": [],
        }
    except ValueError as error:
        raise AgentFileError(SIDECAR, f"not valid JSON ({error})") from error
    if not isinstance(document, dict) or not isinstance(document.get("agents"), list):
        raise AgentFileError(SIDECAR, "it has no 'agents' list")
    return document


def _block_from(stub: dict[str, Any], memory: MemoryFile) -> dict[str, Any]:
    block = {key: value for key, value in stub.items() if key != PATH_KEY}
    path = stub[PATH_KEY]
    block["label"] = stub.get("label") or label_of(path).removeprefix("system/")
    block["value"] = memory.value
    block["description"] = memory.metadata.get("description")
    block["limit"] = memory.metadata.get("limit")
    block["read_only"] = bool(memory.metadata.get("read_only", False))
    return block


def _render_block(block: dict[str, Any]) -> str:
    metadata: dict[str, Any] = {}
    if block.get("description") is not None:
        metadata["description"] = block["description"]
    if isinstance(block.get("limit"), int) and block["limit"] > 0:
        metadata["limit"] = block["limit"]
    metadata["read_only"] = bool(block.get("read_only", False))
    value = block.get("value")
    return frontmatter.render(metadata, value if isinstance(value, str) else "")


def _agent_name(name: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name or "agent")).strip("-.") or "agent"
    text = text[:100]
    return text if is_valid_name(text) else "agent"
