"""moto's S3 served over real HTTP on 127.0.0.1, single-threaded (DESIGN.md §8).

moto's own threaded server checks conditional writes without a lock and was seen letting two
writers win one compare-and-swap; served by one thread, requests are handled one at a time.
A counter records every request, so tests can assert how many a push made.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from moto.moto_server.werkzeug_app import create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.servers import serving

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class MotoServer:
    """A running moto S3 endpoint and the requests it has served."""

    endpoint: str
    requests: list[tuple[str, str]] = field(default_factory=list)

    def count(self, method: str | None = None, contains: str = "") -> int:
        return sum(
            1 for m, path in self.requests if (method is None or m == method) and contains in path
        )

    def by_method(self) -> Counter[str]:
        return Counter(method for method, _ in self.requests)


DENIED_PREFIX = "/denied-"
ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


def _counting(app: Any, server: MotoServer) -> Any:
    """Count requests; answer S3's real 403 AccessDenied for buckets named ``denied-*``."""

    def counted(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        server.requests.append((environ["REQUEST_METHOD"], path))
        if path.startswith(DENIED_PREFIX):
            start_response("403 Forbidden", [("Content-Type", "application/xml")])
            return [ACCESS_DENIED]
        return app(environ, start_response)

    return counted


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request: formatting and printing it cost as much as serving."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free port of 127.0.0.1 from one thread, one request at a time,
    without an access log line per request; yield its endpoint URL, stop it afterwards."""
    server = make_server("127.0.0.1", 0, app, threaded=False, request_handler=_QuietHandler)
    with serving(server) as endpoint:
        yield endpoint


@contextmanager
def moto_s3() -> Iterator[MotoServer]:
    """Start moto's S3 on a free port; stop it afterwards.

    The S3 backend is served directly (not through moto's dispatcher, which works out the
    service from every request's host and path): half the CPU per request, so the server
    takes less from the code it serves on a small machine.
    """
    holder = MotoServer(endpoint="")
    with serve_wsgi(_counting(create_backend_app("s3"), holder)) as endpoint:
        holder.endpoint = endpoint
        yield holder
