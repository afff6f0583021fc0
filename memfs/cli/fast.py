"""Placeholder: the fast path comes next."""

from __future__ import annotations


def run_fast(argv: list[str]) -> int | None:
    """None: click runs the command."""
    return None
