"""``memfs run`` between a command and its terminal or pipes, as whole processes (review11):
a reader that goes away reaches the command (F08), and one Ctrl-C on a terminal reaches it
once (F07)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

import memfs

from .harness import memfs_command


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with memfs.init(tmp_path / "a", name="a"):
        pass
    return tmp_path / "a"


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_closed_reader_ends_the_command_by_sigpipe(root: Path, stream: str) -> None:
    """``memfs run -- yes | head -1``: once our end of the pipe is closed, ``yes`` gets
    SIGPIPE as it would without memfs, and memfs dies of it too (a shell sees 141)."""
    script = "exec yes" if stream == "stdout" else "exec yes >&2"
    pipe = {stream: subprocess.PIPE}
    other = "stderr" if stream == "stdout" else "stdout"
    process = subprocess.Popen(
        memfs_command("-C", str(root), "run", "--", "sh", "-c", script),
        stdin=subprocess.DEVNULL,
        **pipe,  # type: ignore[arg-type]
        **{other: subprocess.DEVNULL},  # type: ignore[arg-type]
    )
    try:
        reader = getattr(process, stream)
        assert reader.read(2) == b"y\n"
        reader.close()  # head -1 exits
        assert process.wait(timeout=20) == -signal.SIGPIPE
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
