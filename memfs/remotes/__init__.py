"""Remotes: where an agent syncs to. Configured as ordinary git remotes in ``.git/config``.

A URL is sorted here, before dulwich sees it (dulwich reads unknown schemes as scp-style ssh):
``memfs::<fsspec-url>`` and bare object-store URLs (``s3://``, ``memory://``...) are object
stores; paths, ``file://``, ``git://``, ``ssh://``, ``user@host:path`` and ``http(s)://`` are
git hosts; ``letta://AGENT_ID`` is an agent's memory repository on a Letta server (a git host
found and authenticated from the environment: ``memfs.remotes.letta``). Every remote offers
the same three calls (``Remote``), so sync is written once.

Besides the ``remote.*`` sections, a Letta Code repository may name a push-only mirror in
``letta.memoryRepository.url``: ``letta_mirror`` lists it, sync pushes it, nothing fetches it.

A relative local path (``../bare.git``) means a path relative to the agent's folder, as git
reads one in ``.git/config``: ``list_remotes`` resolves it against the agent root every time,
whatever the caller's current folder. An object store is always a full URL with a scheme
(``memfs::relcloud`` or ``memfs::`` would write a bucket wherever the caller stands), and a
local one must be outside the agent's work tree (the next commit would save it as memory).

Adding, removing and marking remotes (what changes ``.git/config``) is
``memfs.remotes.configure``: this module reads, which every sync and status does.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from memfs.errors import UnknownRemoteError, UnsupportedURLError
from memfs.record import FrozenRecord
from memfs.util import LazyPattern

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from memfs.history import History
else:
    Protocol = object  # Remote is a type only: nothing subclasses it or checks isinstance

BUCKET_PREFIX = "memfs::"
BUCKET_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "memory"})
GIT_SCHEMES = frozenset({"file", "git", "ssh", "git+ssh", "ssh+git", "http", "https"})
NAME = LazyPattern(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a remote's name (configure.py)
# scp-style ``[user@]host:path`` as git reads it: a ':' before any '/'; the host is a name
# or a bracketed IPv6 address (``[::1]:repo``).
SCP_LIKE = LazyPattern(
    r"(?:(?P<user>[^@/:]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@/:\[\]]*):(?P<path>.*)"
)
HOST_NAME = LazyPattern(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
MIRROR_KEY = b"memfs-mirror"
ENCRYPT_KEY = b"memfs-encrypt"  # an object store whose agent is encrypted (issue 14)
# Letta Code's MEMORY_REPOSITORY_CONFIG_KEY, letta.memoryRepository.url (memory-git.ts)
LETTA_MIRROR_SECTION = (b"letta", b"memoryRepository")
LETTA_MIRROR_NAME = "letta.memoryRepository"
LETTA_MIRROR_KEY = "letta.memoryRepository.url"


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


class RemoteConfig(FrozenRecord):
    """A remote as configured: name, URL, and whether it is a push-only mirror."""

    __slots__ = _fields = ("name", "url", "mirror", "config_key", "encrypt")
    name: str
    url: str
    mirror: bool
    config_key: str  # where it is set, if not a remote section (letta.memoryRepository.url)
    encrypt: bool  # remote.NAME.memfs-encrypt: everything sealed, a plain store refused

    def __init__(
        self,
        name: str,
        url: str,
        mirror: bool = False,
        config_key: str = "",
        encrypt: bool = False,
    ) -> None:
        self._set(name, url, mirror, config_key, encrypt)

    @property
    def kind(self) -> str:
        """``"bucket"``, ``"git"`` or ``"letta"``; ``"invalid"`` for a URL memfs refuses (when
        it is used)."""
        try:
            return url_kind(self.url)
        except UnsupportedURLError:
            return "invalid"

    @property
    def display_url(self) -> str:
        return redact(self.url)

    @property
    def resolved_url(self) -> str | None:
        """For ``letta://``, the URL it stands for now (from the environment), else None."""
        from memfs.remotes import letta

        if self.kind != "letta":
            return None
        try:
            return redact(letta.resolve(self.url))
        except UnsupportedURLError:
            return None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.display_url,
            "kind": self.kind,
            "mirror": self.mirror,
            "resolved_url": self.resolved_url,
            "config_key": self.config_key or f"remote.{self.name}.url",
            "encrypt": self.encrypt,
        }


def redact(url: str) -> str:
    """The URL with any password (or token) removed, fit to print or log."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url.removeprefix(BUCKET_PREFIX))
        parts.password  # noqa: B018  (parses the netloc: raises for a malformed one)
    except ValueError:  # malformed (``http://[::1``): hide whatever precedes an '@'
        return re.sub(r"(://)[^/]*@", r"\1***@", url)
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
    """``"bucket"`` for object stores, ``"git"`` for git hosts, ``"letta"`` for
    ``letta://AGENT_ID`` (a git host named by agent id); UnsupportedURLError otherwise.

    The URL's form is checked whole here, so that no later step reads a malformed URL as
    something else (``::`` as an ssh host, ``memfs::relcloud`` as a folder here).
    """
    if url.startswith(BUCKET_PREFIX):
        _check_bucket_url(url)
        return "bucket"
    if not url.strip():
        raise UnsupportedURLError(url, "the URL is empty")
    if "\0" in url or "\n" in url:
        raise UnsupportedURLError(redact(url), "it holds control characters")
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if match:
        scheme = match.group(1).lower()
        if scheme == "letta":
            from memfs.remotes import letta

            letta.agent_id(url)
            return "letta"
        if scheme in BUCKET_SCHEMES:
            _check_bucket_url(url)
            return "bucket"
        if scheme in GIT_SCHEMES:
            _check_git_url(url, scheme)
            return "git"
        raise UnsupportedURLError(
            redact(url), f"unknown scheme {scheme!r} (git: {', '.join(sorted(GIT_SCHEMES))})"
        )
    _scp_like(url)  # refuses a ':' that makes neither a path nor a host ('::')
    return "git"  # a local path or scp-style [user@]host:path


def _scp_like(url: str) -> bool:
    """Whether ``url`` is scp-style ``[user@]host:path``; refuses one whose host is not a host."""
    colon, slash = url.find(":"), url.find("/")
    if colon < 0 or (0 <= slash < colon and not url.startswith("[")):
        return False  # no ':' before the first '/': a local path, as git reads it
    match = SCP_LIKE.fullmatch(url)
    if match is None or HOST_NAME.fullmatch(match.group("host")) is None:
        raise UnsupportedURLError(
            redact(url),
            "it is neither a local path nor [user@]host:path (an ssh host name is missing or "
            "malformed); write ./PATH for a local folder",
        )
    return True


def _check_git_url(url: str, scheme: str) -> None:
    """A git URL with a scheme must parse and name a host (or, for file://, an absolute path)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as error:
        raise UnsupportedURLError(redact(url), f"it is not a valid URL ({error})") from error
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise UnsupportedURLError(
                redact(url), "a file:// URL takes an absolute path (file:///path/to/repo)"
            )
    elif not parts.hostname:
        raise UnsupportedURLError(redact(url), "it names no host")


def _check_bucket_url(url: str) -> None:
    """An object store is a full URL: a scheme, and for local folders an absolute path."""
    rest = url.removeprefix(BUCKET_PREFIX)
    if "://" not in rest:
        raise UnsupportedURLError(
            redact(url),
            "an object store needs a full URL with a scheme (s3://bucket/path, "
            "file:///absolute/path); a bare or relative name would write into the current folder",
        )
    for part in rest.split("::"):
        scheme, sep, location = part.partition("://")
        if not sep:
            continue  # a chained fsspec layer such as 'simplecache'
        scheme = scheme.lower()
        if scheme in ("file", "local"):
            if not location.startswith("/"):
                raise UnsupportedURLError(
                    redact(url), "a file:// URL takes an absolute path (file:///path/to/cloud)"
                )
        elif not location.strip("/"):
            raise UnsupportedURLError(redact(url), "it names no bucket")
        if any(segment == ".." for segment in location.split("/")):
            raise UnsupportedURLError(redact(url), "it climbs with '..': write the path in full")


def local_path(url: str) -> str | None:
    """The folder a URL names on this machine (git path, file://, local bucket), else None."""
    if url.startswith(BUCKET_PREFIX) or re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url):
        last = url.removeprefix(BUCKET_PREFIX).split("::")[-1]
        scheme, sep, location = last.partition("://")
        if sep and scheme.lower() in ("file", "local"):
            return location if location.startswith("/") else None
        return None
    if url.strip() and not _scp_like(url):
        return url
    return None


def resolve_url(url: str, base: Path) -> str:
    """``url`` with a relative local path made absolute against ``base`` (the agent root)."""
    path = local_path(url)
    if path is None or os.path.isabs(path) or url_kind(url) != "git":
        return url
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def check_outside(url: str, root: Path) -> None:
    """Refuse a remote on this machine that lies inside the agent's folder (or is it).

    Its packs or repository would be saved as memory by the next commit, and pushing into
    the agent itself would move its branch under its own files.
    """
    path = local_path(resolve_url(url, root))
    if path is None:
        return
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([real, real_root]) == real_root:
        raise UnsupportedURLError(
            redact(url),
            f"it is inside the agent's own folder {root}; put the remote outside the agent",
        )


def normalize_url(url: str) -> str:
    """What is stored in .git/config: object stores get the ``memfs::`` prefix."""
    if url_kind(url) == "bucket" and not url.startswith(BUCKET_PREFIX):
        return BUCKET_PREFIX + url
    return url


def open_remote(
    url: str, progress: Callable[[str], None] | None = None, encrypt: bool = False
) -> Remote:
    """The Remote for ``url``; object stores get the options of the cloud they belong to.

    ``encrypt``: the store is known to hold an encrypted agent (``remote.NAME.memfs-encrypt``),
    so a plain one there is refused (DowngradeError); without it an object store is read
    plain unless its stub manifest says it is encrypted."""
    kind = url_kind(url)
    if kind == "letta" or (kind == "git" and _is_letta_state_url(url)):
        from memfs.remotes.letta import open_letta_remote

        return open_letta_remote(url)
    if kind == "git":
        from memfs.remotes.git import GitRemote

        return GitRemote(url)
    from memfs.config import storage_options_for
    from memfs.remotes.bucket import BucketRemote

    return BucketRemote(normalize_url(url), storage_options_for(url), progress, encrypt)


def _is_letta_state_url(url: str) -> bool:
    from memfs.remotes.letta import state_url_agent

    return state_url_agent(url) is not None


def letta_agent_id(url: str) -> str | None:
    """The Letta agent a remote URL names (``letta://ID`` or ``.../v1/git/ID/state.git``)."""
    from memfs.remotes import letta

    if letta.is_letta_url(url):
        return letta.agent_id(url)
    return letta.state_url_agent(url)


def letta_mirror(history: History) -> RemoteConfig | None:
    """The push-only mirror Letta Code names in ``letta.memoryRepository.url``, if any.

    Letta Code's post-commit hook pushes the branch there after each commit and never
    fetches from it; memfs does the same after its own pushes (``memfs.sync``). A relative
    path is taken from the agent's folder, where the hook runs ``git push``.
    """
    config = history.config()  # no dulwich Repo: status lists the remotes
    try:
        url = config.get(LETTA_MIRROR_SECTION, b"url").decode().strip()
    except (KeyError, UnicodeDecodeError):
        return None
    if not url:
        return None
    with contextlib.suppress(UnsupportedURLError):  # refused later, when it is used
        url = resolve_url(url, history.root)
    return RemoteConfig(LETTA_MIRROR_NAME, url, mirror=True, config_key=LETTA_MIRROR_KEY)


def list_remotes(history: History) -> list[RemoteConfig]:
    """Every remote in .git/config, in the order configured.

    A relative local path is resolved against the agent's folder here, as git does, so a
    remote means the same place from whatever folder memfs runs in.
    """
    config = history.config()  # no dulwich Repo: status lists the remotes
    remotes = []
    for section in config.sections():
        if len(section) == 2 and section[0] == b"remote":
            try:
                url = config.get(section, b"url").decode()
            except KeyError:
                continue
            mirror = config.get_boolean(section, MIRROR_KEY, False)
            encrypt = config.get_boolean(section, ENCRYPT_KEY, False)
            with contextlib.suppress(UnsupportedURLError):  # refused later, when it is used
                url = resolve_url(url, history.root)
            remotes.append(
                RemoteConfig(section[1].decode(), url, bool(mirror), encrypt=bool(encrypt))
            )
    return remotes


def get_remote(history: History, name: str) -> RemoteConfig:
    for remote in list_remotes(history):
        if remote.name == name:
            return remote
    raise UnknownRemoteError(name)


_CONFIGURE = ("add_remote", "remove_remote", "record_encrypted")


def __getattr__(name: str) -> object:
    """``from memfs.remotes import add_remote`` as before the configuration moved to
    ``memfs.remotes.configure`` (scripts written from the old examples): loaded on use, so a
    status or push that never changes a remote loads nothing more."""
    if name in _CONFIGURE:
        from memfs.remotes import configure

        return getattr(configure, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
