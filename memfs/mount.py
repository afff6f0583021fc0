"""Mounting an agent into a sandbox folder, kept in sync by a background watcher.

``mount`` checks the agent out (by cloud name, remote URL or local agent path: see
``source_kind``, a bare name is always a cloud agent), starts a watcher
daemon and returns once the files are in place. ``unmount`` commits and pushes what is left
(even if the watcher was killed), stops the watcher, and says whether everything reached the
remote; ``remove=True`` deletes the folder only if it did. A read-only mount (or one pinned to a
revision) is marked in ``.git/memfs/mount.json``: every push refuses for it, so making the files
writable by hand cannot publish anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from memfs.agent import Agent
from memfs.config import data_dir
from memfs.errors import MemfsError, NotAnAgentError, RemoteNotFoundError
from memfs.opening import open_agent
from memfs.remotes import BUCKET_PREFIX, url_kind
from memfs.schema import is_valid_name
from memfs.util import atomic_write, utc_now

MOUNT_FILE = "mount.json"


@dataclass(frozen=True)
class Mount:
    """A mounted agent."""

    path: str
    source: str
    read_only: bool
    rev: str | None
    mounted_at: str
    watcher_pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class UnmountResult:
    """What unmount did: whether every commit reached the remote, and if the folder went."""

    path: str
    synced: bool
    removed: bool
    error: str | None = None


def mount(
    source: str,
    directory: str | os.PathLike[str],
    read_only: bool = False,
    rev: str | None = None,
    watch_args: list[str] | None = None,
    daemon: bool = True,
) -> Mount:
    """Check ``source`` out into ``directory`` and keep it synced; returns once files are there.

    ``daemon=False`` starts no watcher: the caller runs one (``memfs mount --foreground``).
    """
    from memfs import watcher

    root = Path(directory).expanduser().resolve()
    agent = _check_out(source, root)
    try:
        pinned = rev is not None
        if pinned:
            _pin(agent, str(rev))
        record = Mount(
            path=str(root),
            source=source,
            read_only=read_only or pinned,
            rev=agent.history.resolve(rev) if rev else None,
            mounted_at=utc_now().isoformat(),
        )
        _write_marker(agent, record)
        if record.read_only:
            _make_read_only(agent)
        if not pinned and daemon:
            args = list(watch_args or [])
            if record.read_only:
                args.append("--pull-only")
            pid = watcher.start_daemon(agent, args)
            record = Mount(**{**record.to_dict(), "watcher_pid": pid})
            _write_marker(agent, record)
        _registry_update(str(root), record.to_dict())
        return record
    finally:
        agent.close()


def unmount(directory: str | os.PathLike[str], remove: bool = False) -> UnmountResult:
    """Flush and stop a mount; ``remove`` deletes the folder only if everything was pushed."""
    from memfs import sync, watcher

    root = Path(directory).expanduser().resolve()
    try:
        agent = open_agent(root)
    except NotAnAgentError as error:
        raise MemfsError(f"{directory} is not mounted (no agent there)") from error
    with agent:
        record = read_marker(agent)
        if record is None:
            raise MemfsError(f"{directory} is not mounted: see 'memfs mounts'")
        if watcher.is_running(agent):
            watcher.stop_daemon(agent)  # it flushes: commit and push what is pending
        synced, error = True, None
        if not record.read_only:
            report = sync.push(agent, origin="mount")  # again, in case the watcher had died
            errors = [o.error for o in report.remotes if o.error]
            synced = not errors and all(o.pushed for o in report.remotes)
            error = errors[0] if errors else None
    removed = False
    if remove and synced:
        _make_writable(root)
        shutil.rmtree(root)
        removed = True
    elif not remove:
        with contextlib.suppress(OSError):
            (root / ".git" / "memfs" / MOUNT_FILE).unlink()
    _registry_update(str(root), None)
    return UnmountResult(str(root), synced, removed, error)


def mounts() -> list[Mount]:
    """Every mount this user made that is still there."""
    entries = []
    for path, data in sorted(_registry().items()):
        if (Path(path) / ".git" / "memfs" / MOUNT_FILE).exists():
            entries.append(Mount(**data))
    return entries


@contextlib.contextmanager
def mounted(
    source: str, directory: str | os.PathLike[str], read_only: bool = False
) -> Iterator[Agent]:
    """``with memfs.mounted(source, dir) as agent:`` mount, yield the agent, unmount."""
    mount(source, directory, read_only=read_only)
    agent = open_agent(directory)
    try:
        yield agent
    finally:
        agent.close()
        unmount(directory)


def read_marker(agent: Agent) -> Mount | None:
    """The mount record of an agent folder, or None if it is not a mount."""
    try:
        return Mount(**json.loads((agent.history.state_dir / MOUNT_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def source_kind(source: str) -> str:
    """How ``mount`` reads SOURCE: ``"url"``, ``"path"`` or ``"name"`` (a cloud agent).

    The rule is in the text alone, never in what happens to exist on disk: a URL has a scheme
    (``s3://``, ``memfs::``...) or is ``[user@]host:path``; a path contains ``/`` or starts with
    ``.`` or ``~``; anything else is an agent name in the cloud, even if a folder of that name
    is in the current folder (write ``./NAME`` for that folder).
    """
    if source.startswith(BUCKET_PREFIX) or "://" in source:
        return "url"
    if source.startswith((".", "~", "/")):
        return "path"
    colon, slash = source.find(":"), source.find("/")
    if colon >= 0 and (slash < 0 or colon < slash):
        return "url"  # scp-style user@host:path
    return "path" if slash >= 0 else "name"


def _check_out(source: str, root: Path) -> Agent:
    from memfs import cloud
    from memfs.cloning import clone

    kind = source_kind(source)
    if kind == "url":
        url_kind(source)
        return clone(source, root)
    if kind == "path":
        local = Path(source).expanduser()
        if not local.is_dir():
            raise MemfsError(f"no folder {source}: a SOURCE with '/' is a path on this machine")
        return clone(str(local.resolve()), root)
    if not is_valid_name(source):
        raise MemfsError(f"{source!r} is neither an agent name, a remote URL nor a path")
    try:
        return cloud.checkout(source, root)
    except RemoteNotFoundError as error:
        if Path(source).is_dir():
            hint = f"no agent {source!r} in the cloud; to mount the folder, write ./{source}"
            raise RemoteNotFoundError(error.url, hint) from error
        raise


def _pin(agent: Agent, rev: str) -> None:
    history = agent.history
    target = history.resolve(rev)
    current = history.head()
    with agent.updating(history.tree_of(current), history.tree_of(target)):
        history.move_branch(current, target, f"mount: pinned to {rev}".encode())


def _write_marker(agent: Agent, record: Mount) -> None:
    atomic_write(
        agent.history.state_dir / MOUNT_FILE, json.dumps(record.to_dict(), indent=2).encode()
    )


def _make_read_only(agent: Agent) -> None:
    for path in agent.worktree_files():
        full = agent.root / path
        if not full.is_symlink():
            full.chmod(full.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _make_writable(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            full = Path(folder) / name
            if not full.is_symlink():
                with contextlib.suppress(OSError):
                    full.chmod(full.stat().st_mode | stat.S_IWUSR)


def _registry_path() -> Path:
    return data_dir() / "mounts.json"


def _registry() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_registry_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _registry_update(path: str, entry: dict[str, Any] | None) -> None:
    registry = _registry()
    if entry is None:
        registry.pop(path, None)
    else:
        registry[path] = entry
    target = _registry_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, json.dumps(registry, indent=2).encode())
