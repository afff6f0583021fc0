"""Reading an agent's history (log, diff, show) and rolling parts of it back (restore, revert).

Rolling back always makes a new commit: no memfs operation rewrites history, and pending
edits are committed first so nothing a user wrote is ever lost. ``Agent.log``, ``Agent.diff``,
``Agent.show``, ``Agent.restore`` and ``Agent.revert`` call these.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

from memfs.agentrules import refuse
from memfs.agentstatus import scan
from memfs.errors import (
    MemfsError,
    PathNotFoundError,
    RevertConflictError,
    RevisionNotFoundError,
)
from memfs.trees import CommitInfo, Files, TreeEntry, compare_trees, read_worktree_data, write_diff

if TYPE_CHECKING:
    from memfs.agent import Agent


def log(agent: Agent, path: str | None = None, limit: int | None = None) -> list[CommitInfo]:
    """Commits, newest first; with ``path``, those that changed it (following renames).

    PathNotFoundError for a path that no commit touched and that is not on disk.
    """
    commits = agent.history.log(path, limit)
    if path and not commits and not os.path.lexists(agent.root / path.strip("/")):
        raise PathNotFoundError(path, "the history or the work tree")
    return commits


def diff(
    agent: Agent, rev: str | None = None, rev2: str | None = None, paths: tuple[str, ...] = ()
) -> bytes:
    """A unified diff: work tree against HEAD or ``rev``, or ``rev`` against ``rev2``."""
    history = agent.history
    old_sha = history.resolve(rev) if rev else history.head()
    old = history.tree_of(old_sha)
    if rev2 is not None:
        new = history.tree_of(history.resolve(rev2))
        on_disk = False
    else:
        new = scan(agent, history.head_tree(history.head())).files
        on_disk = True
    out = io.BytesIO()
    for change in compare_trees(old, new, paths):
        old_data = history.blob(change.old.sha) if change.old else b""
        new_data = b""
        if change.new is not None:
            new_data = _content(agent, change.path, change.new, on_disk)
        write_diff(out, change, old_data, new_data)
    return out.getvalue()


def _content(agent: Agent, path: str, entry: TreeEntry, on_disk: bool) -> bytes:
    if on_disk:
        try:
            return read_worktree_data(agent.root / path, entry.mode)
        except OSError:
            pass
    return agent.history.blob(entry.sha)


def split_revisions(agent: Agent, args: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split ``[REV [REV2]] [--] [PATH...]`` into revisions and paths, as git does."""
    if "--" in args:
        cut = args.index("--")
        revs, paths = args[:cut], args[cut + 1 :]
        for rev in revs:
            agent.history.resolve(rev)
    else:
        revs, paths = (), ()
        head_tree = agent.history.head_tree(agent.history.head())
        for arg in args:
            if not paths and len(revs) < 2 and _is_revision(agent, arg):
                revs += (arg,)
            elif os.path.lexists(agent.root / arg) or any(
                p == arg or p.startswith(arg.rstrip("/") + "/") for p in head_tree
            ):
                paths += (arg,)
            else:
                raise RevisionNotFoundError(arg)
    if len(revs) > 2:
        raise MemfsError("give at most two revisions to compare")
    return revs, tuple(p.strip("/") for p in paths)


def _is_revision(agent: Agent, text: str) -> bool:
    try:
        agent.history.resolve(text)
    except RevisionNotFoundError:
        return False
    return True


def show(agent: Agent, spec: str) -> bytes:
    """``REV:PATH``: the file as it was; ``REV``: the commit and what it changed."""
    history = agent.history
    rev, sep, path = spec.partition(":")
    if sep:
        return history.read_file(rev or "HEAD", path)
    sha = history.resolve(rev)
    info = history.commit_info(sha)
    header = [f"commit {info.sha}"]
    if len(info.parents) > 1:
        header.append("Merge: " + " ".join(p[:7] for p in info.parents))
    header += [f"Author: {info.author}", f"Date:   {info.date.isoformat()}", ""]
    header += ["    " + line for line in info.message.split("\n")]
    for key, value in info.trailers.items():
        header.append(f"    {key}: {value}")
    out = io.BytesIO()
    out.write(("\n".join(header) + "\n\n").encode())
    for change in history.changed_paths(sha):
        old = history.blob(change.old.sha) if change.old else b""
        new = history.blob(change.new.sha) if change.new else b""
        write_diff(out, change, old, new)
    return out.getvalue()


def restore(
    agent: Agent, path: str, to: str, origin: str = "cli", allow_read_only: bool = False
) -> CommitInfo | None:
    """Bring ``path`` (a file or folder) back to how it was at ``to``, as a new commit.

    In a Letta repo a restore Letta's rules refuse (it would change a read-only file, or
    make a commit its installed hook rejects) raises CommitRefusedError before any file is
    touched; ``allow_read_only`` (a person's command) lets it change read-only files.
    """
    path = path.strip("/")
    history = agent.history
    with history.locked():
        sha = history.resolve(to)  # before committing: HEAD~1 means what the user saw
        agent.commit(origin=origin)  # pending edits go into history before anything moves
        target = _under(history.tree_of(sha), path)
        head_tree = history.head_tree(history.head())
        current = _under(head_tree, path)
        if not target:
            raise PathNotFoundError(path, f"revision {to}")
        allowed = refuse(
            agent, f"restore {path}", head_tree, current, target, origin, allow_read_only
        )
        message = f"memfs: restore {path} to {sha[:7]}"
        with agent.updating(current, target, index=False):
            return agent.commit(
                message=message, origin=origin, paths=(path,), allow_read_only=allowed
            )


def revert(
    agent: Agent, rev: str, origin: str = "cli", allow_read_only: bool = False
) -> CommitInfo | None:
    """Undo the changes of commit ``rev`` in a new commit on top of the current head.

    Refused as ``restore`` is when Letta's rules refuse the result (CommitRefusedError).
    """
    history = agent.history
    with history.locked():
        sha = history.resolve(rev)  # before committing: HEAD~1 means what the user saw
        agent.commit(origin=origin)
        info = history.commit_info(sha)
        head = history.head()
        assert head is not None
        parent = info.parents[0] if info.parents else None
        merged, conflicts = history.merge_trees(sha, head, parent)
        if conflicts:
            raise RevertConflictError(rev, conflicts)
        current = history.tree_of(head)
        message = f'memfs: revert "{info.summary}"\n\nThis reverts commit {sha}.'
        merged_tree = history.tree_entries_by_sha(merged)
        allowed = refuse(
            agent, f"revert {rev}", current, current, merged_tree, origin, allow_read_only
        )
        with agent.updating(current, merged_tree, index=False):
            return agent.commit(message=message, origin=origin, allow_read_only=allowed)


def _under(tree: Files, path: str) -> Files:
    return {p: e for p, e in tree.items() if p == path or p.startswith(path + "/")}
