"""The Letta remote: an agent's memory repository on a Letta server, as Letta Code reaches it.

Letta Code (src/agent/memory-git.ts, ``getGitRemoteUrl``; src/backend/api/memfs-git-proxy.ts,
``getMemfsServerUrl``) keeps an agent's memory at
``$LETTA_MEMFS_BASE_URL/v1/git/<agent-id>/state.git``, the base defaulting to
``https://api.letta.com``, and authenticates every git request with HTTP Basic
``letta:<api key>`` (``buildGitAuthArgs``). memfs stores such a remote as ``letta://<agent-id>``
in .git/config: the base URL and the key are read from the environment each time the remote
is used (``LETTA_MEMFS_BASE_URL``, ``LETTA_API_KEY``), so the key is never written to disk,
and only the resolved URL, never the key, appears in messages. An ``http(s)://`` URL of the
same ``.../v1/git/<agent-id>/state.git`` form gets the same key when it carries no credentials
of its own.

Letta Code can also name a user's own mirror of the repository, ``letta.memoryRepository.url``
in .git/config, pushed by its post-commit hook (src/agent/memory-git-hooks.ts,
``POST_COMMIT_HOOK_SCRIPT``): push-only, in the background, a failure only logged. memfs
lists it as a push-only mirror (``letta_mirror`` in ``memfs.remotes``) and ``memfs.sync``
pushes it after its own pushes, reporting a failure as a warning.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from memfs.errors import RemoteAuthError, RemoteError, UnsupportedURLError

if TYPE_CHECKING:
    from memfs.remotes.git import GitRemote

SCHEME = "letta"
DEFAULT_BASE_URL = "https://api.letta.com"  # Letta Code's LETTA_CLOUD_API_URL
BASE_URL_ENV = "LETTA_MEMFS_BASE_URL"
API_KEY_ENV = "LETTA_API_KEY"
USERNAME = "letta"
# Letta ids look like ``agent-<uuid>``; any id that is one safe URL path segment is accepted.
AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Letta Code's isMemfsRemoteUrlForAgent: ``^https?://[^\s]+/v1/git/<id>/state\.git$``
STATE_URL = re.compile(r"https?://\S+/v1/git/(?P<agent>[^/\s]+)/state\.git", re.IGNORECASE)


class LettaAuthError(RemoteAuthError):
    """The Letta server refused the API key, or none was given."""

    def __init__(self, url: str, message: str) -> None:
        RemoteError.__init__(self, url, message)


def is_letta_url(url: str) -> bool:
    """Whether ``url`` is written ``letta://...`` (in any case)."""
    return url[: len(SCHEME) + 3].lower() == f"{SCHEME}://"


def agent_id(url: str) -> str:
    """The agent id of ``letta://AGENT_ID``; UnsupportedURLError for anything else."""
    rest = url[len(SCHEME) + 3 :]
    if not _is_agent_id(rest):
        shown = url if "@" not in rest else f"{SCHEME}://***@{rest.rsplit('@', 1)[-1]}"
        raise UnsupportedURLError(
            shown,
            "write letta://AGENT_ID with a Letta agent id such as agent-<uuid> (letters, "
            "digits, '.', '_' and '-'; no '/', '..', spaces or credentials: the key comes "
            f"from {API_KEY_ENV})",
        )
    return rest


def base_url() -> str:
    """The Letta server memory repositories live on: ``$LETTA_MEMFS_BASE_URL`` or Letta's own.

    Trimmed and without trailing slashes, as Letta Code's ``getGitRemoteUrl`` does.
    """
    raw = os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
    base = raw.rstrip("/")
    try:
        parts = urlsplit(base)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        from memfs.remotes import redact

        raise UnsupportedURLError(
            redact(base), f"{BASE_URL_ENV} must be an http(s) URL such as {DEFAULT_BASE_URL}"
        )
    return base


def resolve(url: str) -> str:
    """The git URL ``letta://AGENT_ID`` stands for now (it depends on the environment)."""
    return f"{base_url()}/v1/git/{agent_id(url)}/state.git"


def state_url_agent(url: str) -> str | None:
    """The agent id if ``url`` is an http(s) Letta memory repository URL, else None."""
    match = STATE_URL.fullmatch(url.strip().rstrip("/"))
    if match is None or not _is_agent_id(match.group("agent")):
        return None
    return match.group("agent")


def _is_agent_id(text: str) -> bool:
    """One safe path segment: never '/', '..', whitespace or a leading '-' or '.'."""
    return AGENT_ID.fullmatch(text) is not None and ".." not in text


def api_key() -> str | None:
    """``$LETTA_API_KEY``, or None if it is unset or blank."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    return key or None


def _key_is_sendable(key: str) -> bool:
    """HTTP Basic carries printable ASCII (Letta keys are ``sk-let-...``)."""
    return all(" " < char < "\x7f" for char in key)


def missing_key_error(url: str) -> LettaAuthError:
    """The error for a Letta remote used without ``$LETTA_API_KEY``."""
    return LettaAuthError(
        url,
        f"{url}: {API_KEY_ENV} is not set; export your Letta API key as {API_KEY_ENV} "
        "(memfs sends it as Letta Code does, HTTP Basic auth, and never stores it)",
    )


def refused_error(url: str, sent_key: bool) -> LettaAuthError:
    """The error for a 401/403 from a Letta server, with what to check."""
    if sent_key:
        why = f"refused the Letta API key in {API_KEY_ENV} (check the key and {BASE_URL_ENV})"
    else:
        why = f"asked for credentials: set {API_KEY_ENV} to your Letta API key"
    return LettaAuthError(url, f"{url} {why}")


def open_letta_remote(url: str) -> GitRemote:
    """A GitRemote for ``letta://AGENT_ID`` or a Letta ``.../state.git`` URL, with the key.

    ``letta://`` needs the key (a missing one is raised when the remote is first used); an
    http(s) URL gets it when it has no credentials of its own and the key is set.
    """
    from memfs.remotes import redact
    from memfs.remotes.git import GitRemote

    key = api_key()
    if key is not None and not _key_is_sendable(key):
        shown = redact(resolve(url) if is_letta_url(url) else url)
        return GitRemote(
            url,
            missing=LettaAuthError(
                shown,
                f"{shown}: {API_KEY_ENV} holds spaces or characters that are not printable "
                "ASCII; it is not a Letta API key (they look like sk-let-...)",
            ),
        )
    if is_letta_url(url):
        target = resolve(url)
        shown = redact(target)
        if key is None:
            return GitRemote(target, missing=missing_key_error(shown))
        return GitRemote(
            target, auth=(USERNAME, key), refused=lambda: refused_error(shown, sent_key=True)
        )
    if urlsplit(url).username:  # credentials of its own: used as written
        return GitRemote(url)
    shown = redact(url)
    auth = (USERNAME, key) if key is not None else None
    refused: Callable[[], RemoteError] = lambda: refused_error(shown, auth is not None)  # noqa: E731
    return GitRemote(url, auth=auth, refused=refused)
