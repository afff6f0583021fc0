"""An agent's secrets: the sealed blob in its object store's manifest, the local cache, the
changes not pushed yet (docs/design-encryption.md §6).

In the store, the manifest's ``secrets`` field holds base64 of an envelope (role SECRETS,
logical name ``manifest.json#secrets``) sealed under the agent's keyring (memfs.keys: a plain
cloud gets one on its first secret) whose plaintext is
``{"format": 1, "generation": n, "prev": "<sha256 of the blob it replaces>",
"secrets": {NAME: {"value", "set_at", "set_by"}}}``.

Here, in ``.git/memfs/`` (never in the work tree, never a git object):
- ``secrets.enc``: this machine's view (the store's secrets with its own pending changes on
  top), sealed the same way;
- ``secrets.pending.enc``: the changes not pushed yet, sealed;
- ``secrets.json``: plain facts without values (the remote, its repo id, the names, the
  generation and digest of the last blob read), so that status, context and the fetch hook
  need no cryptography.

A push is a compare-and-swap of the manifest changing only its ``secrets`` field
(``BucketRemote.update_manifest``); a lost race reads the newer blob and applies the pending
changes to it again, so no machine's change is lost. Values live in ``SecretValue`` objects
whose repr and str are ``<secret NAME>``: logs, errors and ``--json`` only ever see names.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memfs.errors import MemfsError, TamperError
from memfs.faults import crash_point
from memfs.secrets.hooks import (
    CACHE_FILE,
    FIELD,
    META_FILE,
    PENDING_FILE,
    read_meta,
    secrets_dir,
)
from memfs.util import atomic_write, hostname, utc_now

if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.crypto.envelope import Keys
    from memfs.remotes.manifest import BucketManifest

NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
LOGICAL_NAME = "manifest.json#secrets"
MAX_VALUE = 64 * 1024
MAX_SECRETS = 500


class SecretUsageError(MemfsError):
    """A secret command that cannot be done as asked (a bad name, no object-store remote)."""

    exit_code = 2


class SecretsDamagedError(MemfsError):
    """A file of this machine's copy of the secrets (``.git/memfs``) does not open with the
    agent's key: damaged here, not in the store (exit 9, as a damaged repository)."""

    exit_code = 9

    def __init__(self, path: Path, pending: bool) -> None:
        self.path = path
        if pending:
            how = "it holds secret changes not pushed yet: remove it and set them again"
        else:
            how = "remove it and run 'memfs fetch' to read the secrets again from the store"
        super().__init__(f"{path} (this machine's copy of the secrets) is damaged: {how}")


class UnknownSecretError(MemfsError):
    """No secret has that name."""

    exit_code = 2

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no secret named {name}: see 'memfs secret list'")


class SecretValue:
    """A secret's value that never shows itself: repr and str are ``<secret NAME>``."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def reveal(self) -> str:
        """The value itself, for the environment of ``memfs run`` and the guard only."""
        return self._value

    def __repr__(self) -> str:
        return f"<secret {self.name}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and (self.name, self._value) == (
            other.name,
            other._value,
        )

    def __hash__(self) -> int:
        return hash(self.name)


@dataclass
class Secret:
    """One secret: its value and who set it when."""

    value: SecretValue
    set_at: str
    set_by: str

    def to_json(self) -> dict[str, str]:
        return {"value": self.value.reveal(), "set_at": self.set_at, "set_by": self.set_by}


@dataclass
class Document:
    """The plaintext of a secrets blob."""

    generation: int = 0
    prev: str = ""
    secrets: dict[str, Secret] = field(default_factory=dict)

    def dump(self) -> bytes:
        return json.dumps(
            {
                "format": 1,
                "generation": self.generation,
                "prev": self.prev,
                "secrets": {name: self.secrets[name].to_json() for name in sorted(self.secrets)},
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def load(cls, url: str, data: bytes) -> Document:
        """Parse a blob's plaintext; TamperError if it is not one (it opened, so it was sealed
        with the agent's key: only a bug or another kind of object gets here)."""
        try:
            raw = json.loads(data)
            assert raw["format"] == 1 and isinstance(raw["generation"], int)
            secrets = {
                name: Secret(SecretValue(name, str(s["value"])), str(s["set_at"]), str(s["set_by"]))
                for name, s in raw["secrets"].items()
                if NAME.fullmatch(name)
            }
        except (ValueError, KeyError, TypeError, AssertionError, AttributeError):
            raise TamperError(url, LOGICAL_NAME, "is not a secrets document") from None
        return cls(raw["generation"], str(raw.get("prev", "")), secrets)


@dataclass(frozen=True)
class Op:
    """A change made here and not pushed yet: set a value, or remove a name."""

    op: str
    name: str
    at: str
    by: str
    value: str | None = None

    def apply(self, doc: Document) -> None:
        if self.op == "set" and self.value is not None:
            doc.secrets[self.name] = Secret(SecretValue(self.name, self.value), self.at, self.by)
        else:
            doc.secrets.pop(self.name, None)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def __repr__(self) -> str:
        return f"<{self.op} {self.name}>"


def check_name(name: str) -> None:
    """Letta's rule for secret names (letta-code src/cli/commands/secret.ts)."""
    if not NAME.fullmatch(name):
        hint = f" (did you mean {name.upper()}?)" if NAME.fullmatch(name.upper()) else ""
        raise SecretUsageError(
            f"invalid secret name {name!r}: use capital letters, digits and _, not starting "
            f"with a digit{hint}"
        )


def check_value(name: str, value: str, outcome: str = "nothing was set") -> None:
    """Refuse a value that cannot be a secret: empty, over ``MAX_VALUE`` bytes, not text
    (a lone surrogate, from JSON), or holding a NUL byte, which no environment variable
    can (``memfs run`` would fail on it on every machine the secret reaches)."""
    if not value:
        raise SecretUsageError(f"the value of {name} is empty: {outcome}")
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise SecretUsageError(f"the value of {name} is not UTF-8 text: {outcome}") from None
    if size > MAX_VALUE:
        raise SecretUsageError(f"the value of {name} is over {MAX_VALUE} bytes: {outcome}")
    if "\0" in value:
        raise SecretUsageError(
            f"the value of {name} holds a NUL byte, which an environment variable cannot: {outcome}"
        )


def env_name() -> str:
    """This environment's name: ``MEMFS_ENV_NAME``, else the host name."""
    return os.environ.get("MEMFS_ENV_NAME") or hostname()


def _now() -> str:
    return utc_now().isoformat().replace("+00:00", "Z")


def digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


class _CachedKeys:
    """The keys this machine holds for a repo id, from its key cache only (no store read):
    what opening the local cache needs, offline."""

    def __init__(self, repo_id: bytes, url: str) -> None:
        from memfs.crypto.identity import ensure_identity
        from memfs.crypto.keycache import KeyCache

        self.repo_id = repo_id
        self.url = url
        self.identity = ensure_identity()
        self._keys = KeyCache.for_repo(repo_id, self.identity.config_dir).epochs()

    def held(self) -> bool:
        """Whether this machine holds any key for the repo."""
        return bool(self._keys)

    def current(self) -> tuple[int, bytes]:
        if not self._keys:
            from memfs.errors import NoKeyError

            raise NoKeyError(self.url, self.identity.recipient)
        top = max(self._keys)
        return top, self._keys[top]

    def key(self, epoch: int) -> bytes:
        if epoch not in self._keys:
            from memfs.errors import NoKeyError

            raise NoKeyError(self.url, self.identity.recipient, epoch=epoch)
        return self._keys[epoch]


def seal_doc(keys: Keys, data: bytes) -> bytes:
    from memfs.crypto.envelope import Role, seal

    epoch, key = keys.current()
    return seal(key, epoch, Role.SECRETS, keys.repo_id, LOGICAL_NAME, data)


def open_doc(keys: Keys, url: str, blob: bytes) -> bytes:
    """A sealed secrets blob opened (TamperError naming it if it does not open)."""
    from memfs.crypto.envelope import Role, open_sealed, peek

    try:
        _, epoch = peek(blob)
        return open_sealed(keys.key(epoch), keys.repo_id, LOGICAL_NAME, Role.SECRETS, blob)
    except TamperError:
        raise TamperError(url, LOGICAL_NAME) from None


def _open_local(keys: Keys, url: str, path: Path) -> bytes:
    """One of this machine's sealed secrets files opened (SecretsDamagedError if it does not:
    it was sealed here, so the damage is here, not in the store)."""
    try:
        return open_doc(keys, url, path.read_bytes())
    except TamperError:
        raise SecretsDamagedError(path, pending=path.name == PENDING_FILE) from None


def blob_of(manifest: BucketManifest | None, url: str) -> bytes | None:
    """The sealed blob a manifest carries, None if it carries none."""
    text = manifest.extra.get(FIELD) if manifest is not None else None
    if text is None:
        return None
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise TamperError(url, LOGICAL_NAME, "is not base64") from None


class SecretStore:
    """This machine's view of an agent's secrets (the local cache and pending changes)."""

    def __init__(
        self, agent: Agent, meta: dict[str, Any], doc: Document, pending: list[Op]
    ) -> None:
        self.agent = agent
        self.meta = meta
        self.doc = doc
        self.pending = pending

    # -- reading -------------------------------------------------------------------------

    @classmethod
    def load(cls, agent: Agent) -> SecretStore:
        """The secrets as this machine holds them (no store read); none if it holds none.
        NoKeyError if they are there and this machine cannot open them."""
        meta = read_meta(agent.history.state_dir)
        folder = secrets_dir(agent.history.state_dir)
        if not (folder / CACHE_FILE).exists():
            return cls(agent, meta, Document(), [])
        try:  # secrets here without their facts file: the guard must not run without values
            repo_id = bytes.fromhex(str(meta["repo_id"]))
        except (KeyError, ValueError):
            raise SecretsDamagedError(folder / CACHE_FILE, pending=False) from None
        keys = _CachedKeys(repo_id, str(meta.get("url", "")))
        return cls._opened(agent, meta, keys)

    @classmethod
    def _opened(cls, agent: Agent, meta: dict[str, Any], keys: Keys) -> SecretStore:
        folder = secrets_dir(agent.history.state_dir)
        url = str(meta.get("url", ""))
        doc = Document()
        if (folder / CACHE_FILE).exists():
            doc = Document.load(url, _open_local(keys, url, folder / CACHE_FILE))
        pending: list[Op] = []
        if (folder / PENDING_FILE).exists():
            try:
                raw = json.loads(_open_local(keys, url, folder / PENDING_FILE))
                pending = [Op(**op) for op in raw.get("ops", [])]
            except (ValueError, TypeError, AttributeError):
                raise SecretsDamagedError(folder / PENDING_FILE, pending=True) from None
        for op in pending:  # already in the cache, or not yet if a kill came in between
            op.apply(doc)
        return cls(agent, meta, doc, pending)

    def names(self) -> list[str]:
        return sorted(self.doc.secrets)

    def values(self, only: Iterable[str] | None = None) -> dict[str, SecretValue]:
        """The values by name (all, or ``only`` those: UnknownSecretError for one not set)."""
        if only is None:
            return {name: s.value for name, s in sorted(self.doc.secrets.items())}
        chosen = {}
        for name in only:
            if name not in self.doc.secrets:
                raise UnknownSecretError(name)
            chosen[name] = self.doc.secrets[name].value
        return chosen

    def plain_values(self) -> dict[str, str]:
        """name -> value, for the guard and the scrubbers (never printed)."""
        return {name: s.value.reveal() for name, s in self.doc.secrets.items()}

    def listing(self) -> list[dict[str, Any]]:
        """What ``memfs secret list`` shows: names, who set them when, pending; no values."""
        waiting = {op.name for op in self.pending}
        return [
            {"name": name, "set_at": s.set_at, "set_by": s.set_by, "pending": name in waiting}
            for name, s in sorted(self.doc.secrets.items())
        ] + [
            {"name": op.name, "removed": True, "pending": True}
            for op in self.pending
            if op.op == "rm" and op.name not in self.doc.secrets
        ]

    # -- changing ------------------------------------------------------------------------

    def set(self, name: str, value: str) -> None:
        """Set ``name`` here and queue the change for the store (``push_secrets`` sends it)."""
        check_name(name)
        check_value(name, value)
        if name not in self.doc.secrets and len(self.doc.secrets) >= MAX_SECRETS:
            raise SecretUsageError(f"an agent holds at most {MAX_SECRETS} secrets")
        self._change(Op("set", name, _now(), env_name(), value))

    def rm(self, name: str) -> None:
        """Remove ``name`` here and queue the removal for the store."""
        check_name(name)
        if name not in self.doc.secrets:
            raise UnknownSecretError(name)
        self._change(Op("rm", name, _now(), env_name()))

    def _change(self, op: Op) -> None:
        with self.agent.history.locked():
            keys = self._keys_for_writing()
            op.apply(self.doc)
            self.pending.append(op)
            _write_local(self.agent, self.meta, keys, self.doc, self.pending)

    def _keys_for_writing(self) -> Keys:
        """The keys of the store the secrets go to (made on a plain cloud's first secret),
        or, for an agent with no object-store remote, of its local keyring; ``self.meta``
        says which from now on."""
        from memfs.keys import agent_keys
        from memfs.secrets.sharing import (
            LOCAL_URL,
            _open_bucket,
            _read_remote_doc,
            blob_of_remote,
            has_store,
            local_storage,
            move_to_store,
            secrets_remote,
        )

        if not has_store(self.agent):
            keys = agent_keys(local_storage(self.agent), create_name=env_name())
            if self.meta.get("repo_id") not in (None, keys.repo_id.hex()):
                raise SecretUsageError("the secrets here belong to a store this agent lost")
            self.meta.update(remote=None, url=LOCAL_URL, repo_id=keys.repo_id.hex(), local=True)
            return keys
        if self.meta.get("local"):
            return move_to_store(self.agent, self)
        config = secrets_remote(self.agent, self.meta.get("remote"))
        if self.meta.get("repo_id") and self.meta.get("remote") == config.name:
            cached = _CachedKeys(bytes.fromhex(self.meta["repo_id"]), config.display_url)
            if cached.held():  # no store read: a change made offline is pushed later
                return cached
        remote = _open_bucket(self.agent, config)
        keys = agent_keys(remote.raw, create_name=env_name())
        if self.meta.get("repo_id") not in (None, keys.repo_id.hex()):
            raise SecretUsageError(
                f"the secrets here belong to another store than {config.display_url}'s; "
                "nothing was changed"
            )
        self.meta.update(remote=config.name, url=config.display_url, repo_id=keys.repo_id.hex())
        if not self.doc.secrets and not self.pending and blob_of_remote(remote) is not None:
            self.doc = _read_remote_doc(remote, keys, self.meta)  # a first change here
        return keys


def _write_local(
    agent: Agent, meta: dict[str, Any], keys: Keys, doc: Document, pending: list[Op]
) -> None:
    """Write the pending changes, the cache and the plain facts, in that order: a change is
    queued before it shows in the cache (a kill in between leaves it pending, applied again
    on load, sent by the next sync; never shown as set yet never sent), and the facts name
    what the sealed files hold once they are there."""
    folder = secrets_dir(agent.history.state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if pending:
        ops = json.dumps({"format": 1, "ops": [op.to_json() for op in pending]}).encode()
        atomic_write(folder / PENDING_FILE, seal_doc(keys, ops), mode=0o600)
    else:
        _unlink(folder / PENDING_FILE)
    crash_point("secrets.write")
    atomic_write(folder / CACHE_FILE, seal_doc(keys, doc.dump()), mode=0o600)
    meta = {**meta, "format": 1, "names": sorted(doc.secrets), "pending": len(pending)}
    atomic_write(folder / META_FILE, json.dumps(meta, indent=1, sort_keys=True).encode(), 0o600)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def push_secrets(agent: Agent, remote: str | None = None) -> bool:
    """Send this machine's pending changes to the store; True once none is left
    (memfs.secrets.sharing.push)."""
    from memfs.secrets.sharing import push

    return push(agent, remote)
