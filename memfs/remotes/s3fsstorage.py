"""S3 through s3fs: the fallback for settings the thin client cannot act on.

memfs/remotes/s3storage.py uses this when the credentials need botocore's chain (SSO,
assuming a role, credential_process, web identity, container or instance metadata) or the
options name s3fs settings memfs doesn't read, so nobody loses access to a bucket they reached
before. s3fs and aiobotocore are imported only here, only then (~0.4 s of start-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from memfs.errors import (
    RemoteAuthError,
    RemoteError,
    RemoteNotFoundError,
    RemoteUnreachableError,
)
from memfs.remotes.storage import Stamped, Storage, _FsspecStorage


def open_s3fs(url: str, options: dict[str, Any]) -> Storage:
    """The s3fs-backed storage for an ``s3://`` URL."""
    fs = _s3_filesystem(options)
    return S3FsStorage(fs, fs._strip_protocol(url), url)


# Settings that change which endpoint or credentials an S3 client uses.
_AWS_SETTINGS = (
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED",
)  # fmt: skip
_s3_filesystems: dict[str, Any] = {}
_s3_lock = threading.Lock()


def _s3_filesystem(options: dict[str, Any]) -> Any:
    """An S3 filesystem for these options, reused within this process.

    Creating the client costs ~100 ms, a request ~5 ms: a watcher or a sync touching several
    remotes reuses one client. The key holds everything that changes endpoint or credentials
    (and the pid: a forked child builds its own), so a changed setting gets a new client.
    This replaces fsspec's implicit instance cache, which memfs turns off.
    """
    from s3fs import S3FileSystem

    options = {
        "config_kwargs": {"connect_timeout": 5, "retries": {"max_attempts": 2}},
        **options,
        "skip_instance_cache": True,
    }
    settings = {name: os.environ.get(name) for name in _AWS_SETTINGS}
    key = json.dumps([os.getpid(), options, settings], sort_keys=True, default=str)
    with _s3_lock:
        fs = _s3_filesystems.get(key)
        if fs is None:
            fs = _s3_filesystems[key] = S3FileSystem(**options)
        return fs


class S3FsStorage(_FsspecStorage):
    """S3 and S3-compatible stores through s3fs, with conditional writes done by the server."""

    def get(self, key: str) -> tuple[bytes, str] | None:
        from fsspec.asyn import sync

        with self.translated():
            return sync(self.fs.loop, self._read, key)

    def get_many(self, keys: list[str]) -> list[tuple[bytes, str] | None]:
        """Several objects in one go: the requests overlap instead of waiting on each other."""
        if len(keys) < 2:
            return [self.get(key) for key in keys]
        from fsspec.asyn import sync

        async def read_all() -> list[tuple[bytes, str] | None]:
            return list(await asyncio.gather(*(self._read(key) for key in keys)))

        with self.translated():
            return sync(self.fs.loop, read_all)

    async def _read(self, key: str) -> tuple[bytes, str] | None:
        bucket, object_key, _ = self.fs.split_path(self._path(key))
        try:
            response = await self.fs._call_s3("get_object", Bucket=bucket, Key=object_key)
        except FileNotFoundError as error:
            if _s3_code(error) == "NoSuchBucket":
                raise RemoteNotFoundError(self.url, f"bucket {bucket} does not exist") from error
            return None
        try:
            return await response["Body"].read(), response["ETag"]
        finally:
            response["Body"].close()

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._put(key, data, mode="create")

    def put_if_match(self, key: str, data: bytes, etag: str) -> bool:
        return self._put(key, data, IfMatch=etag)

    def _put(self, key: str, data: bytes, **conditions: Any) -> bool:
        with self.translated():
            try:
                self.fs.pipe_file(self._path(key), data, **conditions)
            except FileExistsError:
                return False
            except OSError as error:
                if _s3_code(error) in (
                    "PreconditionFailed",
                    "ConditionalRequestConflict",
                    "412",
                    "409",
                ):
                    return False
                raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        with self.translated():
            return super().list(prefix)

    def put(self, key: str, data: bytes) -> None:
        with self.translated():
            self.fs.pipe_file(self._path(key), data)

    def list_stamped(self, prefix: str = "") -> Stamped:
        """ListObjectsV2 pages with LastModified and Size; the store's clock is the first
        answer's ``Date`` header (botocore keeps it in ResponseMetadata)."""
        from fsspec.asyn import sync

        with self.translated():
            return sync(self.fs.loop, self._list_stamped, prefix)

    async def _list_stamped(self, prefix: str) -> Stamped:
        from memfs.remotes.s3http import http_date

        bucket, below, _ = self.fs.split_path(self._path(prefix))
        start = self.fs.split_path(self.root)[1]
        start = f"{start}/" if start else ""
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": below}
        entries: list[tuple[str, float, int]] = []
        store_now: float | None = None
        while True:
            page = await self.fs._call_s3("list_objects_v2", **params)
            if store_now is None:
                headers = page.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                store_now = http_date(headers.get("date", ""))
            for item in page.get("Contents", []):
                key = item["Key"]
                if below and key != below and not key.startswith(f"{below}/"):
                    continue
                stamp = item.get("LastModified")
                mtime = stamp.timestamp() if hasattr(stamp, "timestamp") else 0.0
                entries.append((key[len(start) :], mtime, int(item.get("Size") or 0)))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
            params["ContinuationToken"] = token
        if store_now is None:
            store_now = max((m for _, m, _ in entries), default=0.0) or time.time()
        return sorted(entries), store_now

    def folders(self) -> list[str]:
        with self.translated():
            return super().folders()

    def delete(self, key: str) -> None:
        with self.translated():
            super().delete(key)

    def modified(self, key: str) -> float | None:
        with self.translated():
            return super().modified(key)

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        """botocore, aiohttp and s3fs errors -> memfs errors, keeping the cause."""
        try:
            yield
        except RemoteError:
            raise
        except PermissionError as error:
            raise RemoteAuthError(self.url) from error
        except FileNotFoundError as error:
            if _s3_code(error) == "NoSuchBucket":
                raise RemoteNotFoundError(self.url, "the bucket does not exist") from error
            raise
        except Exception as error:
            name = type(error).__name__
            if name in (
                "NoCredentialsError",
                "PartialCredentialsError",
                "CredentialRetrievalError",
            ):
                raise RemoteError(
                    self.url,
                    f"no credentials for {self.url}: set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
                ) from error
            if _is_connection_error(error):
                raise RemoteUnreachableError(
                    self.url, f"{_short(error)}; nothing was lost, try again when it answers"
                ) from error
            if _s3_code(error) in (
                "AccessDenied",
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "403",
            ):
                raise RemoteAuthError(self.url) from error
            if isinstance(error, OSError) and _s3_code(error) == "NoSuchBucket":
                raise RemoteNotFoundError(self.url, "the bucket does not exist") from error
            # Anything else outlived the client's retries (a 500 on every try, a throttle,
            # a reply cut short): the store failed, nothing was lost locally.
            raise RemoteError(
                self.url,
                f"{self.url} failed: {_short(error)}; nothing was lost, try again when the "
                "store answers",
            ) from error


def _s3_code(error: BaseException) -> str | None:
    seen: BaseException | None = error
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code"))
        seen = seen.__cause__ or seen.__context__
    return None


def _is_connection_error(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        name = type(seen).__name__
        if name in (
            "EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError",
            "ConnectionClosedError", "ServerDisconnectedError", "ConnectionRefusedError",
        ) or isinstance(seen, (ConnectionError, TimeoutError)):  # fmt: skip
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _short(error: BaseException) -> str:
    """One short line: the S3 error code and message, without Python's ``[Errno N]``."""
    text = re.sub(r"^\[Errno -?\d+\] ", "", str(error).split("\n", 1)[0])
    text = re.sub(r'(?: from| to)?(?: the)? endpoint URL: "[^"]*"?', "", text)[:200].rstrip(".")
    code = _s3_code(error)
    if code and code != "None" and code not in text:
        text = f"{code}: {text}" if text else code
    return text or type(error).__name__
