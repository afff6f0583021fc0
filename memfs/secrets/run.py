"""``memfs run``: a command run with the agent's secrets as environment variables, its output
masked (docs/design-encryption.md §6.1).

The child inherits stdin; its stdout and stderr go through pipes, each pumped by a thread
through its own ``Scrubber`` to ours, so a value (or an encoding of it) split across writes
is masked too and text that cannot begin one is passed on at once; when one of ours can no
longer be written (its reader went away), the child's pipe is closed so it gets SIGPIPE.
SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to memfs are forwarded to the child, but not those
the terminal sent to both (``_wait_forwarding``). Its exit code is returned; a child killed
by signal N makes this process die of N too, so a shell sees 128+N.
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
    """This process's environment with the secrets added (they win over inherited names).
    SecretUsageError (exit 2), before anything runs, for a value no environment variable
    can hold (set by an older memfs: a NUL byte), naming the secret, never the value
    (``check_environment``)."""
    check_environment(values)
    return {**os.environ, **values}


def check_environment(values: Mapping[str, str]) -> None:
    """SecretUsageError (exit 2) for the first value no environment variable can hold."""
    from memfs.secrets.store import check_value

    for name, value in values.items():
        check_value(
            name, value, f"nothing was run ('memfs secret set {name}' replaces it, "
            "'--only' leaves it out)"
        )  # fmt: skip


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


def _start(
    command: list[str], env: dict[str, str], mask: set[signal.Signals] | None = None
) -> subprocess.Popen[bytes]:
    """The child, its stdout and stderr piped to us; ``mask``: the signal mask it gets back
    (ours blocks the forwarded signals, and a child inherits a mask through exec)."""
    restore = None if mask is None else lambda: signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=restore
        )
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
    # Where the kernel says who sent a signal (sigtimedwait: Linux), the signals are taken
    # from a mask instead of a handler, so one the terminal sent is told apart (F07).
    by_mask = hasattr(signal, "sigtimedwait")
    mask: set[signal.Signals] | None = None
    try:
        if by_mask:  # blocked before the child and the pumps start (threads inherit it)
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*FORWARDED, signal.SIGCHLD})
        child = _start(command, child_env(values), mask)
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
        code = _wait_forwarding(child) if by_mask else child.wait()
        for pump in pumps:
            pump.join()
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code < 0:
        die_of(-code)
    return code


def _wait_forwarding(child: subprocess.Popen[bytes]) -> int:
    """Wait for ``child`` (SIGCHLD and ``FORWARDED`` blocked), forwarding each signal it did
    not get already: one key press, one signal (review11 F07).

    The child shares this process's group, so what the terminal sends (Ctrl-C, Ctrl-\\, a
    hangup: ``si_code`` SI_KERNEL) reaches both and is not sent again; nor is one the child
    sent itself (to its group). Signals a process sent (``kill``, ``timeout``) are forwarded,
    as before: memfs may be all that was signalled. A group signal from another process
    (``kill -INT -PGID``) still reaches the child twice, as under sudo's forwarding."""
    watched = {*FORWARDED, signal.SIGCHLD}
    while True:
        code = child.poll()
        if code is not None:
            return code
        info = signal.sigtimedwait(watched, 1.0)  # a lost SIGCHLD costs a second at most
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if info.si_code > 0 or info.si_pid == child.pid:  # the kernel's (tty), the child's
            continue
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(info.si_signo)


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
