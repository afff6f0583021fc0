"""Who may talk to ``memfs serve``: one ASGI middleware in front of every route.

When the server requires tokens, a request passes with one of:
- ``Authorization: Bearer <token>`` (the REST API, ``letta-client``);
- ``Authorization: Basic <user>:<token>`` (git; Letta Code sends ``letta:<api key>``, see
  letta-ai/letta-code ``src/agent/memory-git.ts``; the user name is not checked, as GitHub does
  not check it with a personal token);
- the ``memfs_token`` cookie the console's login form sets (HttpOnly, SameSite=Strict).
Anything else gets 401 with ``WWW-Authenticate: Basic realm="memfs"`` (so git asks its
credential helper), except a browser asking for a console page, which is sent to the login page.
The login page itself (``LOGIN_PATH``) and the console's static files are open: they hold no data.
Routes never check tokens themselves, and nothing here logs a header.

A server without tokens listens on loopback only, and answers only requests that name a
loopback host: a web page whose domain an attacker rebinds to 127.0.0.1 (DNS rebinding) sends
its own host name, and is refused, so it can neither read nor write the memory.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from memfs.server.context import ServerContext
from memfs.server.runner import is_loopback_name

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "memfs_token"
LOGIN_PATH = "/login"
OPEN_PREFIXES = ("/static/",)
REALM = 'Basic realm="memfs", charset="UTF-8"'


def presented_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token a request carries (Bearer, Basic password, or the cookie), if any."""
    cookie_token = None
    for key, value in headers:
        if key == b"authorization":
            scheme, _, credentials = value.decode("latin-1").strip().partition(" ")
            credentials = credentials.strip()
            if scheme.lower() == "bearer" and credentials:
                return credentials
            if scheme.lower() == "basic":
                try:
                    decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    return None
                return decoded.partition(":")[2] or None
        elif key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, cookie_value = part.strip().partition("=")
                if name == COOKIE and cookie_value:
                    cookie_token = cookie_value.strip('"')
    return cookie_token


def set_login_cookie(response: Any, token: str, secure: bool = False) -> None:
    """Put ``token`` in the console's login cookie on a Starlette ``response``."""
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")


def clear_login_cookie(response: Any) -> None:
    """Log the console out: drop the cookie."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


class TokenAuth:
    """The middleware: requests without a valid token get 401 (or the login page)."""

    def __init__(self, app: ASGIApp, ctx: ServerContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self.ctx.token_required:
            if is_loopback_host(dict(scope.get("headers", [])).get(b"host", b"")):
                await self.app(scope, receive, send)
            elif scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await _refuse_host(send)
            return
        path = scope.get("path", "")
        if path == LOGIN_PATH or (path.startswith(OPEN_PREFIXES) and ".." not in path):
            await self.app(scope, receive, send)
            return
        token = presented_token(scope.get("headers", []))
        if token is not None and self.ctx.authenticate(token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _refuse(scope, send, token is not None)


def is_loopback_host(host: bytes) -> bool:
    """Whether a Host header (``name[:port]`` or ``[v6]:port``) names this machine's loopback."""
    name = host.decode("latin-1").strip()
    if name.startswith("["):
        name, closed, _ = name[1:].partition("]")
        return bool(closed) and is_loopback_name(name)
    return is_loopback_name(name.rpartition(":")[0] if ":" in name else name)


async def _refuse_host(send: Send) -> None:
    """403 for a request naming another host to a token-less server (see the module doc)."""
    body = json.dumps(
        {"detail": "this server has no tokens and answers only requests to a loopback host"}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _wants_page(scope: Scope) -> bool:
    """A browser navigating to a console page (not git, not the API)."""
    if scope.get("method") != "GET" or scope.get("path", "").startswith("/v1/"):
        return False
    accept = dict(scope.get("headers", [])).get(b"accept", b"")
    return b"text/html" in accept


async def _refuse(scope: Scope, send: Send, had_token: bool) -> None:
    """401 in the shape the route family expects; a console page redirects to the login."""
    if _wants_page(scope):
        target = scope.get("path", "/")
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            target += "?" + query
        location = f"{LOGIN_PATH}?next={quote(target, safe='')}"
        headers = [(b"location", location.encode("latin-1")), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    detail = "invalid or revoked token" if had_token else "a token is required"
    path = scope.get("path", "")
    if path.startswith("/v1/git/"):
        body, kind = f"memfs: {detail}\n".encode(), b"text/plain; charset=utf-8"
    else:
        body, kind = json.dumps({"detail": detail}).encode(), b"application/json"
    headers = [
        (b"www-authenticate", REALM.encode()),
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
