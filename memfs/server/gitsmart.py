"""Git smart HTTP at ``/v1/git/<agent>/state.git`` (Letta Code's memory URL). To be built."""

from __future__ import annotations

from starlette.routing import BaseRoute

from memfs.server.context import ServerContext


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """The git routes."""
    return []
