"""``memfs run``: a command run with the agent's secrets as environment variables, its output
masked (docs/design-encryption.md §6.1).

The child inherits stdin; its stdout and stderr go through pipes, each pumped by a thread
through its own ``Scrubber`` to ours, so a value (or an encoding of it) split across writes
is masked too and text that cannot begin one is passed on at once; when one of ours can no
longer be written (its reader went away), the child's pipe is closed so it gets SIGPIPE.
SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to the child. Its exit code is returned; a
child killed by signal N makes this process die of N too, so a shell sees 128+N.
``exec_unmasked`` replaces this process by the command (a TTY stays a TTY) for interactive
programs: nothing is masked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from typing import IO

from memfs.errors import MemfsError
from memfs.secrets.scrub import Scrubber

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
CHUNK = 65536


class CommandNotRunError(MemfsError):
    """The command could not be started (not found: 127, not executable: 126)."""

    def __init__(self, command: str, why: str, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(f"{command}: {why}")


def child_env(values: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with the secrets added (they win over inherited names)."""
    return {**os.environ, **values}


def _pump(source: IO[bytes], target: int, scrubber: Scrubber) -> None:
    """Copy ``source`` to fd ``target`` through ``scrubber`` until end of file.

    When ``target`` cannot be written any more (its reader went away: EPIPE), ``source`` is
    closed at once, so the child's next write to it meets EPIPE / SIGPIPE as it would
    without memfs between (``memfs run -- yes | head -1`` ends; review11 F08)."""
    fd = source.fileno()
    try:
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except OSError:
                return
            if not chunk:
                break
            if not _write_all(target, scrubber.feed(chunk)):
                return
        _write_all(target, scrubber.close())
    finally:
        source.close()


def _write_all(target: int, data: bytes) -> bool:
    """Write all of ``data`` to fd ``target`` (waiting while a non-blocking one is full);
    False once it cannot be written (closed reader, an I/O error)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(target, view) :]
        except BlockingIOError:
            import select

            select.select([], [target], [])
        except OSError:
            return False
    return True


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise CommandNotRunError(command[0], "command not found", 127) from None
    except PermissionError:
        raise CommandNotRunError(command[0], "permission denied", 126) from None
    except OSError as error:
        raise CommandNotRunError(command[0], error.strerror or str(error), 126) from None


def run(command: list[str], values: Mapping[str, str]) -> int:
    """Run ``command`` with ``values`` in its environment and its output masked; its exit
    code (a child killed by a signal: this process is killed by the same signal)."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    started: list[subprocess.Popen[bytes]] = []
    caught: list[int] = []

    def forward(signum: int, frame: object) -> None:
        if not started:
            caught.append(signum)  # before the child exists: sent once it does
            return
        with contextlib.suppress(ProcessLookupError):
            started[0].send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        child = _start(command, child_env(values))
        started.append(child)
        for signum in caught:
            forward(signum, None)
        assert child.stdout is not None and child.stderr is not None
        pumps = [
            threading.Thread(
                target=_pump, args=(pipe, fd, Scrubber(values)), name=f"memfs-run-{fd}", daemon=True
            )
            for pipe, fd in ((child.stdout, 1), (child.stderr, 2))
        ]
        for pump in pumps:
            pump.start()
        code = child.wait()
        for pump in pumps:
            pump.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code < 0:
        die_of(-code)
    return code


def die_of(signum: int) -> None:
    """End this process by ``signum`` with its default action (a shell sees 128+N)."""
    signal.signal(signum, signal.SIG_DFL)
    if signum == signal.SIGINT or signum in FORWARDED:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # a signal whose default is to go on (SIGCHLD...): the same code


def exec_unmasked(command: list[str], values: Mapping[str, str]) -> None:
    """Replace this process by ``command`` with the secrets in its environment; no masking."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    try:
        os.execvpe(command[0], command, child_env(values))
    except FileNotFoundError:
        raise CommandNotRunError(command[0], "command not found", 127) from None
    except PermissionError:
        raise CommandNotRunError(command[0], "permission denied", 126) from None
