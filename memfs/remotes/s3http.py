"""HTTP/1.1 for the thin S3 client (``memfs/remotes/s3.py``): one connection, on ``socket``.

``http.client`` imports email's parser and message classes and ``ssl`` with it: ~15 ms of
every ``memfs push``/``pull`` process, about a tenth of a one-file push. S3 asks little of
HTTP: a request with a Content-Length body, an answer with a status, headers and a body
sized by Content-Length, chunked encoding, or the end of the connection (an HTTP/1.0 server
like moto's). That much is here; ``ssl`` is imported only for an https endpoint.

Errors are ``OSError``s, as the socket's own: ``Closed`` when the server closed the
connection before a whole answer (on a kept-alive connection: send the request again on a
new one), ``BadAnswer`` for bytes that are not HTTP.
"""

from __future__ import annotations

import socket
import threading
import time

from memfs.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

MAX_LINE = 65536  # longest status or header line read
MAX_HEADERS = 200
NO_BODY = (204, 304)


class Closed(ConnectionError):
    """The server closed the connection before a whole answer."""


class BadAnswer(OSError):
    """What the server sent is not an HTTP answer."""


class Answer(Record):
    """One HTTP answer: status, headers (lower-case names; repeated ones joined), body."""

    __slots__ = _fields = ("status", "headers", "body", "will_close")
    status: int
    headers: dict[str, str]
    body: bytes
    will_close: bool  # the server closes the connection after this answer

    def __init__(self, status: int, headers: dict[str, str], body: bytes, will_close: bool) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.will_close = will_close


def split_host(host: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` (``[v6]:port`` for IPv6) -> (host, port)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:] else default_port
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        return name, int(port)
    return host, default_port


class Connection:
    """A kept-alive HTTP/1.1 connection to one host, TLS when given a context."""

    def __init__(self, host: str, timeout: float, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port = split_host(host, 443 if tls is not None else 80)
        self.timeout = timeout
        self.tls = tls
        self.sock: socket.socket | None = None
        self._file: object = None

    def connect(self) -> None:
        """Open the connection (and TLS), waiting up to ``timeout``."""
        # A host name in bytes: a str one makes getaddrinfo import the idna codec (~3 ms).
        address = self.host.encode("ascii") if self.host.isascii() else self.host
        sock = socket.create_connection((address, self.port), self.timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._file = sock.makefile("rb")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # type: ignore[attr-defined]
            self._file = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        """Send one request and read its whole answer."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        lines = [f"{method} {target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("PUT", "POST"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.sock.sendall(body)
        return self._answer(method)

    def _line(self) -> bytes:
        line: bytes = self._file.readline(MAX_LINE + 1)  # type: ignore[attr-defined]
        if len(line) > MAX_LINE:
            raise BadAnswer("a line of the answer is too long")
        if line and not line.endswith(b"\n"):
            raise Closed("the connection was closed in the middle of an answer")
        return line

    def _answer(self, method: str) -> Answer:
        while True:
            status_line = self._line()
            if not status_line:
                raise Closed("the connection was closed before an answer")
            version, _, rest = status_line.decode("latin-1").strip().partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise BadAnswer(f"not an HTTP answer: {status_line[:40]!r}")
            status = int(code)
            headers = self._headers()
            if not 100 <= status < 200:
                break  # 1xx (100 Continue): the answer itself follows
        connection = headers.get("connection", "").lower()
        old_http = version == "HTTP/1.0" and "keep-alive" not in connection
        will_close = "close" in connection or old_http
        if method == "HEAD" or status in NO_BODY:
            return Answer(status, headers, b"", will_close)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return Answer(status, headers, self._chunked(), will_close)
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise BadAnswer(f"Content-Length {length!r}")
            return Answer(status, headers, self._exactly(int(length)), will_close)
        body: bytes = self._file.read()  # type: ignore[attr-defined]  # until the server closes
        return Answer(status, headers, body, True)

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = self._line()
            if line in (b"\r\n", b"\n"):
                return headers
            if not line:
                raise Closed("the connection was closed in the middle of an answer")
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                raise BadAnswer(f"not a header line: {line[:40]!r}")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        raise BadAnswer("too many header lines")

    def _exactly(self, size: int) -> bytes:
        data: bytes = self._file.read(size)  # type: ignore[attr-defined]
        if len(data) < size:
            raise Closed("the connection was closed in the middle of an answer")
        return data

    def _chunked(self) -> bytes:
        parts = []
        while True:
            line = self._line()
            if not line:
                raise Closed("the connection was closed in the middle of an answer")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadAnswer(f"not a chunk size: {size_text[:20]!r}") from None
            if size == 0:
                self._headers()  # trailers, up to the empty line
                return b"".join(parts)
            parts.append(self._exactly(size))
            self._exactly(2)  # the CRLF after each chunk


class KeptConnections:
    """Kept-alive connections by host, each used by one thread at a time and handed to
    whichever thread asks next, the most recently used first: a request made on a thread
    after the caller's own (a push's presence record, a pull's pack fetched by the pool)
    goes on the connection those warmed, with no second TCP or TLS handshake."""

    def __init__(self, reuse_s: float, kept: int) -> None:
        self.reuse_s = reuse_s  # an older idle connection may have been dropped by S3 or a NAT
        self.kept = kept  # idle connections kept per host
        self._lock = threading.Lock()
        self._idle: dict[str, list[tuple[Connection, float]]] = {}

    def take(self, host: str) -> Connection | None:
        """An idle connection to ``host`` used within ``reuse_s``, now the caller's alone
        (until ``give``); None if there is none. Older ones are closed."""
        now, stale, found = time.monotonic(), [], None
        with self._lock:
            idle = self._idle.get(host, [])
            while idle:
                connection, used = idle.pop()
                if now - used < self.reuse_s:
                    found = connection
                    break
                stale.append(connection)
        for connection in stale:
            connection.close()
        return found

    def give(self, host: str, connection: Connection) -> None:
        """Keep ``connection`` (its last answer read whole) for the next request to ``host``."""
        with self._lock:
            idle = self._idle.setdefault(host, [])
            idle.append((connection, time.monotonic()))
            extra = idle[: -self.kept]
            del idle[: -self.kept]
        for old, _ in extra:
            old.close()

    def idle(self, host: str) -> list[Connection]:
        """The connections kept for ``host`` and not in use; the next to serve last."""
        with self._lock:
            return [connection for connection, _ in self._idle.get(host, [])]

    def close(self) -> None:
        """Close every idle connection (one in use stays open until its thread is done)."""
        with self._lock:
            idle = [connection for kept in self._idle.values() for connection, _ in kept]
            self._idle.clear()
        for connection in idle:
            connection.close()


_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


def http_date(text: str) -> float | None:
    """An HTTP ``Date`` (IMF-fixdate, ``Sun, 06 Nov 1994 08:49:37 GMT``) in epoch seconds, or
    None; parsed here because ``email.utils`` costs a few ms of imports."""
    import calendar

    parts = text.replace(",", " ").split()
    try:
        day, month, year, clock = int(parts[1]), _MONTHS[parts[2]], int(parts[3]), parts[4]
        hour, minute, second = (int(part) for part in clock.split(":"))
        return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    except (IndexError, KeyError, ValueError):
        return None


def iso_date(text: str) -> float | None:
    """An S3 ``LastModified`` (``2026-11-30T09:14:07.000Z``) in epoch seconds, or None."""
    from datetime import datetime, timezone

    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()
