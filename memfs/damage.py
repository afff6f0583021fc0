"""Recognising a damaged repository, so that it ends in one clear line, not a traceback.

A repository can be damaged on disk: a ``.git`` file pointing nowhere, a HEAD that names
nothing, a corrupt or missing object. dulwich then raises from deep inside (zlib, struct,
its own format errors, a bare KeyError); ``reads_objects`` turns those into
``RepositoryDamagedError`` (exit 9, issue 10) around each of ``History``'s reads, and
``damage_of`` checks a control folder before dulwich opens it.
"""

from __future__ import annotations

import functools
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from memfs.errors import RepositoryDamagedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol, TypeVar

    _F = TypeVar("_F", bound=Callable[..., Any])

    class _Rooted(Protocol):
        """What ``reads_objects`` needs of the object whose method it wraps: its work tree."""

        root: Path


@functools.cache
def object_damage() -> tuple[type[BaseException], ...]:
    """What reading a corrupt object or ref raises, from dulwich or below it.

    A function, so that dulwich (and typing, which it imports) loads only when something is
    raised: a clean ``status`` reads no object through dulwich. An ``except`` clause's
    expression is evaluated only when an exception reaches it.
    """
    from dulwich.errors import (
        ChecksumMismatch,
        FileFormatException,
        NotCommitError,
        NotTreeError,
    )

    from memfs.packwrite import ObjectMismatchError

    return (
        zlib.error,
        struct.error,
        ObjectMismatchError,
        ChecksumMismatch,
        FileFormatException,  # ObjectFormatException among them
        NotCommitError,
        NotTreeError,
        UnicodeDecodeError,
    )


def _missing_object(error: KeyError) -> str | None:
    """The sha a KeyError of dulwich's object store names, if it names one."""
    key = error.args[0] if error.args else None
    text = key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)
    return text if len(text) == 40 and all(c in "0123456789abcdef" for c in text) else None


def _new_packs(rooted: _Rooted) -> bool:
    """Re-scan the pack folder of ``rooted``'s repository; whether packs appeared in it."""
    repo = getattr(rooted, "repo", None)
    store = getattr(repo, "object_store", None)
    rescan = getattr(store, "_update_pack_cache", None)
    return bool(rescan()) if rescan is not None else False


def reads_objects(method: _F) -> _F:
    """Turn what a damaged object store raises inside ``method`` into RepositoryDamagedError:
    one clear line and exit 9 instead of an internal error (issue 10).

    A missing object is looked for once more if new packs appeared meanwhile (as git's
    ``reprepare_packed_git``): a consolidation in another process (``repack.py``) may have
    moved it from a loose file into a pack between dulwich's look at the packs and its look
    at the loose objects.
    """

    @functools.wraps(method)
    def reading(self: _Rooted, *args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return method(self, *args, **kwargs)
            except KeyError as error:
                if _missing_object(error) is None or not _new_packs(self):
                    raise
                # another process consolidated the store between this read's look at the
                # packs and at the loose objects: the object is in the new pack; look again
                return method(self, *args, **kwargs)
        except object_damage() as error:
            raise RepositoryDamagedError(str(self.root), _what(error)) from error
        except AssertionError as error:
            if not _raised_in_dulwich(error):
                raise  # a bug of ours: not damage
            # dulwich checks a pack's layout with asserts (cut short, too small for a pack)
            raise RepositoryDamagedError(str(self.root), _what(error)) from error
        except KeyError as error:
            sha = _missing_object(error)
            if sha is None:
                raise
            raise RepositoryDamagedError(str(self.root), f"object {sha} is missing") from error

    return reading  # type: ignore[return-value]


def _what(error: BaseException) -> str:
    kind = {zlib.error: "zlib.error", struct.error: "struct.error"}.get(
        type(error), type(error).__name__
    )
    return kind + (f": {str(error)[:200]}" if str(error) else "")


def _raised_in_dulwich(error: BaseException) -> bool:
    """Whether ``error`` was raised by dulwich's own code (its innermost frame)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("dulwich")


def damage_of(control: Path) -> str | None:
    """What makes the control folder ``control`` unusable, or None; reads only, writes nothing.

    Checked before dulwich opens it: dulwich accepts a ``.git`` file pointing nowhere (and
    memfs would then create folders there) and a HEAD it cannot follow.
    """
    if not control.is_dir():
        return f"its git folder {control} does not exist"
    if not (control / "objects").is_dir():
        return f"{control / 'objects'} is missing"
    try:
        with open(control / "HEAD", "rb") as file:
            head = file.read(4096)
    except OSError as error:
        return f"{control / 'HEAD'} cannot be read ({error.strerror or error})"
    text = head.strip()
    if text.startswith(b"ref: refs/") and b"\n" not in text and b"\0" not in text:
        return None
    if len(text) == 40 and all(c in b"0123456789abcdef" for c in text):
        return None
    return f"{control / 'HEAD'} names neither a branch nor a commit"


def control_dir_of(root: Path) -> Path:
    """``root/.git``, or the folder a ``.git`` file's ``gitdir:`` line names."""
    dot_git = root / ".git"
    if not dot_git.is_file():
        return dot_git
    try:
        with open(dot_git, "rb") as file:
            line = file.read(4096).split(b"\n", 1)[0].strip()
    except OSError:
        return dot_git
    if not line.startswith(b"gitdir:"):
        return dot_git
    return root / os.fsdecode(line.removeprefix(b"gitdir:").strip())
