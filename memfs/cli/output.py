"""One way to print: JSON for ``--json``, text otherwise; messages to stderr.

click-free, so the fast path (memfs/cli/fast.py) prints through it without importing click,
and written to behave as ``click.echo`` (click/utils.py) does for what memfs prints: every
write is flushed at once (stdout and stderr lines keep their order on one pipe), bytes go to
the binary stream, ANSI escape sequences are stripped from text when the stream is not a
terminal. click's own streams are the same objects here: the fast path refuses to run when
the console's encoding is ASCII, the one case click wraps them (memfs/cli/fast.py).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs a command ~3 ms to import; mypy reads the block
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

# click's pattern (click/_compat.py _ansi_re), compiled on the first escape seen
ANSI_PATTERN = r"\033\[[0-?]*[ -/]*[@-~]"


def json_option(function: F) -> F:
    """Add ``--json`` to a listing command (click's; imported only by click commands)."""
    import click

    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text."
    )(function)


def echo(message: str = "", nl: bool = True, err: bool = False) -> None:
    """Write ``message`` (and a newline) to stdout, or stderr with ``err``, as click.echo."""
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        return
    out = message + "\n" if nl else message
    if not out:
        stream.flush()
        return
    if "\033" in out and not _isatty(stream):
        import re

        out = re.sub(ANSI_PATTERN, "", out)
    stream.write(out)
    stream.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:
        return False


def emit_json(data: Any) -> None:
    import json

    echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def emit_bytes(data: bytes) -> None:
    """Write file content or a diff exactly as stored (click sends bytes to the binary stream;
    only click commands print bytes)."""
    import click

    click.echo(data, nl=False)


def warn(message: str) -> None:
    echo(f"memfs: {message}", err=True)


def progress_printer(quiet: bool) -> Callable[[str], None] | None:
    """A progress callback writing lines to stderr, or None when quiet.

    Progress is shown only on a terminal: piped or redirected output stays clean.
    """
    if quiet or not sys.stderr.isatty():
        return None

    def show(message: str) -> None:
        echo(f"memfs: {message}", err=True)

    return show
