"""Environments: where an agent is live, read from its store (design-encryption.md §7).

``environments(agent)`` lists the presence records (memfs/presence.py) in the agent's
object-store folder with one ``list_stamped`` (keys, times, and the store's own clock), one
GET per record and one manifest read. "Last seen" is ``store_now - mtime``: both times are
the store's, so no machine's clock matters, the writer's least of all. An environment is
online when its state is not ``stopped`` and it has beaten within 2.5 heartbeats. A record
that cannot be read (damaged, tampered, another environment's) is listed with ``problem``;
it never makes the listing fail.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from memfs.errors import MemfsError, NoKeyError, RemoteError
from memfs.presence import DEFAULT_HEARTBEAT_S, ENV_ID, PREFIX, object_key, presence_remote

if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.remotes.storage import Storage

OVERDUE = 2.5  # heartbeats without a beat before an environment counts as offline
MAX_RECORD = 64 * 1024  # a presence record is ~600 bytes: anything far larger is not one
MAX_HEARTBEAT_S = 86_400.0  # a record claiming a slower heartbeat is read as beating daily
SHA = re.compile(r"^[0-9a-f]{40}$")
FIELDS: dict[str, type | tuple[type, ...]] = {
    **dict.fromkeys(
        ("name", "host", "os", "memfs", "mode", "started_at", "local_head", "remote_head",
         "last_sync", "last_error", "state", "at"),
        str,
    ),
    **dict.fromkeys(("format", "pid", "dirty", "ahead", "behind", "seq"), int),
    "heartbeat_s": (int, float),
}  # fmt: skip
"""The fields a presence record holds and their types: a record from the store is shown
with any other type read as absent (None), so no reader meets a list where it wants a name."""
NO_PRESENCE = "no object-store remote: git hosts hold no presence (add an s3:// or file:// one)"


@dataclass
class EnvsReport:
    """Every environment of one agent, as its store shows them."""

    agent: str
    remote: str | None  # the remote read (its name), None when there is none to read
    url: str | None
    remote_head: str | None = None
    store_now: float | None = None
    environments: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None  # why nothing could be listed (a git host only)

    @property
    def online(self) -> list[dict[str, Any]]:
        return [env for env in self.environments if env.get("online")]

    def to_dict(self, online_only: bool = False) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "remote": self.remote,
            "url": self.url,
            "remote_head": self.remote_head,
            "store_now": iso(self.store_now),
            "environments": self.online if online_only else self.environments,
            "note": self.note,
        }


def iso(stamp: float | None) -> str | None:
    """Epoch seconds as ``2026-11-30T09:14:07Z``."""
    if stamp is None:
        return None
    moment = datetime.fromtimestamp(stamp, timezone.utc).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def environments(agent: Agent, remote: str | None = None) -> EnvsReport:
    """The environments of ``agent`` in its object-store remote (``remote``, else origin or
    the first one): 1 LIST + 1 GET per record + 1 manifest read."""
    from memfs.incoming import open_for

    config = presence_remote(agent, remote)
    if config is None:
        return EnvsReport(agent.name, remote, None, note=NO_PRESENCE)
    target = open_for(agent, config)
    storage: Storage = target.storage  # type: ignore[attr-defined]
    history = agent.history
    remote_head = target.head(history.branch())
    store_now, found = read_environments(storage)
    for env in found:
        env["behind_remote"] = _behind(agent, remote_head, env.get("local_head"))
    return EnvsReport(
        agent.name, config.name, config.display_url, remote_head, store_now, found, None
    )


def read_environments(storage: Storage) -> tuple[float, list[dict[str, Any]]]:
    """(store clock, every record under ``envs/`` with ``last_seen_s``, ``online``,
    ``info_age_s`` and ``problem``), most recently seen first."""
    entries, store_now = storage.list_stamped(PREFIX)
    stamped: dict[str, tuple[float, int]] = {}
    for key, mtime, size in entries:
        logical = key.removesuffix(".enc")  # a sealed store may list its own names
        name = logical.rsplit("/", 1)[-1]
        if logical.count("/") == 1 and name.endswith(".json"):
            stamped[name.removesuffix(".json")] = (mtime, size)
    bodies = _read_all(storage, [env for env, (_, size) in stamped.items() if size <= MAX_RECORD])
    found = []
    for env, (mtime, size) in stamped.items():
        last_seen = round(max(0.0, store_now - mtime), 1)
        body = bodies.get(env, MemfsError(f"{size} bytes: too large for a presence record"))
        found.append(judge(env, body, last_seen))
    found.sort(key=lambda env: (env["last_seen_s"], env["env_id"]))
    return store_now, found


def judge(env: str, body: bytes | Exception | None, last_seen_s: float) -> dict[str, Any]:
    """One listed record, with what the store's clock says about it."""
    problem = None
    record: dict[str, Any] = {}
    if isinstance(body, Exception):
        problem = str(body)
    elif body is None:
        problem = "gone while listing"
    else:
        parsed = _parse(body)
        if not isinstance(parsed, dict):
            problem = "not a presence record (not a JSON object)"
        elif parsed.get("env_id") != env:
            problem = f"holds the record of another environment ({str(parsed.get('env_id'))[:40]})"
        else:
            record = _typed(parsed)
    heartbeat = record.get("heartbeat_s")
    if heartbeat is None or heartbeat <= 0:
        heartbeat = DEFAULT_HEARTBEAT_S
    heartbeat = min(heartbeat, MAX_HEARTBEAT_S)
    online = problem is None and record.get("state") != "stopped"
    online = online and last_seen_s <= OVERDUE * heartbeat
    if not ENV_ID.match(env):
        problem = problem or "not an environment id"
    return {
        **record,
        "env_id": env,
        "last_seen_s": last_seen_s,
        "info_age_s": last_seen_s,
        "online": online,
        "problem": problem,
    }


def _parse(body: bytes) -> Any:
    """A record's JSON; None for what is not JSON, nests too deep for the parser (a planted
    ``[[[[...`` raises RecursionError), or holds NaN or Infinity, which JSON lacks and which
    would make ``memfs envs --json`` unreadable to a strict parser."""
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _typed(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with each known field of the wrong type read as absent (``FIELDS``), numbers
    finite, and ``local_head``/``remote_head`` only as full shas: a head is looked up in the
    object store (``_behind``), where any other string is a path."""
    typed = dict(record)
    for name, kind in FIELDS.items():
        value = typed.get(name)
        if value is None:
            continue
        finite = not isinstance(value, float) or math.isfinite(value)  # 1e400 parses as inf
        if not isinstance(value, kind) or isinstance(value, bool) or not finite:
            typed[name] = None
    for name in ("local_head", "remote_head"):
        if typed.get(name) is not None and not SHA.match(typed[name]):
            typed[name] = None
    return typed


def _read_all(storage: Storage, envs: list[str]) -> dict[str, bytes | Exception | None]:
    """Each record's bytes (or why not), concurrently; one unreadable record costs its own
    line, not the listing. A machine with no key at all is the agent's problem: raised."""
    keys = [object_key(env) for env in envs]
    try:
        got = storage.get_many(keys)
        return {env: (g[0] if g else None) for env, g in zip(envs, got, strict=True)}
    except NoKeyError:
        raise
    except MemfsError:
        pass
    bodies: dict[str, bytes | Exception | None] = {}
    for env, key in zip(envs, keys, strict=True):
        try:
            one = storage.get(key)
        except NoKeyError:
            raise
        except (MemfsError, ValueError) as error:
            bodies[env] = error
            continue
        bodies[env] = one[0] if one else None
    return bodies


def _behind(agent: Agent, remote_head: str | None, local_head: Any) -> int | None:
    """Commits the remote has that the environment's head lacks, when both are here."""
    history = agent.history
    if not isinstance(local_head, str) or not SHA.match(local_head) or remote_head is None:
        return None
    try:
        if not (history.has_commit(remote_head) and history.has_commit(local_head)):
            return None
        return history.count_between(remote_head, local_head)
    except (MemfsError, ValueError, KeyError):
        return None


def online_count(storage: Storage) -> int | None:
    """How many environments of the agent stored at ``storage`` are online (``memfs
    agents``), None when that cannot be read."""
    try:
        _, found = read_environments(storage)
    except (RemoteError, MemfsError):
        return None
    return sum(1 for env in found if env["online"])


class EnvIdError(MemfsError):
    """Not an environment id: a usage error (exit 2), like a bad agent name."""

    exit_code = 2

    def __init__(self, env: str) -> None:
        super().__init__(f"{env!r} is not an environment id (e-<16 hex>): see 'memfs envs'")


def remove(agent: Agent, env: str, remote: str | None = None) -> str:
    """Delete environment ``env``'s record (``memfs envs rm``); the URL it was removed from.

    A live environment writes it again at its next beat: stop that first.
    """
    from memfs.incoming import open_for

    if not ENV_ID.match(env):
        raise EnvIdError(env)
    config = presence_remote(agent, remote)
    if config is None:
        raise MemfsError(NO_PRESENCE)
    storage: Storage = open_for(agent, config).storage  # type: ignore[attr-defined]
    key = object_key(env)
    listed = set(storage.list(PREFIX))
    if key not in listed and f"{key}.enc" not in listed:
        raise MemfsError(f"no environment {env} in {config.display_url}: see 'memfs envs'")
    storage.delete(key)
    return config.display_url


def cloud_environments(name: str, cloud: str | None = None) -> EnvsReport:
    """The environments of agent ``name`` in a cloud (``memfs envs NAME``), without a
    checkout: no local history, so ``behind_remote`` is unknown."""
    from memfs.cloud import agent_url
    from memfs.config import resolve_cloud
    from memfs.errors import RemoteNotFoundError
    from memfs.remotes import open_remote, url_kind
    from memfs.schema import is_valid_name

    if not is_valid_name(name):
        raise MemfsError(f"invalid agent name {name!r}")
    cloud_name, url, _ = resolve_cloud(cloud)
    where = agent_url(url, name)
    url_kind(where)
    remote = open_remote(where)
    manifest, _ = remote.read_manifest()  # type: ignore[attr-defined]
    if manifest is None:
        raise RemoteNotFoundError(
            remote.url, f"cloud {cloud_name} has no agent {name!r}: see 'memfs agents'"
        )
    head = manifest.refs.get("main") or next(iter(manifest.refs.values()), None)
    store_now, found = read_environments(remote.storage)  # type: ignore[attr-defined]
    for env in found:
        env["behind_remote"] = 0 if head is not None and env.get("local_head") == head else None
    return EnvsReport(name, None, remote.url, head, store_now, found, None)
