"""What every route of ``memfs serve`` is handed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memfs.server.agents import AgentCache
    from memfs.tokens import TokenChecker


@dataclass
class ServerContext:
    """The cloud a server serves and the state it shares between requests (caches only)."""

    cloud_name: str
    cloud_url: str
    options: dict[str, Any]
    agents: AgentCache
    # True when every request must carry a token (memfs.server.auth checks it, not the routes)
    token_required: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # the token file's checker; with token_required and no checker, nobody is let in
    tokens: TokenChecker | None = None

    def authenticate(self, token: str) -> bool:
        """True when ``token`` may use this server (always, when none is required).

        The console's login form calls this to check a token before setting its cookie."""
        if not self.token_required:
            return True
        return self.tokens is not None and self.tokens.check(token)
