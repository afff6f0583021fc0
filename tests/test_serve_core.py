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
