"""The Starlette application of ``memfs serve``: the routes of every module, behind auth."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from memfs.server import console, gitsmart, lettaapi
from memfs.server.auth import TokenAuth
from memfs.server.context import ServerContext


def create_app(ctx: ServerContext) -> Starlette:
    """The application serving ``ctx``'s cloud: git, the REST API, then the console.

    Every route is behind ``TokenAuth`` (a no-op unless ``ctx.token_required``)."""
    routes = [*gitsmart.routes(ctx), *lettaapi.routes(ctx), *console.routes(ctx)]
    app = Starlette(routes=routes, middleware=[Middleware(TokenAuth, ctx=ctx)])
    app.state.ctx = ctx
    return app
