"""Git hosts through dulwich's clients: every transport dulwich speaks.

Pushes are plain git pushes with a compare-and-swap: memfs checks in ``update_refs`` that the
remote branch is still where it was fetched, and git's receive-pack re-checks the old value
under its ref lock, so a push never overwrites commits it has not merged. Nothing is forced.
dulwich and network errors become memfs errors in one place, ``_translated``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Set
from typing import TYPE_CHECKING, Any

from dulwich.client import HTTPUnauthorized, LocalGitClient, get_transport_and_path
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.file import FileLocked
from dulwich.repo import Repo

from memfs.errors import (
    PushRejectedError,
    RemoteAuthError,
    RemoteError,
    RemoteNotFoundError,
    RemoteUnreachableError,
    UnsupportedURLError,
)
from memfs.faults import crash_point
from memfs.remotes import redact
from memfs.repolock import STALE_GIT_LOCK_S, retry_past_stale_git_lock

if TYPE_CHECKING:
    from memfs.history import History

CONNECT_TIMEOUT = 20.0


class _RemoteMoved(Exception):
    """Raised in update_refs to abort a push whose branch moved since it was looked at."""


class _RefLocked(Exception):
    """A local remote's ref lock is held by another push (or was left by a killed one)."""

    def __init__(self, message: str, lock: str | None) -> None:
        super().__init__(message)
        self.lock = lock


class GitRemote:
    """A git repository reached over a path, file://, git://, ssh:// or http(s)://.

    ``auth`` is HTTP Basic (user, password) sent with every request to the URL's origin
    only; it is held in memory, never written or shown. ``missing`` is raised on first use
    when credentials the remote needs were not given; ``refused`` builds the error for a
    401/403 (default: RemoteAuthError). Both let a caller say what to fix (memfs.remotes.letta).
    """

    def __init__(
        self,
        url: str,
        auth: tuple[str, str] | None = None,
        missing: RemoteError | None = None,
        refused: Callable[[], RemoteError] | None = None,
    ) -> None:
        self._url = url
        self.url = redact(url)
        self._auth = auth
        self._missing = missing
        self._refused = refused or (lambda: RemoteAuthError(self.url))

    def _client(self, operation: str) -> tuple[Any, str]:
        if self._missing is not None:
            raise self._missing
        ssh_command = os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH")
        credentials: dict[str, str] = {}
        if self._auth is not None:
            credentials = {"username": self._auth[0], "password": self._auth[1]}
        try:
            return get_transport_and_path(
                self._url, operation=operation, quiet=True, ssh_command=ssh_command, **credentials
            )
        except (ValueError, KeyError) as error:
            raise UnsupportedURLError(self.url, str(error)) from error

    def _refs(self) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
        client, path = self._client("pull")
        with self._translated():
            result = client.get_refs(path.encode() if isinstance(path, str) else path)
        refs = {name: sha for name, sha in (result.refs or {}).items() if sha is not None}
        return refs, dict(result.symrefs or {})

    def head(self, branch: str) -> str | None:
        refs, _ = self._refs()
        sha = refs.get(f"refs/heads/{branch}".encode())
        return sha.decode() if sha else None

    def default_branch(self) -> str | None:
        refs, symrefs = self._refs()
        target = symrefs.get(b"HEAD")
        if target and target in refs:
            return target.decode().removeprefix("refs/heads/")
        heads = sorted(name for name in refs if name.startswith(b"refs/heads/"))
        return heads[0].decode().removeprefix("refs/heads/") if len(heads) == 1 else None

    def fetch(self, history: History, branch: str) -> str | None:
        ref = f"refs/heads/{branch}".encode()
        store = history.repo.object_store
        seen: list[bytes] = []

        def determine_wants(refs: dict[bytes, bytes], depth: int | None = None) -> list[bytes]:
            sha = refs.get(ref)
            if sha is None:
                return []
            seen.append(sha)  # what was fetched; the result's refs may be read later
            return [sha] if sha not in store else []

        client, path = self._client("pull")
        with self._translated():
            # a fetch killed while storing its pack leaves ``pack-*.idx.lock`` in this repo's
            # objects, and the same pack fetched again would meet it; the caller holds the
            # agent's lock, so a stale one is a crash's and is cleared
            retry_past_stale_git_lock(
                lambda: client.fetch(path, history.repo, determine_wants=determine_wants)
            )
        crash_point("fetch.import")  # the pack is in, no ref points at it yet
        if not seen:
            return None
        sha = seen[-1].decode()
        if not history.has_commit(sha):
            raise RemoteError(self.url, f"{self.url}: the fetch did not bring {sha[:7]}; try again")
        return sha

    def push(self, history: History, branch: str, new: str, expected: str | None) -> None:
        ref = f"refs/heads/{branch}".encode()

        def update_refs(refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
            current = refs.get(ref)
            if (current.decode() if current else None) != expected:
                raise _RemoteMoved
            return {ref: new.encode()}

        def generate_pack_data(
            have: Set[bytes], want: Set[bytes], *, ofs_delta: bool = False, progress: Any = None
        ) -> tuple[int, Iterator[Any]]:
            return history.pack_data(set(have), set(want), ofs_delta, progress)

        client, path = self._client("push")
        self._refuse_checked_out(branch)
        crash_point("push.git")
        try:
            with self._translated():
                result = client.send_pack(
                    path.encode() if isinstance(path, str) else path,
                    update_refs,
                    generate_pack_data=generate_pack_data,
                )
        except _RemoteMoved:
            raise PushRejectedError(self.url) from None
        except _RefLocked as locked:
            age = _age_s(locked.lock)
            if locked.lock is not None and age is not None and age >= STALE_GIT_LOCK_S:
                # no push holds a ref lock for seconds: a killed one left it, and retrying
                # cannot help. It is the remote's file, so it is named, not removed.
                raise RemoteError(
                    self.url,
                    f"{self.url}: its branch is locked by {locked.lock}, left {age:.0f}s ago by "
                    "a push that was killed; if no git command is using it, delete that file "
                    "and sync again",
                ) from locked
            raise PushRejectedError(self.url, "its branch was being updated") from locked
        error = (result.ref_status or {}).get(ref)
        if error:
            raise PushRejectedError(self.url, str(error))

    def checked_out_folder(self, branch: str) -> str | None:
        """The work tree, if this remote is a repository on this machine that has ``branch``
        checked out with its files (None for bare repositories and remote hosts)."""
        client, path = self._client("push")
        if not isinstance(client, LocalGitClient):
            return None
        folder = os.fsdecode(path)
        try:
            target = Repo(folder)
        except (NotGitRepository, OSError):
            return None  # nothing there yet: the push itself reports it
        try:
            # ``src/.git`` opens as bare, but its config knows it has a work tree
            declared_bare = target.get_config().get_boolean((b"core",), b"bare", target.bare)
            if target.bare and declared_bare:
                return None
            head = target.refs.read_ref(b"HEAD")
            work_tree = target.path if not target.bare else os.path.dirname(target.path)
        finally:
            target.close()
        return work_tree if head == b"ref: refs/heads/" + branch.encode() else None

    def _refuse_checked_out(self, branch: str) -> None:
        """Refuse to push into the checked-out branch of a repository with a work tree.

        git's ``receive.denyCurrentBranch``: the push would move the branch but not the files,
        and the folder's next commit would undo what was pushed. A git server refuses this
        itself; a local path (dulwich's own receive-pack) would not, so it is checked here.
        memfs's sync delivers to a local agent folder by merging there instead.
        """
        folder = self.checked_out_folder(branch)
        if folder is not None:
            raise RemoteError(
                self.url,
                f"{self.url} has branch {branch} checked out with its files: a push would move "
                "its branch but not its files. Pull from this agent there instead "
                f"(memfs -C {folder} pull), or push to a bare repository or a cloud",
            )

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn dulwich and network errors into memfs errors, keeping the cause."""
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(CONNECT_TIMEOUT)
        try:
            yield
        except _RemoteMoved:
            raise
        except FileLocked as error:
            # a local remote's ref is locked by a concurrent push: a lost race, not an outage
            raise _RefLocked(str(error), os.fsdecode(error.lockfilename)) from error
        except FileExistsError as error:
            lock = os.fsdecode(error.filename) if error.filename else None
            raise _RefLocked(str(error), lock) from error
        except HTTPUnauthorized as error:
            raise self._refused() from error
        except NotGitRepository as error:
            raise RemoteNotFoundError(self.url) from error
        except HangupException as error:
            raise self._auth_checked(_from_hangup(self.url, error)) from error
        except GitProtocolError as error:
            if _network_failure(error):
                raise RemoteUnreachableError(self.url, _reason(error)) from error
            raise self._auth_checked(_from_protocol(self.url, str(error))) from error
        except (ConnectionError, TimeoutError, socket.gaierror) as error:
            raise RemoteUnreachableError(self.url, _reason(error)) from error
        except OSError as error:
            raise RemoteUnreachableError(self.url, _reason(error)) from error
        except Exception as error:
            if type(error).__module__.startswith("urllib3"):
                raise RemoteUnreachableError(self.url, _reason(error)) from error
            raise
        finally:
            socket.setdefaulttimeout(previous)

    def _auth_checked(self, error: RemoteError) -> RemoteError:
        """``error``, or this remote's own refusal if it is one (a 403 says so in text)."""
        return self._refused() if isinstance(error, RemoteAuthError) else error


def _age_s(path: str | None) -> float | None:
    """Seconds since ``path`` was last modified, or None if it is gone."""
    if path is None:
        return None
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return None


def _from_hangup(url: str, error: HangupException) -> RemoteError:
    said = " ".join(
        line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)
        for line in (getattr(error, "stderr_lines", None) or [])
    ).strip()
    lowered = said.lower()
    if any(word in lowered for word in ("not found", "does not appear", "not exported", "no such")):
        return RemoteNotFoundError(url, said)
    if any(word in lowered for word in ("permission denied", "publickey", "authentication")):
        return RemoteAuthError(url)
    return RemoteUnreachableError(url, said or "the remote hung up")


def _from_protocol(url: str, message: str) -> RemoteError:
    lowered = message.lower()
    if (
        "404" in lowered
        or "not found" in lowered
        or ("repository" in lowered and "exist" in lowered)
    ):
        return RemoteNotFoundError(url, message)
    if "401" in lowered or "403" in lowered:
        return RemoteAuthError(url)
    return RemoteError(url, f"{url}: {message}")


def _network_failure(error: BaseException) -> bool:
    """Whether a protocol error is really a connection that failed (dulwich wraps urllib3's)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) or type(seen).__module__.startswith("urllib3"):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(error)
    return "Max retries exceeded" in text or "Failed to establish a new connection" in text


def _reason(error: BaseException) -> str:
    """A short reason: 'Connection refused' rather than a page of urllib3 repr."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    errno_text = re.search(r"\[Errno -?\d+\] ([^\"')]+)", text)
    if errno_text:
        return errno_text.group(1).strip()
    return text.split("\n", 1)[0][:200]
