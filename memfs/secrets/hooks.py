"""The cheap side of secrets: what sync, the watcher, commits, status and context call on
every agent. Plain agents pay a stat or a dict lookup; nothing here imports cryptography
(memfs.secrets.store does, and is imported only when there are secrets to open or send).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.agent import Agent
    from memfs.remotes import Remote, RemoteConfig
    from memfs.remotes.manifest import BucketManifest
    from memfs.remotes.storage import Storage

FIELD = "secrets"  # the manifest field holding the sealed blob (base64)
CACHE_FILE = "secrets.enc"
PENDING_FILE = "secrets.pending.enc"
META_FILE = "secrets.json"
NO_SLOT_FILE = "secrets.noslot.json"  # "no slot here for the keyring at this ETag"
KEYS_OBJECT = "keys.json"
HOLDS_SECRET = "holds the value of secret "  # how the commit guard's reasons begin


def secrets_dir(state_dir: Path) -> Path:
    """Where the secrets files live: ``.git/memfs`` (the agent's state folder)."""
    return state_dir


def read_meta(state_dir: Path) -> dict[str, Any]:
    """``secrets.json`` (names, the remote, its repo id; never values), {} if none."""
    return _read_json(secrets_dir(state_dir) / META_FILE)


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
    mask = byte_masker(agent)
    return lambda text: mask(text.encode()).decode(errors="replace")


def byte_masker(agent: Agent) -> Callable[[bytes], bytes]:
    """``masker`` for bytes (a diff, a file as it was): the identity without secrets."""
    if not has_secrets(agent):
        return lambda data: data
    from memfs.secrets.guard import values_of
    from memfs.secrets.scrub import Scrubber

    scrubber = Scrubber(values_of(agent))  # built once: scrub() leaves it empty for the next
    return scrubber.scrub


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


def manifest_seen(
    agent: Agent,
    config: RemoteConfig,
    manifest: BucketManifest | None,
    storage: Storage | None = None,
) -> None:
    """A manifest of ``config`` was read: if its secrets blob is not the one this machine last
    took, take it (memfs.secrets.store.refresh). A machine without a slot for them keeps
    syncing memory (they stay unreadable here until 'memfs key add'); a tampered or rolled
    back blob is refused (EncryptionError, exit 10).

    Without a slot, the keyring's ETag is remembered (``NO_SLOT_FILE``): later syncs ask
    ``storage`` (the remote's own, when given) only whether keys.json changed, one
    conditional GET, instead of reading memfs.json and keys.json and importing the crypto."""
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
    etag = _keyring_etag(agent, config, storage)
    if etag is _UNCHANGED:
        return  # still no slot here: the keyring is as it was
    from memfs.errors import NoKeyError
    from memfs.secrets.sharing import refresh

    path = secrets_dir(agent.history.state_dir) / NO_SLOT_FILE
    try:
        refresh(agent, config, blob)
    except NoKeyError:  # no slot here: unreadable until 'memfs key add'
        if isinstance(etag, str):
            _remember_no_slot(path, config.name, etag)
        return
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


_UNCHANGED = object()


def _keyring_etag(agent: Agent, config: RemoteConfig, storage: Storage | None) -> object:
    """keys.json's ETag as the store has it now (read before a refresh, so a keyring that
    changes meanwhile is only asked about again), ``_UNCHANGED`` if this machine recorded
    no slot for that very ETag, None when unknown (no storage, no keyring)."""
    if storage is None:
        return None
    from memfs.errors import MemfsError
    from memfs.remotes.storage import Unchanged

    known = _read_json(secrets_dir(agent.history.state_dir) / NO_SLOT_FILE)
    seen = known.get("keys_etag") if known.get("remote") == config.name else None
    try:
        if isinstance(seen, str):
            got = storage.get_if_changed(KEYS_OBJECT, seen)
            if isinstance(got, Unchanged):
                return _UNCHANGED
        else:
            got = storage.get(KEYS_OBJECT)
    except (MemfsError, OSError):  # the refresh that follows reports what is wrong with it
        return None
    return got[1] if got is not None else None


def _remember_no_slot(path: Path, remote: str, etag: str) -> None:
    from memfs.util import atomic_write

    data = json.dumps({"remote": remote, "keys_etag": etag}, sort_keys=True).encode()
    with contextlib.suppress(OSError):
        atomic_write(path, data + b"\n", 0o600)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def after_fetch(agent: Agent, config: RemoteConfig, remote: Remote) -> None:
    """After a fetch from ``remote``: look at the manifest it read (object stores only)."""
    last = getattr(remote, "_last_read", None)  # BucketRemote keeps the manifest it read
    if last is not None:
        manifest_seen(agent, config, last[0], getattr(remote, "raw", None))
