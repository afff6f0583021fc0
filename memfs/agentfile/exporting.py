"""Export: agents imported from an .af file written back as one, with their memory as it is now.

The sidecar's document comes back with each block's value from its file; a field the file
carries (``CARRIED_FIELDS``) is taken from the file only when it changed since the import, so an
untouched agent comes back equal. Agents imported from one file (a main agent and its sleeptime
agent) export together as one document: a block they share is one block again, the edited copy
winning over untouched ones, and two copies edited differently are refused
(``AgentFileExportError``): one block cannot hold both edits. Pinned Markdown files no block was
imported into become new blocks; an agent never imported gets a new document.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memfs.agent import Agent
from memfs.agentfile.document import FIRST_SCHEMA_KEY, to_first_schema
from memfs.agentfile.legacy import export_legacy
from memfs.agentfile.sidecar import CARRIED_FIELDS, FORMAT_KEY, SIDECAR, carried, read_sidecar
from memfs.errors import MemfsError
from memfs.memory import MemoryFile, label_of
from memfs.util import atomic_write


class AgentFileExportError(MemfsError):
    """Agents that cannot be written as one .af file without losing an edit."""


@dataclass
class AgentFileExport:
    """The document written, the secrets whose values it lacks, and what else to tell the user."""

    document: dict[str, Any]
    secrets_left_out: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def export_agent_file(
    agent: Agent, target: str | os.PathLike[str], with_secrets: bool = False
) -> AgentFileExport:
    """Write one agent as an .af file: the kept document with the memory as it is now."""
    return export_agent_files([agent], target, with_secrets)


def export_agent_files(
    agents: Sequence[Agent], target: str | os.PathLike[str], with_secrets: bool = False
) -> AgentFileExport:
    """Write agents imported from one .af file back as one file (blocks they share: once).

    A shared block edited differently in two of them is refused (AgentFileExportError): one
    block cannot hold both edits. ``with_secrets`` writes the values of the agents' secrets
    (memfs.secrets) back into their ``secrets`` and tool environment entries (file mode
    0600); without it they stay blank and are named in ``secrets_left_out``.
    """
    if not agents:
        raise AgentFileExportError("export-af needs at least one agent")
    sidecars = [read_sidecar(agent) for agent in agents]
    if len(agents) == 1 and sidecars[0] is None:
        result = AgentFileExport(_new_document(agents[0]))
        result.document["blocks"], _ = _new_blocks(agents[0], set(), result.warnings)
        result.document["agents"][0]["block_ids"] = [b["id"] for b in result.document["blocks"]]
    elif len(agents) == 1 and FORMAT_KEY not in (sidecars[0] or {}):
        result = AgentFileExport(export_legacy(agents[0], sidecars[0] or {}))
    else:
        result = _export_set(agents, sidecars)
    filled = _agent_secrets(agents, result, with_secrets)
    if result.document.pop(FIRST_SCHEMA_KEY, None) is not None:
        result.document = to_first_schema(result.document)
    data = json.dumps(result.document, indent=2, ensure_ascii=False).encode()
    if not with_secrets:  # a file the commit guard holds may hold a value: masked (§6.2)
        from memfs.secrets.hooks import byte_masker

        for agent in agents:
            masked = byte_masker(agent)(data)
            if masked != data:
                data = masked
                result.warnings.append(
                    f"{agent.name}: a memory file holds a secret's value: masked in the "
                    "export as NAME=<REDACTED> (--with-secrets writes values)"
                )
    atomic_write(Path(target), data, mode=0o600 if filled else None)
    return result


def _agent_secrets(agents: Sequence[Agent], result: AgentFileExport, with_secrets: bool) -> bool:
    """The agents' own secrets in the document: values when asked (True if any was written),
    else blank entries named in ``secrets_left_out``. Agents and document entries are paired
    by name (an agent's folder and its entry carry one name)."""
    from memfs.agentfile.secrets import fill_values
    from memfs.secrets.hooks import has_secrets, names

    entries = [a for a in result.document.get("agents", []) if isinstance(a, dict)]
    wrote = False
    for agent in agents:
        if not has_secrets(agent):
            continue
        data = next((e for e in entries if e.get("name") == agent.name), None)
        if data is None and len(agents) == 1 and len(entries) == 1:
            data = entries[0]
        if data is None:
            result.warnings.append(f"{agent.name}'s secrets have no agent entry to go in")
            continue
        if with_secrets:
            from memfs.secrets.store import SecretStore

            filled = fill_values(data, SecretStore.load(agent).plain_values())
            wrote = wrote or bool(filled)
            result.secrets_left_out = [s for s in result.secrets_left_out if s not in filled]
        else:
            for entry in fill_values(data, dict.fromkeys(names(agent), "")):
                if entry not in result.secrets_left_out:
                    result.secrets_left_out.append(entry)
    return wrote


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
        now = carried(memory_file)
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
