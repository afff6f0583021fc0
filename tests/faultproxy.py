"""An HTTP proxy on 127.0.0.1 that injects faults in front of an S3 endpoint (moto, tests/s3.py).

On a seeded fraction of requests it does one of four things a real network or a real S3 does:

- ``500-before``: answers 500 InternalError without forwarding (nothing happened);
- ``500-after``: forwards, lets the server apply the request, then answers 500 (the write
  happened, the client thinks it failed);
- ``reset-before``: resets the connection before forwarding (nothing happened);
- ``reset-after``: forwards, then resets the connection (the write happened, no answer).

Requests are handled one at a time (one lock around decide + forward + answer), so the
server behind keeps its single-threaded order and a seed gives the same fault sequence for the
same request sequence. ``counts`` says how many faults of each kind were injected and
``requests`` how many requests went through. ``kinds`` narrows the faults to choose from;
``enabled = False`` (or ``rate = 0``) turns it into a plain proxy. The client's own retries (botocore/s3fs) are left as a user has them: they will
retry some of these faults by themselves, which is part of what is tested.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULT_KINDS = ("500-before", "500-after", "reset-before", "reset-after")
INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class FaultProxy:
    """The proxy's settings and counters; ``endpoint`` is what clients talk to."""

    def __init__(
        self, upstream: str, rate: float = 0.2, seed: int = 0, pass_first: int = 0
    ) -> None:
        self.upstream = urlsplit(upstream)
        self.rate = rate
        self.pass_first = pass_first  # requests let through untouched before any fault
        self.enabled = True
        self.random = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.requests = 0
        self.lock = threading.Lock()
        self.endpoint = ""
        self.kinds: tuple[str, ...] = FAULT_KINDS  # the kinds to choose from

    def choose_fault(self) -> str | None:
        """The fault for the next request, or None to pass it through."""
        self.requests += 1
        if self.requests <= self.pass_first:
            return None
        if not self.enabled or self.random.random() >= self.rate:
            return None
        kind = self.random.choice(self.kinds)
        self.counts[kind] += 1
        return kind

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send one request to the upstream server; its status, reason, headers and body."""
        connection = http.client.HTTPConnection(
            self.upstream.hostname, self.upstream.port, timeout=60
        )
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            connection.close()


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Close the client's connection with a TCP RST (SO_LINGER 0), as a dropped link does."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True
    handler.connection.close()


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, by Content-Length or chunked transfer encoding."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def handle_any(self) -> None:
            body = _read_body(self)
            with proxy.lock:
                fault = proxy.choose_fault()
                if fault == "reset-before":
                    _reset(self)
                    return
                if fault == "500-before":
                    self.answer(500, "Internal Server Error", [], INTERNAL_ERROR)
                    return
                status, reason, headers, data = proxy.forward(
                    self.command, self.path, list(self.headers.items()), body
                )
                if fault == "reset-after":
                    _reset(self)
                elif fault == "500-after":
                    self.answer(500, "Internal Server Error", [], INTERNAL_ERROR)
                else:
                    self.answer(status, reason, headers, data)

        def answer(
            self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes
        ) -> None:
            self.send_response_only(status, reason)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            if status == 500 and not headers:
                self.send_header("Content-Type", "application/xml")
            if self.command != "HEAD" or status >= 300 or not headers:
                self.send_header("Content-Length", str(len(data)))
            else:
                length = dict((k.lower(), v) for k, v in headers).get("content-length", "0")
                self.send_header("Content-Length", length)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

    return Handler


@contextmanager
def fault_proxy(
    upstream: str, rate: float = 0.2, seed: int = 0, pass_first: int = 0
) -> Iterator[FaultProxy]:
    """Run a FaultProxy in front of ``upstream`` (http://host:port) on a free local port."""
    proxy = FaultProxy(upstream, rate, seed, pass_first)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(proxy))
    server.daemon_threads = True
    proxy.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
