"""The revision walks of a push: what to upload, and whether a push is a fast-forward.

dulwich's generic walks (``MissingObjectFinder``, ``can_fast_forward``) visit the whole
history on every push; these visit the new commits and their boundary, as git does. They
work on plain lookups, a commit by binary-hex sha and a tree's entries by binary-hex sha,
so they need no repository (nor dulwich: a push reads its objects with
``memfs.history.lightobjects``); ``History`` passes its cached commit lookup and tree reader.
"""

from __future__ import annotations

import heapq
import itertools
import stat
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from dulwich.objects import ShaFile

    class Commit(Protocol):
        """What the walks read of a commit (dulwich's ``Commit``, or ``LightCommit``)."""

        id: bytes
        tree: bytes
        parents: list[bytes]
        commit_time: int


CommitLookup = Callable[[bytes], "Commit"]
"""A commit by binary-hex sha (``History._commit``: cached, damage translated)."""
TreeEntries = dict[bytes, tuple[int, bytes]]
"""A tree's entries by name: (mode, binary-hex sha)."""
TreeLookup = Callable[[bytes], "TreeEntries | None"]
"""A tree's entries by binary-hex sha; None if the object is no tree."""
S_IFGITLINK = 0o160000  # a submodule's commit, as git (and dulwich's S_ISGITLINK) mark it


def tree_lookup(read: Callable[[bytes], ShaFile]) -> TreeLookup:
    """A ``TreeLookup`` over dulwich objects (an object store's ``__getitem__``)."""
    from dulwich.objects import Tree

    def entries(sha: bytes) -> TreeEntries | None:
        tree = read(sha)
        if not isinstance(tree, Tree):
            return None
        return {entry.path: (entry.mode, entry.sha) for entry in tree.iteritems()}

    return entries


def is_ancestor(lookup: CommitLookup, ancestor: str, descendant: str) -> bool:
    """Whether ``descendant`` contains ``ancestor`` (a fast-forward from one to the other).

    Both sides are walked newest first, each commit painted with the side(s) that reach
    it (git's merge-base walk). The walk stops as soon as ``ancestor`` is reached from
    ``descendant``, or when no commit left to look at is reached from ``descendant``
    alone: the others are ancestors of ``ancestor``, which cannot lie behind them. The
    cost is the commits since the two diverged, not the whole history (dulwich's
    ``can_fast_forward`` walks all of it, on every push).
    """
    if ancestor == descendant:
        return True
    target = ancestor.encode()
    from_ancestor, from_descendant = 1, 2
    paint: dict[bytes, int] = {target: from_ancestor, descendant.encode(): from_descendant}
    # Newest first; among commits of the same second (a burst of commits), the
    # descendant's side first, so that a parent or grandparent is found at once.
    queue: list[tuple[int, int, int, bytes]] = []
    counter = itertools.count()

    def visit(sha: bytes) -> None:
        side = 0 if paint[sha] == from_descendant else 1
        item = (-lookup(sha).commit_time, side, next(counter), sha)
        heapq.heappush(queue, item)

    for sha in paint:
        visit(sha)
    while queue and any(paint[sha] == from_descendant for *_, sha in queue):
        *_, sha = heapq.heappop(queue)
        colour = paint[sha]
        for parent in lookup(sha).parents:
            old = paint.get(parent, 0)
            new = old | colour
            if parent == target and new & from_descendant:
                return True
            if new != old:
                paint[parent] = new
                visit(parent)
    return False


def commits_between(lookup: CommitLookup, wants: list[bytes], haves: list[bytes]) -> list[Commit]:
    """Commits reachable from ``wants`` but not from ``haves``, newest first.

    git's revision walk: newest commit first, ancestors of ``haves`` marked uninteresting,
    stopping once only uninteresting commits are left to look at. It visits the new
    commits and their boundary, not the whole history as dulwich's MissingObjectFinder
    does. A clock skewed enough can only add a commit the remote has (a bigger pack),
    never leave out one it lacks.
    """
    uninteresting: set[bytes] = set(haves)
    seen: set[bytes] = set()
    queue: list[tuple[int, int, bytes]] = []
    counter = itertools.count()  # ties broken by insertion order, never by sha

    def push(sha: bytes) -> None:
        if sha not in seen:
            seen.add(sha)
            heapq.heappush(queue, (-lookup(sha).commit_time, next(counter), sha))

    for sha in (*haves, *wants):
        push(sha)
    found: list[Commit] = []
    while queue and any(sha not in uninteresting for _, _, sha in queue):
        _, _, sha = heapq.heappop(queue)
        commit = lookup(sha)
        if sha in uninteresting:
            uninteresting.update(commit.parents)
        else:
            found.append(commit)
        for parent in commit.parents:
            push(parent)
    return [commit for commit in found if commit.id not in uninteresting]


def parents_first(commits: list[Commit]) -> list[Commit]:
    """``commits`` reordered so that each comes after those of its parents among them.

    A depth-first walk (no recursion: a history can be long) over the commits only, in
    O(commits + parents); unrelated commits keep the reverse of the order given.
    """
    by_id = {commit.id: commit for commit in commits}
    ordered: list[Commit] = []
    entered: set[bytes] = set()
    for start in reversed(commits):
        if start.id in entered:
            continue
        entered.add(start.id)
        stack = [(start, iter(start.parents))]
        while stack:
            commit, parents = stack[-1]
            for parent in parents:
                if parent in by_id and parent not in entered:
                    entered.add(parent)
                    stack.append((by_id[parent], iter(by_id[parent].parents)))
                    break
            else:
                stack.pop()
                ordered.append(commit)
    return ordered


def objects_of(read: TreeLookup, lookup: CommitLookup, commits: list[Commit]) -> list[bytes]:
    """The commits and every tree and blob they add over their parents.

    ``commits`` must come parents first (``parents_first``). Subtrees equal to a parent's
    are skipped whole: a parent is either among ``commits`` (handled before, so its
    objects are here) or on the remote (with all of its objects). A tree already listed is
    skipped whole too, which is only sound because of that order: it was listed for an
    ancestor or earlier in this commit, and every entry it skipped then is covered. Newest
    first, a merge whose tree equals an ancestor's would list that tree while skipping the
    entries its other parent had, and the ancestor would then send none of them (a blob
    the remote never had: issue 10, item 1).
    """
    listed: set[bytes] = set()
    result: list[bytes] = []

    def add_tree(sha: bytes, parent_shas: list[bytes]) -> None:
        if sha in listed or sha in parent_shas:
            return
        listed.add(sha)
        result.append(sha)
        tree = read(sha)
        assert tree is not None
        parents = [read(p) for p in parent_shas]
        for name, (mode, entry_sha) in tree.items():
            if entry_sha in listed:
                continue
            before = [p[name] for p in parents if p is not None and name in p]
            if any(old_sha == entry_sha for _, old_sha in before):
                continue
            if stat.S_ISDIR(mode):
                add_tree(entry_sha, [old for m, old in before if stat.S_ISDIR(m)])
            elif mode & 0o170000 != S_IFGITLINK:  # a submodule commit is not ours to send
                listed.add(entry_sha)
                result.append(entry_sha)

    for commit in commits:
        result.append(commit.id)
        add_tree(commit.tree, [lookup(parent).tree for parent in commit.parents])
    return result
