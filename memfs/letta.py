"""Letta Agent Files (.af) in and out.

Import: every memory block of every agent in the file becomes the file Letta's server would give
it in a MemFS agent, ``system/<label>.md`` (Letta Code's ``memoryBlockPath``: nested labels nest
folders, a leading ``/`` is dropped, non-ASCII is kept), written as Letta writes a block
(``description`` always, ``read_only: true`` only when true, never ``limit``; see
``memfs.lettafm.render_v1``). A new import is a Letta Code v1 memory repo (no agent.yaml: Letta
Code can use the folder as it is), or a memfs-native agent when asked.

What a file cannot carry exactly through Letta's line reader (the label as written, ``limit``,
``metadata``, a description with a newline or one Letta reads differently) and everything else
of the .af (agent settings, tools, messages, groups, the blocks' other fields) is kept in the
sidecar ``.letta/agent-file.json`` (a dot folder: Letta Code never reads it). Export gives back
the original document with each block's value from its file; a field the file carries is taken
from the file only when it changed since the import, so an untouched agent comes back equal.

A file holding several agents (a main agent and its sleeptime agent) imports each into its own
folder; a block two agents share is a file in each, and is one block again when they are
exported together (``export_agent_files``). Secrets (agent ``secrets``,
``tool_exec_environment_variables``, MCP server tokens, headers and env) are never committed:
their values are left out with a warning naming each key, and export says which are missing.

Nothing is dropped silently: the import checks every block of every agent before writing
anything, and refuses the file if two blocks would be one memory file (``human`` and
``system/human``) or one could not be committed; after the commit it checks that every file it
wrote is in it. Agents imported before this format (a sidecar without ``memfs_agent_file``)
export as they did.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memfs import frontmatter, lettafm, worktree
from memfs.agent import Agent
from memfs.errors import MemfsError, SchemaError
from memfs.history import History
from memfs.ignore import IgnoreRules
from memfs.layout import Layout
from memfs.memory import MemoryFile, label_of
from memfs.opening import init_agent, record_letta_identity
from memfs.schema import is_valid_name
from memfs.util import atomic_write, utc_now

SIDECAR = ".letta/agent-file.json"
FORMAT_KEY = "memfs_agent_file"
SIDECAR_FORMAT = 2
PATH_KEY = "memfs_path"  # the file of a block, in sidecars written before SIDECAR_FORMAT 2
# A document read from Letta's first .af schema carries this key until it is written back.
FIRST_SCHEMA_KEY = "memfs_first_schema"
FIRST_SCHEMA_LIMIT = 100000  # Letta's CORE_MEMORY_BLOCK_CHAR_LIMIT, for a block made in memfs
# The fields a memory file carries; the sidecar has the original, used while the file's own
# value is still the one the import wrote.
CARRIED_FIELDS = ("description", "read_only", "limit")


class AgentFileError(MemfsError):
    """An .af file memfs cannot read, or cannot import or export without losing something."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} is not a usable Letta Agent File: {why}")


class AgentFileExportError(MemfsError):
    """Agents that cannot be written as one .af file without losing an edit."""


@dataclass
class AgentFileImport:
    """What an import made: the agents (open; close them), and what it left out or warned of."""

    agents: list[Agent]
    warnings: list[str] = field(default_factory=list)
    secrets_left_out: list[str] = field(default_factory=list)

    def close(self) -> None:
        for agent in self.agents:
            agent.close()

    def __enter__(self) -> AgentFileImport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class AgentFileExport:
    """The document written, the secrets whose values it lacks, and what else to tell the user."""

    document: dict[str, Any]
    secrets_left_out: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- reading an .af file ----------------------------------------------------------------------


def read_agent_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The .af document, decoding it twice if it is a JSON string holding the JSON."""
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(data, str):
            data = json.loads(data)
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
    why = _shape_problem(data)
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


def _to_first_schema(document: dict[str, Any]) -> dict[str, Any]:
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


def _shape_problem(data: dict[str, Any]) -> str:
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


def block_path(label: str) -> str | None:
    """The file Letta gives a block in a MemFS agent; None where Letta writes no file.

    Ported from Letta Code 0.32.18 ``memoryBlockPath`` and ``renderInitialMemoryFile``
    (src/backend/local/local-backend.ts): the label trimmed, ``\\`` read as ``/``, a trailing
    ``.md`` dropped, ``system/`` put in front unless it is there; empty segments dropped (a
    leading ``/``); a ``.`` or ``..`` segment gives no file.
    """
    normalized = re.sub(r"\.md\Z", "", lettafm.js_trim(label).replace("\\", "/"))
    in_system = normalized == "system" or normalized.startswith("system/")
    path = f"{normalized}.md" if in_system else f"system/{normalized}.md"
    segments = [segment for segment in path.split("/") if segment]
    if not segments or any(segment in (".", "..") for segment in segments):
        return None
    return "/".join(segments)


def letta_description(label: str, description: Any) -> str:
    """The description Letta writes for a block: its own, else ``Memory block <label>``."""
    if isinstance(description, str) and lettafm.js_trim(description):
        text = lettafm.js_trim(description)
    else:
        text = f"Memory block {label}"
    # Letta's reader turns a lone CR into a line break: keep every byte on the one line.
    return text.replace("\r", " ")


# -- import -----------------------------------------------------------------------------------


@dataclass
class _PlannedBlock:
    block: dict[str, Any]
    path: str
    content: bytes
    written: dict[str, Any]  # CARRIED_FIELDS as memfs reads them back from ``content``


@dataclass
class _PlannedAgent:
    index: int
    name: str
    root: Path
    blocks: list[_PlannedBlock]


def import_agent_file(
    source: str | os.PathLike[str],
    directory: str | os.PathLike[str] | None = None,
    *,
    agent: str | None = None,
    native: bool = False,
) -> AgentFileImport:
    """Create an agent folder for every agent of an .af file (or only the one named ``agent``).

    One agent goes to ``directory`` (default: its name); several go to ``directory/<name>``
    (default ``directory``: the file's name without ``.af``), names made unique. ``native``
    makes memfs-native agents (agent.yaml, YAML front matter with ``limit``) instead of Letta
    Code memory repos. Nothing is written if any block cannot be imported whole.
    """
    document = read_agent_file(source)
    indexes = _chosen_agents(document, agent, str(source))
    names = _unique_names([_agent_name(document["agents"][i].get("name")) for i in indexes])
    if len(indexes) == 1:
        base = Path(directory if directory is not None else names[0]).expanduser().resolve()
        roots = [base]
    else:
        stem = Path(source).name.removesuffix(".af") or "agents"
        base = Path(directory if directory is not None else stem).expanduser().resolve()
        roots = [base / name for name in names]
    for root in roots:
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise MemfsError(f"{root} already exists and is not empty")
    layout = Layout.NATIVE if native else Layout.LETTA_V1
    warnings: list[str] = []
    plans = [
        _PlannedAgent(i, name, root, _plan_blocks(root, document, i, layout, str(source), warnings))
        for i, name, root in zip(indexes, names, roots, strict=True)
    ]
    kept = copy.deepcopy(document)
    secrets = strip_secrets(kept)
    warnings.extend(
        f"left out the value of secret {key}: memfs never commits it" for key in secrets
    )
    source_id = str(uuid.uuid4())
    created = [path for path in {base, *roots} if not path.exists()]
    agents: list[Agent] = []
    try:
        for plan in plans:
            sidecar = _sidecar(kept, plan, source_id, secrets)
            agents.append(_import_into(plan, sidecar, document, layout, str(source)))
    except BaseException:
        for opened in agents:
            opened.close()
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        for root in roots:
            _empty_again(root)
        raise
    return AgentFileImport(agents, warnings, secrets)


def _empty_again(root: Path) -> None:
    """Remove what a failed import wrote into a folder that was there, empty, before it."""
    if not root.is_dir():
        return
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _chosen_agents(document: dict[str, Any], wanted: str | None, source: str) -> list[int]:
    """The indexes of the agents to import: all, or the one named ``wanted``."""
    agents = document["agents"]
    if wanted is None:
        return list(range(len(agents)))
    found = [i for i, data in enumerate(agents) if wanted in (data.get("name"), data.get("id"))]
    if not found:
        names = ", ".join(repr(str(data.get("name"))) for data in agents)
        raise AgentFileError(source, f"it holds no agent named {wanted!r} (it holds {names})")
    if len(found) > 1:
        raise AgentFileError(source, f"it holds {len(found)} agents named {wanted!r}")
    return found


def _unique_names(names: list[str]) -> list[str]:
    """``names`` with a ``-2``, ``-3``... added where two would be one folder (case-folded)."""
    seen: set[str] = set()
    unique = []
    for name in names:
        candidate, number = name, 1
        while candidate.casefold() in seen:
            number += 1
            candidate = f"{name[:95]}-{number}"
        seen.add(candidate.casefold())
        unique.append(candidate)
    return unique


def _plan_blocks(
    root: Path,
    document: dict[str, Any],
    index: int,
    layout: Layout,
    source: str,
    warnings: list[str],
) -> list[_PlannedBlock]:
    """Every memory block of agent ``index`` with its file, refusing what would lose one.

    Runs before anything is written: two blocks bound for one file, or a block that the first
    commit would leave out, make the whole import fail with the reason.
    """
    agent_data = document["agents"][index]
    block_ids = agent_data.get("block_ids") or []
    blocks_by_id = {
        b.get("id"): b for b in document.get("blocks", []) if isinstance(b, dict) and "id" in b
    }
    missing = [str(i) for i in block_ids if i not in blocks_by_id]
    if missing:
        raise AgentFileError(
            source, f"agent {agent_data.get('name')!r} names blocks it lacks: {', '.join(missing)}"
        )
    rules = IgnoreRules(root)
    planned: list[_PlannedBlock] = []
    labels_by_path: dict[str, str] = {}
    for block_id in dict.fromkeys(block_ids):
        block = blocks_by_id[block_id]
        label = block.get("label")
        if not isinstance(label, str):
            raise AgentFileError(source, f"block {block_id!r} has no label")
        if not isinstance(block.get("value"), str):
            raise AgentFileError(source, f"block {label!r} has no text value")
        path = _file_of(label, rules, labels_by_path, source)
        labels_by_path[path.casefold()] = label
        content = _render_block(block, label, layout).encode()
        if len(content) > worktree.DEFAULT_MAX_FILE_SIZE:
            raise AgentFileError(
                source,
                f"block {label!r} is {len(content)} bytes, over the "
                f"{worktree.DEFAULT_MAX_FILE_SIZE}-byte size cap for a memory file",
            )
        _warn_over_limit(block, label, agent_data, warnings)
        written = _carried(MemoryFile(root, path, content, layout))
        planned.append(_PlannedBlock(block, path, content, written))
    return planned


def _file_of(label: str, rules: IgnoreRules, labels_by_path: dict[str, str], source: str) -> str:
    """The memory file of the block ``label``; AgentFileError if memfs cannot keep it whole.

    ``labels_by_path``: the labels already placed, by case-folded path (two blocks in one
    file, or a file and a folder of one name, would lose one on a case-insensitive disk too).
    """
    path = block_path(label)
    if path is None:
        raise AgentFileError(
            source,
            f"block {label!r} cannot be the memory file system/{label}.md: a '.' or '..' "
            "in its path (Letta writes no file for it)",
        )
    refused = worktree.name_refusal(path) or (
        "memfs leaves such files out (see .memfsignore)" if rules.is_ignored(path) else ""
    )
    if refused:
        raise AgentFileError(source, f"block {label!r} cannot be the memory file {path}: {refused}")
    folded = path.casefold()
    same = labels_by_path.get(folded)
    if same is not None:
        raise AgentFileError(
            source,
            f"blocks {same!r} and {label!r} would both be the memory file {path}: "
            "rename one in the .af file",
        )
    for other_path, other in labels_by_path.items():
        if other_path.startswith(folded + "/") or folded.startswith(other_path + "/"):
            raise AgentFileError(
                source,
                f"blocks {other!r} and {label!r} would be a file and a folder of the same "
                "name: rename one in the .af file",
            )
    return path


def _warn_over_limit(
    block: dict[str, Any], label: str, agent_data: dict[str, Any], warnings: list[str]
) -> None:
    limit, value = block.get("limit"), block.get("value")
    is_limit = isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
    if is_limit and isinstance(value, str) and len(value) > limit:
        warnings.append(
            f"block {label!r} of agent {agent_data.get('name')!r} is {len(value)} "
            f"characters, over its limit of {limit}: imported whole (a limit is advisory)"
        )


def _render_block(block: dict[str, Any], label: str, layout: Layout) -> str:
    """The file of a block: as Letta writes it, or memfs-native YAML front matter."""
    value = block.get("value")
    body = value if isinstance(value, str) else ""
    if layout is Layout.NATIVE:
        metadata: dict[str, Any] = {}
        if block.get("description") is not None:
            metadata["description"] = block["description"]
        if isinstance(block.get("limit"), int) and block["limit"] > 0:
            metadata["limit"] = block["limit"]
        metadata["read_only"] = bool(block.get("read_only", False))
        return frontmatter.render(metadata, body)
    description = letta_description(label, block.get("description"))
    return lettafm.render_v1(description, body, read_only=block.get("read_only") is True)


def _carried(memory: MemoryFile) -> dict[str, Any]:
    """The fields a memory file carries, as memfs reads them."""
    return {"description": memory.description, "read_only": memory.read_only, "limit": memory.limit}


def _sidecar(
    kept: dict[str, Any], plan: _PlannedAgent, source_id: str, secrets: list[str]
) -> dict[str, Any]:
    """The sidecar of one agent: the document without the values its files hold."""
    document = copy.deepcopy(kept)
    files = {}
    by_id = {p.block.get("id"): p for p in plan.blocks}
    for block in document.get("blocks", []):
        planned = by_id.get(block.get("id")) if isinstance(block, dict) else None
        if planned is not None:
            block.pop("value", None)
            files[str(block["id"])] = {
                "path": planned.path,
                "written": planned.written,
                "sha256": hashlib.sha256(planned.content).hexdigest(),
            }
    return {
        FORMAT_KEY: SIDECAR_FORMAT,
        "source": source_id,
        "agent_index": plan.index,
        "files": files,
        "secrets_left_out": secrets,
        "document": document,
    }


def _import_into(
    plan: _PlannedAgent,
    sidecar: dict[str, Any],
    document: dict[str, Any],
    layout: Layout,
    source: str,
) -> Agent:
    root = plan.root
    root.mkdir(parents=True, exist_ok=True)
    for planned in plan.blocks:
        target = root / planned.path
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, planned.content)
    kept = json.dumps(sidecar, indent=1, ensure_ascii=False).encode()
    if len(kept) > worktree.DEFAULT_MAX_FILE_SIZE:
        raise AgentFileError(
            source,
            f"its settings and messages take {len(kept)} bytes, over the "
            f"{worktree.DEFAULT_MAX_FILE_SIZE}-byte size cap, so {SIDECAR} could not be committed",
        )
    atomic_write_path = root / SIDECAR
    atomic_write_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(atomic_write_path, kept)
    description = str(document["agents"][plan.index].get("description") or "")
    if layout is Layout.NATIVE:
        agent = init_agent(
            root, name=plan.name, description=description, templates=False, layout=Layout.NATIVE
        )
    else:
        history = History.create(root)
        record_letta_identity(history, plan.name, Layout.LETTA_V1, description)
        agent = Agent(root, history)
        agent.commit(message=f"memfs: import agent {plan.name} from {Path(source).name}")
    committed = agent.history.tree_of(agent.history.head())
    missing = [p.path for p in plan.blocks if p.path not in committed]
    missing += [] if SIDECAR in committed else [SIDECAR]
    if missing:
        agent.close()
        raise AgentFileError(source, f"memfs could not commit {', '.join(missing)}")
    return agent


# -- secrets ----------------------------------------------------------------------------------


def strip_secrets(document: dict[str, Any]) -> list[str]:
    """Blank every secret value in ``document`` (in place); the names of those left out.

    Letta's own export does the same to agent ``secrets`` and
    ``tool_exec_environment_variables`` (letta/services/agent_serialization_manager.py: the keys
    stay, the values become ""); MCP servers' ``token``, ``custom_headers`` and
    ``stdio_config.env`` are secrets too (Letta leaves them out of its exports).
    """
    left_out: list[str] = []
    for data in document.get("agents", []):
        if not isinstance(data, dict):
            continue
        owner = f"agent {data.get('name')!r}"
        for key in ("secrets", "tool_exec_environment_variables"):
            left_out += [f"{owner} {key}.{name}" for name in _blank(data.get(key))]
    for server in document.get("mcp_servers") or []:
        if not isinstance(server, dict):
            continue
        owner = f"mcp server {server.get('server_name')!r}"
        if server.get("token"):
            server["token"] = None
            left_out.append(f"{owner} token")
        left_out += [
            f"{owner} custom_headers.{name}" for name in _blank(server.get("custom_headers"))
        ]
        stdio = server.get("stdio_config")
        if isinstance(stdio, dict):
            left_out += [f"{owner} stdio_config.env.{name}" for name in _blank(stdio.get("env"))]
    return left_out


def _blank(values: Any) -> list[str]:
    """Blank the non-empty values of a ``{key: value}`` map or a ``[{key, value}]`` list."""
    names = []
    if isinstance(values, dict):
        for key, value in values.items():
            if value not in (None, ""):
                values[key] = ""
                names.append(str(key))
    elif isinstance(values, list):
        for item in values:
            if isinstance(item, dict) and item.get("value") not in (None, ""):
                item["value"] = ""
                names.append(str(item.get("key")))
    return names


# -- export -----------------------------------------------------------------------------------


def export_agent_file(agent: Agent, target: str | os.PathLike[str]) -> AgentFileExport:
    """Write one agent as an .af file: the kept document with the memory as it is now."""
    return export_agent_files([agent], target)


def export_agent_files(agents: Sequence[Agent], target: str | os.PathLike[str]) -> AgentFileExport:
    """Write agents imported from one .af file back as one file (blocks they share: once).

    A shared block edited differently in two of them is refused (AgentFileExportError): one
    block cannot hold both edits.
    """
    if not agents:
        raise AgentFileExportError("export-af needs at least one agent")
    sidecars = [_read_sidecar(agent) for agent in agents]
    if len(agents) == 1 and sidecars[0] is None:
        result = AgentFileExport(_new_document(agents[0]))
        result.document["blocks"], _ = _new_blocks(agents[0], set(), result.warnings)
        result.document["agents"][0]["block_ids"] = [b["id"] for b in result.document["blocks"]]
    elif len(agents) == 1 and FORMAT_KEY not in (sidecars[0] or {}):
        result = AgentFileExport(_export_legacy(agents[0], sidecars[0] or {}))
    else:
        result = _export_set(agents, sidecars)
    if result.document.pop(FIRST_SCHEMA_KEY, None) is not None:
        result.document = _to_first_schema(result.document)
    data = json.dumps(result.document, indent=2, ensure_ascii=False).encode()
    atomic_write(Path(target), data)
    return result


def _read_sidecar(agent: Agent) -> dict[str, Any] | None:
    try:
        data = json.loads((agent.root / SIDECAR).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as error:
        raise AgentFileError(SIDECAR, f"not valid JSON ({error})") from error
    if isinstance(data, dict) and FORMAT_KEY in data:
        why = _sidecar_problem(data)
        if why:
            raise AgentFileError(str(agent.root / SIDECAR), why)
        return data
    if not isinstance(data, dict) or not isinstance(data.get("agents"), list):
        raise AgentFileError(str(agent.root / SIDECAR), "it has no 'agents' list")
    return data


def _sidecar_problem(data: dict[str, Any]) -> str:
    """What makes a format-2 sidecar unusable ('' if nothing): it was edited by hand."""
    document = data.get("document")
    if not isinstance(document, dict) or not isinstance(document.get("agents"), list):
        return "it has no 'agents' list"
    why = _shape_problem(document) if document["agents"] else "its 'agents' list is empty"
    if why:
        return why
    index = data.get("agent_index")
    if not isinstance(index, int) or not 0 <= index < len(document["agents"]):
        return "its 'agent_index' names no agent"
    files = data.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(entry, dict)
        and isinstance(entry.get("path"), str)
        and isinstance(entry.get("written"), dict)
        for entry in files.values()
    ):
        return "its 'files' are not a map of block ids to files"
    if not isinstance(data.get("source"), str) or not isinstance(
        data.get("secrets_left_out", []), list
    ):
        return "its 'source' or 'secrets_left_out' is damaged"
    return ""


def _new_document(agent: Agent) -> dict[str, Any]:
    manifest = agent.manifest
    return {
        "agents": [{"name": manifest.name, "description": manifest.description, "block_ids": []}],
        "blocks": [],
    }


def _export_set(agents: Sequence[Agent], sidecars: list[dict[str, Any] | None]) -> AgentFileExport:
    """Agents with format-2 sidecars from one import, as one document."""
    chosen = _by_index(agents, sidecars)
    first = chosen[min(chosen)][1]
    document = copy.deepcopy(first["document"])
    originals = document["agents"]
    result = AgentFileExport(document, warnings=[])
    blocks_by_id = {b.get("id"): b for b in document.get("blocks", []) if isinstance(b, dict)}
    built: dict[Any, _BuiltBlock] = {}
    new_blocks: list[dict[str, Any]] = []
    for index in sorted(chosen):
        agent, sidecar = chosen[index]
        agent_data = originals[index]
        own = _agent_blocks(agent, sidecar, blocks_by_id, result.warnings)
        for block_id, candidate in own.items():
            _merge_shared(built, block_id, candidate)
        known = {str(block_id) for block_id in sidecar["files"]}
        fresh, _ = _new_blocks(agent, {sidecar["files"][i]["path"] for i in known}, result.warnings)
        new_blocks += fresh
        ids = [i for i in agent_data.get("block_ids") or [] if i in own or str(i) not in known]
        agent_data["block_ids"] = ids + [b["id"] for b in fresh]
        for secret in sidecar.get("secrets_left_out", []):
            if secret not in result.secrets_left_out:
                result.secrets_left_out.append(secret)
    document["agents"] = [originals[i] for i in sorted(chosen)]
    everyone = len(chosen) == len(originals)
    owned = {block_id for _, sidecar in chosen.values() for block_id in sidecar["files"]}
    document["blocks"] = _blocks_in_order(document, originals, built, owned, everyone, result)
    document["blocks"] += new_blocks
    _keep_groups(document, result.warnings)
    return result


def _by_index(
    agents: Sequence[Agent], sidecars: list[dict[str, Any] | None]
) -> dict[int, tuple[Agent, dict[str, Any]]]:
    """Each agent with its sidecar, by its place in the .af file; refuses what is not one set."""
    chosen: dict[int, tuple[Agent, dict[str, Any]]] = {}
    for agent, sidecar in zip(agents, sidecars, strict=True):
        if sidecar is None or FORMAT_KEY not in sidecar:
            raise AgentFileExportError(
                f"{agent.root} was not imported from an .af file by this memfs version: "
                "export it on its own"
            )
        index = int(sidecar["agent_index"])
        if index in chosen:
            raise AgentFileExportError(
                f"{chosen[index][0].root} and {agent.root} are the same agent of the .af file"
            )
        chosen[index] = (agent, sidecar)
    if len({str(sidecar["source"]) for _, sidecar in chosen.values()}) > 1:
        raise AgentFileExportError(
            "these agents were imported from different .af files: export them one at a time"
        )
    return chosen


def _blocks_in_order(
    document: dict[str, Any],
    originals: list[dict[str, Any]],
    built: dict[Any, _BuiltBlock],
    owned: set[str],
    everyone: bool,
    result: AgentFileExport,
) -> list[Any]:
    """The document's blocks in their order: each exported agent's as its files hold them now,
    blocks no agent uses kept whole when every agent is exported (else said), no others."""
    kept_ids = {i for data in document["agents"] for i in data.get("block_ids") or []}
    used = {i for data in originals for i in data.get("block_ids") or []}
    blocks = []
    for block in document.get("blocks", []):
        block_id = block.get("id") if isinstance(block, dict) else None
        if block_id in built:
            if block_id in kept_ids:
                blocks.append(built[block_id].block)
        elif block_id in kept_ids or (everyone and str(block_id) not in owned):
            blocks.append(block)
        elif block_id not in used and str(block_id) not in owned:
            result.warnings.append(
                f"left out block {block.get('label')!r}: no agent of the .af file uses it "
                "(export all of them together to keep it)"
            )
    return blocks


@dataclass
class _BuiltBlock:
    block: dict[str, Any]
    root: Path
    edited: bool  # the file is not what the import wrote


def _merge_shared(built: dict[Any, _BuiltBlock], block_id: Any, candidate: _BuiltBlock) -> None:
    """One block from the copies of a shared block: the edited one wins over untouched ones.

    Two copies edited differently cannot be one block: refused, nothing written.
    """
    held = built.get(block_id)
    if held is None or (candidate.edited and not held.edited):
        built[block_id] = candidate
    elif candidate.edited and held.edited and candidate.block != held.block:
        raise AgentFileExportError(
            f"block {candidate.block.get('label')!r} is shared by {held.root} and "
            f"{candidate.root}, and was edited differently in each: make them equal first"
        )


def _agent_blocks(
    agent: Agent,
    sidecar: dict[str, Any],
    blocks_by_id: dict[Any, dict[str, Any]],
    warnings: list[str],
) -> dict[Any, _BuiltBlock]:
    """The imported blocks still in ``agent``'s folder, by id, with their files' content now."""
    memory = {m.path: m for m in agent.memory.values()}
    own: dict[Any, _BuiltBlock] = {}
    for block_id, entry in sidecar["files"].items():
        stub = next((b for i, b in blocks_by_id.items() if str(i) == block_id), None)
        memory_file = memory.get(entry["path"])
        if stub is None or memory_file is None:
            continue  # the file was deleted (or renamed): the block goes
        if _unreadable(memory_file, warnings):
            continue
        block = dict(stub)
        block["value"] = memory_file.value
        now = _carried(memory_file)
        for key in CARRIED_FIELDS:
            if now[key] != entry["written"].get(key):
                block[key] = now[key] if key != "limit" or now[key] is not None else stub.get(key)
        edited = hashlib.sha256(memory_file.raw).hexdigest() != entry.get("sha256")
        own[stub.get("id")] = _BuiltBlock(block, agent.root, edited)
    return own


def _unreadable(memory_file: MemoryFile, warnings: list[str]) -> bool:
    """Whether a file cannot be a block's value (not UTF-8): said in ``warnings``."""
    try:
        memory_file.raw.decode("utf-8")
    except UnicodeDecodeError:
        warnings.append(f"left out {memory_file.path}: not valid UTF-8, so not a block value")
        return True
    return False


def _new_blocks(
    agent: Agent, known_paths: Iterable[str], warnings: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Blocks for the pinned Markdown files no block was imported into; what was left out."""
    known = set(known_paths) | {SIDECAR}
    blocks: list[dict[str, Any]] = []
    left_out: list[str] = []
    for memory_file in agent.memory.values():
        if memory_file.path in known:
            continue
        if not memory_file.pinned or memory_file.kind != "markdown":
            left_out.append(memory_file.path)
            continue
        if _unreadable(memory_file, warnings):
            continue
        block: dict[str, Any] = {
            "id": f"block-{uuid.uuid4()}",
            "label": label_of(memory_file.path).removeprefix("system/"),
            "value": memory_file.value,
            "description": memory_file.description,
            "read_only": memory_file.read_only,
            "metadata": {},
        }
        if memory_file.limit is not None:
            block["limit"] = memory_file.limit
        blocks.append(block)
    if left_out:
        warnings.append(
            f"left out {len(left_out)} memory files that are not blocks (only Markdown files in "
            "system/ are): " + ", ".join(sorted(left_out))
        )
    return blocks, left_out


def _keep_groups(document: dict[str, Any], warnings: list[str]) -> None:
    """Drop (and say so) the groups that name an agent this export does not hold."""
    present = {data.get("id") for data in document["agents"]}
    kept = []
    for group in document.get("groups") or []:
        members = _group_members(group)
        if members <= present:
            kept.append(group)
        else:
            warnings.append(
                f"left out group {group.get('id')!r}: it names agents not in this export "
                "(export them together to keep it)"
            )
    if "groups" in document:
        document["groups"] = kept


def _group_members(group: Any) -> set[Any]:
    """The agent ids a group names (its agents and its manager)."""
    if not isinstance(group, dict):
        return set()
    agent_ids = group.get("agent_ids")
    members = {i for i in agent_ids if isinstance(i, str)} if isinstance(agent_ids, list) else set()
    manager = group.get("manager_config")
    if isinstance(manager, dict) and isinstance(manager.get("manager_agent_id"), str):
        members.add(manager["manager_agent_id"])
    return members


def _export_legacy(agent: Agent, document: dict[str, Any]) -> dict[str, Any]:
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


def _agent_name(name: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name or "agent")).strip("-.") or "agent"
    text = text[:100]
    return text if is_valid_name(text) else "agent"
