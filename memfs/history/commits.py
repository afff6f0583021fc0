"""Reading the commit graph: ancestry, merge bases, the log, what a commit changed.

Commits are cached by sha: a push walks the same commits again and again, and a lookup in a
store of many small packs scans every pack index.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from memfs.damage import reads_objects
from memfs.history.base import HistoryBase
from memfs.trees import CommitInfo, FileChange, compare_trees, parse_trailers

if TYPE_CHECKING:
    from dulwich.objects import Commit

# dulwich is imported inside the methods: a clean ``status`` reads no commit graph, and
# dulwich's object store costs it ~15 ms (see memfs/history/light.py).

COMMIT_CACHE_SIZE = 50_000


class Commits(HistoryBase):
    """The commit-graph half of ``History``."""

    def has_commit(self, sha: str) -> bool:
        return sha.encode() in self.repo.object_store

    @reads_objects
    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``descendant`` contains ``ancestor`` (a fast-forward from one to the other):
        ``walks.is_ancestor``, whose cost is the commits since the two diverged."""
        from memfs import walks

        return walks.is_ancestor(self._commit, ancestor, descendant)

    @reads_objects
    def _commit(self, sha: bytes) -> Commit:
        """A commit by binary-hex sha, cached: walks revisit the same commits on every push,
        and a lookup in a store of many small packs costs a scan of every pack index."""
        from dulwich.objects import Commit

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
        from dulwich.graph import find_merge_base

        bases = [sha.decode() for sha in find_merge_base(self.repo, [a.encode(), b.encode()])]
        return sorted(set(bases), key=lambda sha: (self.commit_time(sha), sha))

    @reads_objects
    def commit_time(self, sha: str) -> int:
        from dulwich.objects import Commit

        commit = self.repo[sha.encode()]
        assert isinstance(commit, Commit)
        return commit.commit_time

    @reads_objects
    def count_between(self, include: str | None, exclude: str | None) -> int:
        """Commits reachable from ``include`` but not from ``exclude``."""
        if include is None or include == exclude:
            return 0
        from dulwich.walk import Walker

        excluded = [exclude.encode()] if exclude and self.has_commit(exclude) else []
        return sum(1 for _ in Walker(self.repo.object_store, [include.encode()], exclude=excluded))

    @reads_objects
    def commit_info(self, sha: str) -> CommitInfo:
        from dulwich.objects import Commit

        commit = self.repo[sha.encode()]
        assert isinstance(commit, Commit)
        return _commit_info(commit)

    @reads_objects
    def log(self, path: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        """Commits from the head backwards; with ``path``, those touching it (following renames)."""
        head = self.head()
        if head is None:
            return []
        from dulwich.walk import ORDER_TOPO, Walker

        walker = Walker(
            self.repo.object_store,
            [head.encode()],
            paths=[path.encode()] if path else None,
            follow=bool(path),
            max_entries=limit,
            order=ORDER_TOPO,  # children before parents even within one second
        )
        return [_commit_info(entry.commit) for entry in walker]

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
