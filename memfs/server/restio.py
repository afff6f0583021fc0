"""Reading REST requests and shaping error answers, as Letta's API does.

The request side of memfs.server.lettaapi: a PATCH body as Letta's ``BlockUpdate`` (422 with
one clear line, pydantic's errors beside it), the body size cap (413), ``If-Match``, query
numbers and paths, Letta's cursor paging; and ``HTTPError``, an answer with Letta's
``{"detail": ...}`` body.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError
from starlette.requests import Request

from memfs.server.blocks import BlockUpdate

MAX_BODY = 16 * 1024 * 1024
T = TypeVar("T")


class HTTPError(Exception):
    """An answer other than 200, with Letta's ``{"detail": ...}`` body and more fields."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"detail": detail, **extra}


def parse_update(body: bytes) -> BlockUpdate:
    """The PATCH body as Letta's BlockUpdate; HTTPError 422 with one clear line otherwise."""
    try:
        return BlockUpdate.model_validate_json(body or b"{}")
    except ValidationError as error:
        errors = error.errors(include_url=False, include_context=False)
        first = errors[0]
        where = ".".join(["body", *(str(part) for part in first["loc"])])
        if first["type"] == "extra_forbidden":
            fields = ", ".join(BlockUpdate.model_fields)
            what = f"unknown field (a block update has {fields})"
        elif first["type"] == "json_invalid":
            what = f"not valid JSON ({first['msg'].removeprefix('Invalid JSON: ')})"
        else:
            what = first["msg"]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        listed = [{"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]} for e in errors]
        raise HTTPError(422, f"{where}: {what}{more}", errors=listed) from None


async def read_body(request: Request) -> bytes:
    """The request body, refused (413) past MAX_BODY without reading the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPError(413, f"body over {MAX_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPError(413, f"body over {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def if_match_sha(header: str | None) -> str | None:
    """The blob sha an ``If-Match`` names (``"sha"``, ``W/"sha"`` or ``*``), or None."""
    if not header:
        return None
    value = header.split(",")[0].strip().removeprefix("W/").strip('"')
    return value or None


def order_param(text: str | None) -> bool:
    """Letta's ``order``: True for ``desc``; 422 for anything but asc or desc."""
    if text in (None, "", "asc"):
        return False
    if text == "desc":
        return True
    raise HTTPError(422, f"order: must be asc or desc, not {text!r}")


def int_param(text: str | None, name: str, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPError(422, f"{name}: must be a whole number, not {text!r}") from None
    if value < 1:
        raise HTTPError(422, f"{name}: must be 1 or more")
    return value


def safe_path(path: str | None) -> str | None:
    """A path parameter, refused (400) unless it is a plain relative path inside the agent."""
    if not path:
        return None
    from memfs.worktree import check_path

    check_path(path)
    return path


def page(items: list[T], after: str | None, before: str | None, limit: int) -> list[T]:
    """Letta's cursor paging: the items after (or before) the one with that id (an item is
    a dict with an ``id`` or an ``(id, item)`` pair)."""
    ids = [item[0] if isinstance(item, tuple) else item["id"] for item in items]  # type: ignore[index]
    if after:
        return items[ids.index(after) + 1 :][:limit] if after in ids else []
    if before:
        return items[: ids.index(before)][-limit:] if before in ids else []
    return items[:limit]
