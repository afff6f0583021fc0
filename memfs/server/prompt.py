"""An agent's context as the REST API answers it, rendered once per commit.

``GET /v1/agents/{id}/context`` renders what ``memfs context`` prints: Letta Code's memory
section (``letta``, memfs.lettacontext), memfs's prompt text or its JSON (memfs.context). A
commit's context never changes, so the last few rendered are kept by (checkout, commit,
format): a warm server answers a context from memory until the agent's head moves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Generic, TypeVar

Rendered = tuple[str | dict[str, Any], int]  # the context (text, or memfs's JSON), problems
CONTEXTS_KEPT = 64
K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """The last ``size`` values put, by key: a commit's context never changes, so a context
    rendered once is answered from here until the agent's head moves."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


def render_context(agent: Any, sha: str, form: str) -> Rendered:
    """The context of commit ``sha``: Letta Code's memory section (``letta``), memfs's prompt
    text (``text``) or memfs's JSON (``json``); and how many files could not be read."""
    if form == "letta":
        from memfs.lettacontext import build_letta_context

        letta = build_letta_context(agent, sha)
        return letta.text, len(letta.problems)
    from memfs.context import build_context

    built = build_context(agent, sha)
    payload: str | dict[str, Any] = built.to_dict() if form == "json" else built.render()
    return payload, len(built.problems)
