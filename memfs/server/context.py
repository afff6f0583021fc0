"""What every route of ``memfs serve`` is handed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memfs.server.agents import AgentCache


@dataclass
class ServerContext:
    """The cloud a server serves and the state it shares between requests (caches only)."""

    cloud_name: str
    cloud_url: str
    options: dict[str, Any]
    agents: AgentCache
    # set by memfs.server.auth when tokens are required: a callable (token) -> bool
    token_required: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
