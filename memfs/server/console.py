"""The web console at ``/``: the agents of the cloud, an agent's memory, edit, history, restore.

Pages are plain HTML rendered on the server (``consolehtml``) from the data ``consoleviews``
gathers; ``?format=json`` gives any page's data as JSON instead. Every read goes through
``ctx.agents.reading`` and every change through ``ctx.agents.write`` (a commit pushed with the
bucket's compare-and-swap), so the console sees and makes the same history as git clients,
watchers and other servers.

Auth is ``memfs.server.auth``'s middleware in front of every route; this module owns the login
form, which checks a token (``ctx.authenticate``) and puts it into the ``memfs_token`` cookie
(HttpOnly, SameSite=Strict). POSTs are CSRF-safe twice over: the cookie is never sent
cross-site, and a POST whose ``Origin`` (or ``Referer``, or ``Sec-Fetch-Site``) says it came
from another site is refused before anything is read. Pages carry a CSP that allows no script
and no inline style, and may not be framed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from memfs.errors import (
    LockTimeoutError,
    MemfsError,
    PackCorruptError,
    PathNotFoundError,
    RemoteError,
    RepositoryDamagedError,
    RevisionNotFoundError,
)
from memfs.server import consolehtml as pages
from memfs.server import consoleviews as views
from memfs.server.agents import AgentNotFoundError, WriteConflictError
from memfs.server.auth import COOKIE, clear_login_cookie, set_login_cookie
from memfs.server.context import ServerContext

MAX_FORM_BYTES = 4 * 1024 * 1024  # a memory file's text and a few fields
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
log = logging.getLogger("memfs.server.console")

Endpoint = Callable[[Request], Awaitable[Response]]


class FormError(MemfsError):
    """A POST the console cannot take: not a form, too large, another site's."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """The console routes."""
    console = Console(ctx)
    return [
        Route("/", console.guard(console.agents), methods=["GET"]),
        Route("/login", console.guard(console.login), methods=["GET", "POST"]),
        Route("/logout", console.guard(console.logout), methods=["POST"]),
        Route("/static/{name}", static_file, methods=["GET"]),
        Route("/agents/{agent}", console.guard(console.agent), methods=["GET"]),
        Route(
            "/agents/{agent}/blocks/{path:path}",
            console.guard(console.block),
            methods=["GET", "POST"],
        ),
        Route("/agents/{agent}/history/{path:path}", console.guard(console.history)),
        Route(
            "/agents/{agent}/restore/{path:path}", console.guard(console.restore), methods=["POST"]
        ),
        Route(
            "/agents/{agent}/conflicts/{path:path}",
            console.guard(console.conflict),
            methods=["GET", "POST"],
        ),
    ]


async def static_file(request: Request) -> Response:
    """The stylesheet and the icon: a fixed list, never a path from the request."""
    name = request.path_params["name"]
    if name not in pages.STATIC:
        return Response("not found", 404, media_type="text/plain")
    return Response(
        pages.static(name),
        media_type=pages.STATIC[name],
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def _status_of(error: Exception) -> int:
    if isinstance(error, FormError):
        return error.status
    if isinstance(error, AgentNotFoundError | PathNotFoundError | RevisionNotFoundError):
        return 404
    if isinstance(error, WriteConflictError):
        return 409
    if isinstance(error, views.ReadOnlyBlockError):
        return 403
    if isinstance(error, LockTimeoutError):
        return 503  # busy: try again
    if isinstance(error, RemoteError | RepositoryDamagedError | PackCorruptError):
        return 502  # the store failed us, not the request
    if isinstance(error, MemfsError):
        return 400  # what the request asked for cannot be done (the message says why)
    return 500


def _wants_json(request: Request) -> bool:
    return request.query_params.get("format") == "json"


def _signed_in(request: Request) -> bool:
    return COOKIE in request.cookies


def same_site(request: Request) -> bool:
    """Whether a POST comes from a page of this server (or from no browser at all)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:  # no browser sends a form without either: a script with a token
        return not _signed_in(request)
    # behind a proxy the Host may be the proxy's upstream: X-Forwarded-Host names the site (a
    # page elsewhere cannot add headers to a form it makes a browser send)
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    return source != "null" and urlsplit(source).netloc.lower() in {h.lower() for h in hosts if h}


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form (what the console's forms send), UTF-8, bounded; FormError else."""
    if not same_site(request):
        raise FormError("refused: this form was not sent from this server's own pages", 403)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormError("expected a form (application/x-www-form-urlencoded)", 415)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError("the form is too large", 413)
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise FormError("the form is not valid UTF-8", 400) from None
    return {key: values[-1] for key, values in fields.items()}


def local_target(target: str | None) -> str:
    """Where to go after signing in: a path of this server, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class Console:
    """The console's endpoints over one ``ServerContext``."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    def guard(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint`` with every error turned into a page (or JSON), never a traceback."""

        async def guarded(request: Request) -> Response:
            try:
                response = await endpoint(request)
            except Exception as error:
                status = _status_of(error)
                if not isinstance(error, MemfsError):
                    log.exception("console: %s %s failed", request.method, request.url.path)
                    message = "internal error: the server's log has the details"
                else:
                    message = str(error)
                if _wants_json(request):
                    response = Response(
                        views.as_json({"detail": message}), status, media_type="application/json"
                    )
                else:
                    response = HTMLResponse(pages.error(status, message), status)
            response.headers.update(HEADERS)
            return response

        return guarded

    def _render(
        self, request: Request, data: Any, html: Callable[[], str], status: int = 200
    ) -> Response:
        if _wants_json(request):
            return Response(views.as_json(data), status, media_type="application/json")
        return HTMLResponse(html(), status)

    # -- pages -------------------------------------------------------------------------

    async def agents(self, request: Request) -> Response:
        rows = await run_in_threadpool(
            lambda: [a.to_dict() | {"live": None} for a in self.ctx.agents.list()]
        )
        return self._render(
            request, {"agents": rows}, lambda: pages.agents(rows, _signed_in(request))
        )

    def _served(self, name: str) -> dict[str, Any]:
        """The agent as the list shows it, from its bucket folder alone (not a listing)."""
        remote = self.ctx.agents.remote(name)
        manifest, _ = remote.read_manifest()
        identity = remote.identity()
        return {
            "name": name,
            "id": identity.id if identity else name,
            "description": manifest.description if manifest else "",
            "pushed_at": manifest.pushed_at if manifest else None,
            "host": manifest.host if manifest else None,
        }

    async def agent(self, request: Request) -> Response:
        ref = request.path_params["agent"]

        def gather() -> dict[str, Any]:
            name = self.ctx.agents.resolve(ref)
            served = self._served(name)
            with self.ctx.agents.reading(name) as agent:
                return views.overview(agent, served)

        data = await run_in_threadpool(gather)
        notice = ""
        if request.query_params.get("resolved"):
            notice = pages.banner("ok", "Conflict resolved.")
        return self._render(
            request, data, lambda: pages.overview(data, _signed_in(request), notice)
        )

    async def block(self, request: Request) -> Response:
        ref, path = request.path_params["agent"], request.path_params["path"]
        name = await run_in_threadpool(self.ctx.agents.resolve, ref)
        if request.method == "POST":
            return await self._save(request, name, path)
        data = await run_in_threadpool(self._read_block, name, path)
        notice = pages.banner("ok", "Saved.") if request.query_params.get("saved") else ""
        return self._render(
            request, data, lambda: pages.block(name, data, _signed_in(request), notice)
        )

    def _read_block(self, name: str, path: str) -> dict[str, Any]:
        with self.ctx.agents.reading(name) as agent:
            return views.block(agent, path)

    async def _save(self, request: Request, name: str, path: str) -> Response:
        form = await read_form(request)
        base, value = form.get("base", ""), form.get("value", "")
        description = form.get("description")
        value = value.replace("\r\n", "\n")  # browsers send a textarea's lines with CRLF
        try:
            await run_in_threadpool(
                self.ctx.agents.write,
                name,
                lambda agent: views.save_block(agent, path, base, value, description),
                f"memfs: update {path} (console)",
            )
        except PathNotFoundError as error:  # deleted meanwhile: the text goes back to its writer
            return self._kept(request, 409, f"Not saved: {error}", value)
        except WriteConflictError as error:
            data = await run_in_threadpool(self._read_block, name, path)
            mine = {"value": value, "description": description or ""}
            notice = pages.banner(
                "bad",
                "Not saved: this block changed since you opened it.",
                f" {error}. Your text is kept below, unchanged; the version saved meanwhile is "
                "shown above it. Save again to replace that version with your text.",
            )
            return self._render(
                request,
                {"detail": str(error), "current": data, "yours": mine},
                lambda: pages.block(name, data, _signed_in(request), notice, mine),
                409,
            )
        except MemfsError as error:
            return self._kept(request, _status_of(error), f"Not saved: {error}", value)
        target = pages.url("agents", name, "blocks", path) + "?saved=1"
        return RedirectResponse(target, 303)

    def _kept(self, request: Request, status: int, message: str, value: str) -> Response:
        """A save that failed, with the user's text on the page: typing is never lost."""
        return self._render(
            request,
            {"detail": message, "yours": {"value": value}},
            lambda: pages.error(status, message, kept=value),
            status,
        )

    async def history(self, request: Request) -> Response:
        ref, path = request.path_params["agent"], request.path_params["path"]

        def gather() -> tuple[str, dict[str, Any]]:
            name = self.ctx.agents.resolve(ref)
            with self.ctx.agents.reading(name) as agent:
                return name, views.history(agent, path)

        name, data = await run_in_threadpool(gather)
        notice = ""
        if request.query_params.get("restored"):
            notice = pages.banner("ok", f"Restored to {request.query_params['restored'][:7]}.")
        return self._render(
            request, data, lambda: pages.history(name, data, _signed_in(request), notice)
        )

    async def restore(self, request: Request) -> Response:
        ref, path = request.path_params["agent"], request.path_params["path"]
        form = await read_form(request)
        rev = form.get("rev", "")
        name = await run_in_threadpool(self.ctx.agents.resolve, ref)
        shown = rev[:7] if len(rev) == 40 else rev
        await run_in_threadpool(
            self.ctx.agents.write,
            name,
            lambda agent: views.restore(agent, path, rev),
            f"memfs: restore {path} to {shown} (console)",
        )
        return RedirectResponse(
            pages.url("agents", name, "history", path) + f"?restored={rev[:12]}", 303
        )

    async def conflict(self, request: Request) -> Response:
        ref, path = request.path_params["agent"], request.path_params["path"]
        name = await run_in_threadpool(self.ctx.agents.resolve, ref)
        if request.method == "POST":
            form = await read_form(request)
            copy, keep = form.get("copy") or None, form.get("keep", "")
            await run_in_threadpool(
                self.ctx.agents.write,
                name,
                lambda agent: views.settle_conflict(agent, path, copy, keep),
                f"memfs: resolve conflict in {path} (kept {keep}, console)",
            )
            return RedirectResponse(pages.url("agents", name) + "?resolved=1", 303)

        def gather() -> dict[str, Any]:
            with self.ctx.agents.reading(name) as agent:
                return views.conflict(agent, path, request.query_params.get("copy"))

        data = await run_in_threadpool(gather)
        return self._render(request, data, lambda: pages.conflict(name, data, _signed_in(request)))

    # -- signing in ----------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            target = local_target(request.query_params.get("next"))
            return HTMLResponse(pages.login(target))
        form = await read_form(request)
        token, target = form.get("token", "").strip(), local_target(form.get("next"))
        if not token:
            return HTMLResponse(pages.login(target, "Enter a token."), 400)
        if not self.ctx.authenticate(token):
            return HTMLResponse(pages.login(target, "That token is not valid here."), 401)
        response = RedirectResponse(target, 303)
        set_login_cookie(response, token, secure=request.url.scheme == "https")
        return response

    async def logout(self, request: Request) -> Response:
        await read_form(request)  # the same-site check: no page elsewhere signs anyone out
        response = RedirectResponse("/login", 303)
        clear_login_cookie(response)
        return response
