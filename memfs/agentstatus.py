"""The work tree as the next commit would record it (a snapshot), and what differs (status).

A command takes one snapshot (one walk, stat data taken once, hashing only what the index
cannot vouch for) and passes it to everything it does; ``status`` answers from the status
record (memfs/statusrecord.py) while nothing it was made from changed. ``Agent.snapshot``,
``Agent.status``, ``Agent.check`` and ``Agent.parsed_memory`` call these.
"""

from __future__ import annotations

import os

from memfs import agentmanifest
from memfs.ignore import IgnoreRules
from memfs.layout import MANIFEST_FILE, Layout, is_memory_path
from memfs.parsecache import ParseCache, Parsed
from memfs.record import Record
from memfs.schema import Problem
from memfs.secrets.hooks import has_secrets
from memfs.trees import FileChange, Files, TreeEntry, compare_trees, read_worktree_data

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

    from memfs import worktree
    from memfs.agent import Agent
    from memfs.conflicts import OpenConflict

# Imported where used: memfs.conflicts (with the merge rules), memfs.lettahook (Letta's
# commit rules), memfs.apply (the work-tree updater), memfs.worktree (the walk): a clean
# ``status`` needs little of them.
JOURNAL = "update.json"  # memfs.apply.JOURNAL: a merge's journal, there while it runs


class Status(Record):
    """What differs from the last commit, and what is wrong or left out."""

    __slots__ = _fields = (
        "branch",
        "head",
        "changes",
        "problems",
        "secrets",
        "skipped",
        "conflicts",
        "update_pending",
        "held",
        "blocked",
        "git_operation",
        "detached",
    )
    branch: str
    head: str | None
    changes: list[FileChange]
    problems: list[Problem]
    secrets: list[str]
    skipped: list[worktree.Skipped]
    conflicts: list[OpenConflict]
    update_pending: bool  # a merge's journal is there: running now, or stopped midway
    # Changes the next commit leaves in the work tree, and why (a Letta repo's read_only, or
    # what Letta's installed pre-commit hook would refuse): kept, never committed by memfs.
    held: list[Problem]
    blocked: bool  # Letta's hook refuses any commit until the tree is fixed
    # plain git stopped midway here ("rebase", "merge", ...): memfs commits nothing until done
    git_operation: str | None
    detached: bool  # HEAD names a commit, not a branch: memfs commits nothing

    def __init__(
        self,
        branch: str,
        head: str | None,
        changes: list[FileChange],
        problems: list[Problem],
        secrets: list[str] | None = None,
        skipped: list[worktree.Skipped] | None = None,
        conflicts: list[OpenConflict] | None = None,
        update_pending: bool = False,
        held: list[Problem] | None = None,
        blocked: bool = False,
        git_operation: str | None = None,
        detached: bool = False,
    ) -> None:
        self.branch = branch
        self.head = head
        self.changes = changes
        self.problems = problems
        self.secrets = [] if secrets is None else secrets
        self.skipped = [] if skipped is None else skipped
        self.conflicts = [] if conflicts is None else conflicts
        self.update_pending = update_pending
        self.held = [] if held is None else held
        self.blocked = blocked
        self.git_operation = git_operation
        self.detached = detached

    @property
    def clean(self) -> bool:
        return not self.changes

    def to_dict(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "head": self.head,
            "clean": self.clean,
            "changes": [{"path": c.path, "status": c.status} for c in self.changes],
            "problems": [p.to_dict() for p in self.problems],
            "ignored_secrets": self.secrets,
            "skipped": [s.to_dict() for s in self.skipped],
            "conflicts": [c.to_dict() for c in self.conflicts],
            "update_pending": self.update_pending,
            "held": [p.to_dict() for p in self.held],
            "blocked": self.blocked,
            "git_operation": self.git_operation,
            "detached": self.detached,
        }


class Snapshot(Record):
    """The work tree as the next commit would record it."""

    __slots__ = _fields = ("files", "stats", "scan")
    files: Files
    stats: dict[str, os.stat_result]
    scan: worktree.Scan

    def __init__(self, files: Files, stats: dict[str, os.stat_result], scan: worktree.Scan) -> None:
        self.files = files
        self.stats = stats
        self.scan = scan

    def stats_matching(self, tree: Files) -> dict[str, os.stat_result]:
        """Stat data that may vouch for ``tree``'s shas: where the file on disk is what it holds."""
        return {
            path: st for path, st in self.stats.items() if tree.get(path) == self.files.get(path)
        }


def ignore_rules(agent: Agent) -> IgnoreRules:
    """The agent's ignore rules (.gitignore, .memfsignore, memfs's own)."""
    return IgnoreRules(agent.root)


def snapshot(agent: Agent, head_tree: Files | None = None) -> Snapshot:
    """The work tree as the next commit would record it, against ``head_tree`` (HEAD's
    tree by default): one walk, stat data taken once, hashing only what the index cannot
    vouch for. A command takes one and passes it to everything it does."""
    if head_tree is None:
        from memfs import statusrecord

        head = agent.history.head()
        made_for = statusrecord.key(agent, head)
        recorded = statusrecord.recorded_snapshot(agent, made_for)
        if recorded is not None:  # the tree is as the last status saw it
            return recorded
        from memfs import statuscarry  # right after a commit: carried, then read as recorded

        if statuscarry.carried(agent, made_for, statusrecord.now_ns()) is not None:
            recorded = statusrecord.recorded_snapshot(agent, made_for)
            if recorded is not None:
                return recorded
        head_tree = agent.history.head_tree(head)
    return scan(agent, head_tree)


def scan(agent: Agent, head_tree: Files) -> Snapshot:
    """A snapshot taken by walking the work tree now (no status record)."""
    from memfs import worktree

    found = worktree.scan(
        agent.root,
        ignore_rules(agent),
        agentmanifest.max_file_size(agent),
        tracked=frozenset(head_tree),
    )
    files, unreadable = agent.history.hash_worktree(found.files)
    stats = {path: st for path, st in found.files.items() if path in files}
    # A file memfs cannot or will not read keeps its last committed version: skipping
    # it must never turn into deleting it from history.
    kept = [s.path for s in found.skipped] + unreadable
    for path in kept:
        if path in head_tree and os.path.lexists(agent.root / path):
            files[path] = head_tree[path]
    for path in unreadable:
        found.skipped.append(worktree.Skipped(path, "could not be read"))
    return Snapshot(files, stats, found)


def read_change(agent: Agent, change: FileChange, snapshot: Snapshot) -> tuple[int, bytes] | None:
    """The content to commit for one change; None if the file is (now) gone."""
    if change.new is None:
        return None
    try:
        data = read_worktree_data(agent.root / change.path, change.new.mode)
    except FileNotFoundError:
        snapshot.stats.pop(change.path, None)
        return None
    return change.new.mode, data


def on_disk(agent: Agent, path: str) -> TreeEntry | None:
    """The entry the file at ``path`` would have in a commit, None if there is none."""
    from memfs import apply

    return apply.entry_on_disk(agent.root / path)


def on_disk_stat(agent: Agent, path: str) -> os.stat_result | None:
    """The file's stat data (not following a symlink), None if it is not there."""
    try:
        return (agent.root / path).lstat()
    except OSError:
        return None


def problems(agent: Agent, snapshot: Snapshot) -> list[Problem]:
    """agent.yaml's and every memory file's problems; a file is parsed only when its
    stat data changed since it last was (memfs.parsecache)."""
    layout = agent.layout
    found = agent.manifest_problems() + ignore_rules(agent).problems
    for path, parsed in parsed_memory(agent, snapshot, layout).items():
        if parsed.problems:
            found.extend(parsed.problem_list(path))
    return found


def parsed_memory(
    agent: Agent, snapshot: Snapshot, layout: Layout, kept: bool = False
) -> dict[str, Parsed]:
    """What every memory file in ``snapshot`` holds (problems, description, ...), by path,
    sorted; from ``.git/memfs/parsed.bin`` where the file's stat data is unchanged.

    ``kept`` adds the files the scan left out but history keeps (too large, say), read
    as they are on disk; a file that cannot be read is left out.
    """
    cache = ParseCache(agent.history.state_dir)
    stats, files = snapshot.stats, snapshot.files
    wanted = [
        (path, stats.get(path))
        for path in sorted(files if kept else stats)
        if path in files and is_memory_path(path, layout)
    ]
    found = cache.parse_all(agent.root, wanted, layout)
    cache.save()
    return found


def check(agent: Agent) -> list[Problem]:
    """Validate agent.yaml and every memory file; errors and warnings, by path.

    Files memfs cannot version (too large, symlinks leaving the agent) are errors too.
    """
    head_tree = agent.history.head_tree(agent.history.head())
    taken = scan(agent, head_tree)
    found = problems(agent, taken)
    found.extend(
        Problem(skipped.shown, 1, f"not versioned: {skipped.reason}")
        for skipped in taken.scan.skipped
    )
    if agent.layout.is_letta:
        from memfs import agentrules

        found.extend(agentrules.hook_problems(agent, head_tree, taken, found))
    return found


def status(agent: Agent) -> Status:
    """Uncommitted changes, validation problems, files left out, and open conflicts;
    the last answer again while nothing it was made from has changed (statusrecord)."""
    from memfs import statusrecord

    head = agent.history.head()
    made_for = statusrecord.key(agent, head)
    found = statusrecord.recorded(agent, made_for)
    if found is not None:
        return live(agent, found)
    started = statusrecord.now_ns()
    from memfs import statuscarry  # right after a commit: the record of the HEAD before

    found = statuscarry.carried(agent, made_for, started)
    if found is not None:
        return live(agent, found)
    found, taken, reviewed = work_out(agent, head)
    if not reviewed:  # Letta's review reads the environment too: not recorded
        statusrecord.save(agent, made_for, found, taken, started)
    return live(agent, found)


def live(agent: Agent, found: Status) -> Status:
    """``found`` with what is read afresh every time: branch, a merge's journal, a
    plain-git operation midway, a detached HEAD."""
    history = agent.history
    found.branch = history.branch()
    found.update_pending = (history.state_dir / JOURNAL).exists()
    found.git_operation = history.git_operation()
    found.detached = history.detached()
    return found


def work_out(agent: Agent, head: str | None) -> tuple[Status, Snapshot, bool]:
    """The status worked out from the work tree, its snapshot, and whether Letta's
    rules reviewed the changes."""
    head_tree = agent.history.head_tree(head)
    taken = scan(agent, head_tree)
    changes = compare_trees(head_tree, taken.files)
    held: list[Problem] = []
    blocked = False
    # Letta's rules apply to a Letta repo, or where a pre-commit hook may be Letta's
    # (lettahook.hook_installed reads it): only then is memfs.lettahook loaded
    hook = agent.history.control_dir / "hooks" / "pre-commit"
    reviewed = bool(changes) and (agent.layout.is_letta or hook.exists())
    if reviewed:
        from memfs import lettahook

        rules = agent.letta_rules()
        if rules.active:
            payload = {c.path: read_change(agent, c, taken) for c in changes}
            verdict = lettahook.review(
                rules, head_tree, payload, agent.history.blob, agent._hook_cache, head is None
            )
            held = [refusal.problem() for refusal in verdict.refusals]
            blocked = bool(verdict.blocked)
    if changes and has_secrets(agent):
        from memfs.secrets.guard import review, values_of

        payload = {c.path: read_change(agent, c, taken) for c in changes}
        held += [refusal.problem() for refusal in review(payload, values_of(agent))[1]]
        reviewed = True  # the verdict depends on the secrets' values too: not recorded
    if any(change.path == MANIFEST_FILE for change in changes):
        from memfs.agentidentity import refusal as identity_refusal

        payload = {c.path: read_change(agent, c, taken) for c in changes if c.path == MANIFEST_FILE}
        identity = identity_refusal(head_tree, payload, agent.history.blob)
        if identity is not None:
            held.append(identity.problem())
    found = Status(
        branch="",
        head=head,
        changes=changes,
        held=held,
        blocked=blocked,
        problems=problems(agent, taken),
        secrets=taken.scan.secrets,
        skipped=taken.scan.skipped,
        conflicts=_conflicts_in(
            agent.root,
            {path: entry.sha for path, entry in taken.files.items()},
            agent.history.state_dir / "markers.json",
        ),
    )
    return found, taken, reviewed


def _conflicts_in(root: Path, files: Mapping[str, str | None], cache: Path) -> list[OpenConflict]:
    from memfs.conflicts import find_in

    return find_in(root, files, cache)
