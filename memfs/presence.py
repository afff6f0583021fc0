"""Presence: each checkout that syncs says where the agent is live (design-encryption.md §7).

Every environment (a CLI sync, a watcher, a mount, a server) writes its own object
``envs/<env-id>.json`` in the agent's object-store folder: who it is (name, host, os, memfs
version, mode), where it stands (local head, remote head, ahead/behind, dirty, last sync,
last error) and ``state``. One writer per object, so a plain ``put``, no compare-and-swap.
On an encrypted remote the storage seals it (``envs/<id>.json.enc``); this module writes
plain JSON either way. Git hosts hold no presence.

When (``Heartbeat.beat``): on start; after a sync that changed something, at most one write
per ``COALESCE_S`` (later changes are written together at the end of that window); every
``heartbeat_s`` while idle (``MEMFS_HEARTBEAT``, default 300 s, at least 60 s); ``state:
stopped`` on a clean exit. A one-shot CLI sync writes one record, ``mode: cli, state:
stopped`` (``once``). ``MEMFS_PRESENCE=0`` turns it all off.

Presence never fails a sync: a write that fails is logged and tried again at the next beat.
Readers take "last seen" from the store's own clock (``Storage.list_stamped``), never from
the ``at`` written here (memfs/envs.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable

from memfs.util import LazyPattern, atomic_write, hostname, utc_now_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.agent import Agent
    from memfs.remotes import RemoteConfig
    from memfs.remotes.storage import Storage
    from memfs.sync import SyncReport

FORMAT = 1
PREFIX = "envs"
ENV_ID_FILE = "env-id"
ENV_ID = LazyPattern(r"^e-[0-9a-f]{16}$")
DEFAULT_HEARTBEAT_S = 300.0
MIN_HEARTBEAT_S = 60.0
COALESCE_S = 60.0
# what a beat compares to decide a sync "changed something" worth a write before the heartbeat
CHANGES = ("local_head", "remote_head", "ahead", "behind", "dirty", "state", "last_error")

Log = Callable[[str], None]


def enabled() -> bool:
    """Whether presence is on (``MEMFS_PRESENCE=0`` turns it off)."""
    return os.environ.get("MEMFS_PRESENCE", "1").strip().lower() not in ("0", "false", "no", "off")


def heartbeat_interval() -> float:
    """``MEMFS_HEARTBEAT`` seconds (default 300), at least 60: a PUT costs 12.5 GETs.

    ``MEMFS_HEARTBEAT_MIN`` lowers that floor, for tests that watch an environment go
    offline without waiting minutes.
    """
    floor = _seconds("MEMFS_HEARTBEAT_MIN", MIN_HEARTBEAT_S)
    return max(_seconds("MEMFS_HEARTBEAT", DEFAULT_HEARTBEAT_S), floor, 0.1)


def _seconds(variable: str, default: float) -> float:
    """A number of seconds from the environment; ``default`` for anything else, NaN and
    infinity included (written into a record they are not JSON, and NaN beats never)."""
    try:
        value = float(os.environ.get(variable, default))
    except ValueError:
        return default
    return value if math.isfinite(value) else default


def default_name() -> str:
    """``MEMFS_ENV_NAME``, else this machine's host name."""
    return os.environ.get("MEMFS_ENV_NAME", "").strip() or hostname()


def env_id(agent: Agent) -> str:
    """This checkout's environment id, ``e-<16 hex>``, made once in ``.git/memfs/env-id``.

    A copy of the folder (cp -r) keeps the id and so shows as the same environment; ``memfs
    envs rm`` and a new id (delete the file) separate them.
    """
    path = agent.history.state_dir / ENV_ID_FILE
    with contextlib.suppress(OSError, UnicodeDecodeError):
        found = path.read_text().strip()
        if ENV_ID.match(found):
            return found
    made = f"e-{os.urandom(8).hex()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (made + "\n").encode())
    return made


def object_key(env: str) -> str:
    """The store key of an environment's record."""
    return f"{PREFIX}/{env}.json"


def presence_remote(agent: Agent, name: str | None = None) -> RemoteConfig | None:
    """The object-store remote presence goes to: ``name``, else ``origin`` if it is one,
    else the first non-mirror object-store remote; None when there is none (git hosts only)."""
    from memfs.remotes import get_remote, list_remotes

    if name is not None:
        config = get_remote(agent.history, name)
        return config if config.kind == "bucket" else None
    stores = [c for c in list_remotes(agent.history) if c.kind == "bucket" and not c.mirror]
    return next((c for c in stores if c.name == "origin"), stores[0] if stores else None)


def _state_file(agent: Agent) -> dict[str, Any]:
    try:
        data = json.loads((agent.history.state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(
    agent: Agent,
    config: RemoteConfig,
    *,
    env: str,
    name: str,
    mode: str,
    state: str,
    started_at: str,
    seq: int,
    heartbeat_s: float,
    report: SyncReport | None = None,
) -> dict[str, Any]:
    """The presence record of this checkout now (local refs and files only: no request)."""
    from memfs.remotestate import tracking_ref

    history = agent.history
    head, branch = history.head(), history.branch()
    remote_head = history.ref(tracking_ref(config.name, branch))
    saved = _state_file(agent)
    if report is not None:  # this sync's first error, else the last one state.json kept
        last_error = next((o.error for o in report.remotes if o.error), None)
    else:
        last_error = (saved.get("remotes", {}).get(config.name) or {}).get("last_error")
    # Uncommitted changes: every sync and watcher step commits all it may, so what stays is
    # what the last commit held back (Letta's rules, a secret's value); no work-tree scan.
    dirty = len(getattr(agent, "held", ()) or ())
    return {
        "format": FORMAT,
        "env_id": env,
        "name": name,
        "host": hostname(),
        "os": os_tag(),
        "memfs": _version(),
        "mode": mode,
        "pid": os.getpid(),
        "started_at": started_at,
        "local_head": head,
        "remote_head": remote_head,
        "last_sync": saved.get("last_sync"),
        "last_error": last_error,
        "dirty": dirty,
        "ahead": history.count_between(head, remote_head),
        "behind": history.count_between(remote_head, head),
        "state": state,
        "heartbeat_s": heartbeat_s,
        "seq": seq,
        "at": utc_now_text(),  # the writer's clock: shown, never used for "last seen"
    }


def _version() -> str:
    from memfs import __version__

    return __version__


class Heartbeat:
    """The presence of one long-running environment (watcher, mount, server).

    Call ``beat(report)`` after each sync and whenever ``next_due()`` has passed; ``stop()``
    on a clean exit. Nothing here raises: a failed write is logged and retried.
    """

    def __init__(
        self,
        agent: Agent,
        mode: str,
        name: str | None = None,
        *,
        log: Log | None = None,
        remote: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent = agent
        self.clock = clock
        self.mode = mode
        self.name = name or default_name()
        self.log = log or (lambda message: None)
        self.remote_name = remote
        self.enabled = enabled()
        self.heartbeat_s = heartbeat_interval()
        self.coalesce_s = min(COALESCE_S, self.heartbeat_s)
        self.started_at = utc_now_text()
        self.state = "running"
        self.seq = 0
        self.writes = 0
        self._env: str | None = None
        self._storage: tuple[str, Storage] | None = None  # (remote URL, its storage)
        self._last_write: float | None = None  # monotonic time of the last attempt
        self._written: dict[str, Any] | None = None  # CHANGES fields of the last write
        self._pending = False  # something changed since, not written yet (coalescing)

    def next_due(self) -> float | None:
        """When the next beat is due (monotonic), or None if presence is off."""
        if not self.enabled:
            return None
        if self._last_write is None:
            return self.clock()
        wait = self.coalesce_s if self._pending else self.heartbeat_s
        return self._last_write + wait

    def beat(self, report: SyncReport | None = None, force: bool = False) -> bool:
        """Write the record if it is due (heartbeat), if the sync ``report`` changed something
        and the last write is ``COALESCE_S`` old, or if ``force``; whether it wrote."""
        write = self._due_write(report, force)
        return write is not None and write.send()

    def _due_write(self, report: SyncReport | None, force: bool) -> _Write | None:
        """The write a beat makes now, made ready (the record read from local refs and files,
        the storage opened) but not sent; None if nothing is due or it cannot be made."""
        if not self.enabled:
            return None
        now = self.clock()
        due = self._last_write is None or now >= self._last_write + self.heartbeat_s
        soon = self._last_write is None or now >= self._last_write + self.coalesce_s
        if not (force or due or (soon and (self._pending or report is not None))):
            if report is not None:
                self._pending = True  # written at the end of the window (by the next beat)
            return None
        try:
            target = self._target()
            if target is None:  # nowhere to write yet: asked again a coalescing window later
                self._last_write, self._pending = now, True
                return None
            config, storage = target
            current = self._record(config, report)
            changed = self._written is None or any(
                current[k] != self._written.get(k) for k in CHANGES
            )
            if not (force or due or changed):
                self._pending = False  # the sync left everything as last written
                return None
            self._last_write = now
            return _Write(self, storage, current)
        except Exception as error:  # presence never breaks what it reports on
            self._last_write = now  # an attempt: next_due() is a window later, never "now"
            self._failed(error)
            return None

    def _failed(self, error: Exception) -> None:
        self._pending = True  # retried at the next beat, COALESCE_S from now
        self.log(f"presence not written ({type(error).__name__}: {error}); trying again later")

    def _sent(self, current: dict[str, Any]) -> None:
        self._written = {k: current[k] for k in CHANGES}
        self.seq = current["seq"]
        self._pending = False
        self.writes += 1

    def stop(self, report: SyncReport | None = None) -> bool:
        """Say ``state: stopped`` (a clean exit); whether it was written."""
        self.state = "stopped"
        return self.beat(report, force=True)

    def _record(self, config: RemoteConfig, report: SyncReport | None) -> dict[str, Any]:
        if self._env is None:
            self._env = env_id(self.agent)
        return record(
            self.agent,
            config,
            env=self._env,
            name=self.name,
            mode=self.mode,
            state=self.state,
            started_at=self.started_at,
            seq=self.seq + 1,
            heartbeat_s=self.heartbeat_s,
            report=report,
        )

    def _target(self) -> tuple[RemoteConfig, Storage] | None:
        """The remote and its storage (opened once, again if the remote changed)."""
        config = presence_remote(self.agent, self.remote_name)
        if config is None:
            return None
        if self._storage is None or self._storage[0] != config.url:
            from memfs.incoming import open_for

            remote = open_for(self.agent, config)
            storage = getattr(remote, "storage", None)
            if storage is None:
                return None
            self._storage = config.url, storage
        return config, self._storage[1]

    def use(self, remote: Any) -> None:
        """Write through this already opened remote (a sync's own): no second client."""
        storage = getattr(remote, "storage", None)
        config = presence_remote(self.agent, self.remote_name)
        if storage is not None and config is not None and remote.url == config.display_url:
            self._storage = config.url, storage


class _Write:
    """One presence record made ready by a beat: ``send`` PUTs it (whether it was written)."""

    def __init__(self, heartbeat: Heartbeat, storage: Storage, current: dict[str, Any]) -> None:
        self.heartbeat, self.storage, self.current = heartbeat, storage, current

    def send(self) -> bool:
        try:
            key = object_key(self.current["env_id"])
            self.storage.put(key, json.dumps(self.current, indent=1).encode())
        except Exception as error:  # presence never breaks what it reports on
            self.heartbeat._failed(error)
            return False
        self.heartbeat._sent(self.current)
        return True


def once(
    agent: Agent,
    report: SyncReport | None,
    name: str | None = None,
    opened: dict[str, Any] | None = None,
    log: Log | None = None,
) -> bool:
    """A one-shot CLI sync's presence: one record, ``mode: cli``, ``state: stopped``."""
    heartbeat = Heartbeat(agent, "cli", name, log=log)
    for remote in (opened or {}).values():
        heartbeat.use(remote)
    return heartbeat.stop(report)


def sending(
    agent: Agent,
    report: SyncReport | None,
    name: str | None = None,
    opened: dict[str, Any] | None = None,
    log: Log | None = None,
) -> Callable[[], bool]:
    """``once``, with its PUT on a thread: the record is read here (local refs and files),
    the request goes while the caller does its own local work (a sync's housekeeping); the
    function returned waits for it and says whether it was written. Only the request runs
    beside the caller: it reads nothing of the repository."""
    heartbeat = Heartbeat(agent, "cli", name, log=log)
    for remote in (opened or {}).values():
        heartbeat.use(remote)
    heartbeat.state = "stopped"
    write = heartbeat._due_write(report, force=True)
    if write is None:
        return lambda: False
    import threading

    result: list[bool] = []
    thread = threading.Thread(
        target=lambda: result.append(write.send()), name="memfs-presence", daemon=True
    )
    thread.start()

    def wait() -> bool:
        thread.join()
        return bool(result and result[0])

    return wait


def os_tag() -> str:
    """``linux-x86_64``: ``platform.system()`` and ``platform.machine()``, lower case, read
    from ``os.uname()`` where there is one (as platform does there): importing platform
    costs a push ~1.5 ms."""
    if hasattr(os, "uname"):
        uname = os.uname()
        return f"{uname.sysname.lower()}-{uname.machine.lower()}"
    import platform

    return f"{platform.system().lower()}-{platform.machine().lower()}"
