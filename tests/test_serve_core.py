"""``memfs serve`` as a whole process: start, announce, stop, refuse to open up without a token,
and its agent cache (freshness, locks, conflicts, damage) against a real bucket."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.serve import running_server


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``url``: (status, body), errors included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def memfs(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memfs", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_serve_announces_its_url_answers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    cloud = (tmp_path / "cloud").as_uri()
    with running_server(cloud, tmp_path) as server:
        assert server.url.startswith("http://127.0.0.1:")
        status, _ = get(server.url + "/no-such-page")
        assert status == 404
        assert server.stop() == 0
    assert "Traceback" not in server.output()


def test_sigint_stops_the_server_too(tmp_path: Path) -> None:
    import signal

    with running_server((tmp_path / "cloud").as_uri(), tmp_path) as server:
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(timeout=20) == 0


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"])
def test_a_non_loopback_address_without_a_token_is_refused(tmp_path: Path, listen: str) -> None:
    done = memfs("serve", "--cloud", (tmp_path / "cloud").as_uri(), "--listen", listen,
                 "--token-file", str(tmp_path / "tokens.json"))  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("memfs: refusing to serve on http://")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("listen", ["nonsense", "127.0.0.1:99999", "example.com:80", "1.2.3:4"])
def test_a_bad_listen_address_is_one_line_and_exit_2(tmp_path: Path, listen: str) -> None:
    done = memfs("serve", "--listen", listen, "--token-file", str(tmp_path / "t.json"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("memfs: --listen ") and "Traceback" not in done.stderr


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with running_server((tmp_path / "cloud").as_uri(), tmp_path) as server:
        port = server.url.rsplit(":", 1)[1]
        done = memfs("serve", "--listen", f"127.0.0.1:{port}",
                     "--token-file", str(tmp_path / "tokens.json"))  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("memfs: cannot listen on http://127.0.0.1:")
    assert "Traceback" not in done.stderr


def test_a_non_loopback_address_with_a_token_is_served(tmp_path: Path) -> None:
    with running_server(
        (tmp_path / "cloud").as_uri(), tmp_path, token=True, listen="0.0.0.0:0"
    ) as server:
        local = server.url.replace("0.0.0.0", "127.0.0.1")
        assert get(local + "/x")[0] == 401
        assert get(local + "/x", server.auth_headers())[0] == 404


def test_the_demo_ends_by_serving_its_cloud_and_printing_the_console_url(tmp_path: Path) -> None:
    import os
    import re

    from tests.serve import started

    command = [sys.executable, "-m", "memfs", "demo", "--dir", str(tmp_path / "demo"),
               "--serve", "--listen", "127.0.0.1:0"]  # fmt: skip
    console = re.compile(r"Console: (http://127\.0\.0\.1:\d+)/")
    with started(command, dict(os.environ), console, deadline_s=90) as demo:
        assert "Letta Code: LETTA_MEMFS_BASE_URL=" + demo.url in demo.output()
        status, _ = get(demo.url + "/v1/no-such-route")
        assert status == 404  # served, and open: the demo has no token
        assert demo.stop() == 0
    assert "Traceback" not in demo.output()
    assert (tmp_path / "demo" / "cloud" / "garden" / "manifest.json").exists()


def test_the_demo_does_not_ask_to_serve_when_not_in_a_terminal(tmp_path: Path) -> None:
    done = memfs("demo", "--dir", str(tmp_path / "demo"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Serve the demo" not in done.stdout and done.stdout.rstrip().endswith("push")


def test_the_listening_socket_says_tcp_so_responses_are_not_delayed() -> None:
    """asyncio sets TCP_NODELAY only on sockets whose proto is TCP; without it every response
    after the first on a keep-alive connection waited ~40 ms for the client's delayed ACK."""
    import socket

    from memfs.server.runner import bind, parse_listen

    sock = bind(parse_listen("127.0.0.1:0"))
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


@pytest.mark.timeout(240)
def test_the_serve_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    import json

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_serve.py"
    figures = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(script), "--files", "5", "--requests", "20", "--concurrency", "2",
         "--json", str(figures)],
        capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| token check + 404 (floor) | 20 |" in done.stdout
    rows = json.loads(figures.read_text())
    assert all(row["requests"] == 20 and row["errors"] == 0 and row["rps"] > 0 for row in rows)
