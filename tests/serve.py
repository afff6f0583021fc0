"""A whole ``memfs serve`` process for tests: started on a free port, stopped at exit.

``running_server(cloud_url, tmp_path)`` starts ``python -m memfs serve`` in the test's
environment (the ``isolated_environment`` fixture's HOME and config; the ``s3`` fixture's
AWS_ENDPOINT_URL), waits with a deadline for the URL it prints, and yields a ``ServerHandle``.
With ``token=True`` it creates a token first (the server then requires one) and the handle
holds it. Everything the server prints is collected (the pipes are drained on threads, so a
chatty server never blocks on a full pipe); ``handle.output()`` returns it.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

URL_LINE = re.compile(r"http://\S+?(?=/ )")


@dataclass
class ServerHandle:
    """A running server: its base URL (no trailing slash), its token (or None), its process."""

    url: str
    token: str | None
    proc: subprocess.Popen[bytes]
    token_file: Path | None = None
    cache_dir: Path | None = None
    _stdout: list[bytes] = field(default_factory=list)
    _stderr: list[bytes] = field(default_factory=list)

    def output(self) -> str:
        """Everything the server printed so far, stdout then stderr."""
        return b"".join([*self._stdout, *self._stderr]).decode("utf-8", "replace")

    def stderr(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")

    def auth_headers(self) -> dict[str, str]:
        """``Authorization: Bearer`` with the token (none without one)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def basic(self, user: str = "letta") -> str:
        """The ``Authorization`` value git sends: Basic ``letta:<token>``."""
        return "Basic " + base64.b64encode(f"{user}:{self.token}".encode()).decode()

    def git_url(self, agent: str) -> str:
        """The git URL of ``agent``, credentials included when there is a token."""
        host = self.url.removeprefix("http://")
        userinfo = f"letta:{self.token}@" if self.token else ""
        return f"http://{userinfo}{host}/v1/git/{agent}/state.git"

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def _drain(stream: object, into: list[bytes]) -> None:
    for line in iter(stream.readline, b""):  # type: ignore[attr-defined]
        into.append(line)


def create_token(token_file: Path, name: str = "test", env: dict[str, str] | None = None) -> str:
    """``memfs token create`` as a process; the token it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "memfs", "token", "create", "--name", name,
         "--token-file", str(token_file)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@contextmanager
def running_server(
    cloud_url: str,
    tmp_path: Path,
    token: bool | str = False,
    *,
    token_file: Path | None = None,
    cache_dir: Path | None = None,
    listen: str = "127.0.0.1:0",
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    deadline_s: float = 30.0,
) -> Iterator[ServerHandle]:
    """``memfs serve --cloud cloud_url`` on a free loopback port until the block ends.

    ``token=True`` creates a token in ``token_file`` (default ``tmp_path/tokens.json``) before
    starting; a string is used as the token as it is (the file must hold it already)."""
    environment = dict(os.environ if env is None else env)
    token_file = token_file or tmp_path / "tokens.json"
    cache_dir = cache_dir or tmp_path / f"serve-cache-{time.monotonic_ns()}"
    secret = None
    if token is True:
        secret = create_token(token_file, f"t{time.monotonic_ns()}", environment)
    elif isinstance(token, str):
        secret = token
    command = [
        sys.executable, "-m", "memfs", "serve", "--cloud", cloud_url, "--listen", listen,
        "--token-file", str(token_file), "--cache-dir", str(cache_dir), *args,
    ]  # fmt: skip
    with started(command, environment, URL_LINE, deadline_s) as handle:
        handle.token, handle.token_file, handle.cache_dir = secret, token_file, cache_dir
        yield handle


@contextmanager
def started(
    command: list[str], env: dict[str, str], url_line: re.Pattern[str], deadline_s: float = 30.0
) -> Iterator[ServerHandle]:
    """Run ``command`` until the block ends (SIGTERM, then SIGKILL), its output drained on
    threads; yield once ``url_line`` finds the server's URL in its stdout."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    handle = ServerHandle("", None, proc)
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, handle._stdout), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, handle._stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + deadline_s
        while not handle.url:
            found = url_line.search(b"".join(handle._stdout).decode("utf-8", "replace"))
            if found:
                handle.url = found.group(1) if url_line.groups else found.group(0)
            elif proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait(timeout=10)
                for reader in readers:
                    reader.join(timeout=5)
                raise AssertionError(
                    f"{' '.join(command[2:5])} did not start (exit {proc.returncode}):\n"
                    f"{handle.output()}"
                )
            else:
                time.sleep(0.02)
        yield handle
    finally:
        handle.stop()
        for reader in readers:
            reader.join(timeout=10)
