"""One bounded reader for JSON memfs did not write itself (review11 F13), as memfs.yamllib's
loaders bound YAML: an .af file, a cloud's manifest.json and memfs.json, the sidecar
``.letta/agent-file.json``, a Letta repo's ``.memfs.config.json``, a memory file merged.

``json.loads`` recurses in C for each nested array or object: ``[[[[...`` 100,000 deep raises
RecursionError, which every caller's ``except ValueError`` missed (exit 70). And a document
that parses just under the interpreter's limit still breaks what walks it next (``deepcopy``,
``json.dumps``). So nesting is bounded at ``MAX_DEPTH`` (far deeper than any of those formats
goes), and what is too deep raises ``JSONTooDeep``, a ValueError: each caller reports it as
the invalid JSON it already reports, with its own line and exit code.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_DEPTH = 256


class JSONTooDeep(ValueError):
    """JSON nested deeper than ``MAX_DEPTH`` arrays and objects."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"nested too deep: over {limit} levels")


def loads(data: str | bytes, max_depth: int = MAX_DEPTH, **options: Any) -> Any:
    """``json.loads(data, **options)``, nesting bounded: ValueError for invalid JSON and for
    JSON nested over ``max_depth`` levels, never RecursionError."""
    try:
        value = json.loads(data, **options)
    except RecursionError:
        raise JSONTooDeep(max_depth) from None
    if isinstance(value, dict | list):
        _check_depth(value, max_depth)
    return value


def _check_depth(value: dict[str, Any] | list[Any], max_depth: int) -> None:
    """JSONTooDeep if ``value`` nests over ``max_depth`` levels (an explicit stack: no
    recursion of its own)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise JSONTooDeep(max_depth)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
