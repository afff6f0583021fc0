"""The Letta Agent File (.af) API under its first name: the code lives in ``memfs.agentfile``.

Kept so code written against ``memfs.letta`` (since memfs first read .af files) still imports;
each name here is the very object of ``memfs.agentfile``.
"""

from __future__ import annotations

from memfs.agentfile import (
    SIDECAR,
    AgentFileError,
    AgentFileExport,
    AgentFileExportError,
    AgentFileImport,
    block_path,
    export_agent_file,
    export_agent_files,
    import_agent_file,
    letta_description,
    read_agent_file,
    strip_secrets,
)
from memfs.agentfile.document import FIRST_SCHEMA_KEY, FIRST_SCHEMA_LIMIT
from memfs.agentfile.sidecar import CARRIED_FIELDS, FORMAT_KEY, PATH_KEY, SIDECAR_FORMAT

__all__ = [
    "CARRIED_FIELDS",
    "FIRST_SCHEMA_KEY",
    "FIRST_SCHEMA_LIMIT",
    "FORMAT_KEY",
    "PATH_KEY",
    "SIDECAR",
    "SIDECAR_FORMAT",
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
