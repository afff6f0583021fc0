"""The sidecar ``.letta/agent-file.json``: the part of an .af file its memory files cannot hold.

Import writes one per agent (``make_sidecar``): the whole document (every agent's settings,
tools, messages, groups, the blocks' other fields) without the values the agent's files hold,
which agent of the document this folder is (``agent_index``), which file each block became and
what it carried then (``files``: path, the ``CARRIED_FIELDS`` as written, the content's hash),
and the names of the secrets whose values were left out. Export reads it back
(``read_sidecar``), refusing one edited by hand into a shape it cannot use. It lives in a dot
folder, so Letta Code never reads it. A sidecar without ``FORMAT_KEY`` is the older format
(blocks named by ``PATH_KEY``), exported by ``memfs.agentfile.legacy``.
"""

from __future__ import annotations

import copy
import hashlib
from typing import TYPE_CHECKING, Any

from memfs.agent import Agent
from memfs.agentfile.document import AgentFileError, shape_problem
from memfs.jsonbound import loads as bounded_loads
from memfs.memory import MemoryFile

if TYPE_CHECKING:
    from memfs.agentfile.importing import PlannedAgent

SIDECAR = ".letta/agent-file.json"
FORMAT_KEY = "memfs_agent_file"
SIDECAR_FORMAT = 2
PATH_KEY = "memfs_path"  # the file of a block, in sidecars written before SIDECAR_FORMAT 2
# The fields a memory file carries; the sidecar has the original, used while the file's own
# value is still the one the import wrote.
CARRIED_FIELDS = ("description", "read_only", "limit")


def carried(memory: MemoryFile) -> dict[str, Any]:
    """The fields a memory file carries, as memfs reads them."""
    return {"description": memory.description, "read_only": memory.read_only, "limit": memory.limit}


def make_sidecar(
    kept: dict[str, Any], plan: PlannedAgent, source_id: str, secrets: list[str]
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


def read_sidecar(agent: Agent) -> dict[str, Any] | None:
    try:
        data = bounded_loads((agent.root / SIDECAR).read_text(encoding="utf-8"))
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
    why = shape_problem(document) if document["agents"] else "its 'agents' list is empty"
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
