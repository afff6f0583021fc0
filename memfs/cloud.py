"""Clouds: URL prefixes holding many agents, ``<cloud>/<agent-name>/...`` (DESIGN.md §5).

With nothing configured, the cloud is a folder in memfs's data dir, so ``memfs init`` and
``memfs push`` work on one machine with no account. Credentials never live in memfs's config:
S3 reads the standard AWS chain and ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from memfs.agent import Agent
from memfs.config import load_user_config, resolve_cloud, save_user_config
from memfs.errors import (
    EncryptionError,
    MemfsError,
    NoKeyError,
    RemoteCorruptError,
    RemoteNotFoundError,
)
from memfs.remotes import BUCKET_PREFIX, RemoteConfig, url_kind
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote
from memfs.remotes.storage import open_storage
from memfs.schema import CloudConfig, is_valid_name


@dataclass(frozen=True)
class AgentEntry:
    """An agent as a cloud lists it."""

    name: str
    description: str
    pushed_at: str | None
    host: str | None
    head: str | None
    url: str
    problem: str | None = None  # why its manifest could not be read; the others still list
    encrypted: bool = False  # sealed: without a key here, name and description are unknown
    online: int | None = None  # environments online now (memfs/envs.py); None: unknown

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Cloud:
    """A configured cloud."""

    name: str
    url: str
    options: dict[str, Any]
    default: bool
    encrypt: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "default": self.default,
            "options": sorted(self.options),
            "encrypt": self.encrypt,
        }


def agent_url(cloud_url: str, name: str) -> str:
    """The remote URL of agent ``name`` in the cloud at ``cloud_url``."""
    return f"{BUCKET_PREFIX}{cloud_url.rstrip('/')}/{name}"


def add_cloud(
    name: str, url: str, options: dict[str, Any] | None = None, encrypt: bool = False
) -> Cloud:
    """Name a cloud in the user config (``--option`` values become fsspec storage options).
    ``encrypt``: every agent pushed to it or checked out from it is encrypted."""
    if not is_valid_name(name):
        raise MemfsError(f"invalid cloud name {name!r}: use letters, digits, '.', '_' and '-'")
    url = url.removeprefix(BUCKET_PREFIX).rstrip("/")
    if url_kind(url) != "bucket" and not url.startswith("file://"):
        raise MemfsError(f"a cloud is an object-store URL (s3://..., file:///...), not {url!r}")
    config = load_user_config()
    config.clouds[name] = CloudConfig(url=url, options=options or {}, encrypt=encrypt)
    save_user_config(config)
    return Cloud(name, url, options or {}, config.default_cloud == name, encrypt)


def list_clouds() -> list[Cloud]:
    """The local default cloud and every configured one."""
    config = load_user_config()
    default, _, _ = resolve_cloud(None)
    from memfs.config import LOCAL_CLOUD, default_cloud_url

    clouds = [Cloud(LOCAL_CLOUD, default_cloud_url(), {}, default == LOCAL_CLOUD)]
    clouds += [
        Cloud(name, cloud.url, dict(cloud.options), default == name, cloud.encrypt)
        for name, cloud in sorted(config.clouds.items())
        if name != LOCAL_CLOUD
    ]
    return clouds


def set_default_cloud(name: str) -> Cloud:
    """Make ``name`` the cloud used when none is given."""
    resolved, url, options = resolve_cloud(name)
    config = load_user_config()
    config.default_cloud = resolved
    save_user_config(config)
    return Cloud(resolved, url, options, True)


def list_agents(cloud: str | None = None) -> tuple[str, list[AgentEntry]]:
    """The cloud's name and every agent in it (name, description, last push, host, head,
    environments online: one more LIST of ``envs/`` and a GET per record)."""
    from memfs.envs import online_count

    name, url, options = resolve_cloud(cloud)
    url_kind(agent_url(url, "x"))  # a malformed or relative cloud URL is refused, not read
    entries = []
    for folder in open_storage(url, options).folders():
        remote = BucketRemote(agent_url(url, folder), options)
        try:
            manifest, _ = remote.read_manifest()
        except NoKeyError:  # listed, but what it is stays sealed
            entries.append(AgentEntry(folder, "", None, None, None, remote.url, encrypted=True))
            continue
        except (RemoteCorruptError, EncryptionError) as error:
            problem = str(error).removeprefix(f"{remote.url}: ")
            entries.append(
                AgentEntry(folder, "", None, None, None, remote.url, problem, remote.encrypted)
            )
            continue
        if manifest is None:
            continue
        entries.append(
            AgentEntry(
                name=folder,
                description=manifest.description,
                pushed_at=manifest.pushed_at,
                host=manifest.host,
                head=manifest.refs.get("main") or next(iter(manifest.refs.values()), None),
                url=agent_url(url, folder),
                encrypted=remote.encrypted,
                online=online_count(remote.storage),
            )
        )
    return name, entries


def checkout(
    name: str,
    directory: str | os.PathLike[str] | None = None,
    cloud: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Agent:
    """Bring agent ``name`` down from a cloud, ready to edit and sync."""
    from memfs.cloning import clone

    if not is_valid_name(name):
        raise MemfsError(f"invalid agent name {name!r}")
    cloud_name, url, options = resolve_cloud(cloud)
    url_kind(agent_url(url, name))  # a malformed or relative cloud URL is refused, not read
    encrypt = cloud_encrypts(cloud_name)
    remote = BucketRemote(agent_url(url, name), options, encrypt=encrypt)
    if remote.read_manifest()[0] is None:
        raise RemoteNotFoundError(
            remote.url, f"cloud {cloud_name} has no agent {name!r}: see 'memfs agents'"
        )
    target = directory if directory is not None else name
    return clone(agent_url(url, name), target, progress, name=name, encrypt=encrypt)


def cloud_encrypts(name: str) -> bool:
    """Whether cloud ``name`` was added with ``--encrypt``."""
    cloud = load_user_config().clouds.get(name)
    return bool(cloud is not None and cloud.encrypt)


def add_default_cloud_remote(agent: Agent) -> RemoteConfig:
    """Give an agent with no remote the remote ``origin`` in the default cloud."""
    name, url, _ = resolve_cloud(None)
    encrypt = cloud_encrypts(name)
    return add_remote(agent.history, "origin", agent_url(url, agent.name), encrypt=encrypt)
