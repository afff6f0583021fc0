"""The secrets of an .af document, which memfs never commits.

Agent ``secrets`` and ``tool_exec_environment_variables``, and MCP servers' tokens, headers and
environment: import blanks their values before the document is kept in the sidecar, and names
each key so the user can set it again in Letta (export says which values it lacks).
"""

from __future__ import annotations

from typing import Any


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
