"""Real git servers on 127.0.0.1 for tests: bare repos, git daemon, dulwich's smart HTTP."""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import make_server

from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import WSGIRequestHandlerLogger, WSGIServerLogger, make_wsgi_chain


def bare_repo(path: Path) -> Path:
    """An empty bare repository, as a git host would create it."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait until ``condition()`` holds, failing after ``timeout`` seconds (never a bare sleep).

    Between two checks it sleeps 20 ms, or as long as the last check took if that was longer
    (at most 0.5 s): a check that runs processes (git, memfs) then takes at most half a core,
    not the whole one the watchers and servers under test need (CI has two)."""
    deadline = time.monotonic() + timeout
    while True:
        started = time.monotonic()
        if condition():
            return
        now = time.monotonic()
        if now >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(min(max(0.02, now - started), 0.5, deadline - now))


def wait_for_port(
    port: int, deadline_s: float = 15.0, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Wait until something accepts connections on 127.0.0.1:port, or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and alive():
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.02)
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """``git daemon`` serving every repo under ``base`` (push enabled); yields git://host:port."""
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            [
                "git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}",
                f"--base-path={base}", "--export-all", "--enable=receive-pack", str(base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if wait_for_port(port, alive=lambda p=process: p.poll() is None):
            try:
                yield f"git://127.0.0.1:{port}"
            finally:
                process.terminate()
                process.wait(timeout=10)
            return
        process.kill()
        process.wait(timeout=10)
    raise RuntimeError("git daemon did not start")


def _require_auth(app: Any, user: str, password: str) -> Any:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_AUTHORIZATION") != expected:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"authentication required\n"]
        return app(environ, start_response)

    return guarded


@contextmanager
def http_git_server(repos: dict[str, Path], auth: tuple[str, str] | None = None) -> Iterator[str]:
    """dulwich's smart-HTTP server for ``repos`` (name -> bare repo path); yields its base URL."""
    opened = {f"/{name}": Repo(str(path)) for name, path in repos.items()}
    app = make_wsgi_chain(DictBackend(opened))
    if auth is not None:
        app = _require_auth(app, *auth)
    server = make_server(
        "127.0.0.1", 0, app, server_class=WSGIServerLogger, handler_class=WSGIRequestHandlerLogger
    )
    try:
        with serving(server) as url:
            yield url
    finally:
        for repo in opened.values():
            repo.close()


@contextmanager
def serving(server: Any) -> Iterator[str]:
    """Run an http.server-style server (wsgiref's, werkzeug's, ``ThreadingHTTPServer``) on a
    thread; yield its ``http://127.0.0.1:PORT``; shut it down and close it afterwards."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
