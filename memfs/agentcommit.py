"""Committing the work tree: ``Agent.commit`` (a full snapshot), ``Agent.commit_paths`` (the
watcher's index-free commit of known paths), and bringing the index in line after them.

Broken memory files are committed like any other: nothing a user wrote is dropped. What
Letta's rules or the secrets guard hold back stays in the work tree (memfs/agentrules.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from memfs import agentmanifest, worktree
from memfs.agentstatus import Snapshot, ignore_rules, on_disk, on_disk_stat, read_change, scan
from memfs.faults import crash_point
from memfs.secrets.hooks import has_secrets
from memfs.trees import (
    TRAILER_HOST,
    TRAILER_ORIGIN,
    CommitInfo,
    FileChange,
    Files,
    TreeEntry,
    blob_sha,
    compare_trees,
    with_trailers,
)
from memfs.util import hostname

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs.agent import Agent


def commit(
    agent: Agent,
    message: str | None = None,
    origin: str = "cli",
    paths: tuple[str, ...] = (),
    allow_read_only: tuple[str, ...] = (),
    remember: bool = True,
) -> CommitInfo | None:
    """Commit every change in the work tree (or only under ``paths``); None if none.

    See ``Agent.commit``: what Letta's rules refuse is left in the work tree and listed in
    ``agent.held``; refused while plain git is midway or HEAD is detached.
    """
    agent.held = []
    if message:
        check_message_text(message)
    if message and has_secrets(agent):
        from memfs.secrets.guard import check_message

        check_message(agent, message)
    history = agent.history
    with history.locked():
        history.refuse_during_git_operation()
        agent.recover()
        rules = ignore_rules(agent)
        rules.sync_git_exclude(history.control_dir)
        from memfs import fastcommit  # stat-only commit while its record vouches

        if not paths:
            found = fastcommit.commit(agent, message, origin, allow_read_only)
            if found is not fastcommit.FALLBACK:
                return found  # type: ignore[no-any-return]
        head = history.head()
        made_for, started = fastcommit.context(agent, head), time.time_ns()
        head_tree = history.head_tree(head)
        snapshot = scan(agent, head_tree)
        agent.skipped = snapshot.scan.skipped
        changes = compare_trees(head_tree, snapshot.files, paths)
        if not changes:
            if not history.index_describes(head_tree, commit=head):
                # a commit killed before its index write, or index-free commits (the
                # watcher's): git status must describe HEAD, not an older tree
                history.write_index(head_tree, snapshot.stats_matching(head_tree), commit=head)
            if head is not None and not paths and remember:
                fastcommit.remember(agent, made_for, head, head_tree, snapshot, started)
            return None
        payload: dict[str, tuple[int, bytes] | None] = {}
        for change in changes:
            payload[change.path] = read_change(agent, change, snapshot)
        from memfs.agentrules import gate  # Letta's rules and the guard: the full path only

        payload = gate(
            agent, head_tree, payload, origin, allow_read_only, first_commit=head is None
        ).allowed
        if not payload:
            if not history.index_describes(head_tree):
                history.write_index(head_tree, snapshot.stats_matching(head_tree), commit=head)
            return None
        effective = [
            c
            for c in changes
            if c.path in payload and (payload[c.path] is not None or c.new is None)
        ]
        text = message or generated_message(effective)
        trailers = {TRAILER_HOST: hostname(), TRAILER_ORIGIN: origin}
        sha = history.commit(head, payload, with_trailers(text, trailers), author(agent))
        crash_point("commit.index")
        committed = dict(head_tree)
        for path, change in payload.items():
            if change is None:
                committed.pop(path, None)
            else:
                committed[path] = TreeEntry(change[0], blob_sha(change[1]))
        exact = _is_flat_tree(committed, payload)  # else build_tree dropped shadowed paths
        history.write_index(
            committed,
            snapshot.stats_matching(committed),
            commit=sha if exact else None,
            changed=payload.keys(),
        )
        if exact and not paths and remember and len(effective) == len(changes):
            fastcommit.remember(agent, made_for, sha, committed, snapshot, started)
        return history.commit_info(sha)


def commit_paths(
    agent: Agent,
    paths: list[str],
    message: str | None = None,
    origin: str = "watch",
    update_index: bool = True,
) -> CommitInfo | None:
    """Commit what is on disk now at ``paths`` (files or folders), and nothing else.

    The watcher's commit (DESIGN.md §4): no scan of the work tree, no flattening of HEAD's
    tree, no reading of the index; every named path is checked against disk and against
    the same rules as a full commit, so the cost is O(changed files). The index is brought
    in line afterwards: here, or later by ``refresh_index_paths`` (``update_index=False``).
    """
    wanted = sorted({p.strip("/") for p in paths if p.strip("/")})
    agent.held = []
    history = agent.history
    with history.locked():
        history.refuse_during_git_operation()
        if agent.recover():  # rolled back: files other than ``paths`` changed too
            return agent.commit(message, origin)
        head = history.head()
        before: Files = {}
        for path in wanted:
            before.update(history.entries_at(head, path))
        found = worktree.scan_paths(
            agent.root,
            ignore_rules(agent),
            wanted,
            agentmanifest.max_file_size(agent),
            frozenset(before),
        )
        files, unreadable = history.hash_worktree(found.files, use_index=False)
        for path in [s.path for s in found.skipped] + unreadable:
            if path in before and os.path.lexists(agent.root / path):
                files[path] = before[path]  # kept at its last version, never deleted
        changes = compare_trees(before, files)
        if not changes:
            return None
        snapshot = Snapshot(files, dict(found.files), found)
        payload = {change.path: read_change(agent, change, snapshot) for change in changes}
        # Letta's hook looks at the whole tree: only then is HEAD's tree flattened
        rules_tree = history.tree_of(head) if agent.letta_rules().tree_wide else before
        from memfs.agentrules import gate

        payload = gate(agent, rules_tree, payload, origin).allowed
        if not payload:
            return None
        changes = [change for change in changes if change.path in payload]
        text = message or generated_message(changes)
        trailers = {TRAILER_HOST: hostname(), TRAILER_ORIGIN: origin}
        sha = history.commit(head, payload, with_trailers(text, trailers), author(agent))
        if update_index:
            refresh_index_paths(agent, list(payload))
        return history.commit_info(sha)


def refresh_index_paths(agent: Agent, paths: list[str]) -> None:
    """Bring the index in line with HEAD for ``paths`` (after index-free commits)."""
    history = agent.history
    with history.locked():
        head = history.head()
        updates: dict[str, TreeEntry | None] = dict.fromkeys(paths)
        stats: dict[str, os.stat_result] = {}
        for path in paths:
            for entry_path, entry in history.entries_at(head, path).items():
                updates[entry_path] = entry
                stat = on_disk_stat(agent, entry_path)
                if stat is not None and on_disk(agent, entry_path) == entry:
                    stats[entry_path] = stat
        history.update_index_paths(updates, stats)


def refresh_index(agent: Agent) -> None:
    """Rewrite the index for HEAD, so ``git status`` and memfs's stat cache agree."""
    head = agent.history.head()
    head_tree = agent.history.head_tree(head)
    snapshot = scan(agent, head_tree)
    agent.history.write_index(head_tree, snapshot.stats_matching(head_tree), commit=head)


def author(agent: Agent) -> str:
    """``Name <email>`` for commits: user config, then git config, then memfs@host."""
    from memfs.config import commit_identity

    return commit_identity() or agent.history.git_identity() or f"memfs <memfs@{hostname()}>"


def check_message_text(message: str) -> None:
    """Refuse a message that is not UTF-8 text before anything is done: a shell passes a
    Latin-1 byte as a lone surrogate, which no commit object can be written with."""
    from memfs.errors import InvalidMessageError

    if "\0" in message:
        raise InvalidMessageError("holds a NUL character")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMessageError("is not valid UTF-8 (a byte of another encoding?)") from None


def generated_message(changes: list[FileChange]) -> str:
    """``memfs: update system/persona.md`` or ``memfs: 3 files changed: a, b, c``."""
    verbs = {"added": "add", "modified": "update", "deleted": "delete"}
    if len(changes) == 1:
        return f"memfs: {verbs[changes[0].status]} {changes[0].path}"
    names = [c.path for c in changes[:3]]
    more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
    return f"memfs: {len(changes)} files changed: {', '.join(names)}{more}"


def _is_flat_tree(tree: Files, changed: Mapping[str, object]) -> bool:
    """Whether no changed path of ``tree`` is also a folder of it (or under one of its files):
    only then does ``tree`` list exactly the tree a commit of those changes stored."""
    if len(changed) > 100:  # a first commit, an adoption: check every folder of the tree once
        folders: set[str] = set()
        for path in tree:
            cut = path.rfind("/")
            while cut > 0 and path[:cut] not in folders:
                folders.add(path[:cut])
                cut = path.rfind("/", 0, cut)
        return folders.isdisjoint(tree)
    for path in changed:
        if path in tree and any(p.startswith(path + "/") for p in tree):
            return False
        parts = path.split("/")
        if any("/".join(parts[:depth]) in tree for depth in range(1, len(parts))):
            return False
    return True
