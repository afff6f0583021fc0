"""Local pack consolidation: many small packs and loose objects into one, safely (issue 12).

Every push keeps the pack it uploaded, every fetch the packs it downloaded, every commit
writes loose objects; left alone, an agent synced all day has thousands of packs and every
object lookup walks their indexes. ``consolidate`` merges them as ``git repack -d
--geometric=2`` does: packs sorted by size, the small ones (those not at least twice the
size of everything smaller) are rolled into one new pack together with the loose objects, so
the big base pack is rewritten only once the small ones add up to half of it.
``consolidate_if_due`` runs it when there are more than ``MEMFS_PACK_LIMIT`` packs (50, git's
``gc.autoPackLimit``) or about ``MEMFS_LOOSE_LIMIT`` loose objects (6,700, git's ``gc.auto``).

Safe against crashes and against readers in other processes:
- it runs under the agent's write lock, so no memfs writer adds objects meanwhile;
- the new pack and its index are written and fsynced before anything is removed, and the
  names of the packs it replaces are recorded (``Packing.hold_packs``), so a fetch never
  downloads again a remote's pack whose objects are here under another name;
- only then are the loose objects it packed removed, then the old packs, index first (a
  reader never opens half a pack): killed at any point, every object is still in a pack or
  a loose file;
- a reader that listed the old packs and finds one gone re-scans the pack folder and finds
  the new one (dulwich does on a miss; ``damage.reads_objects`` retries once after a re-scan;
  git does it itself); an old pack it already opened stays readable while it holds it.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path

from memfs.config import count_from_env
from memfs.damage import object_damage
from memfs.errors import RepositoryDamagedError
from memfs.faults import crash_point
from memfs.record import FrozenRecord
from memfs.util import atomic_write

TYPE_CHECKING = False  # dulwich's pack code loads when a consolidation is due, not on every
if TYPE_CHECKING:  # push's check (``consolidate_if_due``)
    from dulwich.objects import ShaFile
    from dulwich.pack import Pack

    from memfs.history import History

PACK_LIMIT_ENV = "MEMFS_PACK_LIMIT"
DEFAULT_PACK_LIMIT = 50  # git's gc.autoPackLimit
LOOSE_LIMIT_ENV = "MEMFS_LOOSE_LIMIT"
DEFAULT_LOOSE_LIMIT = 6700  # git's gc.auto
DUE_LOCK_TIMEOUT_S = 0.5  # housekeeping waits this long for the lock, then leaves it for later
GEOMETRIC_FACTOR = 2  # git's --geometric=2
HEX = frozenset("0123456789abcdef")


class Consolidation(FrozenRecord):
    """What one consolidation did: packs merged, loose objects packed, the new pack."""

    __slots__ = _fields = ("packs", "loose", "objects", "name")
    packs: int
    loose: int
    objects: int
    name: str | None

    def __init__(self, packs: int, loose: int, objects: int, name: str | None) -> None:
        self._set(packs, loose, objects, name)


def pack_folder(history: History) -> Path:
    return history.control_dir / "objects" / "pack"


def _complete_packs(folder: Path) -> dict[str, int]:
    """Each complete pack (``.pack`` and ``.idx``, no ``.keep``) by name, with its size."""
    try:
        names = set(os.listdir(folder))
    except FileNotFoundError:
        return {}
    packs = {}
    for name in names:
        base = name.removesuffix(".pack")
        if base != name and f"{base}.idx" in names and f"{base}.keep" not in names:
            with contextlib.suppress(FileNotFoundError):
                packs[base] = (folder / name).stat().st_size
    return packs


def _remove_stale_keeps(folder: Path) -> None:
    """Remove the ``.keep`` files an import left when its process was killed before a ref
    reached the pack: at once when the process it names is gone (``packing.orphan_keeps``),
    after ``STALE_KEEP_SECONDS`` when it names none (``packing.FETCH_KEEP`` alone, memfs
    before session 11): the pack is then consolidated like any other (its objects are
    reachable, or no one needs them). A ``.keep`` of anyone else's is left alone."""
    from memfs.history.packing import FETCH_KEEP, STALE_KEEP_SECONDS, orphan_keeps

    for orphan in orphan_keeps(folder):
        with contextlib.suppress(OSError):
            orphan.unlink()
    try:
        keeps = [folder / name for name in os.listdir(folder) if name.endswith(".keep")]
    except FileNotFoundError:
        return
    for keep in keeps:
        with contextlib.suppress(OSError):
            if time.time() - keep.stat().st_mtime < STALE_KEEP_SECONDS:
                continue
            if keep.read_bytes() == FETCH_KEEP:
                keep.unlink()


def _estimated_loose(objects: Path) -> int:
    """About how many loose objects there are: one fan-out folder's count x 256 (git's way)."""
    try:
        return len(os.listdir(objects / "17")) * 256
    except FileNotFoundError:
        return 0


def due(history: History) -> bool:
    """Whether consolidation is due: a count of one folder's names, and of one more."""
    folder = pack_folder(history)
    try:
        packs = sum(1 for name in os.listdir(folder) if name.endswith(".pack"))
    except FileNotFoundError:
        packs = 0
    return packs > count_from_env(PACK_LIMIT_ENV, DEFAULT_PACK_LIMIT) or _estimated_loose(
        folder.parent
    ) > count_from_env(LOOSE_LIMIT_ENV, DEFAULT_LOOSE_LIMIT)


def consolidate_if_due(history: History) -> Consolidation | None:
    """Consolidate if ``due``; what was done, or None. The check costs two folder listings.

    LockTimeoutError if another process holds the agent's lock for more than half a
    second: it is busy now; the next sync tries again.
    """
    return consolidate(history, lock_timeout=DUE_LOCK_TIMEOUT_S) if due(history) else None


def rollup(sizes: dict[str, int], factor: int = GEOMETRIC_FACTOR) -> list[str]:
    """The packs to merge so the rest form a geometric progression (git's ``--geometric``).

    Sorted by size, the largest packs each at least ``factor`` times the one below them are
    kept; everything below the split is merged, and then any kept pack smaller than
    ``factor`` times what is merged joins it, so the merged pack fits the progression too.
    """
    ordered = sorted(sizes, key=lambda name: (sizes[name], name))
    split = 0
    for i in range(len(ordered) - 1, 0, -1):
        if sizes[ordered[i]] < factor * sizes[ordered[i - 1]]:
            split = i + 1
            break
    total = sum(sizes[name] for name in ordered[:split])
    while split < len(ordered) and sizes[ordered[split]] < factor * total:
        total += sizes[ordered[split]]
        split += 1
    return ordered[:split]


def _loose_objects(objects: Path) -> dict[str, Path]:
    """Every loose object's file, by hex sha."""
    found = {}
    for fan in os.listdir(objects):
        if len(fan) != 2 or not set(fan) <= HEX:
            continue
        with contextlib.suppress(NotADirectoryError, FileNotFoundError):
            for rest in os.listdir(objects / fan):
                if len(rest) == 38 and set(rest) <= HEX:
                    found[fan + rest] = objects / fan / rest
    return found


def consolidate(
    history: History, everything: bool = False, lock_timeout: float | None = None
) -> Consolidation:
    """Merge the small packs (all of them with ``everything``) and the loose objects into one
    pack; nothing is lost, whatever happens (see the module docstring)."""
    with history.locked(lock_timeout):
        folder = pack_folder(history)
        _remove_stale_keeps(folder)
        sizes = _complete_packs(folder)
        merged = sorted(sizes) if everything else rollup(sizes)
        loose = _loose_objects(folder.parent)
        if not loose and len(merged) < 2:
            return Consolidation(0, 0, 0, None)
        kept = [n for n in sizes if n not in merged]
        objects, packed_loose = _gather(history, folder, merged, kept, loose)
        name = _write_pack(history, folder, objects) if objects else None
        history.hold_packs([n for n in merged if n != name])
        crash_point("repack.loose")
        for sha in packed_loose:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(loose[sha])
        for old in merged:
            if old != name:
                crash_point("repack.old")
                _remove_pack(folder, old)
        history.repo.object_store._update_pack_cache()  # let go of the packs removed
        return Consolidation(len(merged), len(packed_loose), len(objects), name)


def _gather(
    history: History, folder: Path, merged: list[str], kept: list[str], loose: dict[str, Path]
) -> tuple[dict[bytes, ShaFile], list[str]]:
    """The objects of the merged packs and the loose objects no kept pack holds; and the loose
    objects that can go (packed now, or already in a kept pack). A damaged pack stops the
    consolidation (RepositoryDamagedError); a damaged loose object is left where it is."""
    from dulwich.objects import ShaFile

    objects: dict[bytes, ShaFile] = {}
    for name in merged:
        damage = None
        with contextlib.closing(_open_pack(history, folder / name)) as pack:
            try:
                listed = set(pack)
                objects.update((obj.id, obj) for obj in pack.iterobjects())
            except object_damage() as error:
                # raised once the pack is closed: the error's frames hold views of its map
                damage = f"{name}: {type(error).__name__}: {str(error)[:200]}"
        if damage is None and not listed <= objects.keys():
            damage = f"{name} holds objects whose content does not match their name"
        if damage is not None:
            raise RepositoryDamagedError(str(history.root), damage)
    removable = []
    with contextlib.ExitStack() as stack:
        kept_packs = [
            stack.enter_context(contextlib.closing(_open_pack(history, folder / n))) for n in kept
        ]
        for sha, path in sorted(loose.items()):
            key = sha.encode()
            if key not in objects and not any(key in pack for pack in kept_packs):
                try:
                    obj = ShaFile.from_path(str(path))
                except FileNotFoundError:
                    continue  # packed meanwhile by git itself: not ours to handle
                except object_damage():
                    continue  # damaged: left where it is, for git fsck to name
                if obj.id != key:
                    continue
                objects[key] = obj
            removable.append(sha)
    return objects, removable


def _open_pack(history: History, path: Path) -> Pack:
    from dulwich.pack import Pack

    return Pack(str(path), object_format=history.repo.object_store.object_format)


def _write_pack(history: History, folder: Path, objects: dict[bytes, ShaFile]) -> str:
    """Write ``objects`` as one pack and its index, durable (fsynced) before this returns."""
    from dulwich.pack import write_pack_index, write_pack_objects

    store = history.repo.object_store
    pack = io.BytesIO()
    entries, checksum = write_pack_objects(
        pack.write,
        [(obj, None) for obj in objects.values()],
        object_format=store.object_format,
        deltify=False,
    )
    index = io.BytesIO()
    write_pack_index(
        index, sorted((sha, offset, crc) for sha, (offset, crc) in entries.items()), checksum
    )
    name = f"pack-{checksum.hex()}"
    folder.mkdir(parents=True, exist_ok=True)
    crash_point("repack.pack")
    atomic_write(folder / f"{name}.pack", pack.getvalue(), 0o444)
    crash_point("repack.index")
    atomic_write(folder / f"{name}.idx", index.getvalue(), 0o444)
    return name


def _remove_pack(folder: Path, name: str) -> None:
    """Remove one pack, its index first: a reader listing the folder meanwhile skips it."""
    for suffix in (".idx", ".pack", ".rev", ".bitmap", ".mtimes"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / f"{name}{suffix}")
