"""Letta's ``AgentState`` for a memfs agent: what ``GET /v1/agents`` answers.

memfs keeps an agent's memory, not its model, tools or messages, so most of AgentState is
Letta's default or a placeholder. Filled from memfs: ``id`` (memfs.json's id, Letta's agent id
for a Letta Code repo), ``name`` (the agent's folder in the cloud), ``description`` (the last
push's), ``updated_at`` (when it was last pushed), ``created_at`` (memfs.json), ``blocks`` and
``memory.blocks`` (its memory files, only with ``include=agent.blocks``, as Letta answers 1.x
SDKs), ``memory.git_enabled`` (true), ``metadata.memfs`` (the pushing host and the head commit).

Placeholders where Letta requires a value memfs does not have: ``agent_type``
``letta_v1_agent`` (Letta's default), ``system`` "" (memfs stores no system prompt; the
compiled memory is ``GET /v1/agents/{id}/context``), ``llm_config`` {model "none",
model_endpoint_type "openai", context_window 0}; ``tools``, ``sources``, ``tags``,
``identities``, ``secrets`` and the like are empty lists, everything optional is null.
"""

from __future__ import annotations

from typing import Any

from memfs.server.agents import ServedAgent

AGENT_TYPE = "letta_v1_agent"
NO_LLM = {"model": "none", "model_endpoint_type": "openai", "context_window": 0}


def agent_state(
    agent: ServedAgent, created_at: str | None, blocks: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Letta's AgentState JSON for ``agent``; ``blocks`` as Letta's Block JSON when asked."""
    listed = blocks or []
    return {
        "id": agent.id,
        "name": agent.name,
        "description": agent.description or None,
        "agent_type": AGENT_TYPE,
        "system": "",
        "llm_config": dict(NO_LLM),
        "embedding_config": None,
        "model": None,
        "embedding": None,
        "blocks": listed,
        "memory": {"blocks": listed, "git_enabled": True, "file_blocks": []},
        "tools": [],
        "sources": [],
        "tags": [],
        "identities": [],
        "identity_ids": [],
        "secrets": [],
        "tool_exec_environment_variables": [],
        "tool_rules": None,
        "message_ids": None,
        "metadata": {"memfs": {"host": agent.host, "head": agent.head}},
        "created_at": created_at or None,
        "updated_at": agent.pushed_at,
        "project_id": None,
        "template_id": None,
        "base_template_id": None,
        "deployment_id": None,
        "entity_id": None,
        "hidden": None,
        "timezone": None,
        "message_buffer_autoclear": False,
        "enable_sleeptime": None,
        "last_run_completion": None,
        "last_run_duration_ms": None,
        "last_stop_reason": None,
        "managed_group": None,
        "multi_agent_group": None,
        "pending_approval": None,
        "response_format": None,
        "max_files_open": None,
        "per_file_view_window_char_limit": None,
    }
