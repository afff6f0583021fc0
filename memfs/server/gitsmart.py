"""Git smart HTTP at ``/v1/git/<agent-id or name>/state.git`` (Letta Code's memory URL).

The four requests of git's smart HTTP protocol (v0/v1; a client asking for v2 is answered in
v0, which every git since 2.18 falls back to):

    GET  .../info/refs?service=git-upload-pack     the refs, for clone, fetch and pull
    POST .../git-upload-pack                        the objects the client wants
    GET  .../info/refs?service=git-receive-pack    the refs, for push
    POST .../git-receive-pack                       the client's pack and ref updates

Every request reads the agent through ``AgentCache.reading``: the bucket's latest push is
what is advertised and served. A push stores the client's objects in the cache and moves the
bucket's head with its compare-and-swap (``gitpush``), so git clients, memfs watchers and
other servers interleave without losing a commit. Only the agent's branch is served and
pushed; other branches, tags and deleting the branch are refused with a reason git shows.
``/v1/git/<agent>/...`` without ``state.git`` (an older Letta Code origin) is served too.

Errors before the protocol starts are HTTP errors with a ``text/plain`` body, which git
prints as ``remote: ...``; errors of one ref are ``ng`` lines git prints after the ref.
Auth is the app's middleware's: these routes never look at tokens.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from memfs.errors import MemfsError
from memfs.server import gitpack, gitpush
from memfs.server.agents import AgentNotFoundError
from memfs.server.context import ServerContext

if TYPE_CHECKING:
    from memfs.agent import Agent

log = logging.getLogger("memfs.server.git")

PREFIXES = ("/v1/git/{agent}/state.git", "/v1/git/{agent}")
MAX_BODY_ENV = "MEMFS_SERVE_MAX_BODY"  # bytes of one git request (a push's pack), unpacked
DEFAULT_MAX_BODY = 256 * 1024 * 1024
CLONE_CACHE_ENV = "MEMFS_SERVE_CLONE_CACHE"  # bytes of whole-clone answers kept (0: none)
DEFAULT_CLONE_CACHE = 64 * 1024 * 1024
NO_CACHE = {
    "Cache-Control": "no-cache, max-age=0, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "Fri, 01 Jan 1980 00:00:00 GMT",
}
_HEX = frozenset("0123456789abcdef")


class _BadRequest(Exception):
    """The request cannot be served as sent; carries the HTTP status and one line for git."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """The git routes, under ``state.git`` and Letta Code's older bare agent path."""
    git = _GitRoutes(ctx)
    found: list[BaseRoute] = []
    for prefix in PREFIXES:
        found += [
            Route(f"{prefix}/info/refs", _guarded(git.info_refs), methods=["GET"]),
            Route(f"{prefix}/git-upload-pack", _guarded(git.upload_pack), methods=["POST"]),
            Route(f"{prefix}/git-receive-pack", _guarded(git.receive_pack), methods=["POST"]),
        ]
    return found


class _GitRoutes:
    """The endpoints; the git work runs on a worker thread, holding the agent's read."""

    def __init__(self, ctx: ServerContext) -> None:
        from memfs.config import count_from_env

        self.ctx = ctx
        self.clones = gitpack.CloneCache(count_from_env(CLONE_CACHE_ENV, DEFAULT_CLONE_CACHE))

    async def info_refs(self, request: Request) -> Response:
        service = request.query_params.get("service", "")
        if service not in gitpack.SERVICES:
            raise _BadRequest(
                403, "memfs serves git's smart HTTP protocol only (git 1.6.6 or newer)"
            )
        agent = request.path_params["agent"]
        body = await run_in_threadpool(self._advertise, agent, service)
        return _git_response(body, f"application/x-{service}-advertisement")

    async def upload_pack(self, request: Request) -> Response:
        body = await _request_body(request, gitpack.UPLOAD_PACK)
        out = await run_in_threadpool(self._upload, request.path_params["agent"], body)
        return _git_response(out, f"application/x-{gitpack.UPLOAD_PACK}-result")

    async def receive_pack(self, request: Request) -> Response:
        body = await _request_body(request, gitpack.RECEIVE_PACK)
        out = await run_in_threadpool(self._receive, request.path_params["agent"], body)
        return _git_response(out, f"application/x-{gitpack.RECEIVE_PACK}-result")

    # -- on a worker thread ----------------------------------------------------------------

    def _advertise(self, ref: str, service: str) -> bytes:
        name = self.ctx.agents.resolve(ref)
        # a client's first request: it may have pushed through another server a moment ago,
        # so the bucket is asked whatever the cache's window (a 304 when nothing moved)
        with self.ctx.agents.reading(name, fresh_s=0) as agent:
            branch = agent.history.branch()
            refs = gitpack.branch_refs(branch, _served_head(agent))
            return gitpack.advertisement(agent.history.repo, service, refs, branch)

    def _upload(self, ref: str, body: bytes) -> bytes:
        name = self.ctx.agents.resolve(ref)
        clone = gitpack.whole_clone(body)
        if clone:
            cached = self.clones.get(name, body)
            if cached is not None:
                return cached
        # the client's info/refs may have come from another server that saw a newer push
        # than this cache's last look: a want this checkout lacks asks the bucket again
        fresh = None if self._knows_wants(name, body) else 0.0
        with self.ctx.agents.reading(name, fresh_s=fresh) as agent:
            history = agent.history
            head = _served_head(agent)
            refs = gitpack.branch_refs(history.branch(), head)
            for sha in gitpack.wanted(body):
                if (
                    head is not None
                    and sha not in refs.values()
                    and len(sha) == 40
                    and set(sha) <= _HEX
                    and history.has_commit(sha)
                    and history.is_ancestor(sha, head)
                ):
                    refs[f"refs/memfs/reachable/{sha}"] = sha  # never advertised: allowed
            answer = gitpack.upload(history.repo, refs, body)
        if clone:
            self.clones.put(name, body, answer)
        return answer

    def _knows_wants(self, name: str, body: bytes) -> bool:
        """Whether the checkout of ``name``, as the cache's last look left it, holds every
        commit the upload-pack request ``body`` wants."""
        with self.ctx.agents.reading(name) as agent:
            return all(
                len(sha) == 40 and set(sha) <= _HEX and agent.history.has_commit(sha)
                for sha in gitpack.wanted(body)
            )

    def _receive(self, ref: str, body: bytes) -> bytes:
        name = self.ctx.agents.resolve(ref)
        remote = self.ctx.agents.remote(name)
        # the bucket's latest, whatever the window: the client's pack is thin against the head
        # it was shown, maybe by another server that saw a push this cache has not yet
        with self.ctx.agents.reading(name, fresh_s=0) as agent:
            refs = gitpack.branch_refs(agent.history.branch(), _served_head(agent))
            refs.pop("HEAD", None)

            def decide(updates: list[gitpack.RefUpdate], atomic: bool) -> list[str | None]:
                return gitpush.decide(agent, remote, updates, atomic)

            from memfs.agentmanifest import max_file_size
            from memfs.config import count_from_env

            limits = (max_file_size(agent), count_from_env(MAX_BODY_ENV, DEFAULT_MAX_BODY))
            try:
                return gitpack.receive(agent.history.repo, refs, body, decide, limits)
            finally:
                # the bucket moved (this push) or was found moved (fetch first): the next
                # read, the client's pull first of all, must look at it again
                self.ctx.agents.invalidate(name)


def _served_head(agent: Agent) -> str | None:
    """The head to advertise: the bucket's, as the cache's last look at it saw it (a
    checkout from ``AgentCache.reading`` is at that head)."""
    return agent.history.head()


async def _request_body(request: Request, service: str) -> bytes:
    """The request's body, gunzipped if git sent it so; bounded in size."""
    kind = request.headers.get("content-type", "")
    if kind != f"application/x-{service}-request":
        raise _BadRequest(415, f"memfs: expected Content-Type application/x-{service}-request")
    from memfs.config import count_from_env

    limit = count_from_env(MAX_BODY_ENV, DEFAULT_MAX_BODY)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BadRequest(413, f"memfs: request larger than {limit} bytes ({MAX_BODY_ENV})")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return _gunzip(body, limit)
    if encoding not in ("", "identity"):
        raise _BadRequest(415, f"memfs: unsupported Content-Encoding {encoding!r}")
    return body


def _gunzip(data: bytes, limit: int) -> bytes:
    """``data`` decompressed, refusing more than ``limit`` bytes (a gzip bomb stays small)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as error:
        raise _BadRequest(400, f"memfs: the request body is not valid gzip ({error})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _BadRequest(413, f"memfs: request larger than {limit} bytes ({MAX_BODY_ENV})")
    return out


def _git_response(body: bytes, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers=NO_CACHE)


Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` with every failure turned into one plain line git shows as ``remote:``."""

    async def guarded(request: Request) -> Response:
        from dulwich.errors import GitProtocolError
        from starlette.requests import ClientDisconnect

        try:
            return await endpoint(request)
        except _BadRequest as bad:
            return _text(bad.status, str(bad))
        except ClientDisconnect:
            return _text(400, "memfs: the client went away mid-request")
        except AgentNotFoundError as missing:
            return _text(404, f"memfs: {missing}")
        except GitProtocolError as error:
            return _text(400, f"memfs: git protocol error: {error}")
        except MemfsError as error:
            log.warning("git %s %s failed: %s", request.method, request.url.path, error)
            return _text(500, f"memfs: {error}")
        except Exception:
            log.exception("git %s %s failed", request.method, request.url.path)
            return _text(500, "memfs: internal error (the server's log has the details)")

    return guarded


def _text(status: int, message: str) -> Response:
    return PlainTextResponse(message.rstrip("\n") + "\n", status_code=status, headers=NO_CACHE)
