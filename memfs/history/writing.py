"""Writing history without the index (DESIGN.md §4), and keeping the index as a stat cache.

A commit stores blobs for the changed paths, builds trees with ``commit_tree_changes`` on
the parent's tree, then compare-and-swaps the branch. The index is rewritten afterwards only
so ``git status`` agrees with memfs (``gitindexwrite.py``; read back by ``gitindex.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping

from memfs.damage import reads_objects
from memfs.faults import crash_point
from memfs.history.base import HistoryBase
from memfs.trees import Files, TreeEntry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dulwich.objects import Tree

LOOSE_OBJECT_LIMIT = 32  # more new blobs than this in one commit are written as a pack


class Writing(HistoryBase):
    """The commit, tree-building and merge writes of ``History``."""

    def index_describes(self, tree: Files, commit: str | None = None) -> bool:
        """Whether the index holds exactly ``tree`` (paths, modes, shas): after a commit
        killed before its index write, it holds an older tree, and git status would show
        that tree staged. With ``commit`` (whose tree ``tree`` is), a yes lets ``head_tree``
        read that tree from the index from then on."""
        from memfs import gitindex

        tree_sha = self.commit_tree_sha(commit) if commit else None
        return gitindex.index_describes(self.control_dir, tree, tree_sha)

    def hash_worktree(
        self, files: Mapping[str, os.stat_result], use_index: bool = True
    ) -> tuple[Files, list[str]]:
        """Tree entries for the files on disk, hashing only those the index can't vouch for.

        Returns the entries and the paths that vanished or became unreadable meanwhile.
        ``use_index=False`` hashes everything: cheaper for a few files than reading the index.
        """
        from memfs import gitindex

        return gitindex.hash_worktree(self.root, self.control_dir, files, use_index)

    def write_index(
        self,
        tree: Files,
        stats: Mapping[str, os.stat_result],
        commit: str | None = None,
        changed: Collection[str] | None = None,
    ) -> None:
        """Rewrite the index for ``tree`` with stat data, so ``git status`` is clean.

        ``commit``, the commit whose tree ``tree`` is, lets ``head_tree`` read that tree back
        from the index (git's cache-tree, in effect). ``changed``, the paths where ``tree``
        may differ from the index now, lets the other entries be copied, not packed again.
        """
        from memfs import gitindexwrite

        tree_sha = self.commit_tree_sha(commit) if commit else None
        gitindexwrite.write_index(
            self.control_dir, tree, stats, self._lock.cleared_stale_git_lock, tree_sha, changed
        )

    def splice_index(
        self,
        tree: Files,
        stats: Mapping[str, os.stat_result],
        changed: Collection[str],
        commit: str | None = None,
    ) -> bool:
        """Write the index for ``tree`` replacing only the ``changed`` entries, if it lists
        ``tree`` everywhere else; whether it could. ``commit`` as for ``write_index``."""
        from memfs import gitindexwrite

        tree_sha = self.commit_tree_sha(commit) if commit else None
        return gitindexwrite.splice_index(
            self.control_dir, tree, stats, changed, self._lock.cleared_stale_git_lock, tree_sha
        )

    @reads_objects
    def head_tree(self, commit: str | None) -> Files:
        """``tree_of(commit)``, from the index when it was written for that commit's tree and
        is unchanged since: the index is read anyway to avoid hashing, and at 10,000 files
        reading it costs a fraction of flattening a hundred tree objects.

        The root tree object is still read, so a damaged or missing one is reported as
        ``tree_of`` reports it (damage deeper down shows when a command reads that folder).
        """
        from memfs import gitindex

        if commit is None:
            return {}
        tree = self.commit_tree_sha(commit)
        files = gitindex.tree_from_index(self.control_dir, tree)
        if files is None:
            files = self.tree_of(commit)
            # git rewrote the index (a 'git status' refreshing stat data), or a commit left no
            # record: if the index still lists this tree, say so for the next command
            gitindex.index_describes(self.control_dir, files, tree)
            return files
        if self._light.is_tree(tree.encode()) is None:  # readable, and a tree
            self._tree_items(tree.encode())
        return files

    @reads_objects
    def commit_tree_sha(self, commit: str) -> str:
        """The sha of commit ``commit``'s tree; a loose commit is read without dulwich."""
        cached = self._commits.get(commit.encode())
        tree = None if cached is not None else self._light.commit_tree(commit.encode())
        if tree is None:
            tree = self._commit(commit.encode()).tree
        return tree.decode()

    def update_index_paths(
        self, updates: Mapping[str, TreeEntry | None], stats: Mapping[str, os.stat_result]
    ) -> None:
        """Bring the index in line for some paths only (after an index-free commit)."""
        from memfs import gitindexwrite

        gitindexwrite.update_index_paths(
            self.control_dir, updates, stats, self._lock.cleared_stale_git_lock
        )

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
        from dulwich.object_store import commit_tree_changes
        from dulwich.objects import Blob, Commit, Tree

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
        from dulwich.object_store import commit_tree_changes
        from dulwich.objects import Tree

        edits = [
            (path.encode("utf-8", "surrogateescape"), entry.mode, entry.sha.encode())
            for path, entry in sorted(tree.items())
        ]
        return commit_tree_changes(self.repo.object_store, Tree(), edits).decode()

    def commit_tree(
        self, tree_sha: str, parents: tuple[str | None, ...], message: str, author: str
    ) -> str:
        """Write a commit of ``tree_sha`` and move the branch from ``parents[0]`` to it."""
        from dulwich.objects import Commit

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

    @reads_objects
    def merge_trees(self, base: str | None, ours: str, theirs: str | None) -> tuple[str, list[str]]:
        """Three-way merge of commits' trees: the merged tree's sha and conflicted paths."""
        from dulwich.objects import Commit, Tree

        def tree(sha: str | None) -> Tree | None:
            if sha is None:
                return None
            commit = self.repo[sha.encode()]
            assert isinstance(commit, Commit)
            obj = self.repo[commit.tree]
            assert isinstance(obj, Tree)
            return obj

        from dulwich.merge import Merger  # with merge3 and attrs, ~5 ms: merges only

        merger = Merger(self.repo.object_store)
        merged, conflicts = merger.merge_trees(
            tree(base), tree(ours) or Tree(), tree(theirs) or Tree()
        )
        self.repo.object_store.add_object(merged)
        return merged.id.decode(), [c.decode("utf-8", "surrogateescape") for c in conflicts]


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
