"""Import: every memory block of an .af file's agents becomes a memory file, as Letta writes it.

Each block becomes the file Letta's server would give it in a MemFS agent, ``system/<label>.md``
(Letta Code's ``memoryBlockPath``: nested labels nest folders, a leading ``/`` is dropped,
non-ASCII is kept), written as Letta writes a block (``description`` always, ``read_only: true``
only when true, never ``limit``; see ``memfs.lettafm.render_v1``). A new import is a Letta Code
v1 memory repo (no agent.yaml: Letta Code can use the folder as it is), or a memfs-native agent
when asked. What the files cannot hold goes to the sidecar (``memfs.agentfile.sidecar``).

Nothing is dropped silently: every block of every agent is planned before anything is written,
and the file is refused if two blocks would be one memory file (``human`` and ``system/human``)
or one could not be committed; after the commit, every file written is checked to be in it. A
failed import leaves no folder it made and empties the ones that were empty before.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memfs import frontmatter, lettafm, worktree
from memfs.agent import Agent
from memfs.agentfile.document import AgentFileError, read_agent_file
from memfs.agentfile.secrets import check_storable, keep_in_store, strip_secrets
from memfs.agentfile.sidecar import SIDECAR, carried, make_sidecar
from memfs.errors import MemfsError
from memfs.history import History
from memfs.ignore import IgnoreRules
from memfs.layout import Layout
from memfs.memory import MemoryFile
from memfs.opening import init_agent, record_letta_identity
from memfs.schema import is_valid_name
from memfs.util import atomic_write


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


@dataclass
class PlannedBlock:
    """A block of the .af file and the memory file it becomes (checked, not yet written)."""

    block: dict[str, Any]
    path: str
    content: bytes
    written: dict[str, Any]  # CARRIED_FIELDS as memfs reads them back from ``content``


@dataclass
class PlannedAgent:
    """An agent of the .af file (its place in ``agents``), its folder and its planned blocks."""

    index: int
    name: str
    root: Path
    blocks: list[PlannedBlock]


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
        PlannedAgent(i, name, root, _plan_blocks(root, document, i, layout, str(source), warnings))
        for i, name, root in zip(indexes, names, roots, strict=True)
    ]
    for plan in plans:
        check_storable(document["agents"][plan.index])  # before anything is written
    kept = copy.deepcopy(document)
    secrets = strip_secrets(kept)
    source_id = str(uuid.uuid4())
    created = [path for path in {base, *roots} if not path.exists()]
    agents: list[Agent] = []
    stored: list[str] = []
    skipped: list[str] = []
    try:
        for plan in plans:
            sidecar = make_sidecar(kept, plan, source_id, secrets)
            agents.append(_import_into(plan, sidecar, document, layout, str(source)))
            stored += keep_in_store(agents[-1], document["agents"][plan.index], skipped)
    except BaseException:
        for opened in agents:
            opened.close()
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        for root in roots:
            _empty_again(root)
        raise
    warnings.extend(
        f"kept the value of secret {key} in the agent's secrets (memfs secret list), never "
        "committed: an environment variable of every 'memfs run'"
        if key in stored
        else f"left out the value of secret {key}: memfs never commits it"
        for key in secrets
        if key not in skipped
    )
    if skipped:
        warnings.append(
            f"skipped {', '.join(skipped)}: a name that changes how programs load or run is "
            "never taken from an Agent File into 'memfs run' ('memfs secret set NAME' sets "
            "one on purpose)"
        )
    return AgentFileImport(agents, warnings, secrets)  # the files hold none of the values


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
) -> list[PlannedBlock]:
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
    planned: list[PlannedBlock] = []
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
        written = carried(MemoryFile(root, path, content, layout))
        planned.append(PlannedBlock(block, path, content, written))
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


def _import_into(
    plan: PlannedAgent,
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


def _agent_name(name: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name or "agent")).strip("-.") or "agent"
    text = text[:100]
    return text if is_valid_name(text) else "agent"
