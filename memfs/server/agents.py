"""Every agent of a cloud as a local work tree kept in step with the bucket.

A server answers from a cache: ``<cache_dir>/<agent-name>/`` is an ordinary memfs checkout of
the agent (``memfs.server.checkouts``). The bucket is the truth: another server, a watcher or a
git client may push at any time. So:

- Reads: a read within ``fresh_s`` of the agent's last look at the bucket uses the checkout as
  it is; otherwise the server asks for the manifest conditionally (``BucketRemote.poll`` with
  the ETag it last saw: an unchanged manifest costs no body) and fetches and fast-forwards
  only when the manifest's head is not the checkout's.
- Writes: a change, a commit, a compare-and-swap push. When another writer got there first,
  their commit is fetched and merged; a clean merge is pushed, a conflicting one is dropped:
  ``WriteConflictError`` (409), the checkout put back to the bucket's head, nothing the other
  writer pushed lost and nothing of the refused edit left behind.
- One lock per agent, across threads and across processes sharing the cache dir; a checkout
  found damaged, unfinished or midway through a write is cloned again.
- ``resolve`` takes a name or an id, never a path: anything that is not a valid agent name is
  not found, without a request to the bucket.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from memfs.agent import Agent
from memfs.cloud import agent_url
from memfs.errors import DowngradeError, MemfsError, PushRejectedError, RemoteCorruptError
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.manifest import BucketManifest
from memfs.remotes.storage import open_storage
from memfs.schema import is_valid_name
from memfs.server.checkouts import (
    CheckoutLock,
    checkout_stamp,
    clear_writing,
    clone_checkout,
    mark_writing,
    move_to,
    open_checkout,
)

if TYPE_CHECKING:
    from memfs.remotes import RemoteConfig

T = TypeVar("T")
FRESH_S = 0.5  # how long a look at the bucket stays good for reads
LIST_AGAIN_S = 2.0  # an unknown id re-lists the cloud at most this often
KEEP_OPEN = 64  # checkouts kept open between requests (each holds a few file descriptors)
PUSH_ATTEMPTS = 20  # a write under contention merges and retries (~6 s at most) before a 409


class AgentNotFoundError(MemfsError):
    """No agent of that name or id in the served cloud (HTTP 404)."""


class WriteConflictError(MemfsError):
    """A write met a concurrent edit of the same file it could not merge (HTTP 409)."""


class WriteRefusedError(MemfsError):
    """A write the agent's own rules refuse (Letta's read_only, its pre-commit hook): 400."""


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


class _Entry:
    """What the server knows of one agent between requests."""

    def __init__(self, lock: CheckoutLock, remote: BucketRemote) -> None:
        self.lock = lock
        self.remote = remote
        self.etag: str | None = None
        self.head: str | None = None  # the bucket's head at the last look
        self.looked_at = float("-inf")  # time.monotonic() of the last look
        self.polled_at = float("-inf")  # time.monotonic() of the last poll of the bucket
        self.agent: Agent | None = None  # the checkout left open by the last user, and
        self.stamp: tuple[object, ...] | None = None  # what its .git looked like then
        self.manifest: BucketManifest | None = None  # the manifest at the last look
        self.identity: str | None = None  # the agent's id (memfs.json never changes)
        self.presence: Any = None  # this server's Heartbeat for the agent (memfs/presence.py)


class AgentCache:
    """The agents of one cloud, each checked out under ``cache_dir``."""

    def __init__(
        self,
        cloud_url: str,
        options: dict[str, Any],
        cache_dir: Path,
        origin: str = "server",
        fresh_s: float = FRESH_S,
        encrypt: bool = False,
    ) -> None:
        self.cloud_url = cloud_url.rstrip("/")
        self.options = options
        # the cloud was added with --encrypt: every agent is opened as configured encrypted,
        # so one stored in the clear (planted, or an old memfs's) is refused as a downgrade
        # and never written to in the clear
        self.encrypt = encrypt
        self.cache_dir = cache_dir
        self.origin = origin
        self.fresh_s = fresh_s
        self._entries: dict[str, _Entry] = {}
        self._ids: dict[str, str] = {}  # agent id -> folder name, learnt from memfs.json
        self._listed_at = float("-inf")
        self._folders: list[str] | None = None  # the cloud's agent folders at the last listing
        self._open = 0  # checkouts kept open in entries
        self._open_guard = threading.Lock()
        self.polls = 0  # manifest reads made for reads and writes (benchmarks, tests)
        self.pulls = 0  # fetches that moved a checkout

    # -- finding agents -----------------------------------------------------------------

    def remote(self, name: str) -> BucketRemote:
        """A new ``BucketRemote`` of agent ``name`` (for git's compare-and-swap push)."""
        return BucketRemote(agent_url(self.cloud_url, name), self.options, encrypt=self.encrypt)

    def _config(self, name: str) -> RemoteConfig:
        """The cached checkout's remote ``origin``: the agent's folder, encrypted as the
        cloud is."""
        from memfs.remotes import RemoteConfig

        return RemoteConfig("origin", agent_url(self.cloud_url, name), encrypt=self.encrypt)

    def _clone(self, name: str) -> Agent:
        """A fresh clone of agent ``name`` into its checkout folder."""
        folder = self.cache_dir / name
        return clone_checkout(agent_url(self.cloud_url, name), folder, name, self.encrypt)

    def list(self) -> list[ServedAgent]:
        """Every readable agent of the cloud, sorted by name.

        Within ``fresh_s`` of the last listing the cloud is not listed again, and each agent's
        manifest is asked for as a read would (conditionally, not within the window); its
        identity (memfs.json, written once) is read once per server."""
        now = time.monotonic()
        if self._folders is None or now - self._listed_at >= self.fresh_s:
            storage = open_storage(self.cloud_url, self.options)
            self._folders = sorted(f for f in storage.folders() if is_valid_name(f))
            self._listed_at = now
        found = []
        for folder in self._folders:
            entry = self._entry(folder)
            try:
                # after this server's own push the manifest held is the one before it
                if not self._look(entry, force=entry.etag is None) or entry.manifest is None:
                    continue
                if entry.identity is None:
                    identity = entry.remote.identity()
                    entry.identity = identity.id if identity else folder
            except (RemoteCorruptError, DowngradeError):  # unreadable; plain in an --encrypt cloud
                continue
            if is_valid_name(entry.identity):
                self._ids[entry.identity] = folder
            manifest = entry.manifest
            found.append(
                ServedAgent(
                    folder, entry.identity, manifest.description, manifest.pushed_at,
                    manifest.host, entry.head,
                )
            )  # fmt: skip
        return found

    def resolve(self, ref: str) -> str:
        """The folder name of the agent named or identified by ``ref``.

        ``ref`` is a name or an id, never a path: one that is not a valid agent name (``..``,
        ``/``, ``%2e``, NUL, too long) is not found without asking the bucket."""
        if not isinstance(ref, str) or not is_valid_name(ref):
            raise AgentNotFoundError(f"no agent {_shown(ref)} in this cloud")
        if ref in self._entries:
            return ref
        if ref in self._ids:
            return self._ids[ref]
        try:
            if self._look(self._entry(ref), force=True):
                return ref
        except RemoteCorruptError:
            pass  # a folder of that name holding no readable agent: maybe an id still
        self._entries.pop(ref, None)  # no agent of that name: an id, or nothing
        if time.monotonic() - self._listed_at > LIST_AGAIN_S:
            self._folders = None  # list the cloud again: the id may be a new agent's
            self.list()
        if ref in self._ids:
            return self._ids[ref]
        raise AgentNotFoundError(f"no agent {_shown(ref)} in this cloud")

    def invalidate(self, ref: str) -> None:
        """Forget the last look at ``ref``'s bucket: the next read asks it again (call after
        pushing to the bucket other than through ``write``, e.g. a git push)."""
        entry = self._entries.get(self._ids.get(ref, ref))
        if entry is not None:
            entry.looked_at = float("-inf")

    # -- reading and writing ------------------------------------------------------------

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            entry = _Entry(CheckoutLock(self.cache_dir, name), self.remote(name))
            entry = self._entries.setdefault(name, entry)  # atomic: one entry per name
        return entry

    def _look(self, entry: _Entry, force: bool = False) -> bool:
        """Ask the bucket for the agent's head unless looked at within ``fresh_s``; whether
        the agent exists."""
        from memfs.remotes.storage import Unchanged

        now = time.monotonic()
        if not force and now - entry.looked_at < self.fresh_s:
            return entry.head is not None
        self.polls += 1
        entry.polled_at = time.monotonic()
        got = entry.remote.poll(entry.etag)
        if not isinstance(got, Unchanged):
            entry.manifest, entry.etag = got
            entry.head = _head_of(entry.manifest.refs) if entry.manifest is not None else None
        entry.looked_at = now
        return entry.head is not None

    def _checkout(self, name: str, entry: _Entry) -> Agent:
        """The checkout of ``name`` at the bucket's head (as of the last look); the lock held."""
        from memfs.sync import fetch_remote

        started = time.monotonic()
        if not self._look(entry):
            raise AgentNotFoundError(f"agent {name!r} is no longer in this cloud")
        folder = self.cache_dir / name
        agent = self._take(entry, folder)
        if agent is None:
            return self._clone(name)
        head = agent.history.head()
        if head != entry.head and not self._look(entry, force=True):
            # moved by a push around this cache (git's), or the look is stale: look again
            agent.close()
            raise AgentNotFoundError(f"agent {name!r} is no longer in this cloud")
        if head == entry.head:
            if entry.polled_at >= started:  # the manifest as the bucket holds it now
                self._secrets_seen(name, entry, agent)
            return agent
        try:
            config = self._config(name)
            theirs = fetch_remote(agent, config, remote=entry.remote)
            if theirs is not None:
                move_to(agent, theirs, "serve: to the bucket's head")
                self.pulls += 1
            return agent  # the fetch gave the secrets hook the manifest it read
        except MemfsError:
            agent.close()
            return self._clone(name)

    def _secrets_seen(self, name: str, entry: _Entry, agent: Agent) -> None:
        """Give the manifest just polled (under the checkout's lock: nothing newer can have
        reached the checkout since) to the secrets hook, as a fetch gives it the manifest it
        read: a secret set anywhere moves no head, so without this a checkout opened before
        it was set never learns it, and the guard lets its value into a commit (every write
        polls). Unchanged secrets cost a digest (``manifest_seen``)."""
        if entry.manifest is None:
            return
        from memfs.secrets.hooks import manifest_seen

        manifest_seen(agent, self._config(name), entry.manifest, entry.remote.raw)

    def _take(self, entry: _Entry, folder: Path) -> Agent | None:
        """The checkout the last user left open, if its ``.git`` is as that user left it (no
        other process touched it), else the checkout opened afresh (None: clone it)."""
        kept, entry.agent = entry.agent, None
        if kept is not None:
            with self._open_guard:
                self._open -= 1
            if entry.stamp == checkout_stamp(folder):
                return kept
            kept.close()
        return open_checkout(folder)

    def _leave(self, entry: _Entry, agent: Agent, keep: bool) -> None:
        """Done with ``agent``: kept open for the next user (up to ``KEEP_OPEN``) or closed."""
        with self._open_guard:
            keep = keep and self._open < KEEP_OPEN
            if keep:
                self._open += 1
        if keep:
            entry.agent, entry.stamp = agent, checkout_stamp(agent.root)
        else:
            agent.close()

    @contextmanager
    def reading(self, ref: str, fresh_s: float | None = None) -> Iterator[Agent]:
        """The agent ``ref``, up to date with the bucket, held against every other user of
        its checkout (this server's threads, other servers sharing the cache dir).

        ``fresh_s`` overrides the cache's window for this read: 0 asks the bucket whatever
        the last look (what a git client's first request wants: it may have pushed elsewhere
        a moment ago)."""
        name = self.resolve(ref)
        entry = self._entry(name)
        with entry.lock.held():
            if fresh_s is not None and time.monotonic() - entry.looked_at >= fresh_s:
                entry.looked_at = float("-inf")
            agent = self._checkout(name, entry)
            try:
                yield agent
            finally:
                self._beat(entry, agent, None)
                self._leave(entry, agent, keep=True)

    def write(self, ref: str, change: Callable[[Agent], T], message: str) -> T:
        """Apply ``change`` to the fresh work tree of ``ref``, commit it, push it.

        WriteConflictError when another writer's edit of the same file got there first and
        the two do not merge; WriteRefusedError when the agent's rules refuse the change. On
        any failure the checkout is put back to the bucket's head, the edit dropped."""
        name = self.resolve(ref)
        entry = self._entry(name)
        with entry.lock.held():
            entry.looked_at = float("-inf")  # a write starts from the bucket's latest
            agent = self._checkout(name, entry)
            done = False
            try:
                mark_writing(agent)
                try:
                    result = change(agent)
                    committed = agent.commit(message=message, origin=self.origin)
                    if agent.held:
                        raise WriteRefusedError("; ".join(r.render() for r in agent.held))
                    if committed is not None:
                        self._push(name, agent, entry)
                except BaseException:
                    self._put_back(name, agent, entry)
                    raise
                clear_writing(agent)
                done = True
                self._beat(entry, agent, committed)
                return result
            finally:
                self._leave(entry, agent, keep=done)

    def _beat(self, entry: _Entry, agent: Agent, wrote: object) -> None:
        """This server's presence for the agent (mode ``serve``): on its first use, after a
        write (coalesced), and every heartbeat while requests come; never fails a request."""
        from memfs.presence import Heartbeat

        if entry.presence is None:
            entry.presence = Heartbeat(agent, "serve")
        entry.presence.agent = agent  # the checkout open now (reopened between requests)
        if wrote is None:
            entry.presence.beat()
            return
        from memfs.sync import SyncReport

        entry.presence.beat(SyncReport(head=agent.history.head()))

    def stop_presence(self) -> None:
        """Say ``stopped`` for every agent this server announced (a clean shutdown)."""
        for name, entry in list(self._entries.items()):
            if entry.presence is None:
                continue
            with contextlib.suppress(MemfsError, OSError), entry.lock.held():
                agent = self._take(entry, self.cache_dir / name)
                if agent is not None:
                    entry.presence.agent = agent
                    entry.presence.stop()
                    self._leave(entry, agent, keep=False)

    def _push(self, name: str, agent: Agent, entry: _Entry) -> None:
        """Compare-and-swap the commit just made onto the bucket; merge and retry when another
        writer moved it; WriteConflictError when the merge conflicts (nothing pushed)."""
        from memfs.remotestate import tracking_ref
        from memfs.sync import fetch_remote, integrate

        history = agent.history
        branch = history.branch()
        config = self._config(name)
        theirs = entry.head
        for attempt in range(PUSH_ATTEMPTS):
            local = history.head()
            assert local is not None
            try:
                entry.remote.push(history, branch, local, expected=theirs)
            except PushRejectedError:
                time.sleep(random.uniform(0.5, 1.0) * min(0.5, 0.01 * 2**attempt))  # spread racers
                theirs = fetch_remote(agent, config, remote=entry.remote)
                if theirs is None:
                    raise AgentNotFoundError(f"agent {name!r} is no longer in this cloud") from None
                _, conflicts = integrate(agent, theirs, "origin", "copy", origin=self.origin)
                if conflicts:
                    paths = ", ".join(sorted({c.path for c in conflicts}))
                    raise WriteConflictError(
                        f"{name}: {paths} changed meanwhile (now at {theirs[:7]}); "
                        "read it again and redo the edit"
                    ) from None
                continue
            history.set_ref(tracking_ref("origin", branch), local, "serve: pushed")
            entry.head, entry.etag, entry.looked_at = local, None, time.monotonic()
            return
        raise WriteConflictError(f"{name}: the agent kept changing while saving; try again")

    def _put_back(self, name: str, agent: Agent, entry: _Entry) -> None:
        """Bring the checkout back to the bucket's head after a failed write, dropping what
        the write changed; when that cannot be done cleanly, clone it again. Never raises:
        the write's own error is what the caller reports (a checkout left marked is cloned
        again by its next user)."""
        from memfs.sync import fetch_remote

        entry.looked_at = float("-inf")
        try:
            config = self._config(name)
            theirs = fetch_remote(agent, config, remote=entry.remote)
            if theirs is not None:
                move_to(agent, theirs, "serve: put back to the bucket's head")
                if agent.status().clean:
                    clear_writing(agent)
                    return
        except Exception:  # any failure here means: clone again
            pass
        with contextlib.suppress(Exception):
            agent.close()
            self._clone(name).close()


def _head_of(refs: dict[str, str]) -> str | None:
    return refs.get("main") or (next(iter(refs.values())) if len(refs) == 1 else None)


def _shown(ref: object) -> str:
    """``ref`` quoted for an error message, cut short and without control characters."""
    text = repr(ref)
    return text if len(text) <= 60 else text[:57] + "..."


def cache_dir_for(cloud_url: str) -> Path:
    """Where a server keeps its checkouts of ``cloud_url`` by default (memfs's cache dir)."""
    import hashlib

    from platformdirs import user_cache_dir

    digest = hashlib.sha256(cloud_url.encode()).hexdigest()[:16]
    return Path(user_cache_dir("memfs")) / "serve" / digest
