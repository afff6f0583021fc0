"""What a command that failed says: one line for stderr and its exit code.

Both ways a command runs (click's, memfs/cli/app.py, and the fast path, memfs/cli/fast.py)
turn an exception into the same line and exit code here, so a user or a harness cannot tell
which one ran. click-free: the fast path must not import click.
"""

from __future__ import annotations

import os


class CommandError(Exception):
    """A command's own failure: ``message`` on stderr (after "memfs: ") and ``exit_code``."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def explain(error: BaseException) -> tuple[str, int]:
    """The stderr line (without the "memfs: " prefix) and exit code for ``error``.

    A library error says what is wrong and carries its code; an interrupt is 130; an OS error
    names its file (exit 1); anything from dulwich means the repository is damaged (9); the
    rest is a bug of ours (70, with the traceback on stderr first when MEMFS_DEBUG is set).
    """
    from memfs.errors import MemfsError

    if isinstance(error, CommandError):
        return error.message, error.exit_code
    if isinstance(error, MemfsError):
        return str(error), error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}", 1
    if os.environ.get("MEMFS_DEBUG"):
        import traceback

        traceback.print_exception(type(error), error, error.__traceback__)
    if type(error).__module__.startswith("dulwich"):  # no import: the CLI stays light
        return (
            f"the agent's git repository is damaged or unreadable ({type(error).__name__}: "
            f"{error}); 'git fsck' says what is wrong, and a clone from a remote is whole",
            9,
        )
    return (
        f"internal error: {type(error).__name__}: {error} "
        "(set MEMFS_DEBUG=1 for the traceback, and please report it)",
        70,
    )
