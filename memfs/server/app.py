"""The Starlette application of ``memfs serve``: the routes of every module, behind auth."""

from __future__ import annotations

from starlette.applications import Starlette

from memfs.server import console, gitsmart, lettaapi
from memfs.server.context import ServerContext


def create_app(ctx: ServerContext) -> Starlette:
    """The application serving ``ctx``'s cloud: git, the REST API, then the console."""
    routes = [*gitsmart.routes(ctx), *lettaapi.routes(ctx), *console.routes(ctx)]
    app = Starlette(routes=routes)
    app.state.ctx = ctx
    return app
