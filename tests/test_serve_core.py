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
        [sys.executable, str(script), "--files", "5", "--requests", "5", "--concurrency", "2",
         "--json", str(figures)],
        capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| token check + 404 (floor) | 5 |" in done.stdout
    rows = json.loads(figures.read_text())
    assert rows and all(
        row["requests"] > 0 and row["errors"] == 0 and row["rps"] > 0 for row in rows
    )
    assert rows[0]["requests"] == 5  # --requests per row (a row may run fewer, slower ones)


# -- several servers on one cloud (through the REST routes, where this branch has them) --------


def request(
    url: str, method: str, path: str, body: dict[str, object] | None = None
) -> tuple[int, dict[str, object]]:
    """A JSON request: (status, decoded body)."""
    import json

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def block_value(url: str, label: str) -> str:
    status, body = request(url, "GET", f"/v1/agents/alpha/core-memory/blocks/{label}")
    assert status == 200, body
    return str(body["value"])


def require_rest(url: str) -> None:
    if get(url + "/v1/health")[0] == 404:
        pytest.skip("the REST routes are not on this branch (memfs/server/lettaapi.py)")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("shared_cache", [False, True])
def test_two_servers_on_one_cloud_see_each_others_writes(
    s3: object, tmp_path: Path, shared_cache: bool
) -> None:
    """Two ``memfs serve`` processes on one S3 cloud (each with its own cache, or sharing one,
    locked across processes): what one writes, the other serves, and writes racing through
    both land, every one of them."""
    import threading
    import uuid

    from memfs.sync import push
    from tests.conftest import S3Bucket, write
    from tests.harness import fsck
    from tests.servers import wait_for
    from tests.test_serve_cache import make_agent

    assert isinstance(s3, S3Bucket)
    cloud = s3.url(f"cloud-{uuid.uuid4().hex[:8]}")  # parametrized cases may share a bucket
    machine = make_agent(tmp_path, cloud)
    for side in ("one", "two"):
        for n in range(4):
            write(machine.root, f"reference/{side}-{n}.md", f"---\ndescription: {side}\n---\n")
    machine.commit(message="blocks to race on")
    assert push(machine, "origin").ok
    cache = {"cache_dir": tmp_path / "shared-cache"} if shared_cache else {}
    with (
        running_server(cloud, tmp_path, **cache) as one,
        running_server(cloud, tmp_path, **cache) as two,
    ):
        require_rest(one.url)
        status, body = request(one.url, "PATCH", "/v1/agents/alpha/core-memory/blocks/reference/notes",
                               {"value": "written through one\n"})  # fmt: skip
        assert status == 200, body
        wait_for(lambda: block_value(two.url, "reference/notes") == "written through one\n",
                 timeout=30, what="server two serving server one's write")  # fmt: skip

        failures: list[str] = []

        def writer(url: str, side: str) -> None:
            for n in range(4):
                status, body = request(url, "PATCH", f"/v1/agents/alpha/core-memory/blocks/reference/{side}-{n}",
                                       {"value": f"{side} {n}\n"})  # fmt: skip
                if status != 200:
                    failures.append(f"{side} {n}: {status} {body}")

        threads = [threading.Thread(target=writer, args=(s.url, s_)) for s, s_ in ((one, "one"), (two, "two"))]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=200)
        assert failures == []
        assert "Traceback" not in one.output() + two.output()
    clone = tmp_path / "fresh-clone"
    done = memfs("clone", f"memfs::{cloud}/alpha", str(clone))
    assert done.returncode == 0, done.stderr
    assert fsck(clone) == ""
    assert (clone / "reference/notes.md").read_text().endswith("written through one\n")
    for side in ("one", "two"):
        for n in range(4):
            assert (clone / f"reference/{side}-{n}.md").read_text().endswith(f"{side} {n}\n")


@pytest.mark.timeout(180)
def test_a_server_started_on_a_cache_left_midway_serves_the_buckets_state(
    tmp_path: Path,
) -> None:
    """A server killed in the middle of a write leaves its checkout edited and marked; the
    next server on that cache dir clones it again and serves what the bucket holds. One whose
    checkout is damaged while it runs does the same at its next request."""
    import shutil
    import signal

    from tests.conftest import write
    from tests.test_serve_cache import make_agent

    cloud = (tmp_path / "cloud").as_uri()
    make_agent(tmp_path, cloud)
    cache = tmp_path / "cache"
    with running_server(cloud, tmp_path, cache_dir=cache) as server:
        require_rest(server.url)
        assert block_value(server.url, "reference/notes") == "notes\n"
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=20)
    write(cache / "alpha", "reference/notes.md", "---\ndescription: notes\n---\nhalf an edit\n")
    (cache / "alpha/.git/memfs/serve-writing").write_text("12345\n")
    with running_server(cloud, tmp_path, cache_dir=cache, args=("--fresh-ms", "0")) as server:
        assert block_value(server.url, "reference/notes") == "notes\n"
        shutil.rmtree(cache / "alpha/.git/objects")
        assert block_value(server.url, "reference/notes") == "notes\n"
        assert "Traceback" not in server.output()
