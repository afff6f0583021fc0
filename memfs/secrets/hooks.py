"""The cheap side of secrets: what sync, the watcher, commits, status and context call on
every agent. Plain agents pay a stat or a dict lookup; nothing here imports cryptography
(memfs.secrets.store does, and is imported only when there are secrets to open or send).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.remotes import Remote, RemoteConfig
    from memfs.remotes.manifest import BucketManifest

FIELD = "secrets"  # the manifest field holding the sealed blob (base64)
CACHE_FILE = "secrets.enc"
PENDING_FILE = "secrets.pending.enc"
META_FILE = "secrets.json"
HOLDS_SECRET = "holds the value of secret "  # how the commit guard's reasons begin


def secrets_dir(state_dir: Path) -> Path:
    """Where the secrets files live: ``.git/memfs`` (the agent's state folder)."""
    return state_dir


def read_meta(state_dir: Path) -> dict[str, Any]:
    """``secrets.json`` (names, the remote, its repo id; never values), {} if none."""
    try:
        data = json.loads((secrets_dir(state_dir) / META_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def has_secrets(agent: Agent) -> bool:
    """Whether this agent holds secrets here (the commit guard's and the context's test)."""
    return (secrets_dir(agent.history.state_dir) / CACHE_FILE).exists()


def names(agent: Agent) -> list[str]:
    """The secrets' names, from the plain facts file: no key needed."""
    if not has_secrets(agent):
        return []
    found = read_meta(agent.history.state_dir).get("names", [])
    return [str(name) for name in found] if isinstance(found, list) else []


def masker(agent: Agent) -> Callable[[str], str]:
    """A function masking every form of the agent's secret values in a text (``NAME=<REDACTED>``,
    as ``memfs run`` does): for what renders the work tree, where a file the guard holds back
    may hold one. The identity, with no import, for an agent without secrets."""
    if not has_secrets(agent):
        return lambda text: text
    from memfs.secrets.guard import values_of
    from memfs.secrets.scrub import Scrubber

    scrubber = Scrubber(values_of(agent))  # built once: scrub() leaves it empty for the next
    return lambda text: scrubber.scrub(text.encode()).decode(errors="replace")


def shown_paths(agent: Agent, report: Any) -> Callable[[str], str]:
    """How ``status`` shows a changed path: with a secret's value in it redacted, for the
    files the guard held for their name (``report.held`` shows those already redacted); the
    identity, with no import, when no file is held so."""
    if not has_secrets(agent) or not any(
        str(p.message).startswith(HOLDS_SECRET) and "in its name" in str(p.message)
        for p in getattr(report, "held", ())
    ):
        return lambda path: path
    return masker(agent)


def pending_count(agent: Agent) -> int:
    """How many secret changes made here are not pushed yet."""
    if not (secrets_dir(agent.history.state_dir) / PENDING_FILE).exists():
        return 0
    count = read_meta(agent.history.state_dir).get("pending", 0)  # the file is the truth:
    return count if isinstance(count, int) and count > 0 else 1  # facts lag it after a kill


def push_pending(agent: Agent) -> None:
    """After a push: send the secret changes still pending (no-op, no import, if none)."""
    if pending_count(agent):
        from memfs.secrets.store import push_secrets

        push_secrets(agent)


def manifest_seen(agent: Agent, config: RemoteConfig, manifest: BucketManifest | None) -> None:
    """A manifest of ``config`` was read: if its secrets blob is not the one this machine last
    took, take it (memfs.secrets.store.refresh). A machine without a slot for them keeps
    syncing memory (they stay unreadable here until 'memfs key add'); a tampered or rolled
    back blob is refused (EncryptionError, exit 10)."""
    text = manifest.extra.get(FIELD) if manifest is not None else None
    if not isinstance(text, str):
        return
    import base64  # with hashlib (OpenSSL, ~4 ms): only where a manifest holds secrets
    import binascii
    import hashlib

    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        blob = b""  # refresh says it is not base64
    meta = read_meta(agent.history.state_dir)
    if meta.get("digest") == hashlib.sha256(blob).hexdigest() and has_secrets(agent):
        return
    from memfs.errors import NoKeyError
    from memfs.secrets.sharing import refresh

    with contextlib.suppress(NoKeyError):  # no slot here: unreadable until 'memfs key add'
        refresh(agent, config, blob)


def after_fetch(agent: Agent, config: RemoteConfig, remote: Remote) -> None:
    """After a fetch from ``remote``: look at the manifest it read (object stores only)."""
    last = getattr(remote, "_last_read", None)  # BucketRemote keeps the manifest it read
    if last is not None:
        manifest_seen(agent, config, last[0])
