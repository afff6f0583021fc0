"""Every agent of a cloud as a local work tree kept in step with the bucket.

A server answers from a cache: ``<cache_dir>/<agent-name>/`` is an ordinary memfs checkout of
the agent. A read pulls first (the bucket is the truth: another server or a watcher may have
pushed); a write is a commit pushed with the bucket's compare-and-swap, merged and retried by
``memfs.sync`` when another writer won the race. One lock per agent serialises this server's
requests on it; the repository's own lock keeps other processes on the same cache out.

v0 (the contract the other server modules build on): ``list``, ``resolve``, ``reading``,
``write``. It pulls on every read; a freshness window and a manifest poll come later.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from memfs.agent import Agent
from memfs.cloud import agent_url
from memfs.errors import MemfsError, RemoteCorruptError
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.storage import open_storage
from memfs.schema import is_valid_name

T = TypeVar("T")


class AgentNotFoundError(MemfsError):
    """No agent of that name or id in the served cloud (HTTP 404)."""


class WriteConflictError(MemfsError):
    """A write met a concurrent edit of the same file it could not merge (HTTP 409)."""


@dataclass(frozen=True)
class ServedAgent:
    """An agent as the server lists it."""

    name: str
    id: str
    description: str
    pushed_at: str | None
    host: str | None
    head: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AgentCache:
    """The agents of one cloud, each checked out under ``cache_dir``."""

    def __init__(
        self, cloud_url: str, options: dict[str, Any], cache_dir: Path, origin: str = "server"
    ) -> None:
        self.cloud_url = cloud_url.rstrip("/")
        self.options = options
        self.cache_dir = cache_dir
        self.origin = origin
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._ids: dict[str, str] = {}  # agent id -> folder name, learnt from memfs.json

    # -- finding agents -----------------------------------------------------------------

    def remote(self, name: str) -> BucketRemote:
        return BucketRemote(agent_url(self.cloud_url, name), self.options)

    def list(self) -> list[ServedAgent]:
        """Every readable agent of the cloud, sorted by name."""
        found = []
        for folder in sorted(open_storage(self.cloud_url, self.options).folders()):
            if not is_valid_name(folder):
                continue
            remote = self.remote(folder)
            try:
                manifest, _ = remote.read_manifest()
                identity = remote.identity()
            except RemoteCorruptError:
                continue
            if manifest is None:
                continue
            agent_id = identity.id if identity else folder
            self._ids[agent_id] = folder
            head = manifest.refs.get("main") or next(iter(manifest.refs.values()), None)
            found.append(
                ServedAgent(
                    folder, agent_id, manifest.description, manifest.pushed_at, manifest.host, head
                )
            )
        return found

    def resolve(self, ref: str) -> str:
        """The folder name of the agent named or identified by ``ref``.

        ``ref`` is a name or an id, never a path: anything else is not found."""
        if ref in self._ids:
            return self._ids[ref]
        if is_valid_name(ref) and self.remote(ref).read_manifest()[0] is not None:
            return ref
        for agent in self.list():
            if agent.id == ref:
                return agent.name
        raise AgentNotFoundError(f"no agent {ref!r} in this cloud")

    # -- reading and writing ------------------------------------------------------------

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def _fresh(self, name: str) -> Agent:
        """The cached checkout of ``name``, pulled to the bucket's latest push."""
        from memfs.opening import open_agent
        from memfs.sync import clone, pull

        folder = self.cache_dir / name
        if not (folder / ".git").exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            return clone(agent_url(self.cloud_url, name), folder, name=name)
        agent = open_agent(folder)
        pull(agent, remote="origin", origin=self.origin)
        return agent

    @contextmanager
    def reading(self, ref: str) -> Iterator[Agent]:
        """The agent ``ref``, up to date with the bucket, held against this server's writers."""
        name = self.resolve(ref)
        with self._lock(name):
            yield self._fresh(name)

    def write(self, ref: str, change: Callable[[Agent], T], message: str) -> T:
        """Apply ``change`` to the fresh work tree of ``ref``, commit it, push it.

        WriteConflictError when the push had to merge and the merge conflicted."""
        from memfs.sync import push

        name = self.resolve(ref)
        with self._lock(name):
            agent = self._fresh(name)
            result = change(agent)
            agent.commit(message=message, origin=self.origin)
            report = push(agent, remote="origin", origin=self.origin)
            if report.conflicts:
                raise WriteConflictError(f"{name}: the edit met a concurrent edit of the same file")
            if not report.ok:
                raise MemfsError("; ".join(o.error or "" for o in report.remotes if o.error))
            return result


def cache_dir_for(cloud_url: str) -> Path:
    """Where a server keeps its checkouts of ``cloud_url`` by default (memfs's cache dir)."""
    import hashlib

    from platformdirs import user_cache_dir

    digest = hashlib.sha256(cloud_url.encode()).hexdigest()[:16]
    return Path(user_cache_dir("memfs")) / "serve" / digest
