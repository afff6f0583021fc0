"""The commit record (``memfs.commitrecord``) carried across a pull's work-tree update.

A pull or merge moves HEAD, so the record the last commit wrote stops matching and the next
commit walks the whole tree again (~0.2 s at 10,000 files): every pull paid that walk once
more. When the update only rewrote files the record lists (no path added or removed), the
record is moved to the new commit instead: every rewritten file loses its stat data (the
next commit reads and hashes it, and trusts it again from then on), every other row keeps
what it vouched for, and the trees on the rewritten paths are hashed again and must come to
the new commit's tree. Anything else (a path added or removed, a key file changed, a record
made for another commit) drops the record: the next commit walks the tree, as before.

Data safety: a row keeps its stat data only for a file the update did not touch; an edit
landing at any time changes that file's stat, so the next commit reads it.
"""

from __future__ import annotations

import contextlib

from memfs.trees import Files, compare_trees

TYPE_CHECKING = False  # typing costs a push or pull ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from memfs.agent import Agent

    Carried = tuple[tuple[Any, ...], dict[str, Any]]
    """The context a record was made for, and the record, taken before an update."""


def before_update(agent: Agent, head: str | None) -> Carried | None:
    """The record made for commit ``head`` in the context of now, before the work tree is
    updated; None if there is none (nothing to carry)."""
    if head is None:
        return None
    from memfs import commitrecord  # loaded by the commit that came just before

    record = commitrecord.load(agent)
    if record is None:
        return None
    made_for = commitrecord.context(agent, head)
    if record["key"] != (made_for[0], made_for[1], head, made_for[3]):
        return None
    return made_for, record


def after_update(agent: Agent, carried: Carried | None, current: Files, target: Files) -> None:
    """Move the record to HEAD, now a commit of ``target`` reached from ``current`` (the
    tree the record was made for), if it can vouch for it; else drop it. Under the lock."""
    if carried is None:
        return
    from memfs import commitrecord

    try:
        if not _carry(agent, *carried, current, target):
            commitrecord.forget(agent)
    except Exception:  # a cache: whatever went wrong, the next commit walks the tree
        with contextlib.suppress(OSError):
            commitrecord.forget(agent)


def _carry(
    agent: Agent, made_for: tuple[Any, ...], record: dict[str, Any], current: Files, target: Files
) -> bool:
    from memfs import commitrecord

    head = agent.history.head()
    if head is None or head == made_for[2]:
        return False
    if commitrecord.context(agent, head)[3] != made_for[3]:
        return False  # a file beside the tree changed (the update wrote agent.yaml, ...)
    table = commitrecord.Table.loads(record["files"])
    rows = {path: i for i, path in enumerate(table.paths)}
    touched: set[str] = {""}
    for change in compare_trees(current, target):
        i = rows.get(change.path)
        if change.old is None or change.new is None or i is None:
            return False  # a path came or went: folders' listings change, walk once
        if table.entry(i) != change.old:
            return False
        table.set(i, change.new.mode, change.new.sha, None)  # read by the next commit
        folder = change.path.rpartition("/")[0]
        while folder:
            touched.add(folder)
            folder = folder.rpartition("/")[0]
    folders = record["folders"]
    if not all(folder in folders for folder in touched):
        return False
    names = (
        f"{folder}/{name}" if folder else name for folder in touched for name in folders[folder][1]
    )
    entries = [(path, *table.entry(rows[path])) for path in names if path in rows]
    trees = commitrecord.trees_of(touched, entries, record["trees"], None)
    if trees.get("") != agent.history.commit_tree_sha(head):
        return False
    key = (made_for[0], made_for[1], head, made_for[3])
    moved = {**record, "key": key, "files": table.dumps(), "trees": trees}
    moved.pop("index", None)  # the update rewrote the index: its layout is not known
    commitrecord.write(agent, moved)
    return True
