"""The ``memfs`` command: a thin shell over the library.

click defines the commands, their help and their errors (memfs/cli/app.py). The commands a
harness runs on every turn (status, context, ls, commit, push, pull, sync, fetch) in their
common shapes also run without importing click (memfs/cli/fast.py, ~20 ms of a ~60-130 ms
command): the same bodies, the same output, the same exit codes. This module imports nothing
of click, so the console script pays for it only when click runs.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs a command ~3 ms to import; mypy reads the block
if TYPE_CHECKING:
    from typing import Any

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  error, or problems found (check), or files left out (commit)
  2  bad usage or bad config
  3  not a memfs agent (or a clone/checkout stopped midway: run it again)
  4  unknown revision or path
  5  agent busy (lock held) or changed meanwhile; try again
  6  revert conflicts with later edits, diverged with --ff-only, or unrelated histories
  7  a remote failed: unreachable, refused credentials, not found, not an agent
  8  a watcher already runs for the agent, or none does (--stop), or its agent went away
  9  the agent's git repository is damaged
  10 a key or integrity problem: no key for an encrypted remote, tampered, rolled back
  70 internal error (set MEMFS_DEBUG=1 for the traceback)
"""


def main() -> None:
    """Entry point of the ``memfs`` console script and ``python -m memfs``."""
    import sys

    try:
        _collect_later()
        from memfs.cli.fast import run_fast

        code = run_fast(sys.argv[1:])
        if code is None:
            from memfs.cli.app import cli

            cli(prog_name="memfs")  # ends with SystemExit
    except SystemExit as done:
        _exit_now(done.code)
        raise
    except KeyboardInterrupt:  # Ctrl-C while starting, before a command's own handler runs
        if sys.stderr is not None:
            sys.stderr.write("memfs: interrupted\n")
        code = 130
    _exit_now(code)
    sys.exit(code)


# What moved to memfs/cli/app.py with click, still importable from here (tests, users).
_IN_APP = ("cli", "COMMANDS", "AppState", "pass_state", "MemfsGroup", "LazyCommands")


def __getattr__(name: str) -> Any:
    """``from memfs.cli import cli`` and the rest of the click application, loaded on use."""
    if name in _IN_APP:
        from memfs.cli import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


COLLECT_AFTER_S = 5.0


def _collect_later() -> None:
    """Python's cycle collector off for the first seconds of a command, on again after.

    A command allocates tens of thousands of objects that live until it ends (modules,
    index entries, trees) and frees the rest by reference counting; the collector scanned
    them again and again, reclaiming next to nothing: 30-40 ms of a 10,000-file pull or
    status, ~8 ms of a small push. A command that runs longer than ``COLLECT_AFTER_S`` (a
    watcher, a server, a large clone) collects as usual from then on.
    """
    import gc
    import threading
    from _signal import SIG_BLOCK, SIG_SETMASK, SIGHUP, SIGINT, SIGQUIT, SIGTERM, pthread_sigmask

    gc.disable()
    timer = threading.Timer(COLLECT_AFTER_S, gc.enable)
    timer.name, timer.daemon = "memfs-collect-later", True
    # The timer's thread never takes a signal meant for the command: 'memfs run' waits for
    # them with sigtimedwait, which sees only those no unblocking thread took (review11 F07).
    mask = pthread_sigmask(SIG_BLOCK, {SIGHUP, SIGINT, SIGQUIT, SIGTERM})
    try:
        timer.start()
    finally:
        pthread_sigmask(SIG_SETMASK, mask)


def _exit_now(code: object) -> None:
    """End the process once the command is done, without the interpreter's teardown.

    Tearing down the modules and objects of a command costs ~20-30 ms, more than many whole
    commands take (benchmarks/bench_process.py). The command has closed what it opened (its
    click context) by now; atexit handlers still run and stdout and stderr are flushed. A
    thread still working (anything but an idle pool thread of the S3 client) is left to
    Python's own exit, which waits for it; so is a run under a profiler or a tracer.
    """
    import atexit
    import contextlib
    import sys
    import threading

    if code is not None and not isinstance(code, int):
        return  # a message to print: Python's exit does that
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return  # a profiler or coverage writes its data when the interpreter ends
    main_thread = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main_thread and not thread.daemon and not thread.name.startswith("memfs-"):
            return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with that descriptor closed: nothing to flush
            continue
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code or 0)
