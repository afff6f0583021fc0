"""Objects read without dulwich: loose files and whole entries of the local packs, read
through their version 2 indexes; what a one-file push asks of the repository.

A push asks whether the commits the remote names are here, walks the new commits and the
trees they change, and reads the few objects its pack holds: importing and opening dulwich's
repository for that (``dulwich.repo``, its object store, logging, tempfile, shutil) costs a
push ~15 ms, more than those reads. ``LightObjects`` answers the plain cases and says "not
answered" (``None``) for the rest, which ``History`` asks dulwich: a store with alternates,
an index that is not version 2, a pack over 2 GiB, an object stored as a delta (git's own
packs after ``git gc``; memfs writes whole objects), anything that does not check out
(dulwich then reports the damage as it does: ``memfs.damage``).

Objects are looked for loose first, then in the packs (listed again on a miss): a
consolidation (``repack.py``) writes its pack before it removes the loose objects it packed,
so an object that moves meanwhile is found in one place or the other.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import zlib
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    import mmap

TYPE_NUMBERS = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
IDX_MAGIC = b"\377tOc"
SHA_LENGTH = 20
FANOUT_AT = 8  # after the magic and the version
SHAS_AT = FANOUT_AT + 256 * 4
_HEX = frozenset(b"0123456789abcdef")
_HEX_TEXT = frozenset("0123456789abcdef")

RawObject = tuple[int, bytes]
"""(type number, content) of one object."""


class NotAnswered(Exception):
    """Raised inside the readers when dulwich must answer instead."""


class PackIndex:
    """A version 2 pack index read whole, with its pack mapped on first read."""

    def __init__(self, path: Path) -> None:
        data = path.read_bytes()
        if data[:4] != IDX_MAGIC or data[4:8] != b"\0\0\0\2" or len(data) < SHAS_AT + 40:
            raise NotAnswered(path)
        fanout = struct.unpack_from(">256L", data, FANOUT_AT)
        count = fanout[255]
        if len(data) < SHAS_AT + count * (SHA_LENGTH + 8) + 2 * SHA_LENGTH or any(
            before > after for before, after in itertools.pairwise(fanout)
        ):
            raise NotAnswered(path)  # dulwich reads it, and says what is wrong
        self.path = path
        self.data = data
        self.fanout = fanout
        self.count = count
        self.shas = memoryview(data)[SHAS_AT : SHAS_AT + count * SHA_LENGTH]
        self.offsets_at = SHAS_AT + count * (SHA_LENGTH + 4)
        self._pack: mmap.mmap | None = None  # mapped on the first read of an object

    def position(self, sha: bytes) -> int | None:
        """Where the binary ``sha`` is in the index, or None if the pack does not hold it."""
        first = sha[0]
        lo = self.fanout[first - 1] if first else 0
        hi = self.fanout[first]
        shas = self.shas
        while lo < hi:
            mid = (lo + hi) // 2
            here = shas[mid * SHA_LENGTH : (mid + 1) * SHA_LENGTH]
            if here == sha:
                return mid
            if here.tobytes() < sha:
                lo = mid + 1
            else:
                hi = mid
        return None

    def read(self, position: int) -> RawObject:
        """The object at ``position``, stored whole (NotAnswered for a delta or a pack that
        is not the one the index describes)."""
        (offset,) = struct.unpack_from(">L", self.data, self.offsets_at + position * 4)
        if offset & 0x80000000:
            raise NotAnswered("a pack over 2 GiB")
        pack = self._mapped()
        from memfs.packs import TYPE_NAMES, PackError, inflate, object_header

        end = len(pack) - SHA_LENGTH
        try:
            type_num, size, at, _ = object_header(pack, offset, end)  # type: ignore[arg-type]
            if type_num not in TYPE_NAMES:
                raise NotAnswered("a delta")
            data, _ = inflate(memoryview(pack), at, end, size, offset)
        except (PackError, IndexError) as error:
            raise NotAnswered(str(error)) from error
        return type_num, data

    def _mapped(self) -> mmap.mmap:
        if self._pack is None:
            import mmap  # status reads no packed object

            with open(self.path.with_suffix(".pack"), "rb") as file:
                pack = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            checksum = self.data[-2 * SHA_LENGTH : -SHA_LENGTH]
            if pack[:4] != b"PACK" or pack[-SHA_LENGTH:] != checksum:
                pack.close()
                raise NotAnswered(f"{self.path.name} does not describe its pack")
            self._pack = pack
        return self._pack

    def close(self) -> None:
        if self._pack is not None:
            with contextlib.suppress(BufferError):  # a view is still held: unmapped later
                self._pack.close()
            self._pack = None


class LightObjects:
    """The loose objects and local packs of the repository whose control folder is
    ``control``, read as dulwich reads them in the plain cases."""

    def __init__(self, control: Path, plain: bool) -> None:
        self.objects = control / "objects"
        self.plain = plain and not (self.objects / "info" / "alternates").exists()
        self._indexes: dict[str, PackIndex] = {}
        self._listed: frozenset[str] | None = None

    def contains(self, sha: str) -> bool | None:
        """Whether object ``sha`` (hex) is here, loose or packed; None if not answered."""
        if not self.plain or not _is_hex_text(sha):
            return None
        try:
            os.stat(self.objects / sha[:2] / sha[2:])
            return True
        except FileNotFoundError:
            pass
        except OSError:
            return None
        try:
            return self._packed(bytes.fromhex(sha)) is not None
        except (NotAnswered, OSError, ValueError):
            return None

    def raw(self, sha: str) -> RawObject | None:
        """(type number, content) of object ``sha`` (hex); None if not answered here.
        KeyError(sha) if it is nowhere (a missing object: ``damage.reads_objects``)."""
        if not self.plain or not _is_hex_text(sha):
            return None
        try:
            with open(self.objects / sha[:2] / sha[2:], "rb") as file:
                compressed = file.read()
        except FileNotFoundError:
            return self._raw_packed(sha)
        except OSError:
            return None
        try:
            raw = zlib.decompress(compressed)
        except zlib.error:
            return None  # dulwich reads it and says so
        header, nul, content = raw.partition(b"\0")
        kind, _, size = header.partition(b" ")
        if not nul or kind not in TYPE_NUMBERS or not size.isdigit() or int(size) != len(content):
            return None
        return TYPE_NUMBERS[kind], content

    def _raw_packed(self, sha: str) -> RawObject | None:
        try:
            found = self._packed(bytes.fromhex(sha))
            if found is None:
                raise KeyError(sha.encode())
            index, position = found
            return index.read(position)
        except (NotAnswered, OSError, ValueError):
            return None

    def _packed(self, sha: bytes) -> tuple[PackIndex, int] | None:
        """The pack index holding binary ``sha`` and its position there; the pack folder is
        listed again on a miss (a consolidation or a fetch may have added a pack)."""
        if self._listed is None:
            self._relist()
        for attempt in range(2):
            if attempt and not self._relist():
                break  # listed again: nothing new
            for index in self._indexes.values():
                position = index.position(sha)
                if position is not None:
                    return index, position
        return None

    def _relist(self) -> bool:
        """List the pack folder again; whether its packs changed."""
        try:
            files = set(os.listdir(self.objects / "pack"))
        except FileNotFoundError:
            files = set()
        names = frozenset(  # a pack with its index, as dulwich lists them
            name[:-4]
            for name in files
            if name.startswith("pack-") and name.endswith(".idx") and f"{name[:-4]}.pack" in files
        )
        if names == self._listed:
            return False
        for gone in self._indexes.keys() - names:
            self._indexes.pop(gone).close()
        folder = self.objects / "pack"
        for name in sorted(names - self._indexes.keys()):
            try:
                self._indexes[name] = PackIndex(folder / f"{name}.idx")
            except FileNotFoundError:
                continue  # removed meanwhile (a consolidation): its objects are elsewhere
        self._listed = names
        return True

    def close(self) -> None:
        for index in self._indexes.values():
            index.close()
        self._indexes = {}
        self._listed = None


class LightCommit:
    """What the revision walks read of a commit (``memfs.walks``): its id, tree, parents and
    commit time, parsed from the raw object as dulwich parses them."""

    __slots__ = ("commit_time", "id", "parents", "tree")

    def __init__(self, sha: bytes, tree: bytes, parents: list[bytes], commit_time: int) -> None:
        self.id = sha
        self.tree = tree
        self.parents = parents
        self.commit_time = commit_time


def parse_commit(sha: bytes, content: bytes) -> LightCommit | None:
    """A commit's header read plainly; None for anything unusual (dulwich parses those)."""
    header, blank, _ = content.partition(b"\n\n")
    if not blank:
        return None
    tree: bytes | None = None
    parents: list[bytes] = []
    when: int | None = None
    for line in header.split(b"\n"):
        if line[:1] == b" ":
            continue  # a multi-line header's continuation (a signature, a merged tag)
        field, _, value = line.partition(b" ")
        if field == b"tree":
            if tree is not None or not _is_hex(value):
                return None
            tree = value
        elif field == b"parent":
            if not _is_hex(value):
                return None
            parents.append(value)
        elif field == b"committer":
            _, close, stamp = value.rpartition(b">")
            parts = stamp.split()
            if when is not None or not close or len(parts) != 2 or not parts[0].isdigit():
                return None
            when = int(parts[0])
        elif not field:
            return None
    if tree is None or when is None:
        return None
    return LightCommit(sha, tree, parents, when)


def parse_tree(content: bytes) -> dict[bytes, tuple[int, bytes]] | None:
    """A tree's entries by name, (mode, hex sha), in git's order; None for anything unusual
    (entries out of git's order or a name twice, an empty name or one with a '/', a mode
    that is not octal: dulwich reads those and memfs says what it finds)."""
    entries: dict[bytes, tuple[int, bytes]] = {}
    at, end = 0, len(content)
    previous = b""
    while at < end:
        space = content.find(b" ", at)
        nul = content.find(b"\0", space + 1)
        if space < 0 or nul < 0 or nul + 1 + SHA_LENGTH > end:
            return None
        mode_text = content[at:space]
        if not mode_text or any(c not in b"01234567" for c in mode_text):
            return None
        name = content[space + 1 : nul]
        mode = int(mode_text, 8)
        key = name + b"/" if mode & 0o170000 == 0o040000 else name  # git sorts folders so
        if not name or b"/" in name or key <= previous or name in entries:
            return None
        previous = key
        entries[name] = (mode, content[nul + 1 : nul + 1 + SHA_LENGTH].hex().encode())
        at = nul + 1 + SHA_LENGTH
    return entries


def _is_hex(value: bytes) -> bool:
    return len(value) == 40 and _HEX.issuperset(value)


def _is_hex_text(value: str) -> bool:
    return len(value) == 40 and _HEX_TEXT.issuperset(value)
