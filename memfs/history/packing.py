"""Packs for remotes: building a self-contained pack of what a remote lacks, importing a
fetched pack only after verifying and indexing it ourselves, and dulwich's pack data for git.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from memfs.damage import reads_objects
from memfs.errors import (
    PackCorruptError,
)
from memfs.history.base import HistoryBase
from memfs.record import FrozenRecord
from memfs.util import atomic_write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.packs import RawObject

UNPACKED_CACHE_BYTES = 256 * 1024 * 1024  # keep a fetched pack's objects up to this size
HELD_PACKS = "packs-held"  # in .git/memfs: packs whose objects are here under another name
HELD_PACKS_KEPT = 20_000  # the newest names kept; a forgotten one is only downloaded again
FETCH_KEEP = b"memfs: a fetched pack no ref reaches yet\n"
"""What a ``.keep`` file memfs writes beside a pack it imports starts with (git's own fetch
writes one the same way, ``index-pack --keep``): ``git repack -a -d`` and ``git gc`` leave a
kept pack alone, so a repack running beside a pull cannot drop the objects it just imported
before the remote-tracking ref reaches them. Removed once it does (``release_kept``). The line
after it names the process that wrote it (``owner``): one left by a killed process is taken
over by the next fetch (``adopt_orphan_keeps``, under the agent's lock) and removed when that
fetch's ref is written; one without an owner line (memfs before session 11) by the next
consolidation after ``STALE_KEEP_SECONDS``."""
STALE_KEEP_SECONDS = 3600
KEEP_OWNER = b"pid "  # the owner line: b"pid <pid> start <start time in clock ticks>\n"
ORPHAN_LOCK_TIMEOUT_S = 1.0  # a fetch waits this long for the lock to adopt orphans, then not


class Packing(HistoryBase):
    """The pack transfer half of ``History``."""

    _held_cache: tuple[tuple[int, int, int], frozenset[str]] | None
    _unpacked_bytes: int
    _keep_files: list[Path]
    outgoing_check: Callable[[bytes, int, bytes], None] | None = None
    """Set by a push for an agent with secrets (memfs.secrets.outgoing.arm): sees every
    object the push packs and refuses a blob holding a secret's value."""

    @reads_objects
    def pack_between(self, include: list[str], exclude: list[str]) -> PackFiles | None:
        """A self-contained pack (no deltas) of what ``include`` has and ``exclude`` lacks."""
        from memfs import walks
        from memfs.packwrite import build_pack

        haves = [sha.encode() for sha in exclude if self.has_commit(sha)]
        wants = [sha.encode() for sha in include]
        commits = walks.parents_first(walks.commits_between(self._commit, wants, haves))
        shas = walks.objects_of(self._tree_entries, self._commit, commits)
        if not shas:
            return None
        pack_dir = self.control_dir / "objects" / "pack"
        built = build_pack(shas, self._raw, pack_dir, self.outgoing_check)
        return PackFiles(f"pack-{built.checksum.hex()}", built.pack, built.index, built.count)

    def pack_data(
        self, haves: set[bytes], wants: set[bytes], ofs_delta: bool, progress: Any = None
    ) -> tuple[int, Iterator[Any]]:
        """dulwich's pack data for a git push, read errors of a damaged store translated.

        The objects are read lazily while the pack is sent, so each is read under the same
        translation as ``History``'s other reads (``reads_objects``).
        """
        if self.outgoing_check is not None:
            self._check_outgoing(haves, wants)
        count, objects = self._pack_data_start(haves, wants, ofs_delta, progress)
        return count, self._translated_objects(objects)

    @reads_objects
    def _check_outgoing(self, haves: set[bytes], wants: set[bytes]) -> None:
        """Show ``outgoing_check`` every object a git push of ``wants`` sends (dulwich
        builds that pack itself): the same objects ``pack_between`` would pack."""
        from memfs import walks

        check = self.outgoing_check
        assert check is not None
        have = [sha for sha in haves if self.has_commit(sha.decode())]
        commits = walks.parents_first(walks.commits_between(self._commit, list(wants), have))
        for sha in walks.objects_of(self._tree_entries, self._commit, commits):
            type_num, data = self._raw(sha)
            check(bytes.fromhex(sha.decode()), type_num, data)

    @reads_objects
    def _pack_data_start(
        self, haves: set[bytes], wants: set[bytes], ofs_delta: bool, progress: Any
    ) -> tuple[int, Iterator[Any]]:
        count, objects = self.repo.generate_pack_data(
            haves, wants, progress=progress, ofs_delta=ofs_delta
        )
        return count, iter(objects)

    def _translated_objects(self, objects: Iterator[Any]) -> Iterator[Any]:
        while True:
            item = self._next_object(objects)
            if item is None:
                return
            yield item

    @reads_objects
    def _next_object(self, objects: Iterator[Any]) -> Any:
        return next(objects, None)

    def pack_loose(self) -> int:
        """Move loose objects into a pack (memfs's gc); the number packed."""
        return self.repo.object_store.pack_loose_objects()

    def has_pack(self, name: str) -> bool:
        """Whether the objects of the pack of this name are in the local object store: the
        pack itself, or a pack consolidation merged it into (``hold_packs``)."""
        if (self.control_dir / "objects" / "pack" / f"{name}.idx").exists():
            return True
        return name in self._held_set()

    def hold_packs(self, names: list[str]) -> None:
        """Record that these packs' objects are here though the packs are gone (merged into
        another by ``repack.consolidate``), so a fetch never downloads them again. Durable
        before this returns: written before the packs are removed."""
        if not names:
            return
        held = [name for name in self._held_packs() if name not in set(names)] + names
        text = "".join(f"{name}\n" for name in held[-HELD_PACKS_KEPT:])
        atomic_write(self.state_dir / HELD_PACKS, text.encode())

    def release_packs(self, names: list[str]) -> bool:
        """Forget that these packs' objects are here (``hold_packs``): git gc pruned some of
        them since (a branch never fetched here), so a fetch downloads the packs again.
        Whether any of them was held."""
        held = self._held_packs()
        kept = [name for name in held if name not in set(names)]
        if len(kept) == len(held):
            return False
        atomic_write(self.state_dir / HELD_PACKS, "".join(f"{n}\n" for n in kept).encode())
        return True

    def _held_packs(self) -> list[str]:
        try:
            return (self.control_dir / "memfs" / HELD_PACKS).read_text().split()
        except (OSError, UnicodeDecodeError):
            return []

    def _held_set(self) -> frozenset[str]:
        """``_held_packs`` as a set, read again only when the file changed (a fetch asks for
        every pack a manifest lists)."""
        try:
            stat = (self.control_dir / "memfs" / HELD_PACKS).stat()
        except OSError:
            return frozenset()
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = getattr(self, "_held_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, frozenset(self._held_packs()))
            self._held_cache = cached
        return cached[1]

    def import_pack(self, name: str, pack: bytes, index: bytes | None = None) -> None:
        """Verify a pack and add it, with an index memfs computes itself.

        The pack's checksum must match its content and its name; the index is built here from
        the objects (every id hashed from its content, as ``git index-pack`` does), so a
        remote's index is never trusted. Nothing is added unless all of it checks out.
        ``index`` is for a pack this repository just wrote itself (``pack_between``): its
        objects are already here, so it is stored as it is; or for a clone's pack whose
        uploaded index ``packcheck.check_index`` checked against it.
        """
        from memfs.packs import PackError, index_pack

        fetched = index is None  # a remote's objects no ref here reaches yet
        if index is None:
            try:
                indexed = index_pack(pack)
            except PackError as error:
                raise PackCorruptError(name, str(error)) from error
            if f"pack-{indexed.checksum.hex()}" != name:
                raise PackCorruptError(name, "its checksum does not match its name")
            index = indexed.index_bytes()
            self.keep_unpacked(indexed.objects)
        pack_dir = self.control_dir / "objects" / "pack"
        pack_dir.mkdir(parents=True, exist_ok=True)
        if fetched:
            self._keep(pack_dir / f"{name}.keep")
        # Durable before any ref can point into it (as git fsyncs its packs); the .idx, last,
        # marks the pack complete.
        atomic_write(pack_dir / f"{name}.pack", pack, 0o444)
        atomic_write(pack_dir / f"{name}.idx", index, 0o444)
        if self._repo is not None:  # dulwich's list of packs, if it has one (LightObjects
            self._repo.object_store._update_pack_cache()  # lists them again on a miss)

    def _keep(self, path: Path) -> None:
        """Write ``FETCH_KEEP`` and this process's owner line at ``path`` unless a ``.keep``
        is there already (git's, or one of an earlier import: that one stays as it is)."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return
        try:
            os.write(fd, FETCH_KEEP + owner_line())
        finally:
            os.close(fd)
        self._keep_files.append(path)

    def adopt_orphan_keeps(self) -> None:
        """Take over the ``.keep`` files of fetches killed before their ref was written (their
        owner is gone, review10 F8): each is this fetch's from now on, removed by
        ``release_kept`` once this fetch's ref is written, so its pack is consolidated like
        any other, and a ``git repack`` beside this fetch still cannot drop the objects it is
        about to name (it finds the pack here and imports nothing). Under the agent's lock
        (waited for ``ORPHAN_LOCK_TIMEOUT_S``, else left for the next fetch); a keep whose
        owner runs (another fetch, here or in another process) is never touched. One folder
        listing when there is nothing to adopt."""
        folder = self.control_dir / "objects" / "pack"
        if not orphan_keeps(folder, self._keep_files):
            return
        from memfs.errors import LockTimeoutError

        try:
            with self.locked(ORPHAN_LOCK_TIMEOUT_S):
                for path in orphan_keeps(folder, self._keep_files):
                    with contextlib.suppress(OSError):
                        atomic_write(path, FETCH_KEEP + owner_line())
                        self._keep_files.append(path)
        except LockTimeoutError:
            return

    def release_kept(self) -> None:
        """Remove the ``.keep`` files this process wrote beside the packs it imported: a ref
        now reaches their objects (or the command ended), so git may consolidate them."""
        while self._keep_files:
            with contextlib.suppress(OSError):
                self._keep_files.pop().unlink()

    def keep_unpacked(self, objects: dict[bytes, RawObject]) -> None:
        """Keep a fetched pack's objects beside those of the packs imported with it (a clone
        of a remote that lists many packs checks out from all of them; a clone's checkout
        objects, read and hashed by ``packcheck``, are kept the same way), up to
        UNPACKED_CACHE_BYTES in all; past that, the packs on disk serve."""
        size = sum(len(data) for _, data in objects.values())
        if self._unpacked_bytes + size > UNPACKED_CACHE_BYTES:
            self._unpacked, self._unpacked_bytes = {}, 0
            if size > UNPACKED_CACHE_BYTES:
                return
        self._unpacked.update((sha.hex().encode(), obj) for sha, obj in objects.items())
        self._unpacked_bytes += size


def owner_line() -> bytes:
    """The line naming this process in a ``.keep`` it writes: its pid and, where the system
    says, its start time (a pid reused by another process is not taken for the owner)."""
    return b"%s%d start %d\n" % (KEEP_OWNER, os.getpid(), _started(os.getpid()))


def _started(pid: int) -> int:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc``); 0 if the
    system does not say, -1 if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return -1 if os.path.isdir("/proc/self") else 0
    except OSError:
        return 0
    try:  # the fields after the name, which is in parentheses and may hold anything
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return 0


def _owner_runs(text: bytes) -> bool | None:
    """Whether the process a memfs ``.keep`` names still runs; None if it names none (one
    written before keeps had owners)."""
    line = text[len(FETCH_KEEP) :].strip()
    parts = line.split()
    if not line.startswith(KEEP_OWNER) or len(parts) != 4 or not parts[1].isdigit():
        return None
    pid, start = int(parts[1]), int(parts[3]) if parts[3].lstrip(b"-").isdigit() else 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # there, another user's (EPERM)
        pass
    now = _started(pid)
    return not (now == -1 or (start > 0 and now > 0 and now != start))


def orphan_keeps(folder: Path, own: list[Path] | None = None) -> list[Path]:
    """The ``.keep`` files memfs wrote in ``folder`` whose owner process is gone (none of
    ``own``, this object's): one listing, and a read of each memfs-looking ``.keep``."""
    try:
        names = [name for name in os.listdir(folder) if name.endswith(".keep")]
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = folder / name
        if own and path in own:
            continue
        try:
            text = path.read_bytes()
        except OSError:
            continue
        if text.startswith(FETCH_KEEP) and _owner_runs(text) is False:
            found.append(path)
    return found


class PackFiles(FrozenRecord):
    """A pack ready to upload: its name (``pack-<checksum>``), bytes, index, object count."""

    __slots__ = _fields = ("name", "pack", "index", "count")
    name: str
    pack: bytes
    index: bytes
    count: int

    def __init__(self, name: str, pack: bytes, index: bytes, count: int) -> None:
        self._set(name, pack, index, count)
