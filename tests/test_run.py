"""``memfs run`` (docs/design-encryption.md §6.1): the secrets in the child's environment,
its output masked, its exit code and signals passed through, ``--only`` and ``--no-mask``."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import memfs_process
from .secretsfix import agent_with_secrets
from .servers import wait_for

VALUE = "tok-9f8e7d6c5b4a39281706"
OTHER = "pw-0a1b2c3d4e5f6a7b8c9d"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return agent_with_secrets(tmp_path, {"API_TOKEN": VALUE, "DB_PASSWORD": OTHER})


def run(root: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return memfs_process("-C", str(root), "run", *args, **kwargs)  # type: ignore[arg-type]


def test_the_secrets_are_in_the_environment_and_masked_in_output(root: Path) -> None:
    code = (
        "import os, hashlib, sys; v = os.environ['API_TOKEN']; "
        "print(hashlib.sha256(v.encode()).hexdigest()); print(v); print(v, file=sys.stderr)"
    )
    done = run(root, "--", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        hashlib.sha256(VALUE.encode()).hexdigest(),
        "API_TOKEN=<REDACTED>",
    ]
    assert done.stderr.strip() == "API_TOKEN=<REDACTED>"


@pytest.mark.parametrize(("script", "code"), [("exit 7", 7), ("exit 0", 0), ("kill -TERM $$", 143)])
def test_exit_code_and_death_by_signal_pass_through(root: Path, script: str, code: int) -> None:
    done = subprocess.run(
        ["sh", "-c", '"$@"; echo "exit=$?"', "sh", sys.executable, "-m", "memfs", "-C",
         str(root), "run", "--", "sh", "-c", script],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == f"exit={code}", done.stderr


def test_only_selects_and_an_unknown_name_is_a_usage_error(root: Path) -> None:
    show = "import os; print(sorted(k for k in ('API_TOKEN', 'DB_PASSWORD') if k in os.environ))"
    done = run(root, "--only", "DB_PASSWORD", "--", sys.executable, "-c", show)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['DB_PASSWORD']"
    done = run(root, "--only", "NOPE", "--", "true")
    assert done.returncode == 2
    assert "NOPE" in done.stderr and "Traceback" not in done.stderr


def test_no_mask_execs_with_a_warning(root: Path) -> None:
    done = run(root, "--no-mask", "--", sys.executable, "-c", "import os; print(os.getpid() > 0)")
    assert done.returncode == 0
    assert "not masked" in done.stderr
    assert done.stdout.strip() == "True"


def test_a_missing_command_is_127_and_one_line(root: Path) -> None:
    done = run(root, "--", "no-such-command-anywhere")
    assert done.returncode == 127
    assert done.stderr.strip().count("\n") == 0 and "not found" in done.stderr


def test_a_prompt_appears_at_once_and_signals_are_forwarded(root: Path, tmp_path: Path) -> None:
    """A prompt without newline reaches us while the child waits; SIGTERM sent to memfs run
    reaches the child, whose handler's exit code comes back."""
    code = (
        "import signal, sys, os\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('got TERM', flush=True), os._exit(3)))\n"
        "sys.stdout.write('Password: '); sys.stdout.flush()\n"
        "signal.pause()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "memfs", "-C", str(root), "run", "--", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        seen = b""

        def prompt_shown() -> bool:
            nonlocal seen
            with contextlib.suppress(BlockingIOError):
                seen += os.read(process.stdout.fileno(), 100) or b""  # type: ignore[union-attr]
            return seen == b"Password: "

        wait_for(prompt_shown, timeout=30)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 3
        os.set_blocking(process.stdout.fileno(), True)
        assert (seen + process.stdout.read()).endswith(b"got TERM\n")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
