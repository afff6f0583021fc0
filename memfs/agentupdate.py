"""Changing the work tree to another commit's tree: ``Agent.updating`` (journaled, edit-safe:
memfs/apply.py), the index after it, ``Agent.recover`` after a crash, and filling an empty
folder (``Agent.check_out_fresh``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from memfs.agentcommit import refresh_index
from memfs.agentstatus import on_disk, on_disk_stat
from memfs.faults import crash_point
from memfs.trees import Files, compare_trees

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.agent import Agent

# memfs.apply (the work-tree updater) is imported where used: a clean ``status`` needs none.


@contextlib.contextmanager
def updating(agent: Agent, current: Files, target: Files, index: bool = True) -> Iterator[Any]:
    """Make the work tree go from ``current`` to ``target`` for a commit of ``target``
    made inside (the branch moved to a commit whose tree is ``target``); see
    ``Agent.updating``."""
    from memfs import apply

    with agent.history.locked():
        agent.recover()
        with apply.updating(agent.root, agent.history, current, target) as update:
            agent._active_update = update.token
            try:
                yield update
            finally:
                agent._active_update = None
            if index and agent.history.head() != update.head:
                crash_point("update.index")
                index_after_update(agent, current, target)


def index_after_update(agent: Agent, current: Files, target: Files) -> None:
    """Bring the index in line after an update from ``current`` to ``target``: memfs
    knows what it wrote, so if the index listed ``current`` only the changed paths are
    written (their stat data taken now, kept only where the file still holds ``target``'s
    version: an edit landing meanwhile is hashed, never vouched for); otherwise the whole
    index is rewritten from a snapshot."""
    history = agent.history
    changed = [change.path for change in compare_trees(current, target)]
    stats: dict[str, os.stat_result] = {}
    for path in changed:
        stat = on_disk_stat(agent, path)
        if path in target and stat is not None and on_disk(agent, path) == target[path]:
            stats[path] = stat
    head = history.head()
    # the commit made inside is of ``target`` (see ``updating``); its changed paths are
    # checked against HEAD before the index is said to list HEAD's tree
    exact = len(changed) <= 100 and all(
        history.entries_at(head, path).get(path) == target.get(path) for path in changed
    )
    if not history.splice_index(target, stats, changed, commit=head if exact else None):
        refresh_index(agent)


def recover(agent: Agent) -> bool:
    """Finish or roll back a work-tree update that a crash left behind (memfs/apply.py);
    whether there was one."""
    from memfs import apply

    with agent.history.locked():
        outcome = apply.recover(agent.root, agent.history, agent._active_update)
        if outcome == "finished":
            refresh_index(agent)
        return outcome is not None


def check_out_fresh(agent: Agent, sha: str, reason: str) -> None:
    """Fill an empty work tree with commit ``sha`` and point the unborn branch at it.

    Every path is checked before the first file is written (see worktreewrite.populate).
    """
    from memfs.worktreewrite import populate  # a clone's only: an update writes through apply

    history = agent.history
    tree = history.tree_of(sha)
    blobs = history.read_blobs({entry.sha for entry in tree.values()})
    entries = {path: (entry.mode, blobs[entry.sha]) for path, entry in tree.items()}
    stats = populate(agent.root, entries)
    history.move_branch(None, sha, reason.encode())
    history.write_index(tree, stats, commit=sha)
    history.drop_unpacked()  # written out: the pack on disk serves from now on
