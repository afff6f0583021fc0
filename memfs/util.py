"""Small helpers shared by the library: crash-safe writes, host name, time."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from datetime import datetime

TEMP_PREFIX = ".memfs-tmp-"


def replace_unsynced(path: Path, data: bytes) -> None:
    """Replace ``path`` whole by a rename (0600), without fsync: for files that only cache or
    report (a remote's pins, ``state.json``), which a crash may lose or leave as they were,
    never half written; each caller says why losing one is harmless. The temp file is named
    by process and randomness, created exclusively, never through a symlink (tempfile costs
    ~3 ms to import)."""
    temp = path.parent / f"{TEMP_PREFIX}{path.name}-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, never half.

    Writes a temp file in the same folder, fsyncs it, renames it over the target and fsyncs
    the folder. Keeps the permission bits of the file it replaces unless ``mode`` is given.
    """
    folder = path.parent
    if mode is None:
        try:
            mode = path.lstat().st_mode & 0o777 if not path.is_symlink() else 0o644
        except FileNotFoundError:
            mode = 0o644
    fd, tmp_name = make_temp_file(folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_dir(folder)


def write_and_rename(
    fd: int, temp: str | Path, path: str | Path, data: bytes | bytearray, fsync: bool
) -> os.stat_result:
    """Write all of ``data`` to ``fd`` (the file just created exclusively at ``temp``: a temp
    name, or git's ``.lock``), fsync it if asked, close it and rename it over ``path``; on any
    failure ``temp`` is removed and the error raised. The stat of the file written (the rename
    keeps its inode). What a loose object, a tracking ref and the index are written with."""
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
            written = os.fstat(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return written


def make_temp_file(folder: Path, prefix: str = TEMP_PREFIX) -> tuple[int, str]:
    """A new file ``<prefix><random>`` in ``folder``, open for writing (mode 0600): what
    ``tempfile.mkstemp`` makes, without importing tempfile (shutil, bz2, lzma, random: ~3 ms
    of every push, which writes the pack it keeps with ``atomic_write``)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(100):
        name = os.path.join(folder, prefix + os.urandom(6).hex())
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def fsync_dir(folder: Path) -> None:
    """Make a rename or creation in ``folder`` durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def hostname() -> str:
    """The name this machine reports, used in commit trailers."""
    # os.uname().nodename is what socket.gethostname() returns on POSIX, without importing
    # socket (its enums cost a commit ~5 ms)
    found = os.environ.get("MEMFS_HOST") or (os.uname().nodename if hasattr(os, "uname") else "")
    if not found:
        import socket

        found = socket.gethostname()
    return found or "localhost"


def utc_now_text() -> str:
    """``utc_now().isoformat()`` (``2026-11-30T19:08:28+00:00``) without importing datetime
    (~1-3 ms), for the records every push, pull and presence beat writes."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def utc_now() -> datetime:
    """The current time in UTC, to the second."""
    from datetime import datetime, timezone  # ~1 ms: not every command tells the time

    return datetime.now(timezone.utc).replace(microsecond=0)


class LazyPattern:
    """A regular expression compiled on its first use: ``re.compile`` at import costs every
    command that loads the module (~0.1 ms a pattern), and most never match it (URL and
    name rules, the manifest's timestamp form). Has what memfs uses of a ``re.Pattern``."""

    __slots__ = ("_compiled", "flags", "pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.flags = flags
        self._compiled: re.Pattern[str] | None = None

    def compiled(self) -> re.Pattern[str]:
        """The compiled pattern (compiled once)."""
        if self._compiled is None:
            import re

            self._compiled = re.compile(self.pattern, self.flags)
        return self._compiled

    def fullmatch(self, string: str) -> re.Match[str] | None:
        return self.compiled().fullmatch(string)

    def match(self, string: str) -> re.Match[str] | None:
        return self.compiled().match(string)

    def search(self, string: str) -> re.Match[str] | None:
        return self.compiled().search(string)
