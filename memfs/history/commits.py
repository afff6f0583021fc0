"""Reading the commit graph: ancestry, merge bases, the log, what a commit changed.

Commits are cached by sha: a push walks the same commits again and again, and a lookup in a
store of many small packs scans every pack index.
"""

from __future__ import annotations

import contextlib
import json
import os

from memfs.damage import reads_objects
from memfs.history.base import HistoryBase
from memfs.trees import CommitInfo, FileChange, compare_trees, parse_trailers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dulwich.objects import Commit

    from memfs.history.lightobjects import LightCommit

# dulwich is imported inside the methods: a clean ``status`` reads no commit graph, and
# dulwich's object store costs it ~15 ms (see memfs/history/light.py).

COMMIT_CACHE_SIZE = 50_000
COUNTS = "counts.json"  # ahead/behind counts by pair of commits, in .git/memfs
COUNTS_KEPT = 32


class Commits(HistoryBase):
    """The commit-graph half of ``History``."""

    def has_commit(self, sha: str) -> bool:
        """Whether object ``sha`` is here (loose or packed: ``LightObjects``, else dulwich); an
        object of the packs fetched last is answered from their kept objects (a clone's check
        of every file of its tree costs a dict lookup each)."""
        if sha.encode() in self._unpacked:
            return True
        found = self._objects.contains(sha)
        if found is not None:
            return found
        return sha.encode() in self.repo.object_store

    @reads_objects
    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``descendant`` contains ``ancestor`` (a fast-forward from one to the other):
        ``walks.is_ancestor``, whose cost is the commits since the two diverged."""
        from memfs import walks

        return walks.is_ancestor(self._commit, ancestor, descendant)

    @reads_objects
    def _commit(self, sha: bytes) -> Commit | LightCommit:
        """A commit by binary-hex sha, cached: walks revisit the same commits on every push,
        and a lookup in a store of many small packs costs a scan of every pack index. Read
        without dulwich where ``LightObjects`` answers (what a walk needs of it)."""
        commit = self._commits.get(sha)
        if commit is None:
            commit = self._light_commit(sha)
            if commit is None:
                from dulwich.objects import Commit

                found = self.repo[sha]
                assert isinstance(found, Commit)
                commit = found
            if len(self._commits) >= COMMIT_CACHE_SIZE:
                self._commits.clear()
            self._commits[sha] = commit
        return commit

    def _light_commit(self, sha: bytes) -> LightCommit | None:
        """Commit ``sha`` read by ``LightObjects``; None when dulwich must read it."""
        from memfs.history.lightobjects import parse_commit

        found = self._light_raw(sha)
        if found is None or found[0] != 1:
            return None  # not answered here, or not a commit: dulwich says what it is
        return parse_commit(sha, found[1])

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
        """Commits reachable from ``include`` but not from ``exclude``.

        A count is a fact about two commits, which never change: it is remembered in
        ``.git/memfs/counts.json`` by the pair, so ``status`` with a remote behind HEAD
        neither walks the graph nor loads dulwich's object store (~15 ms) again until a
        commit, fetch or push moves either end. A count made while ``exclude`` was not in
        the store (counted as if it were absent) is not remembered."""
        if include is None or include == exclude:
            return 0
        pair = f"{include} {exclude}"
        known = self._counts()
        if isinstance(known.get(pair), int):
            return int(known[pair])
        from dulwich.walk import Walker

        excluded = [exclude.encode()] if exclude and self.has_commit(exclude) else []
        count = sum(1 for _ in Walker(self.repo.object_store, [include.encode()], exclude=excluded))
        if excluded or exclude is None:
            self._remember_count(known, pair, count)
        return count

    def _counts(self) -> dict[str, object]:
        try:
            known = json.loads((self._control / "memfs" / COUNTS).read_text())
        except (OSError, ValueError):
            return {}
        return known if isinstance(known, dict) else {}

    def _remember_count(self, known: dict[str, object], pair: str, count: int) -> None:
        """Keep the last ``COUNTS_KEPT`` pairs (a file rewritten whole; losing it costs a walk)."""
        kept = dict(list(known.items())[-(COUNTS_KEPT - 1) :])
        kept[pair] = count
        state = self._control / "memfs"
        temp = state / f".{COUNTS}.{os.getpid()}"
        with contextlib.suppress(OSError):
            temp.write_text(json.dumps(kept))
            os.replace(temp, state / COUNTS)

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
    from datetime import datetime, timedelta, timezone  # ~1 ms: a clean status shows no date

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
