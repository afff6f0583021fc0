"""The S3 client's own HTTP/1.1 (memfs/remotes/s3http.py) against answers sent byte for byte.

Each test serves one canned answer from a socket on 127.0.0.1 (what a server, a proxy or a
broken middlebox may send) and checks what the client makes of it; the client against moto
and a fault proxy is tests/test_s3client.py and tests/test_faults.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from memfs.remotes.s3http import BadAnswer, Closed, Connection, split_host


@contextmanager
def answering(*answers: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """A server on 127.0.0.1 that reads one request per answer on one connection, sends
    the answer, and closes after the last; yields its host:port and the requests read."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            reader = conn.makefile("rb")
            for answer in answers:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                received.append(head + reader.read(length))
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", received
    finally:
        listener.close()
        thread.join(timeout=10)


def test_a_body_by_content_length_then_a_kept_alive_second_request() -> None:
    answer = b'HTTP/1.1 200 OK\r\nETag: "x"\r\nContent-Length: 5\r\n\r\nhello'
    with answering(answer, answer) as (host, received):
        connection = Connection(host, 5.0)
        first = connection.request("PUT", "/b/k", {"host": host}, b"data")
        second = connection.request("GET", "/b/k", {"host": host}, b"")
        connection.close()
    assert (first.status, first.body, first.headers["etag"]) == (200, b"hello", '"x"')
    assert second.body == b"hello" and not second.will_close
    assert received[0].startswith(b"PUT /b/k HTTP/1.1\r\nhost: ")
    assert b"Content-Length: 4\r\n\r\ndata" in received[0]
    assert b"Content-Length" not in received[1], "a GET sends no body length"


def test_a_chunked_body_with_an_extension_and_trailers() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=x\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    with answering(answer) as (host, _):
        got = Connection(host, 5.0).request("GET", "/", {}, b"")
    assert got.body == b"hello world"


def test_http_1_0_without_a_length_reads_to_the_end_and_closes() -> None:
    with answering(b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nall of it") as (host, _):
        got = Connection(host, 5.0).request("GET", "/", {}, b"")
    assert got.body == b"all of it" and got.will_close


def test_continue_is_skipped_and_repeated_headers_are_joined() -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 412 Precondition Failed\r\nX-A: 1\r\nx-a: 2\r\nConnection: close\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    with answering(answer) as (host, _):
        got = Connection(host, 5.0).request("PUT", "/", {}, b"")
    assert (got.status, got.headers["x-a"], got.will_close) == (412, "1, 2", True)


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_for_204_304_and_head(status: int) -> None:
    answer = f"HTTP/1.1 {status} X\r\nContent-Length: 10\r\n\r\n".encode()
    with answering(answer, answer) as (host, _):
        connection = Connection(host, 5.0)
        assert connection.request("GET", "/", {}, b"").body == b""
        assert connection.request("HEAD", "/", {}, b"").body == b""


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"", Closed),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", Closed),
        (b"HTTP/1.1 200 OK\r\nContent-Le", Closed),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", Closed),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", BadAnswer),
        (b"<html>a portal</html>\r\n", BadAnswer),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", BadAnswer),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", BadAnswer),
    ],
    ids=["nothing", "short", "cut-headers", "cut-chunk", "bad-chunk", "html", "header", "length"],
)
def test_what_is_not_a_whole_answer_is_an_error(answer: bytes, error: type[Exception]) -> None:
    with answering(answer) as (host, _), pytest.raises(error):
        Connection(host, 5.0).request("GET", "/", {}, b"")


def test_a_body_larger_than_one_send() -> None:
    body = bytes(range(256)) * 1024  # 256 KiB: sent after the head, not joined to it
    with answering(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as (host, received):
        Connection(host, 5.0).request("PUT", "/big", {}, body)
    assert received[0].endswith(b"\r\n\r\n" + body)


def test_host_and_port() -> None:
    assert split_host("s3.amazonaws.com", 443) == ("s3.amazonaws.com", 443)
    assert split_host("127.0.0.1:9000", 80) == ("127.0.0.1", 9000)
    assert split_host("[::1]:9000", 80) == ("::1", 9000)
    assert split_host("[::1]", 80) == ("::1", 80)
