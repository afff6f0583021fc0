"""The part of Letta's REST API that reads and writes memory. To be built."""

from __future__ import annotations

from starlette.routing import BaseRoute

from memfs.server.context import ServerContext


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """The REST routes."""
    return []
