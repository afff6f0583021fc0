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


AGENT_KEYS = ("secrets", "tool_exec_environment_variables")


def owner_of(data: dict[str, Any]) -> str:
    """How ``strip_secrets`` names an agent in its left-out entries."""
    return f"agent {data.get('name')!r}"


def agent_values(data: dict[str, Any]) -> dict[str, str]:
    """The non-empty values of an agent's ``secrets`` and ``tool_exec_environment_variables``
    (a ``{key: value}`` map, or Letta's ``[{key, value}]`` list) whose names are valid secret
    names (memfs.secrets.store.NAME); the first of a name wins."""
    from memfs.secrets.store import NAME

    found: dict[str, str] = {}
    for key in AGENT_KEYS:
        for name, value in _pairs(data.get(key)):
            if value and isinstance(value, str) and NAME.fullmatch(name):
                found.setdefault(name, value)
    return found


def _pairs(values: Any) -> list[tuple[str, Any]]:
    if isinstance(values, dict):
        return [(str(k), v) for k, v in values.items()]
    if isinstance(values, list):
        return [
            (str(item.get("key")), item.get("value")) for item in values if isinstance(item, dict)
        ]
    return []


def check_storable(data: dict[str, Any]) -> None:
    """SecretUsageError (exit 2) if a value ``keep_in_store`` would keep cannot be a secret
    (memfs.secrets.store.check_value: a NUL byte, not text, too long): asked before the
    import writes anything."""
    from memfs.secrets.store import check_value

    for name, value in agent_values(data).items():
        check_value(name, value, f"nothing was imported ({owner_of(data)})")


def keep_in_store(agent: Any, data: dict[str, Any], skipped: list[str] | None = None) -> list[str]:
    """Put an imported agent's secret values into its secret store (memfs.secrets): kept
    sealed, never committed. The names kept (left-out entries as ``strip_secrets`` names them).

    A name that changes how programs load or run (``PATH``, ``LD_PRELOAD``, ``BASH_ENV``...:
    memfs.secrets.loadnames) is never kept: it would reach every ``memfs run`` on every
    machine; its left-out entry is added to ``skipped`` (review11 F11).
    """
    from memfs.secrets.loadnames import changes_loading

    values = agent_values(data)
    planted = {name for name in values if changes_loading(name)}
    if planted and skipped is not None:
        owner = owner_of(data)
        skipped += [
            f"{owner} {key}.{name}"
            for key in AGENT_KEYS
            for name, value in _pairs(data.get(key))
            if name in planted and value
        ]
    values = {name: value for name, value in values.items() if name not in planted}
    if not values:
        return []
    from memfs.secrets.store import SecretStore

    store = SecretStore.load(agent)
    for name in sorted(values):
        store.set(name, values[name])
    owner = owner_of(data)
    return [
        f"{owner} {key}.{name}"
        for key in AGENT_KEYS
        for name, value in _pairs(data.get(key))
        if name in values and value
    ]


def fill_values(data: dict[str, Any], values: dict[str, str]) -> list[str]:
    """Write ``values`` back into an exported agent's blank ``secrets`` and
    ``tool_exec_environment_variables`` entries, in the shape they have (map or list); a
    memfs agent with neither gets a ``secrets`` map. The left-out entries filled."""
    filled = []
    owner = owner_of(data)
    placed = {name for key in AGENT_KEYS for name, _ in _pairs(data.get(key))}
    if any(name not in placed for name in values) and data.get("secrets") is None:
        data["secrets"] = {}  # a secret set in memfs, in no entry yet: Letta's create shape
    for key in AGENT_KEYS:
        entries = data.get(key)
        if key == "secrets" and isinstance(entries, dict):
            for name, value in values.items():
                if name not in placed:
                    entries[name] = value
                    filled.append(f"{owner} {key}.{name}")
        if isinstance(entries, dict):
            for name in entries:
                if name in values and entries[name] in (None, ""):
                    entries[name] = values[name]
                    filled.append(f"{owner} {key}.{name}")
        elif isinstance(entries, list):
            for item in entries:
                name = item.get("key") if isinstance(item, dict) else None
                if name in values and item.get("value") in (None, ""):
                    item["value"] = values[name]
                    filled.append(f"{owner} {key}.{name}")
    return filled
