"""Object storage with compare-and-swap, one small adapter per filesystem (DESIGN.md §5).

Every adapter offers the same primitives, relative to the agent's root URL:

- ``get(key)``: ``(data, etag)`` read together, or None if absent; ``get_many(keys)``, the
  same for several keys (concurrently where the filesystem can); ``get_if_changed(key, etag)``,
  the same or ``UNCHANGED`` when the object still has ``etag`` (on S3 a conditional GET, so
  an unchanged object costs no body: what an idle watcher polls with);
- ``put_if_absent(key, data)``: create only if nothing is there (False if something is);
- ``put_if_match(key, data, etag)``: replace only if the object still has ``etag``;
- ``put(key, data)``: a plain overwrite, for objects with one writer (an environment's
  presence record, design-encryption.md §7): no condition, so no compare-and-swap cost;
- ``delete(key)``, ``modified(key)`` (epoch seconds), ``list(prefix)``, ``folders()``;
- ``list_stamped(prefix)``: ``([(key, mtime, size)], store_now)``, the listing with each
  object's modification time and the store's own clock at the time of listing (S3: the
  answer's ``Date`` header; a folder: this machine's clock, the folder's own), so the age of
  an object is ``store_now - mtime`` with no writer's clock involved.

A write is visible whole or not at all. S3 does this server-side (``If-None-Match``/
``If-Match``); local files with ``link``/``rename`` and an ``flock`` held while comparing; the
memory filesystem with a process-wide lock. Other filesystems can be read but not pushed to.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from memfs.digests import sha256_hex
from memfs.errors import (
    RemoteError,
    RemoteNotFoundError,
    UnsupportedURLError,
)
from memfs.util import fsync_dir

CAS_PROTOCOLS = ("s3", "s3a", "file", "local", "memory")
TYPE_CHECKING = False  # typing costs a push ~2 ms to import: Storage is a Protocol to a checker
if TYPE_CHECKING:
    from typing import Any, Protocol, TypeVar

    T = TypeVar("T")
else:
    Protocol = object


class Unchanged:
    """``get_if_changed``'s answer when the object still has the etag the caller holds."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged()
# list_stamped's answer: [(key, mtime, size)] and the store's clock (epoch seconds) at listing
Stamped = tuple[list[tuple[str, float, int]], float]


class Storage(Protocol):
    """What the bucket remote needs from a filesystem."""

    url: str

    def get(self, key: str) -> tuple[bytes, str] | None: ...
    def get_if_changed(
        self, key: str, etag: str | None
    ) -> tuple[bytes, str] | Unchanged | None: ...
    def get_many(self, keys: list[str]) -> list[tuple[bytes, str] | None]: ...
    def put_if_absent(self, key: str, data: bytes) -> bool: ...
    def put_if_match(self, key: str, data: bytes, etag: str) -> bool: ...
    def put(self, key: str, data: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def modified(self, key: str) -> float | None: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def list_stamped(self, prefix: str = "") -> Stamped: ...
    def folders(self) -> list[str]: ...


def open_storage(url: str, options: dict[str, Any] | None = None, display: str = "") -> Storage:
    """The storage adapter for an fsspec URL (without the ``memfs::`` prefix).

    ``display`` is how errors name it (the remote's URL, credentials removed).
    """
    storage = _open(url, options)
    storage.url = display or storage.url
    return storage


def _open(url: str, options: dict[str, Any] | None) -> Storage:
    """file:// and s3:// without importing fsspec (its import costs what users wait for)."""
    options = dict(options or {})
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    if protocol in ("file", "local"):
        return LocalStorage(Path(url.split("://", 1)[1] if "://" in url else url), url)
    if protocol in ("s3", "s3a"):
        from memfs.remotes.s3storage import open_s3

        return open_s3(url, options)
    import fsspec.core

    options.setdefault("skip_instance_cache", True)
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ImportError as error:
        raise UnsupportedURLError(url, f"its filesystem is not installed ({error})") from error
    except ValueError as error:
        raise UnsupportedURLError(url, str(error)) from error
    if protocol == "memory":
        return MemoryStorage(fs, root, url)
    return ReadOnlyStorage(fs, root, url)


def check_key(url: str, key: str) -> str:
    """Refuse an object key that could leave the agent's prefix (``..``, absolute, NUL).

    Keys are memfs's own names plus pack names read from the remote's manifest; the manifest
    is validated, and this is the last line: no key ever reads or writes outside the prefix.
    """
    parts = key.split("/")
    if key.startswith("/") or "\0" in key or "\\" in key or any(p in (".", "..") for p in parts):
        raise RemoteError(url, f"{url}: refusing object key {key!r}, it leaves the agent's prefix")
    return key


def _local_errors(method: Callable[..., T]) -> Callable[..., T]:
    """A folder store's OS errors (permission denied, disk full, not a folder) are remote
    errors naming the store (exit 7), like any other store's, not a bare OSError."""

    @functools.wraps(method)
    def wrapped(self: LocalStorage, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except OSError as error:
            where = f" ({error.filename})" if error.filename else ""
            raise RemoteError(
                self.url, f"{self.url} failed: {error.strerror or error}{where}"
            ) from error

    return wrapped


class LocalStorage:
    """A folder on this machine (``file://``)."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url

    def _path(self, key: str) -> Path:
        return self.root / check_key(self.url, key) if key else self.root

    def get_many(self, keys: list[str]) -> list[tuple[bytes, str] | None]:
        return [self.get(key) for key in keys]

    @_local_errors
    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return data, sha256_hex(data)

    def get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | Unchanged | None:
        """Read ``key`` unless it still has ``etag`` (a local read costs no request)."""
        current = self.get(key)
        if current is not None and etag is not None and current[1] == etag:
            return UNCHANGED
        return current

    @_local_errors
    def put_if_absent(self, key: str, data: bytes) -> bool:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = self._write_temp(target, data)
        try:
            os.link(temp, target)  # atomic: fails if the name exists, never half-written
        except FileExistsError:
            return False
        finally:
            os.unlink(temp)
        fsync_dir(target.parent)
        return True

    @_local_errors
    def put_if_match(self, key: str, data: bytes, etag: str) -> bool:
        target = self._path(key)
        with self._locked(target):
            current = self.get(key)
            if current is None or current[1] != etag:
                return False
            temp = self._write_temp(target, data)
            os.replace(temp, target)
            fsync_dir(target.parent)
        return True

    @_local_errors
    def put(self, key: str, data: bytes) -> None:
        """Overwrite ``key`` whole (temp file, fsync, rename): a reader sees old or new.

        Only inside an agent folder that exists: a side object never creates the agent's
        folder (a cloud folder moved away or a drive not mounted stays as it is)."""
        target = self._path(key)
        if not self.root.is_dir():
            raise RemoteNotFoundError(self.url, "the folder is missing")
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = self._write_temp(target, data)
        try:
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        fsync_dir(target.parent)

    @_local_errors
    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def modified(self, key: str) -> float | None:
        try:
            return self._path(key).stat().st_mtime
        except OSError:
            return None

    @_local_errors
    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(
            str(path.relative_to(self.root))
            for path in base.rglob("*")
            if path.is_file() and not path.name.endswith(".lock")
        )

    @_local_errors
    def list_stamped(self, prefix: str = "") -> Stamped:
        """The listing with mtimes and sizes; the folder's clock is this machine's. Not the
        newest mtime: a file's time is whatever its writer (or a folder-syncing tool copying
        it) set, and one file dated in the future would age every other one by as much."""
        now = time.time()  # an object written during the listing is a little "future": age 0
        entries = []
        for key in self.list(prefix):
            if key.rsplit("/", 1)[-1].startswith(".tmp-"):
                continue  # a write under way (put's temp file), not an object
            try:
                stat = (self.root / key).stat()
            except FileNotFoundError:
                continue  # deleted since listed
            entries.append((key, stat.st_mtime, stat.st_size))
        return entries, now

    @_local_errors
    def folders(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def _write_temp(self, target: Path, data: bytes) -> str:
        from memfs.util import make_temp_file  # tempfile's mkstemp without its imports

        fd, temp = make_temp_file(target.parent, ".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return temp

    @contextlib.contextmanager
    def _locked(self, target: Path) -> Iterator[None]:
        """``flock`` on a sidecar file; the kernel drops it if this process dies."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target.with_name(target.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


class _FsspecStorage:
    """Shared reads and listings over an fsspec filesystem."""

    def __init__(self, fs: Any, root: str, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(self.url, key)}" if key else self.root

    def get_many(self, keys: list[str]) -> list[tuple[bytes, str] | None]:
        return [self.get(key) for key in keys]

    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None
        return data, sha256_hex(data)

    def get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | Unchanged | None:
        """Read ``key`` unless it still has ``etag`` (here a full read, then compared)."""
        current = self.get(key)
        if current is not None and etag is not None and current[1] == etag:
            return UNCHANGED
        return current

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))

    def modified(self, key: str) -> float | None:
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            return None
        return _stamp(info)

    def list(self, prefix: str = "") -> list[str]:
        try:
            found = self.fs.find(self._path(prefix))
        except FileNotFoundError:
            return []
        root = self.fs._strip_protocol(self.root).rstrip("/") + "/"
        return sorted(path[len(root) :] if path.startswith(root) else path for path in found)

    def list_stamped(self, prefix: str = "") -> Stamped:
        """The listing with mtimes and sizes; the clock is this process's (an in-process or
        mounted filesystem's own)."""
        now = time.time()
        try:
            found = self.fs.find(self._path(prefix), detail=True)
        except FileNotFoundError:
            return [], now
        root = self.fs._strip_protocol(self.root).rstrip("/") + "/"
        entries = []
        for path, info in sorted(found.items()):
            key = path[len(root) :] if path.startswith(root) else path
            entries.append((key, _stamp(info) or 0.0, int(info.get("size") or 0)))
        return entries, max([now, *(mtime for _, mtime, _ in entries)])

    def folders(self) -> list[str]:
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return []
        return sorted(
            e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == "directory"
        )


def _stamp(info: dict[str, Any]) -> float | None:
    """An fsspec ``info`` entry's modification time in epoch seconds, if it has one."""
    stamp = info.get("LastModified") or info.get("mtime") or info.get("created")
    if hasattr(stamp, "timestamp"):
        return float(stamp.timestamp())
    return float(stamp) if isinstance(stamp, (int, float)) else None


class MemoryStorage(_FsspecStorage):
    """fsspec's in-process memory filesystem; compare-and-swap under a process-wide lock."""

    _lock = threading.Lock()

    def put_if_absent(self, key: str, data: bytes) -> bool:
        with self._lock:
            if self.fs.exists(self._path(key)):
                return False
            self.fs.pipe_file(self._path(key), data)
        return True

    def put_if_match(self, key: str, data: bytes, etag: str) -> bool:
        with self._lock:
            current = self.get(key)
            if current is None or current[1] != etag:
                return False
            self.fs.pipe_file(self._path(key), data)
        return True

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self.fs.pipe_file(self._path(key), data)


class ReadOnlyStorage(_FsspecStorage):
    """A filesystem memfs cannot compare-and-swap on: it can be fetched from, never pushed to."""

    def _refuse(self) -> bool:
        raise UnsupportedURLError(
            self.url,
            "this filesystem cannot compare-and-swap, so concurrent pushes could lose commits; "
            f"memfs pushes only to {', '.join(CAS_PROTOCOLS)}",
        )

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._refuse()

    def put_if_match(self, key: str, data: bytes, etag: str) -> bool:
        return self._refuse()

    def put(self, key: str, data: bytes) -> None:
        self._refuse()
