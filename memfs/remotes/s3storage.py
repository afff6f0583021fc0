"""S3 storage for bucket remotes through memfs's thin client (``memfs/remotes/s3.py``).

``open_s3`` chooses: the thin client whenever the settings are ones it can act on (almost
always: options, environment, AWS profile files), otherwise s3fs
(``memfs/remotes/s3fsstorage.py``), imported only then, for credentials that need botocore's
chain (SSO, roles, credential_process, instance metadata) or s3fs options memfs doesn't read.
Both offer the same Storage primitives and raise the same memfs errors.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from memfs.errors import (
    RemoteAuthError,
    RemoteError,
    RemoteNotFoundError,
    RemoteUnreachableError,
)
from memfs.remotes.s3 import S3Client, S3ConnectionError, S3Error
from memfs.remotes.s3config import NeedsBotocore, NoCredentials, resolve
from memfs.remotes.storage import UNCHANGED, Stamped, Storage, Unchanged, check_key

TYPE_CHECKING = False  # typing costs an S3 push ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

AUTH_CODES = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken")
LOST_RACE = 412, 409  # PreconditionFailed, ConditionalRequestConflict
_clients: dict[tuple[int, Any], S3Client] = {}
_clients_lock = threading.Lock()


def open_s3(url: str, options: dict[str, Any]) -> Storage:
    """The storage for an ``s3://bucket/prefix`` URL with these (s3fs-style) options."""
    try:
        config = resolve(options)
    except NoCredentials:
        return S3Storage(None, url)
    except NeedsBotocore:
        from memfs.remotes.s3fsstorage import open_s3fs

        return open_s3fs(url, options)
    with _clients_lock:  # one client (and its kept-alive connections) per settings and process
        client = _clients.get((os.getpid(), config))
        if client is None:
            client = _clients[(os.getpid(), config)] = S3Client(config)
    return S3Storage(client, url)


class S3Storage:
    """S3 and S3-compatible stores, conditional writes done by the server.

    ``client`` None means no credentials were found: every call says so (exit 7).
    """

    def __init__(self, client: S3Client | None, url: str) -> None:
        self.client = client
        self.url = url
        root = url.split("://", 1)[1].strip("/")
        self.bucket, _, self.base = root.partition("/")

    def _key(self, key: str) -> str:
        """The object key of ``key`` under the agent's prefix (never outside it)."""
        if key:
            check_key(self.url, key)
        return "/".join(part for part in (self.base, key) if part)

    def _s3(self) -> S3Client:
        if self.client is None:
            raise RemoteError(
                self.url,
                f"no credentials for {self.url}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
            )
        return self.client

    def get(self, key: str) -> tuple[bytes, str] | None:
        answer = self.get_if_changed(key, None)
        assert not isinstance(answer, Unchanged)
        return answer

    def get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | Unchanged | None:
        """Read ``key`` unless it still has ``etag``: a conditional GET, no body if unchanged."""
        with self.translated():
            response = self._s3().get(self.bucket, self._key(key), if_none_match=etag)
        if response.status == 304:
            if etag is None:  # a cache in the way answering a read that set no condition
                raise RemoteError(
                    self.url, f"{self.url} answered 304 Not Modified to a plain read of {key}"
                )
            return UNCHANGED
        if response.status == 404:
            return None
        return response.body, response.headers.get("etag", "")

    def get_many(self, keys: list[str]) -> list[tuple[bytes, str] | None]:
        """Several objects in one go: up to 8 requests at a time instead of one after another."""
        if len(keys) < 2:
            return [self.get(key) for key in keys]
        return list(self._s3().pool().map(self.get, keys))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        with self.translated():
            return self._s3().put(self.bucket, self._key(key), data, if_none_match="*")

    def put_if_match(self, key: str, data: bytes, etag: str) -> bool:
        with self.translated():
            return self._s3().put(self.bucket, self._key(key), data, if_match=etag)

    def put(self, key: str, data: bytes) -> None:
        """Overwrite ``key`` (one writer: no condition, one PUT)."""
        with self.translated():
            self._s3().put(self.bucket, self._key(key), data)

    def delete(self, key: str) -> None:
        with self.translated():
            self._s3().delete(self.bucket, self._key(key))

    def modified(self, key: str) -> float | None:
        with self.translated():
            response = self._s3().head(self.bucket, self._key(key))
        stamp = response.headers.get("last-modified") if response else None
        from email.utils import parsedate_to_datetime  # a compaction's question only: ~4 ms

        try:
            return parsedate_to_datetime(stamp).timestamp() if stamp else None
        except (ValueError, TypeError):  # not a date: unknown (a compaction keeps the pack)
            return None

    def list(self, prefix: str = "") -> list[str]:
        """Every object under ``prefix`` (a folder: ``packs`` lists ``packs/...``)."""
        below = self._key(prefix)
        start = f"{self.base}/" if self.base else ""
        with self.translated():
            keys = [
                key
                for key, _ in self._s3().list(self.bucket, below)
                if key == below or key.startswith(f"{below}/" if below else "")
            ]
        return sorted(key[len(start) :] for key in keys if not key.endswith("/"))

    def list_stamped(self, prefix: str = "") -> Stamped:
        """``list`` with LastModified and Size, and the store's clock (the answer's Date)."""
        below = self._key(prefix)
        start = f"{self.base}/" if self.base else ""
        with self.translated():
            found, store_now = self._s3().list_stamped(self.bucket, below)
        entries = [
            (key[len(start) :], mtime, size)
            for key, mtime, size in found
            if (key == below or key.startswith(f"{below}/" if below else ""))
            and not key.endswith("/")
        ]
        return sorted(entries), store_now

    def folders(self) -> list[str]:
        """The names of the folders right under the root (one per agent in a cloud)."""
        start = f"{self.base}/" if self.base else ""
        with self.translated():
            found = self._s3().list(self.bucket, start, delimiter="/")
            return sorted(key[len(start) :].strip("/") for key, folder in found if folder)

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        """The client's errors -> memfs errors (one line, exit 7), keeping the cause."""
        try:
            yield
        except S3ConnectionError as error:
            raise RemoteUnreachableError(
                self.url, f"{error}; nothing was lost, try again when it answers"
            ) from error
        except S3Error as error:
            if error.status == 403 or error.code in AUTH_CODES:
                raise RemoteAuthError(self.url) from error
            if error.code == "NoSuchBucket":
                raise RemoteNotFoundError(
                    self.url, f"bucket {self.bucket} does not exist"
                ) from error
            # Anything else outlived the retries (a 500 on every try, a throttle): the store
            # failed, nothing was lost locally.
            raise RemoteError(
                self.url,
                f"{self.url} failed: {error}; nothing was lost, try again when the store answers",
            ) from error
