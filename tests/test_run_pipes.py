"""``memfs run`` between a command and its terminal or pipes, as whole processes (review11):
a reader that goes away reaches the command (F08), and one Ctrl-C on a terminal reaches it
once (F07)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
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


COUNTER = r"""
import os, select, signal, sys, time
r, w = os.pipe()
os.set_blocking(w, False)
os.set_blocking(r, False)
signal.set_wakeup_fd(w)  # one byte for each SIGINT the C-level handler saw
presses = 0
def seen(signum, frame):
    global presses
    presses += 1
    print(f"INT {presses}", flush=True)
signal.signal(signal.SIGINT, seen)
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    time.sleep(0.05)  # asleep as most commands are when a key is pressed
sys.stdin.readline()
try:
    n = len(os.read(r, 1000))
except BlockingIOError:
    n = 0
print(f"delivered {n}", flush=True)
"""


def test_one_ctrl_c_on_a_terminal_reaches_the_command_once(root: Path, tmp_path: Path) -> None:
    """Ctrl-C on a terminal signals the whole foreground group, memfs and its child: memfs
    must not send its copy too (a second SIGINT is 'abort now' to many programs)."""
    import pty
    import time

    script = tmp_path / "counter.py"
    script.write_text(COUNTER)
    argv = [*memfs_command("-C", str(root), "run", "--", sys.executable, str(script))]
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session of its own, the pty its terminal
        os.execvp(argv[0], argv)
    terminal = Terminal(fd, time.monotonic() + 30)
    try:
        terminal.read_until(b"ready")
        presses = 30
        for press in range(1, presses + 1):
            os.write(fd, b"\x03")
            terminal.read_until(f"INT {press}".encode())
        os.write(fd, b"done\n")
        terminal.read_until(b"delivered")
        terminal.read_until(b"\n")
        output = terminal.output
        delivered = output.split(b"delivered ")[1].split()[0]
        assert int(delivered) == presses, output
        assert b"INT 31" not in output
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


LEFT_GROUP = r"""
import os, signal, sys
os.setpgid(0, 0)  # out of the terminal's foreground group: only a forwarded SIGINT reaches it
got = []
signal.signal(signal.SIGINT, lambda s, f: got.append(s))
def term(s, f):
    print(f"SIGINTs {len(got)}", flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
while True:
    signal.pause()
"""


def test_memfs_run_forwards_no_signal_the_terminal_sent(root: Path, tmp_path: Path) -> None:
    """Deterministic side of the same: the terminal's SIGINT (Ctrl-C) is not forwarded (a
    child that left the group, as without memfs, does not get it); a SIGTERM another process
    sends memfs afterwards still is, and the child's handler says how many SIGINTs it had."""
    import pty
    import time

    script = tmp_path / "left.py"
    script.write_text(LEFT_GROUP)
    argv = [*memfs_command("-C", str(root), "run", "--", sys.executable, str(script))]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    terminal = Terminal(fd, time.monotonic() + 30)
    try:
        terminal.read_until(b"ready")
        os.write(fd, b"\x03")
        terminal.read_until(b"^C")  # echoed once the terminal has signalled its group
        os.kill(pid, signal.SIGTERM)
        terminal.read_until(b"SIGINTs")
        terminal.read_until(b"\n")
        output = terminal.output
        assert output.split(b"SIGINTs ")[1].split()[0] == b"0", output
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


class Terminal:
    """The controlling side of a pty: what the program behind it wrote, read up to a text."""

    def __init__(self, fd: int, deadline: float) -> None:
        self.fd, self.deadline, self.output = fd, deadline, b""

    def read_until(self, text: bytes) -> None:
        """Read until ``text`` has appeared (fails at the deadline, or if the pty closes
        without it)."""
        import select
        import time

        while text not in self.output:
            left = self.deadline - time.monotonic()
            assert left > 0, f"no {text!r} in {self.output!r}"
            if not select.select([self.fd], [], [], left)[0]:
                continue
            try:
                self.output += os.read(self.fd, 4096)
            except OSError:  # the program is gone and the pty closed
                break
        assert text in self.output, self.output
