"""One way to print: JSON for ``--json``, text otherwise; messages to stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def json_option(function: F) -> F:
    """Add ``--json`` to a listing command."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text."
    )(function)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def emit_bytes(data: bytes) -> None:
    """Write file content or a diff exactly as stored (click sends bytes to the binary stream)."""
    click.echo(data, nl=False)


def warn(message: str) -> None:
    click.echo(f"memfs: {message}", err=True)


def progress_printer(quiet: bool) -> Callable[[str], None] | None:
    """A progress callback writing lines to stderr, or None when quiet.

    Progress is shown only on a terminal: piped or redirected output stays clean.
    """
    import sys

    if quiet or not sys.stderr.isatty():
        return None

    def show(message: str) -> None:
        click.echo(f"memfs: {message}", err=True)

    return show
