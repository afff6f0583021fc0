"""Remotes: where an agent syncs to. Configured as ordinary git remotes in ``.git/config``.

A URL is sorted here, before dulwich sees it (dulwich reads unknown schemes as scp-style ssh):
``memfs::<fsspec-url>`` and bare object-store URLs (``s3://``, ``memory://``...) are object
stores; paths, ``file://``, ``git://``, ``ssh://``, ``user@host:path`` and ``http(s)://`` are
git hosts. Every remote offers the same three calls (``Remote``), so sync is written once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

from memfs.errors import MemfsError, UnknownRemoteError, UnsupportedURLError

if TYPE_CHECKING:
    from memfs.history import History

BUCKET_PREFIX = "memfs::"
BUCKET_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "memory"})
GIT_SCHEMES = frozenset({"file", "git", "ssh", "git+ssh", "ssh+git", "http", "https"})
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIRROR_KEY = b"memfs-mirror"


class Remote(Protocol):
    """What sync needs from a remote. ``url`` is safe to print (credentials removed)."""

    url: str

    def head(self, branch: str) -> str | None:
        """The sha of ``branch`` on the remote, or None if it has none."""

    def default_branch(self) -> str | None:
        """The branch the remote's HEAD names, if it says."""

    def fetch(self, history: History, branch: str) -> str | None:
        """Bring ``branch``'s commits into ``history``; return its sha, None if absent."""

    def push(self, history: History, branch: str, new: str, expected: str | None) -> None:
        """Move the remote ``branch`` to ``new`` only if it is at ``expected`` now.

        Raises PushRejectedError if it moved: the caller fetches, merges and tries again.
        """


@dataclass(frozen=True)
class RemoteConfig:
    """A remote as configured: name, URL, and whether it is a push-only mirror."""

    name: str
    url: str
    mirror: bool = False

    @property
    def kind(self) -> str:
        return url_kind(self.url)

    @property
    def display_url(self) -> str:
        return redact(self.url)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.display_url,
            "kind": self.kind,
            "mirror": self.mirror,
        }


def redact(url: str) -> str:
    """The URL with any password (or token) removed, fit to print or log."""
    if "://" not in url:
        return url
    parts = urlsplit(url.removeprefix(BUCKET_PREFIX))
    if parts.password is None and not (
        parts.username and "@" in parts.netloc and parts.scheme.startswith("http")
    ):
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    cleaned = urlunsplit(parts._replace(netloc=f"***@{host}"))
    return (BUCKET_PREFIX if url.startswith(BUCKET_PREFIX) else "") + cleaned


def url_kind(url: str) -> str:
    """``"bucket"`` for object stores, ``"git"`` for git hosts; UnsupportedURLError otherwise."""
    if url.startswith(BUCKET_PREFIX):
        return "bucket"
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if match:
        scheme = match.group(1).lower()
        if scheme in BUCKET_SCHEMES:
            return "bucket"
        if scheme in GIT_SCHEMES:
            return "git"
        raise UnsupportedURLError(
            redact(url), f"unknown scheme {scheme!r} (git: {', '.join(sorted(GIT_SCHEMES))})"
        )
    if not url.strip():
        raise UnsupportedURLError(url, "the URL is empty")
    return "git"  # a local path or scp-style user@host:path


def normalize_url(url: str) -> str:
    """What is stored in .git/config: object stores get the ``memfs::`` prefix."""
    if url_kind(url) == "bucket" and not url.startswith(BUCKET_PREFIX):
        return BUCKET_PREFIX + url
    return url


def open_remote(url: str, progress: Callable[[str], None] | None = None) -> Remote:
    """The Remote for ``url``; object stores get the options of the cloud they belong to."""
    if url_kind(url) == "git":
        from memfs.remotes.git import GitRemote

        return GitRemote(url)
    from memfs.config import storage_options_for
    from memfs.remotes.bucket import BucketRemote

    return BucketRemote(normalize_url(url), storage_options_for(url), progress)


def list_remotes(history: History) -> list[RemoteConfig]:
    """Every remote in .git/config, in the order configured."""
    config = history.repo.get_config()
    remotes = []
    for section in config.sections():
        if len(section) == 2 and section[0] == b"remote":
            try:
                url = config.get(section, b"url").decode()
            except KeyError:
                continue
            mirror = config.get_boolean(section, MIRROR_KEY, False)
            remotes.append(RemoteConfig(section[1].decode(), url, bool(mirror)))
    return remotes


def get_remote(history: History, name: str) -> RemoteConfig:
    for remote in list_remotes(history):
        if remote.name == name:
            return remote
    raise UnknownRemoteError(name)


def add_remote(history: History, name: str, url: str, mirror: bool = False) -> RemoteConfig:
    """Add a remote; the URL is checked for form, not reached."""
    if NAME.fullmatch(name) is None:
        raise MemfsError(f"invalid remote name {name!r}: use letters, digits, '.', '_' and '-'")
    if any(remote.name == name for remote in list_remotes(history)):
        raise MemfsError(f"a remote named {name!r} exists already (remove it first)")
    url = normalize_url(url)
    config = history.repo.get_config()
    section = (b"remote", name.encode())
    config.set(section, b"url", url.encode())
    config.set(section, b"fetch", f"+refs/heads/*:refs/remotes/{name}/*".encode())
    if mirror:
        config.set(section, MIRROR_KEY, b"true")
    config.write_to_path()
    return RemoteConfig(name, url, mirror)


def remove_remote(history: History, name: str) -> None:
    """Remove a remote and its remote-tracking refs."""
    get_remote(history, name)
    config = history.repo.get_config()
    del config[(b"remote", name.encode())]
    config.write_to_path()
    prefix = f"refs/remotes/{name}/".encode()
    for ref in list(history.repo.refs.keys()):
        if ref.startswith(prefix):
            history.repo.refs.remove_if_equals(ref, None)
