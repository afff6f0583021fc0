"""The forms a secret's value takes in output: what ``memfs run`` masks and the commit guard
looks for (docs/design-encryption.md §6.1).

Per value v (at least ``MIN_MASKED`` bytes): v itself; base64 (standard and URL-safe, padded
and unpadded) of v alone and of v at each of the three alignments inside a longer encoded
string (the characters that depend on the neighbours trimmed away); ``quote(v, safe="")``,
``quote_plus(v)``; the JSON string body ``json.dumps(v)[1:-1]``; hex, lower and upper case.
Forms shorter than ``MIN_FORM`` bytes are left out: they would mask ordinary text.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MIN_MASKED = 8  # shorter values are stored, not masked and not guarded (a warning says so)
MIN_FORM = 6
REDACTED = b"<REDACTED>"

_B64: tuple[Callable[[bytes], bytes], ...] = (base64.b64encode, base64.urlsafe_b64encode)


def is_masked(value: str) -> bool:
    """Whether ``value`` is long enough to be masked and guarded."""
    return len(value.encode()) >= MIN_MASKED


def _aligned(encode: Callable[[bytes], bytes], raw: bytes) -> list[bytes]:
    """``raw``'s base64 as it appears at offsets 0, 1, 2 (mod 3) of a longer encoded string:
    the characters that also depend on the bytes around it trimmed."""
    found = []
    for offset in range(3):
        text = encode(b"\0" * offset + raw)
        head = -(-4 * offset // 3)  # ceil(4 * offset / 3): characters the zeros spill into
        tail = 4 if (offset + len(raw)) % 3 else 0  # the last group holds padding or neighbours
        found.append(text[head : len(text) - tail])
    return found


def forms(value: str) -> list[bytes]:
    """Every form of ``value`` worth masking, longest first; [] for a value too short."""
    raw = value.encode()
    if len(raw) < MIN_MASKED:
        return []
    found = {raw, quote(value, safe="").encode(), quote_plus(value).encode()}
    found.add(json.dumps(value)[1:-1].encode())
    found.add(json.dumps(value, ensure_ascii=False)[1:-1].encode())
    found.update((raw.hex().encode(), raw.hex().upper().encode()))
    for encode in _B64:
        whole = encode(raw)
        found.update((whole, whole.rstrip(b"=")))
        found.update(_aligned(encode, raw))
    return sorted((f for f in found if len(f) >= MIN_FORM), key=lambda f: (-len(f), f))


def table(values: Mapping[str, str]) -> dict[bytes, str]:
    """Form -> the name of the secret it reveals, for every masked value (first name wins
    where two secrets share a form)."""
    found: dict[bytes, str] = {}
    for name in sorted(values):
        for form in forms(values[name]):
            found.setdefault(form, name)
    return found


def replacement(name: str) -> bytes:
    """What stands in the output for a secret's value: Letta Code's ``NAME=<REDACTED>``
    (letta-ai/letta-code:src/tools/secret-substitution.ts)."""
    return name.encode() + b"=" + REDACTED


def trie_pattern(found: Iterable[bytes]) -> re.Pattern[bytes] | None:
    """One regex matching, at any position, the longest of ``found`` that starts there.

    Built as a trie over the first ``TRIE_DEPTH`` bytes (``a(?:b(?:cdef|c)|xyz)``) rather
    than an alternation of whole forms, which ``re`` would try one by one at every position:
    with tens of secrets (hundreds of forms) that costs ~10-50x more. Children of a node
    begin with different bytes, so at most one can match; where forms share a trie leaf,
    their rests are tried longest first, so the longest form wins as in a sorted alternation.
    """
    trie: dict[int, Any] = {}
    for form in found:
        node = trie
        for byte in form[:TRIE_DEPTH]:
            node = node.setdefault(byte, {})
        node.setdefault(_REST, set()).add(form[TRIE_DEPTH:])
    if not trie:
        return None
    return re.compile(_render(trie))


TRIE_DEPTH = 24
_REST = -1  # the node's forms end here, followed by these rests (b"" for none)


def _render(node: dict[int, Any]) -> bytes:
    branches = []
    for byte, child in sorted((b, c) for b, c in node.items() if b != _REST):
        run = [byte]
        while len(child) == 1 and _REST not in child:  # a chain: one literal, no nesting
            ((byte, child),) = child.items()
            run.append(byte)
        branches.append(re.escape(bytes(run)) + _render(child))
    rests = sorted(node.get(_REST, ()), key=lambda rest: (-len(rest), rest))
    longer = [re.escape(rest) for rest in rests if rest]  # after the trie depth
    options = longer + branches + ([b""] if b"" in rests else [])
    if len(options) == 1:
        return options[0]
    return b"(?:" + b"|".join(options) + b")"
