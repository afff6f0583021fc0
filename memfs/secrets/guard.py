"""The commit guard (docs/design-encryption.md §6.2): a memory file holding a secret's value,
in any form memfs.secrets.forms knows, is kept on disk and left out of commits; a commit
message holding one is refused. Reasons name the secret, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from memfs.errors import CommitRefusedError
from memfs.lettahook import Refusal
from memfs.schema import Problem
from memfs.secrets.forms import MIN_FORM, table, trie_pattern
from memfs.secrets.hooks import HOLDS_SECRET

if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.lettahook import Verdict

Payload = dict[str, tuple[int, bytes] | None]
_Finder = tuple[re.Pattern[bytes] | None, dict[bytes, str]]


SPACE = b" \t\r\n"  # what a value split across lines (wrapped, indented) has put inside it


def _finder(values: Mapping[str, str]) -> tuple[re.Pattern[bytes] | None, dict[bytes, str]]:
    names = table(values)
    return trie_pattern(names), names


def _joined(values: Mapping[str, str]) -> tuple[re.Pattern[bytes] | None, dict[bytes, str]]:
    """The forms with blanks and line breaks taken out, for a text taken out the same way:
    finds a value the agent wrapped over lines, which a plain search misses."""
    names: dict[bytes, str] = {}
    for form, name in table(values).items():
        joined = form.translate(None, SPACE)
        if len(joined) >= MIN_FORM:
            names.setdefault(joined, name)
    return trie_pattern(names), names


def _search(data: bytes, plain: _Finder, joined: _Finder) -> tuple[str, int] | None:
    """The secret ``data`` holds a value of and the line it starts on, or None."""
    found = plain[0].search(data) if plain[0] is not None else None
    if found is not None:
        return plain[1][found.group()], data.count(b"\n", 0, found.start()) + 1
    squeezed = data.translate(None, SPACE)
    found = joined[0].search(squeezed) if joined[0] is not None else None
    if found is None:
        return None
    kept = [i for i, byte in enumerate(data) if byte not in SPACE]  # only on a hit
    return joined[1][found.group()], data.count(b"\n", 0, kept[found.start()]) + 1


def reason(name: str, in_name: bool = False) -> str:
    """Why a file is held: names the secret and what to write instead."""
    if in_name:
        return f"{HOLDS_SECRET}{name} in its name: kept on disk, left out of commits; rename it"
    return f"{HOLDS_SECRET}{name}: kept on disk, left out of commits; write ${name} instead"


class NamedRefusal(Refusal):
    """A file held because its *name* holds a value: it is kept out of commits by its real
    path, and shown (status, the watcher log, a refused commit) by ``shown``, the path with
    the value's part redacted."""

    __slots__ = ("shown",)
    _fields = (*Refusal._fields, "shown")
    shown: str

    def __init__(
        self, path: str, message: str, line: int = 1, blocking: bool = False, shown: str = ""
    ) -> None:
        self._set(path, message, line, blocking, shown)

    def problem(self) -> Problem:
        return Problem(self.shown, self.line, self.message)

    def render(self) -> str:
        return f"{self.shown}:{self.line}: {self.message}"


def redacted_path(path: str, values: Mapping[str, str]) -> str:
    """``path`` with every form of a value in it shown as ``NAME=<REDACTED>``."""
    from memfs.secrets.scrub import Scrubber

    return Scrubber(values).scrub(path.encode()).decode(errors="replace")


def review(payload: Payload, values: Mapping[str, str]) -> tuple[Payload, list[Refusal]]:
    """Split ``payload`` into what may be committed and a refusal for each added or changed
    file holding a secret's value."""
    plain = _finder(values)
    if plain[0] is None:
        return payload, []
    joined = _joined(values)
    allowed: Payload = {}
    refusals = []
    for path, change in payload.items():
        if change is None:
            allowed[path] = change
            continue
        found = _search(change[1], plain, joined)
        if found is not None:
            refusals.append(Refusal(path, reason(found[0]), found[1]))
            continue
        named = _search(path.encode(), plain, joined)  # a path goes into the tree and message
        if named is not None:
            shown = redacted_path(path, values)
            refusals.append(NamedRefusal(path, reason(named[0], in_name=True), 1, shown=shown))
            continue
        allowed[path] = change
    return allowed, refusals


def values_of(agent: Agent) -> dict[str, str]:
    from memfs.secrets.store import SecretStore

    return SecretStore.load(agent).plain_values()


def guard_verdict(agent: Agent, verdict: Verdict) -> None:
    """Hold back, in ``verdict``, every allowed change that holds a secret's value."""
    allowed, refusals = review(verdict.allowed, values_of(agent))
    verdict.allowed = allowed
    for refusal in refusals:
        verdict.held.setdefault(refusal.path, []).append(refusal)


def check_message(agent: Agent, message: str) -> None:
    """CommitRefusedError if a commit message holds a secret's value (naming the secret)."""
    values = values_of(agent)
    found = _search(message.encode(), _finder(values), _joined(values))
    if found is not None:
        raise CommitRefusedError("commit", [f"the message holds the value of secret {found[0]}"])
