"""Shared fixtures: isolated config and git identity, agents in tmp_path, git CLI helpers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, settings

import memfs
from memfs.cli import cli

from . import lettacode
from .lettacode import LettaCode
from .s3 import CREDENTIALS, MotoServer, moto_s3

# Hypothesis builds its unicode tables on first use; that is not the code under test.
settings.register_profile("memfs", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("memfs")


@pytest.fixture(autouse=True)
def isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads the developer's config, git identity or data folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.setenv("MEMFS_CONFIG", str(home / ".config/memfs/config.yaml"))
    monkeypatch.setenv("MEMFS_DATA_DIR", str(home / ".local/share/memfs"))
    monkeypatch.setenv("MEMFS_HOST", "test-host")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.delenv("MEMFS_AGENT", raising=False)
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[memfs.Agent]:
    """A fresh agent named 'test-agent'."""
    with memfs.init(tmp_path / "test-agent", name="test-agent") as created:
        yield created


def git(root: Path, *args: str, check: bool = True) -> str:
    """Run the real git CLI in ``root`` and return its stdout."""
    completed = subprocess.run(
        ["git", *args],
        cwd=root,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        check=False,
        env=_git_env(),
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {completed.stderr}")
    return completed.stdout


def _git_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME="Git User",
        GIT_AUTHOR_EMAIL="git@example.com",
        GIT_COMMITTER_NAME="Git User",
        GIT_COMMITTER_EMAIL="git@example.com",
    )
    return env


def assert_git_agrees(root: Path) -> None:
    """The real git finds the repo sound and the work tree clean."""
    git(root, "fsck", "--strict")
    assert git(root, "status", "--porcelain") == ""


def memfs_process(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    crash_at: str | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m memfs`` as a whole process, as a user runs it (text stdout/stderr).

    ``crash_at`` sets MEMFS_CRASH_AT (memfs/faults.py) for this process only.
    """
    environment = dict(os.environ if env is None else env)
    environment.pop("MEMFS_CRASH_AT", None)
    if crash_at:
        environment["MEMFS_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "memfs", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_cli(*args: str, cwd: Path | None = None) -> Result:
    """Run the memfs CLI in-process, as a user would call it."""
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(cli, list(args), prog_name="memfs", catch_exceptions=False)
    import os

    before = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(cli, list(args), prog_name="memfs", catch_exceptions=False)
    finally:
        os.chdir(before)


def write(root: Path, path: str, text: str | bytes) -> Path:
    """Write a file in an agent, creating folders."""
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text, encoding="utf-8")
    return target


@pytest.fixture(scope="session", autouse=True)
def compiled_sources() -> None:
    """memfs's (and the benchmarks') bytecode written once, before any test starts a process.

    Why: with PYTHONDONTWRITEBYTECODE=1 in the environment (as on the developers' machines)
    no process writes __pycache__, so every ``python -m memfs`` a test starts compiled each
    module it imports from source again, about half of a short command's CPU; the suite
    starts thousands. An installed memfs has its bytecode (pip compiles on install), so this
    is also what users run. Files already compiled are only stat'ed."""
    import compileall

    root = Path(memfs.__file__).resolve().parent
    for folder in (root, root.parent / "benchmarks"):
        if folder.is_dir():
            compileall.compile_dir(folder, quiet=2)


@pytest.fixture(scope="session", autouse=True)
def no_watcher_outlives_the_tests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end, stop any watcher daemon a test started in its temp dir and left running."""
    yield
    import signal

    # base + "/": "pytest-87" must not match another session's "pytest-870"
    base = str(tmp_path_factory.getbasetemp()).rstrip("/") + "/"
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"watch" in args and any(base.encode() in arg + b"/" for arg in args):
            with contextlib.suppress(OSError):
                os.kill(int(cmdline.parent.name), signal.SIGTERM)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto S3 server for the session; each test gets its own bucket."""
    with moto_s3() as server:
        yield server


@pytest.fixture(scope="session")
def moto_client(moto_server: MotoServer) -> object:
    """One boto3 client of the moto server for the session (a new one costs ~35 ms)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def s3(
    moto_server: MotoServer,
    moto_client: object,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[S3Bucket]:
    """A fresh bucket on the shared moto server, with the environment pointing at it."""
    import re

    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") + "-b"
    client = moto_client
    client.create_bucket(Bucket=name)  # type: ignore[attr-defined]
    moto_server.requests.clear()
    yield S3Bucket(name=name, server=moto_server, client=client)


class S3Bucket:
    """A bucket on the test moto server."""

    def __init__(self, name: str, server: MotoServer, client: object) -> None:
        self.name = name
        self.server = server
        self.client = client

    def url(self, path: str = "") -> str:
        return f"s3://{self.name}/{path}".rstrip("/")


@pytest.fixture(scope="session")
def letta_code(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LettaCode]:
    """Letta Code's own code, run with node, as the oracle (tests/lettacode.py).

    Skips only when node or npm is missing; a failed fetch or build is an error, so a broken
    oracle never turns the conformance tests into silent skips.
    """
    missing = lettacode.missing_tools()
    if missing:
        pytest.skip(
            f"the Letta Code oracle needs {' and '.join(missing)} on PATH "
            f"(@letta-ai/letta-code {lettacode.LETTA_CODE_VERSION} runs under node)"
        )
    oracle = LettaCode(lettacode.ensure_built(), tmp_path_factory.mktemp("letta-code-home"))
    oracle.start()
    yield oracle
    oracle.close()


@pytest.fixture
def letta_v1_repo(letta_code: LettaCode, tmp_path: Path) -> Path:
    """A realistic MemFS v1 repo made by Letta Code (lettacode.letta_v1_repo), hooks installed."""
    return lettacode.letta_v1_repo(letta_code, tmp_path / "letta-v1")


@pytest.fixture
def letta_v2_repo(letta_code: LettaCode, tmp_path: Path) -> Path:
    """A realistic MemFS v2 repo made by Letta Code (lettacode.letta_v2_repo), hooks installed."""
    return lettacode.letta_v2_repo(letta_code, tmp_path / "letta-v2")
