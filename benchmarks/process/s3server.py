"""moto's S3 on 127.0.0.1 for the whole-process benchmark, counting requests and body bytes.

Served single-threaded, as tests/s3.py serves it (DESIGN.md §10), from a thread of the
benchmark process: that process only waits on the measured command while it runs. A WSGI
middleware counts each request and the body bytes read from and sent to clients, so every
measured operation can say what it cost on the wire (requests, bytes up, bytes down).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from moto.moto_server.werkzeug_app import create_backend_app

from tests.s3 import serve_wsgi

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Traffic:
    """What the clients of the server cost it: requests, body bytes received and sent."""

    requests: int = 0
    bytes_up: int = 0
    bytes_down: int = 0

    def __sub__(self, earlier: Traffic) -> Traffic:
        return Traffic(
            self.requests - earlier.requests,
            self.bytes_up - earlier.bytes_up,
            self.bytes_down - earlier.bytes_down,
        )


class CountingServer:
    """A running moto S3 endpoint and the traffic it has served so far."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._requests = 0
        self._up = 0
        self._down = 0

    def traffic(self) -> Traffic:
        """The totals so far; subtract an earlier reading to get one operation's cost."""
        with self._lock:
            return Traffic(self._requests, self._up, self._down)

    def count(self, requests: int = 0, up: int = 0, down: int = 0) -> None:
        with self._lock:
            self._requests += requests
            self._up += up
            self._down += down


class _CountedInput:
    """A request body stream that counts what the application reads from it."""

    def __init__(self, stream: Any, server: CountingServer) -> None:
        self._stream = stream
        self._server = server

    def read(self, *args: Any) -> bytes:
        data: bytes = self._stream.read(*args)
        self._server.count(up=len(data))
        return data

    def readline(self, *args: Any) -> bytes:
        data: bytes = self._stream.readline(*args)
        self._server.count(up=len(data))
        return data

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            self._server.count(up=len(line))
            yield line


def _counting(app: Any, server: CountingServer) -> Any:
    """Wrap a WSGI app so that every request and every body byte is counted."""

    def counted(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        server.count(requests=1)
        environ["wsgi.input"] = _CountedInput(environ["wsgi.input"], server)
        body = app(environ, start_response)
        try:
            for chunk in body:
                server.count(down=len(chunk))
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return counted


@contextmanager
def counting_moto_s3() -> Iterator[CountingServer]:
    """Start moto's S3 backend on a free port with traffic counting; stop it afterwards."""
    holder = CountingServer(endpoint="")
    with serve_wsgi(_counting(create_backend_app("s3"), holder)) as endpoint:
        holder.endpoint = endpoint
        yield holder
