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

The modules, in the order a document goes through them:
- ``document``: reading an .af file, checking its shape, Letta's first schema in and out.
- ``secrets``: the values left out of what is committed.
- ``importing``: planning every block's file, then writing and committing the agents.
- ``sidecar``: ``.letta/agent-file.json``, written by import and read by export.
- ``exporting``: one agent, or a set imported from one file, back as one document.
- ``legacy``: export of agents imported before sidecar format 2.
"""

from __future__ import annotations

from memfs.agentfile.document import AgentFileError, read_agent_file
from memfs.agentfile.exporting import (
    AgentFileExport,
    AgentFileExportError,
    export_agent_file,
    export_agent_files,
)
from memfs.agentfile.importing import (
    AgentFileImport,
    block_path,
    import_agent_file,
    letta_description,
)
from memfs.agentfile.secrets import strip_secrets
from memfs.agentfile.sidecar import SIDECAR

__all__ = [
    "SIDECAR",
    "AgentFileError",
    "AgentFileExport",
    "AgentFileExportError",
    "AgentFileImport",
    "block_path",
    "export_agent_file",
    "export_agent_files",
    "import_agent_file",
    "letta_description",
    "read_agent_file",
    "strip_secrets",
]
