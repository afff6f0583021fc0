"""The part of Letta's REST API that reads and writes memory, with Letta's paths and JSON.

Letta's routes (letta-ai/letta ``letta/server/rest_api/routers/v1``: health.py, agents.py,
blocks.py; shapes from letta/schemas and the ``letta-client`` SDK):

- ``GET /v1/health``: ``{"status": "ok", "version"}``.
- ``GET /v1/agents``: AgentState list; ``name`` (exact), ``query_text`` (part of the name),
  ``after``/``before`` (an agent id), ``limit`` (default 50), ``order`` asc|desc,
  ``include=agent.blocks``. memfs sorts by name (an agent's creation time is not in its
  listing), ascending unless ``order=desc``; other Letta filters are ignored.
- ``GET /v1/agents/{id}``: AgentState (memfs.server.agentstate says what is filled).
- ``GET /v1/agents/{id}/core-memory/blocks``, ``GET|PATCH .../core-memory/blocks/{label}``,
  ``GET|PATCH /v1/blocks/{block_id}``: blocks (memfs.server.blocks). A PATCH is a commit
  naming the block and a compare-and-swap push (``AgentCache.write``). A block answer carries
  an ``ETag``; a PATCH with ``If-Match`` is merged with what changed since (or 409 with the
  current value), never a silent overwrite. Without ``If-Match`` a PATCH replaces what the
  bucket holds when it lands, as Letta does.

memfs's own:

- ``GET /v1/agents/{id}/context[?format=letta|text|json&rev=REV]``: what ``memfs context``
  prints; ``letta`` (default) is Letta Code's memory section byte for byte, from HEAD.
- ``GET /v1/agents/{id}/history[?path=P&limit=N]``: commits, newest first (``memfs log``).
- ``GET /v1/agents/{id}/diff?from=A&to=B[&path=P]``: ``{"from", "to", "diff"}``.

Errors are Letta's shape, ``{"detail": "..."}``: 404 no such agent, block, revision or path;
403 a read-only block; 400 a change memfs or Letta's rules refuse; 409 a concurrent edit;
413 a body over 16 MiB; 422 a body that is not a valid update (with pydantic's ``errors``
beside the one-line ``detail``); 502 the bucket failing; 500 anything else, no traceback.

Beside it: memfs.server.blocks (blocks over memory files), .agentstate (AgentState),
.restio (reading requests, error answers), .prompt (contexts, kept per commit).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from memfs.errors import (
    LockTimeoutError,
    MemfsError,
    PathNotFoundError,
    RemoteError,
    RevisionNotFoundError,
    UnsafePathError,
)
from memfs.server.agents import (
    AgentNotFoundError,
    ServedAgent,
    WriteConflictError,
    WriteRefusedError,
)
from memfs.server.agentstate import agent_state
from memfs.server.blocks import (
    BlockChangedError,
    BlockNotFoundError,
    BlockReadOnlyError,
    BlockRefusedError,
    BlockUnreadableError,
    apply_update,
    block_id,
    committed_blocks,
    find_block,
    load,
    readable_blocks,
    to_json,
)
from memfs.server.context import ServerContext
from memfs.server.prompt import CONTEXTS_KEPT, Recent, Rendered, render_context
from memfs.server.restio import (
    HTTPError,
    if_match_sha,
    int_param,
    order_param,
    page,
    parse_update,
    read_body,
    safe_path,
)

log = logging.getLogger("memfs.server")
DEFAULT_PAGE = 50  # Letta's default for agents
DEFAULT_BLOCK_PAGE = 100  # and for an agent's blocks
Handler = Callable[[Request], Awaitable[Response]]
_STATUS: list[tuple[type[Exception], int]] = [
    (AgentNotFoundError, 404),
    (BlockNotFoundError, 404),
    (RevisionNotFoundError, 404),
    (PathNotFoundError, 404),
    (BlockReadOnlyError, 403),
    (BlockRefusedError, 400),
    (WriteRefusedError, 400),
    (UnsafePathError, 400),
    (BlockUnreadableError, 422),
    (LockTimeoutError, 503),
    (RemoteError, 502),
]


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """The REST routes."""
    api = LettaApi(ctx)
    blocks = "/v1/agents/{agent_id}/core-memory/blocks"
    table: list[tuple[str, Handler, list[str]]] = [
        ("/v1/health", api.health, ["GET"]),
        ("/v1/health/", api.health, ["GET"]),
        ("/v1/agents", api.list_agents, ["GET"]),
        ("/v1/agents/", api.list_agents, ["GET"]),
        ("/v1/agents/{agent_id}", api.retrieve_agent, ["GET"]),
        (blocks, api.list_blocks, ["GET"]),
        (blocks + "/", api.list_blocks, ["GET"]),
        (blocks + "/{label:path}", api.block_by_label, ["GET", "PATCH"]),
        ("/v1/blocks/{block_id}", api.block_by_id, ["GET", "PATCH"]),
        ("/v1/agents/{agent_id}/context", api.context, ["GET"]),
        ("/v1/agents/{agent_id}/history", api.history, ["GET"]),
        ("/v1/agents/{agent_id}/diff", api.diff, ["GET"]),
    ]
    return [Route(path, _answering(handler), methods=methods) for path, handler, methods in table]


def _answering(handler: Handler) -> Handler:
    """``handler`` with every error turned into Letta's JSON error: never a traceback."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except HTTPError as error:
            return JSONResponse(error.body, status_code=error.status)
        except MemfsError as error:
            for kind, status in _STATUS:
                if isinstance(error, kind):
                    return JSONResponse({"detail": str(error)}, status_code=status)
            log.warning("%s %s: %s", request.method, request.url.path, error)
            return JSONResponse({"detail": str(error)}, status_code=400)
        except Exception as error:  # the server must answer, and say no more than this
            kind = type(error).__name__
            log.error("%s %s: %s: %s", request.method, request.url.path, kind, error)
            return JSONResponse({"detail": "An unknown error occurred"}, status_code=500)

    return endpoint


class LettaApi:
    """The REST endpoints over one ServerContext; state is caches only (ids never change)."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._created: dict[str, tuple[str, str]] = {}  # name -> (id, created_at), write-once
        self._block_ids: dict[str, tuple[str, str]] = {}  # block id -> (agent name, label)
        self._contexts: Recent[tuple[str, str, str], Rendered] = Recent(CONTEXTS_KEPT)

    # -- Letta's routes -------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        from memfs import __version__

        return JSONResponse({"status": "ok", "version": __version__})

    async def list_agents(self, request: Request) -> Response:
        query = request.query_params
        limit = int_param(query.get("limit"), "limit", DEFAULT_PAGE)
        with_blocks = "agent.blocks" in query.getlist("include")
        descending = order_param(query.get("order"))

        def work() -> list[dict[str, Any]]:
            agents = self.ctx.agents.list()
            name, text = query.get("name"), (query.get("query_text") or "").lower()
            agents = [a for a in agents if (name is None or a.name == name) and text in a.name]
            if descending or query.get("ascending") == "false":
                agents.reverse()
            states = [(agent.id, agent) for agent in agents]
            shown = page(states, query.get("after"), query.get("before"), limit)
            return [self._state(agent, with_blocks) for _, agent in shown]

        return JSONResponse(await run_in_threadpool(work))

    async def retrieve_agent(self, request: Request) -> Response:
        ref = request.path_params["agent_id"]
        with_blocks = "agent.blocks" in request.query_params.getlist("include")

        def work() -> dict[str, Any]:
            return self._state(self._served(ref), with_blocks)

        return JSONResponse(await run_in_threadpool(work))

    async def list_blocks(self, request: Request) -> Response:
        ref = request.path_params["agent_id"]
        query = request.query_params
        limit = int_param(query.get("limit"), "limit", DEFAULT_BLOCK_PAGE)
        descending = order_param(query.get("order"))

        def work() -> list[dict[str, Any]]:
            name = self.ctx.agents.resolve(ref)
            agent_id = self._identity(name)[0]
            with self.ctx.agents.reading(name) as agent:
                found = readable_blocks(agent, agent_id)
            for block in found:
                self._block_ids[block["id"]] = (name, block["label"])
            if descending:
                found.reverse()
            return page(found, query.get("after"), query.get("before"), limit)

        return JSONResponse(await run_in_threadpool(work))

    async def block_by_label(self, request: Request) -> Response:
        ref, label = request.path_params["agent_id"], request.path_params["label"]
        if request.method == "PATCH":
            return await self._patch(request, ref, label)
        return await run_in_threadpool(self._block_answer, ref, label)

    async def block_by_id(self, request: Request) -> Response:
        wanted = request.path_params["block_id"]
        name, label = await run_in_threadpool(self._find_block_id, wanted)
        if request.method == "PATCH":
            return await self._patch(request, name, label)
        return await run_in_threadpool(self._block_answer, name, label)

    # -- memfs's own ----------------------------------------------------------------------

    async def context(self, request: Request) -> Response:
        ref = request.path_params["agent_id"]
        form = request.query_params.get("format", "letta")
        rev = request.query_params.get("rev") or "HEAD"
        if form not in ("letta", "text", "json"):
            raise HTTPError(422, f"format: must be letta, text or json, not {form!r}")

        def work() -> Response:
            with self.ctx.agents.reading(ref) as agent:
                sha = agent.history.resolve(rev)
                key = (str(agent.root), sha, form)
                rendered = self._contexts.get(key)
                if rendered is None:
                    rendered = self._contexts.put(key, render_context(agent, sha, form))
            payload, problems = rendered
            headers = {"X-Memfs-Problems": str(problems)}
            if isinstance(payload, dict):
                return JSONResponse(payload, headers=headers)
            return Response(payload, media_type="text/plain; charset=utf-8", headers=headers)

        return await run_in_threadpool(work)

    async def history(self, request: Request) -> Response:
        ref = request.path_params["agent_id"]
        path = safe_path(request.query_params.get("path"))
        limit = int_param(request.query_params.get("limit"), "limit", 100)

        def work() -> list[dict[str, object]]:
            with self.ctx.agents.reading(ref) as agent:
                return [commit.to_dict() for commit in agent.log(path, limit)]

        return JSONResponse(await run_in_threadpool(work))

    async def diff(self, request: Request) -> Response:
        ref = request.path_params["agent_id"]
        query = request.query_params
        path = safe_path(query.get("path"))

        def work() -> dict[str, str]:
            with self.ctx.agents.reading(ref) as agent:
                history = agent.history
                new = history.resolve(query.get("to") or "HEAD")
                if query.get("from"):
                    old = history.resolve(query["from"])
                else:
                    parents = history.commit_info(new).parents
                    old = parents[0] if parents else None
                if old is None:
                    raise HTTPError(404, f"{new[:7]} has no parent: give 'from'")
                data = agent.diff(old, new, (path,) if path else ())
            return {"from": old, "to": new, "diff": data.decode("utf-8", errors="replace")}

        return JSONResponse(await run_in_threadpool(work))

    # -- the pieces -----------------------------------------------------------------------

    def _identity(self, name: str) -> tuple[str, str]:
        """(id, created_at) of agent ``name`` from its memfs.json, written once: cached."""
        known = self._created.get(name)
        if known is not None:
            return known
        identity = self.ctx.agents.remote(name).identity()
        if identity is None or not identity.id:
            return name, ""
        self._created[name] = (identity.id, identity.created_at or "")
        return self._created[name]

    def _served(self, ref: str) -> ServedAgent:
        name = self.ctx.agents.resolve(ref)
        manifest, _ = self.ctx.agents.remote(name).read_manifest()
        if manifest is None:
            raise AgentNotFoundError(f"no agent {ref!r} in this cloud")
        head = manifest.refs.get("main") or next(iter(manifest.refs.values()), None)
        agent_id = self._identity(name)[0]
        return ServedAgent(
            name, agent_id, manifest.description, manifest.pushed_at, manifest.host, head
        )

    def _state(self, served: ServedAgent, with_blocks: bool) -> dict[str, Any]:
        created = self._identity(served.name)[1]
        blocks = None
        if with_blocks:
            with self.ctx.agents.reading(served.name) as agent:
                blocks = readable_blocks(agent, served.id)
        return agent_state(served, created, blocks)

    def _block_answer(self, ref: str, label: str, status: int = 200) -> Response:
        block, etag = self._block(ref, label)
        return JSONResponse(block, status_code=status, headers={"ETag": f'"{etag}"'})

    def _block(self, ref: str, label: str) -> tuple[dict[str, Any], str]:
        name = self.ctx.agents.resolve(ref)
        agent_id = self._identity(name)[0]
        with self.ctx.agents.reading(name) as agent:
            stored = find_block(agent, label)
            answer = to_json(agent_id, stored, load(agent, stored))
        self._block_ids[answer["id"]] = (name, label)
        return answer, stored.etag

    def _find_block_id(self, wanted: str) -> tuple[str, str]:
        """The agent and label of block ``wanted``: from the cache, else by listing every
        agent's blocks (the id is a hash: a server that never saw it finds it this way)."""
        if wanted not in self._block_ids:
            for served in self.ctx.agents.list():
                with self.ctx.agents.reading(served.name) as agent:
                    for label in committed_blocks(agent):
                        self._block_ids[block_id(served.id, label)] = (served.name, label)
                if wanted in self._block_ids:
                    break
        if wanted not in self._block_ids:
            raise BlockNotFoundError(f"Block with id '{wanted}' not found")
        return self._block_ids[wanted]

    async def _patch(self, request: Request, ref: str, label: str) -> Response:
        update = parse_update(await read_body(request))
        if_match = if_match_sha(request.headers.get("if-match"))

        def work() -> Response:
            name = self.ctx.agents.resolve(ref)
            agent_id = self._identity(name)[0]
            message = f"memfs: update block {label} (REST API)"
            try:
                written, memory_file = self.ctx.agents.write(
                    name, lambda agent: apply_update(agent, label, update, if_match), message
                )
            except (WriteConflictError, BlockChangedError) as error:
                current, etag = self._block(ref, label)
                raise HTTPError(409, str(error), value=current["value"], etag=etag) from error
            # the block as this PATCH wrote it (merged with what If-Match missed); should the
            # push have merged a concurrent edit in too, a GET shows it, and the ETag here
            # still names a version an If-Match can merge from
            answer = to_json(agent_id, written, memory_file)
            return JSONResponse(answer, headers={"ETag": f'"{written.etag}"'})

        return await run_in_threadpool(work)
