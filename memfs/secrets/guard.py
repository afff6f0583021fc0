"""The commit guard (docs/design-encryption.md §6.2): a memory file holding a secret's value,
in any form memfs.secrets.forms knows, is kept on disk and left out of commits; a commit
message holding one is refused. Reasons name the secret, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from memfs.errors import CommitRefusedError
from memfs.secrets.forms import table, trie_pattern
from memfs.secrets.hooks import HOLDS_SECRET

if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.lettahook import Refusal, Verdict

Payload = dict[str, tuple[int, bytes] | None]


def _finder(values: Mapping[str, str]) -> tuple[re.Pattern[bytes] | None, dict[bytes, str]]:
    names = table(values)
    return trie_pattern(names), names


def reason(name: str) -> str:
    """Why a file is held: names the secret and what to write instead."""
    return f"{HOLDS_SECRET}{name}: kept on disk, left out of commits; write ${name} instead"


def review(payload: Payload, values: Mapping[str, str]) -> tuple[Payload, list[Refusal]]:
    """Split ``payload`` into what may be committed and a refusal for each added or changed
    file holding a secret's value."""
    from memfs.lettahook import Refusal

    pattern, names = _finder(values)
    if pattern is None:
        return payload, []
    allowed: Payload = {}
    refusals = []
    for path, change in payload.items():
        found = pattern.search(change[1]) if change is not None else None
        if found is None:
            allowed[path] = change
            continue
        line = change[1].count(b"\n", 0, found.start()) + 1 if change is not None else 1
        refusals.append(Refusal(path, reason(names[found.group()]), line))
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
    pattern, names = _finder(values_of(agent))
    found = pattern.search(message.encode()) if pattern is not None else None
    if found is not None:
        raise CommitRefusedError(
            "commit", [f"the message holds the value of secret {names[found.group()]}"]
        )
