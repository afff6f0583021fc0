"""The git layer's facade: ``History``, an agent's repository, the one object callers use.

Opening and creating, refs, reading trees, blobs and the log, writing commits, comparing, and
packs for object-store remotes. Trees are plain data (``trees.py``): a ``dict`` of posix paths
to ``TreeEntry`` (mode, hex sha). Commits are written without the index (DESIGN.md §4): blobs
for the changed paths, ``commit_tree_changes`` on the parent's tree, then a compare-and-swap
of the branch. The index is rewritten afterwards only as a stat cache (``gitindex.py``), so
``git status`` agrees with memfs. The revision walks of a push are in ``walks.py``.
Mutating callers hold ``History.locked()`` (``repolock.py``) for the whole operation. Each
read that a damaged repository can break is wrapped by ``damage.reads_objects``.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import stat
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from dulwich.errors import NotGitRepository, NotTreeError
from dulwich.graph import find_merge_base
from dulwich.merge import Merger
from dulwich.object_store import (
    commit_tree_changes,
    iter_tree_contents,
    tree_lookup_path,
)
from dulwich.objects import Blob, Commit, Tree, parse_tree
from dulwich.objectspec import parse_commit, parse_object
from dulwich.pack import write_pack_index, write_pack_objects
from dulwich.repo import Repo
from dulwich.walk import ORDER_TOPO, Walker

from memfs import gitindex, walks
from memfs.config import seconds_from_env
from memfs.damage import control_dir_of, damage_of, reads_objects
from memfs.errors import (
    ConcurrentUpdateError,
    DetachedHeadError,
    GitOperationInProgressError,
    NotAnAgentError,
    PackCorruptError,
    PathNotFoundError,
    RepositoryDamagedError,
    RevisionNotFoundError,
)
from memfs.faults import crash_point
from memfs.packs import PackError, RawObject, index_pack
from memfs.repolock import RepoLock, git_running_in, retry_past_stale_git_lock
from memfs.trees import (
    CommitInfo,
    FileChange,
    Files,
    TreeEntry,
    compare_trees,
    parse_trailers,
)
from memfs.util import atomic_write

BRANCH = "main"
LOCK_TIMEOUT_ENV = "MEMFS_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 60.0
UNPACKED_CACHE_BYTES = 256 * 1024 * 1024  # keep a fetched pack's objects up to this size
COMMIT_CACHE_SIZE = 50_000
LOOSE_OBJECT_LIMIT = 32  # more new blobs than this in one commit are written as a pack
SHA_BYTES = 20


_T = TypeVar("_T")
_open_histories: weakref.WeakSet[History] = weakref.WeakSet()


@atexit.register
def _close_open_histories() -> None:
    """Close repositories still open at exit: dulwich's finalizers fail noisily at shutdown."""
    for history in list(_open_histories):
        with contextlib.suppress(Exception):
            history.close()


class History:
    """An agent's git repository."""

    def __init__(self, root: Path, repo: Repo) -> None:
        self.root = root
        self.repo = repo
        self._lock = RepoLock(Path(repo.controldir()) / "memfs" / "lock")
        # The objects of the pack imported last, by hex sha: a fresh checkout reads its trees
        # and blobs from here instead of inflating them from the pack a second time.
        self._unpacked: dict[bytes, RawObject] = {}
        self._commits: dict[bytes, Commit] = {}
        _open_histories.add(self)

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path) -> History:
        """Open the repository whose work tree is ``root``."""
        if not (root / ".git").exists():
            raise NotAnAgentError(str(root), "no .git folder")
        damage = damage_of(control_dir_of(root))
        if damage is not None:
            raise RepositoryDamagedError(str(root), damage)
        try:
            repo = Repo(str(root))
        except NotGitRepository as error:
            raise NotAnAgentError(str(root), "its .git folder is not a git repository") from error
        return cls(root, repo)

    @classmethod
    def create(cls, root: Path) -> History:
        """Open ``root``'s repository, creating it on branch ``main`` if there is none."""
        if (root / ".git").exists():
            history = cls.open(root)
        else:
            repo = Repo.init(str(root), default_branch=BRANCH.encode())
            history = cls(root, repo)
        config = history.repo.get_config()
        config.set((b"gc",), b"auto", b"0")
        config.write_to_path()
        return history

    def drop_unpacked(self) -> None:
        """Let go of the objects kept from the last imported pack."""
        self._unpacked = {}

    def close(self) -> None:
        self.drop_unpacked()
        self.repo.close()

    @property
    def control_dir(self) -> Path:
        return Path(self.repo.controldir())

    @property
    def state_dir(self) -> Path:
        """``.git/memfs``: memfs's own state, never versioned.

        Created on first use; on an agent the user cannot write it may stay missing, and
        what reads it (``status``) finds no state rather than failing.
        """
        path = self.control_dir / "memfs"
        with contextlib.suppress(OSError):
            path.mkdir(exist_ok=True)
        return path

    def git_operation(self) -> str | None:
        """The plain-git operation stopped midway here (``rebase``, ``merge``, ``cherry-pick``,
        ``revert``, ``am``), or None: what git leaves in ``.git`` until --continue/--abort."""
        control = self.control_dir
        if (control / "rebase-merge").is_dir():
            return "rebase"
        if (control / "rebase-apply").is_dir():
            return "am" if (control / "rebase-apply" / "applying").exists() else "rebase"
        for marker, operation in (
            ("MERGE_HEAD", "merge"),
            ("CHERRY_PICK_HEAD", "cherry-pick"),
            ("REVERT_HEAD", "revert"),
        ):
            if (control / marker).exists():
                return operation
        return None

    def git_busy(self) -> bool:
        """Whether a git command is writing this repository's index now: a live ``index.lock``
        (another tool's ``git add`` or ``git commit``, e.g. Letta Code committing its memory
        write through its hooks). A lock no git process holds is not busy."""
        lock = self.control_dir / "index.lock"
        return lock.exists() and git_running_in(lock.parent)

    def detached(self) -> bool:
        """Whether HEAD names a commit instead of a branch (a plain ``git checkout <sha>``)."""
        return self.branch_ref() == b"HEAD"

    def refuse_during_git_operation(self) -> None:
        """Refuse to commit or update the work tree unless HEAD is a branch and no plain-git
        operation is midway: GitOperationInProgressError, DetachedHeadError."""
        operation = self.git_operation()
        if operation is not None:
            raise GitOperationInProgressError(str(self.root), operation)
        if self.detached():
            raise DetachedHeadError(str(self.root), self.repo.refs[b"HEAD"].decode())

    def locked(self, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the agent's write lock (reentrant within one process)."""
        if timeout is None:
            timeout = seconds_from_env(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)
        return self._lock.hold(timeout)

    # -- refs ---------------------------------------------------------------------------

    @reads_objects
    def branch_ref(self) -> bytes:
        """The ref HEAD points to (``refs/heads/main``)."""
        names, _ = self.repo.refs.follow(b"HEAD")
        return names[-1]

    def branch(self) -> str:
        return self.branch_ref().decode().removeprefix("refs/heads/")

    def index_describes(self, tree: Files) -> bool:
        """Whether the index holds exactly ``tree`` (paths, modes, shas): after a commit
        killed before its index write, it holds an older tree, and git status would show
        that tree staged."""
        return gitindex.index_describes(self.control_dir, tree)

    @reads_objects
    def head(self) -> str | None:
        """The sha of the branch tip, or None before the first commit."""
        ref = self.branch_ref()
        try:
            sha = self.repo.refs[ref]
        except KeyError:
            return None
        if len(sha) != 40 or any(c not in b"0123456789abcdef" for c in sha):
            raise RepositoryDamagedError(str(self.root), f"{ref.decode()} holds no commit sha")
        return sha.decode()

    def resolve(self, rev: str) -> str:
        """The sha of the commit ``rev`` names (sha prefix, HEAD~2, branch, tag)."""
        spec = rev.encode()
        try:
            if any(op in spec for op in (b"~", b"^", b"@{")):
                spec = parse_object(self.repo, spec).id
            return parse_commit(self.repo, spec).id.decode()
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as error:
            raise RevisionNotFoundError(rev) from error

    def ref(self, name: str) -> str | None:
        """The sha a ref points to, or None."""
        try:
            return self.repo.refs[name.encode()].decode()
        except KeyError:
            return None

    def set_ref(self, name: str, sha: str, reason: str) -> None:
        """Point ``name`` (a remote-tracking ref) at ``sha`` unconditionally."""
        self._update_refs(
            lambda: self.repo.refs.set_if_equals(
                name.encode(), None, sha.encode(), message=reason.encode()
            )
        )

    def delete_ref(self, name: str) -> None:
        """Delete ref ``name`` (a remote-tracking ref of a removed remote), if it exists."""
        self._update_refs(lambda: self.repo.refs.remove_if_equals(name.encode(), None))

    def point_head_at(self, branch: str) -> None:
        """Make HEAD a symbolic ref to ``refs/heads/<branch>`` (before the first commit)."""
        self._update_refs(
            lambda: self.repo.refs.set_symbolic_ref(b"HEAD", f"refs/heads/{branch}".encode())
        )

    def _update_refs(self, update: Callable[[], _T]) -> _T:
        """Run a dulwich ref update under the agent's lock, clearing a git lock a crash left."""
        with self.locked():
            return retry_past_stale_git_lock(update)

    def has_commit(self, sha: str) -> bool:
        return sha.encode() in self.repo.object_store

    @reads_objects
    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``descendant`` contains ``ancestor`` (a fast-forward from one to the other):
        ``walks.is_ancestor``, whose cost is the commits since the two diverged."""
        return walks.is_ancestor(self._commit, ancestor, descendant)

    @reads_objects
    def _commit(self, sha: bytes) -> Commit:
        """A commit by binary-hex sha, cached: walks revisit the same commits on every push,
        and a lookup in a store of many small packs costs a scan of every pack index."""
        commit = self._commits.get(sha)
        if commit is None:
            found = self.repo[sha]
            assert isinstance(found, Commit)
            if len(self._commits) >= COMMIT_CACHE_SIZE:
                self._commits.clear()
            commit = self._commits[sha] = found
        return commit

    @reads_objects
    def merge_bases(self, a: str, b: str) -> list[str]:
        """Every best common ancestor of two commits (several after criss-cross merges),
        oldest first; [] for unrelated histories."""
        bases = [sha.decode() for sha in find_merge_base(self.repo, [a.encode(), b.encode()])]
        return sorted(set(bases), key=lambda sha: (self.commit_time(sha), sha))

    @reads_objects
    def commit_time(self, sha: str) -> int:
        commit = self.repo[sha.encode()]
        assert isinstance(commit, Commit)
        return commit.commit_time

    # -- packs (for object-store remotes) ---------------------------------------------

    @reads_objects
    def pack_between(self, include: list[str], exclude: list[str]) -> PackFiles | None:
        """A self-contained pack (no deltas) of what ``include`` has and ``exclude`` lacks."""
        store = self.repo.object_store
        haves = [sha.encode() for sha in exclude if self.has_commit(sha)]
        wants = [sha.encode() for sha in include]
        commits = walks.parents_first(walks.commits_between(self._commit, wants, haves))
        objects = [
            (store[sha], None) for sha in walks.objects_of(store.__getitem__, self._commit, commits)
        ]
        if not objects:
            return None
        pack = io.BytesIO()
        entries, checksum = write_pack_objects(
            pack.write, objects, object_format=store.object_format, deltify=False
        )
        index = io.BytesIO()
        write_pack_index(
            index, sorted((sha, offset, crc) for sha, (offset, crc) in entries.items()), checksum
        )
        return PackFiles(f"pack-{checksum.hex()}", pack.getvalue(), index.getvalue(), len(objects))

    def pack_data(
        self, haves: set[bytes], wants: set[bytes], ofs_delta: bool, progress: Any = None
    ) -> tuple[int, Iterator[Any]]:
        """dulwich's pack data for a git push, read errors of a damaged store translated.

        The objects are read lazily while the pack is sent, so each is read under the same
        translation as ``History``'s other reads (``reads_objects``).
        """
        count, objects = self._pack_data_start(haves, wants, ofs_delta, progress)
        return count, self._translated_objects(objects)

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
        """Whether a pack of this name is in the local object store."""
        return (self.control_dir / "objects" / "pack" / f"{name}.idx").exists()

    def import_pack(self, name: str, pack: bytes, index: bytes | None = None) -> None:
        """Verify a pack and add it, with an index memfs computes itself.

        The pack's checksum must match its content and its name; the index is built here from
        the objects (every id hashed from its content, as ``git index-pack`` does), so a
        remote's index is never trusted. Nothing is added unless all of it checks out.
        ``index`` is for a pack this repository just wrote itself (``pack_between``): its
        objects are already here, so it is stored as it is.
        """
        if index is None:
            try:
                indexed = index_pack(pack)
            except PackError as error:
                raise PackCorruptError(name, str(error)) from error
            if f"pack-{indexed.checksum.hex()}" != name:
                raise PackCorruptError(name, "its checksum does not match its name")
            index = indexed.index_bytes()
            size = sum(len(data) for _, data in indexed.objects.values())
            self._unpacked = (
                {sha.hex().encode(): obj for sha, obj in indexed.objects.items()}
                if size <= UNPACKED_CACHE_BYTES
                else {}
            )
        pack_dir = self.control_dir / "objects" / "pack"
        pack_dir.mkdir(parents=True, exist_ok=True)
        # Durable before any ref can point into it (as git fsyncs its packs); the .idx, last,
        # marks the pack complete.
        atomic_write(pack_dir / f"{name}.pack", pack, 0o444)
        atomic_write(pack_dir / f"{name}.idx", index, 0o444)
        self.repo.object_store._update_pack_cache()

    def config_value(self, section: str, key: str) -> str | None:
        """A value of this repository's own ``.git/config`` (``[section] key``), if set."""
        try:
            return self.repo.get_config().get((section.encode(),), key.encode()).decode()
        except (KeyError, UnicodeDecodeError):
            return None

    def set_config_values(self, section: str, values: dict[str, str]) -> None:
        """Set ``[section]`` keys in ``.git/config`` (memfs's metadata for a Letta repo)."""
        config = self.repo.get_config()
        for key, value in values.items():
            config.set((section.encode(),), key.encode(), value.encode())
        config.write_to_path()

    def git_identity(self) -> str | None:
        """``Name <email>`` from git's config (repo, then global), if it names one."""
        config = self.repo.get_config_stack()
        try:
            name = config.get((b"user",), b"name").decode()
            email = config.get((b"user",), b"email").decode()
        except KeyError:
            return None
        return f"{name} <{email}>"

    @reads_objects
    def count_between(self, include: str | None, exclude: str | None) -> int:
        """Commits reachable from ``include`` but not from ``exclude``."""
        if include is None:
            return 0
        excluded = [exclude.encode()] if exclude and self.has_commit(exclude) else []
        return sum(1 for _ in Walker(self.repo.object_store, [include.encode()], exclude=excluded))

    # -- reading ------------------------------------------------------------------------

    @reads_objects
    def tree_of(self, commit_sha: str | None) -> Files:
        """Every file of the commit's tree (an empty tree for None)."""
        if commit_sha is None:
            return {}
        commit = self._commit(commit_sha.encode())
        files: Files = {}
        # Depth first with a stack of iterators: git's order, and no recursion limit for a
        # (hostile) tree nested thousands deep.
        stack = [(b"", iter(self._tree_items(commit.tree)))]
        while stack:
            prefix, items = stack[-1]
            for name, mode, sha in items:
                if stat.S_ISDIR(mode):
                    stack.append((prefix + name + b"/", iter(self._tree_items(sha))))
                    break
                path = (prefix + name).decode("utf-8", "surrogateescape")
                files[path] = TreeEntry(mode, sha.decode())
            else:
                stack.pop()
        return files

    def _kept(self, sha: bytes, type_num: int) -> bytes | None:
        """The content of object ``sha`` from the last imported pack, if kept and of that type."""
        unpacked = self._unpacked.get(sha)
        return unpacked[1] if unpacked is not None and unpacked[0] == type_num else None

    def _tree_items(self, sha: bytes) -> list[tuple[bytes, int, bytes]]:
        """(name, mode, hex sha) of each entry of tree ``sha``."""
        kept = self._kept(sha, Tree.type_num)
        if kept is not None:
            return list(parse_tree(kept, SHA_BYTES))
        tree = self.repo.object_store[sha]
        if not isinstance(tree, Tree):
            raise NotTreeError(sha)
        return [(entry.path, entry.mode, entry.sha) for entry in tree.iteritems()]

    @reads_objects
    def entries_at(self, commit_sha: str | None, path: str) -> Files:
        """The files at ``path`` in a commit (one file, or all under a folder), without
        flattening the whole tree: O(depth + files under path)."""
        if commit_sha is None:
            return {}
        commit = self.repo[commit_sha.encode()]
        assert isinstance(commit, Commit)
        try:
            mode, sha = tree_lookup_path(
                self.repo.__getitem__, commit.tree, path.encode("utf-8", "surrogateescape")
            )
        except (KeyError, NotTreeError):
            return {}
        if stat.S_ISDIR(mode):
            return {
                f"{path}/{entry.path.decode('utf-8', 'surrogateescape')}": TreeEntry(
                    entry.mode, entry.sha.decode()
                )
                for entry in iter_tree_contents(self.repo.object_store, sha)
            }
        return {path: TreeEntry(mode, sha.decode())}

    @reads_objects
    def blob(self, sha: str) -> bytes:
        kept = self._kept(sha.encode(), Blob.type_num)
        if kept is not None:
            return kept
        blob = self.repo.object_store[sha.encode()]
        assert isinstance(blob, Blob)
        return blob.as_raw_string()

    @reads_objects
    def read_blobs(self, shas: set[str]) -> dict[str, bytes]:
        """The contents of many blobs, by sha: one sequential pass over each pack.

        A fresh checkout reads every blob of a pack; walking it in order decompresses each
        object once, where looking each up by sha seeks and re-reads the pack per object.
        """
        found: dict[str, bytes] = {}
        wanted: set[bytes] = set()
        for sha in shas:
            kept = self._kept(sha.encode(), Blob.type_num)
            if kept is not None:
                found[sha] = kept
            else:
                wanted.add(bytes.fromhex(sha))
        for pack in self.repo.object_store.packs:
            if not wanted:
                break
            for unpacked in pack.data.iter_unpacked():
                if unpacked.pack_type_num != Blob.type_num:
                    continue  # trees, commits and deltas are left to the lookups below
                raw = unpacked.sha()
                if raw in wanted:
                    found[raw.hex()] = b"".join(unpacked.decomp_chunks)
                    wanted.discard(raw)
        for raw in wanted:
            found[raw.hex()] = self.blob(raw.hex())
        return found

    def store_blob(self, data: bytes) -> str:
        """Store ``data`` as a blob; its sha."""
        blob = Blob.from_string(data)
        self.repo.object_store.add_object(blob)
        return blob.id.decode()

    @reads_objects
    def file_at(self, sha: str | None, path: str) -> bytes | None:
        """The content of ``path`` in commit ``sha``, or None if it has none."""
        entry = self.entries_at(sha, path).get(path)
        return self.blob(entry.sha) if entry else None

    @reads_objects
    def read_file(self, rev: str, path: str) -> bytes:
        """The content of ``path`` at ``rev``."""
        entry = self.entries_at(self.resolve(rev), path).get(path)
        if entry is None:
            raise PathNotFoundError(path, f"revision {rev}")
        return self.blob(entry.sha)

    @reads_objects
    def commit_info(self, sha: str) -> CommitInfo:
        commit = self.repo[sha.encode()]
        assert isinstance(commit, Commit)
        return _commit_info(commit)

    @reads_objects
    def log(self, path: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        """Commits from the head backwards; with ``path``, those touching it (following renames)."""
        head = self.head()
        if head is None:
            return []
        walker = Walker(
            self.repo.object_store,
            [head.encode()],
            paths=[path.encode()] if path else None,
            follow=bool(path),
            max_entries=limit,
            order=ORDER_TOPO,  # children before parents even within one second
        )
        return [_commit_info(entry.commit) for entry in walker]

    # -- the work tree ------------------------------------------------------------------

    def hash_worktree(
        self, files: Mapping[str, os.stat_result], use_index: bool = True
    ) -> tuple[Files, list[str]]:
        """Tree entries for the files on disk, hashing only those the index can't vouch for.

        Returns the entries and the paths that vanished or became unreadable meanwhile.
        ``use_index=False`` hashes everything: cheaper for a few files than reading the index.
        """
        return gitindex.hash_worktree(self.root, self.control_dir, files, use_index)

    def write_index(self, tree: Files, stats: Mapping[str, os.stat_result]) -> None:
        """Rewrite the index for ``tree`` with stat data, so ``git status`` is clean."""
        gitindex.write_index(self.control_dir, tree, stats, self._lock.cleared_stale_git_lock)

    def update_index_paths(
        self, updates: Mapping[str, TreeEntry | None], stats: Mapping[str, os.stat_result]
    ) -> None:
        """Bring the index in line for some paths only (after an index-free commit)."""
        gitindex.update_index_paths(
            self.control_dir, updates, stats, self._lock.cleared_stale_git_lock
        )

    # -- writing ------------------------------------------------------------------------

    def commit(
        self,
        parent: str | None,
        changes: Mapping[str, tuple[int, bytes] | None],
        message: str,
        author: str,
        extra_parents: tuple[str, ...] = (),
    ) -> str:
        """Write a commit of ``parent``'s tree plus ``changes`` and move the branch to it.

        ``changes`` maps a path to (mode, content), or to None to delete it. The branch moves
        only if it still points at ``parent``; otherwise ConcurrentUpdateError.
        """
        tree_sha = self.build_tree(parent, changes)
        return self.commit_tree(tree_sha, (parent, *extra_parents), message, author)

    @reads_objects
    def build_tree(
        self, parent: str | None, changes: Mapping[str, tuple[int, bytes] | None]
    ) -> str:
        """Store blobs for ``changes`` and the trees of parent's tree with them applied."""
        store = self.repo.object_store
        edits: list[tuple[bytes, int | None, bytes | None]] = []
        blobs: list[Blob] = []
        for path, change in sorted(changes.items()):
            key = path.encode("utf-8", "surrogateescape")
            if change is None:
                edits.append((key, None, None))
                continue
            mode, data = change
            blob = Blob.from_string(data)
            blobs.append(blob)
            edits.append((key, mode, blob.id))
        if len(blobs) > LOOSE_OBJECT_LIMIT:
            store.add_objects([(blob, None) for blob in blobs])  # one pack, not a file per blob
        else:
            for blob in blobs:
                store.add_object(blob)
        base: Tree | bytes = Tree()
        if parent is not None:
            commit = self.repo[parent.encode()]
            assert isinstance(commit, Commit)
            base = commit.tree
        return commit_tree_changes(store, base, _drop_shadowed_deletes(edits)).decode()

    def tree_from_entries(self, tree: Files) -> str:
        """Store the tree objects for a complete ``tree`` whose blobs are stored already."""
        edits = [
            (path.encode("utf-8", "surrogateescape"), entry.mode, entry.sha.encode())
            for path, entry in sorted(tree.items())
        ]
        return commit_tree_changes(self.repo.object_store, Tree(), edits).decode()

    def commit_tree(
        self, tree_sha: str, parents: tuple[str | None, ...], message: str, author: str
    ) -> str:
        """Write a commit of ``tree_sha`` and move the branch from ``parents[0]`` to it."""
        commit = Commit()
        commit.tree = tree_sha.encode()
        commit.parents = [p.encode() for p in parents if p is not None]
        commit.author = commit.committer = author.encode()
        commit.author_time = commit.commit_time = int(time.time())
        offset = time.localtime().tm_gmtoff
        commit.author_timezone = commit.commit_timezone = offset
        commit.message = message.encode()
        self.repo.object_store.add_object(commit)
        crash_point("commit.objects")
        self.move_branch(parents[0], commit.id.decode(), commit.message.split(b"\n", 1)[0])
        return commit.id.decode()

    def move_branch(self, old: str | None, new: str, reason: bytes = b"memfs") -> None:
        """Compare-and-swap the branch from ``old`` to ``new``."""
        ref = self.branch_ref()
        message = b"commit: " + reason
        if old is None:
            moved = self._update_refs(lambda: self.repo.refs.add_if_new(ref, new.encode(), message))
        else:
            moved = self._update_refs(
                lambda: self.repo.refs.set_if_equals(ref, old.encode(), new.encode(), message)
            )
        if not moved:
            raise ConcurrentUpdateError(
                f"{ref.decode()} moved while memfs was committing; nothing was lost, try again"
            )

    # -- comparing ----------------------------------------------------------------------

    @reads_objects
    def merge_trees(self, base: str | None, ours: str, theirs: str | None) -> tuple[str, list[str]]:
        """Three-way merge of commits' trees: the merged tree's sha and conflicted paths."""

        def tree(sha: str | None) -> Tree | None:
            if sha is None:
                return None
            commit = self.repo[sha.encode()]
            assert isinstance(commit, Commit)
            obj = self.repo[commit.tree]
            assert isinstance(obj, Tree)
            return obj

        merger = Merger(self.repo.object_store)
        merged, conflicts = merger.merge_trees(
            tree(base), tree(ours) or Tree(), tree(theirs) or Tree()
        )
        self.repo.object_store.add_object(merged)
        return merged.id.decode(), [c.decode("utf-8", "surrogateescape") for c in conflicts]

    @reads_objects
    def tree_entries_by_sha(self, tree_sha: str) -> Files:
        return {
            entry.path.decode("utf-8", "surrogateescape"): TreeEntry(entry.mode, entry.sha.decode())
            for entry in iter_tree_contents(self.repo.object_store, tree_sha.encode())
        }

    @reads_objects
    def changed_paths(self, sha: str) -> list[FileChange]:
        """What ``sha`` changed against its first parent."""
        info = self.commit_info(sha)
        parent = info.parents[0] if info.parents else None
        return compare_trees(self.tree_of(parent), self.tree_of(sha))


def _commit_info(commit: Commit) -> CommitInfo:
    message, trailers = parse_trailers(commit.message.decode("utf-8", "replace"))
    tz = timezone(timedelta(seconds=commit.author_timezone))
    return CommitInfo(
        sha=commit.id.decode(),
        parents=[p.decode() for p in commit.parents],
        author=commit.author.decode("utf-8", "replace"),
        date=datetime.fromtimestamp(commit.author_time, tz),
        message=message,
        trailers=trailers,
    )


def _drop_shadowed_deletes(
    edits: list[tuple[bytes, int | None, bytes | None]],
) -> list[tuple[bytes, int | None, bytes | None]]:
    """Drop deletions under a path that becomes a file: replacing the folder deletes them."""
    files = {path for path, _, sha in edits if sha is not None}
    return [
        (path, mode, sha)
        for path, mode, sha in edits
        if sha is not None or not any(path.startswith(f + b"/") for f in files)
    ]


@dataclass(frozen=True)
class PackFiles:
    """A pack ready to upload: its name (``pack-<checksum>``), bytes, index, object count."""

    name: str
    pack: bytes
    index: bytes
    count: int
