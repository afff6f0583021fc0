"""One sync cycle (DESIGN.md §6): commit -> fetch -> merge -> update the work tree -> push.

Written once for every kind of remote (``memfs.remotes.Remote``). The rules it keeps:
- a file is rewritten by a merge only if it still holds what was last committed; otherwise
  the edit is committed and the merge goes round again;
- no version is lost: delete-vs-modify keeps the modified file, conflicts are settled by the
  policy, and a merge commit has both parents;
- a push moves the remote only from the commit memfs merged (compare-and-swap); a rejected
  push is fetched, merged and retried, never forced.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memfs import lettahook
from memfs.agent import Agent
from memfs.apply import MODE_FOLDER, entry_on_disk
from memfs.checkout import UnfinishedCheckout, mark_finished, mark_started, unfinished
from memfs.errors import (
    ConcurrentUpdateError,
    DivergedError,
    LocalEditError,
    LockTimeoutError,
    MemfsError,
    NotAMemfsRemoteError,
    NotAnAgentError,
    PushRejectedError,
    RemoteCorruptError,
    RemoteError,
    RemoteNotFoundError,
    RepositoryDamagedError,
    UncommittableEditError,
    UnrelatedHistoriesError,
)
from memfs.faults import crash_point
from memfs.history import History
from memfs.layout import V2_MARKER, Layout
from memfs.remotes import (
    Remote,
    RemoteConfig,
    add_remote,
    check_outside,
    get_remote,
    letta_mirror,
    list_remotes,
    open_remote,
    redact,
    resolve_url,
)
from memfs.remotestate import RemoteState, remote_states  # noqa: F401 (sync's API, moved)
from memfs.remotestate import tracking_ref as _tracking_ref
from memfs.schema import MANIFEST_FILE, is_valid_branch, is_valid_name, manifest_data
from memfs.trees import (
    TRAILER_HOST,
    TRAILER_ORIGIN,
    CommitInfo,
    Files,
    TreeEntry,
    read_worktree_data,
    with_trailers,
)
from memfs.util import TEMP_PREFIX, hostname, utc_now
from memfs.worktree import remove_file, write_file

if TYPE_CHECKING:  # memfs.merge is imported when a merge happens (~9 ms a push or pull spares)
    from memfs.merge import Conflict, Policy

ATTEMPTS = 5
PUSH_ATTEMPTS = 60
MAX_BASE_DEPTH = 8
Progress = Callable[[str], None]


@dataclass
class RemoteOutcome:
    """What one sync step did with one remote."""

    remote: str
    fetched: str | None = None
    integrated: str = ""  # "up to date" | "fast-forward" | "merged" | ""
    pushed: str = ""  # "pushed" | "up to date" | ""
    conflicts: list[Conflict] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "fetched": self.fetched,
            "integrated": self.integrated or None,
            "pushed": self.pushed or None,
            "conflicts": [c.to_dict() for c in self.conflicts],
            "error": self.error,
        }


@dataclass
class SyncReport:
    """What a sync, pull, push or fetch did."""

    committed: CommitInfo | None = None
    remotes: list[RemoteOutcome] = field(default_factory=list)
    head: str | None = None
    created_remote: RemoteConfig | None = None
    # push-only mirrors pushed on the side (letta.memoryRepository.url): an error is a warning
    mirrors: list[RemoteOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(outcome.error is None for outcome in self.remotes)

    @property
    def conflicts(self) -> list[Conflict]:
        return [c for outcome in self.remotes for c in outcome.conflicts]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "committed": self.committed.to_dict() if self.committed else None,
            "head": self.head,
            "remotes": [outcome.to_dict() for outcome in self.remotes],
            "mirrors": [outcome.to_dict() for outcome in self.mirrors],
        }


def conflict_policy(agent: Agent, override: str | None = None) -> Policy:
    """``--conflict``, else agent.yaml's ``sync.conflict``, else ``copy``."""
    chosen = override
    if chosen is None and _may_set_sync(agent):
        sync_settings = agent.manifest_setting("sync")
        if isinstance(sync_settings, dict):
            chosen = sync_settings.get("conflict")
    if chosen is None:
        return "copy"
    from memfs.merge import POLICIES  # a policy named: checked against merge's own list

    if chosen not in POLICIES:
        raise MemfsError(f"unknown conflict policy {chosen!r}: use one of {', '.join(POLICIES)}")
    return chosen  # type: ignore[return-value]


def _may_set_sync(agent: Agent) -> bool:
    """Whether agent.yaml can hold a ``sync`` key: only then is it parsed (YAML costs every
    push and pull ~10 ms). A key is in the text as it is named, or escaped (a backslash)."""
    try:
        text = (agent.root / MANIFEST_FILE).read_bytes()
    except OSError:
        return True  # let manifest_setting say what there is
    return b"sync" in text or b"\\" in text


def _selected(agent: Agent, name: str | None, include_mirrors: bool) -> list[RemoteConfig]:
    if name is not None:
        return [get_remote(agent.history, name)]
    return [r for r in list_remotes(agent.history) if include_mirrors or not r.mirror]


def open_for(agent: Agent, config: RemoteConfig, progress: Progress | None = None) -> Remote:
    """Open a configured remote of ``agent``, refusing one that lies inside the agent itself."""
    check_outside(config.url, agent.root)
    return open_remote(config.url, progress)


# -- fetch ---------------------------------------------------------------------------------


def fetch_remote(
    agent: Agent,
    config: RemoteConfig,
    progress: Progress | None = None,
    remote: Remote | None = None,
) -> str | None:
    """Fetch the agent's branch from one remote; its sha, or None if the remote has none."""
    history = agent.history
    branch = history.branch()
    remote = remote or open_for(agent, config, progress)
    sha = remote.fetch(history, branch)
    if sha is None:
        return None
    _refuse_other_kind(history, sha, config.display_url, branch)
    head = history.head()
    ours, theirs = (None, None) if _same_agent_file(history, head, sha) else (
        _agent_id(history, head), _agent_id(history, sha)
    )  # fmt: skip
    if ours and theirs and ours != theirs:
        raise RemoteError(
            config.display_url,
            f"{config.display_url} holds another agent (id {theirs}, this one is {ours}); "
            "nothing was merged",
        )
    if sha != history.ref(_tracking_ref(config.name, branch)):
        _refuse_foreign_entries(history, sha, config.display_url)
    history.set_ref(_tracking_ref(config.name, branch), sha, f"fetch: from {config.name}")
    return sha


def remote_layout(history: History, sha: str) -> Layout | None:
    """What commit ``sha`` holds: a memfs-native agent (agent.yaml), a Letta Code memory repo
    (``system/`` or a root ``MEMORY.md``), or neither (None)."""
    if history.entries_at(sha, MANIFEST_FILE):
        return Layout.NATIVE
    if history.entries_at(sha, V2_MARKER):
        return Layout.LETTA_V2
    if history.entries_at(sha, "system"):
        return Layout.LETTA_V1
    return None


def _refuse_other_kind(history: History, sha: str, url: str, branch: str) -> None:
    """Refuse a fetched commit that is not the same kind of agent as this one.

    A memfs-native agent takes only commits with agent.yaml (as before); a Letta Code memory
    repo takes commits without one (Letta repos carry no agent.yaml, and no id in their tree:
    two of them are told apart only by their histories, see ``refuse_unrelated``). An agent
    with no commit yet (a clone) takes either kind, but not a repository that is neither.
    """
    head = history.head()
    theirs_native = bool(history.entries_at(sha, MANIFEST_FILE))
    if head is None:
        if remote_layout(history, sha) is None:
            raise NotAMemfsRemoteError(
                url,
                branch,
                f"branch {branch} has no agent.yaml, and is not a Letta Code memory repo "
                f"either (no system/ folder or root {V2_MARKER})",
            )
        return
    ours_native = bool(history.entries_at(head, MANIFEST_FILE))
    if ours_native and not theirs_native:
        raise NotAMemfsRemoteError(url, branch)
    if theirs_native and not ours_native:
        raise RemoteError(
            url,
            f"{url} holds a memfs-native agent (agent.yaml) and this is a Letta Code memory "
            "repo; nothing was merged",
        )


def _refuse_foreign_entries(history: History, sha: str, url: str) -> None:
    """Refuse a fetched commit whose tree holds anything but files, folders and symlinks.

    A submodule (gitlink, mode 160000) names a commit of another repository that no pack
    carries: checking it out or merging it would fail halfway. Nothing is merged from it.
    """
    tree = history.tree_of(sha)
    modes = {entry.mode for entry in tree.values()}  # a few distinct modes: checked once each
    if all(stat.S_ISREG(mode) or mode == 0o120000 for mode in modes):
        return
    for path, entry in tree.items():
        if not (stat.S_ISREG(entry.mode) or entry.mode == 0o120000):
            what = "a submodule" if entry.mode == 0o160000 else f"an entry of mode {entry.mode:o}"
            raise RemoteError(
                url,
                f"{url}: commit {sha[:7]} holds {what} at {path!r}; memfs agents hold only "
                "files and symlinks, so nothing was merged (remove it from that history)",
            )


def _same_agent_file(history: History, a: str | None, b: str) -> bool:
    """Whether commits ``a`` and ``b`` hold the same agent.yaml (or neither has one): then
    they are the same agent, and no YAML is parsed to learn it."""
    return a is not None and history.entries_at(a, MANIFEST_FILE) == history.entries_at(
        b, MANIFEST_FILE
    )


def _agent_id(history: History, sha: str | None) -> str | None:
    """The ``id`` in agent.yaml at commit ``sha``, if it can be read."""
    value = manifest_data(history.file_at(sha, MANIFEST_FILE)).get("id")
    return str(value) if value else None


def fetch(agent: Agent, remote: str | None = None, progress: Progress | None = None) -> SyncReport:
    """Fetch from one remote, or from every remote that is not a mirror."""
    report = SyncReport()
    for config in _selected(agent, remote, include_mirrors=remote is not None):
        outcome = RemoteOutcome(config.name)
        try:
            outcome.fetched = fetch_remote(agent, config, progress)
        except RemoteError as error:
            outcome.error = str(error)
        report.remotes.append(outcome)
    report.head = agent.history.head()
    _consolidate(agent)
    return report


# -- merge ---------------------------------------------------------------------------------


def integrate(
    agent: Agent,
    theirs: str | None,
    source: str,
    policy: Policy = "copy",
    ff_only: bool = False,
    origin: str = "cli",
    allow_unrelated: bool = False,
    committed: bool = False,
) -> tuple[str, list[Conflict]]:
    """Bring commit ``theirs`` into the local branch: fast-forward or merge.

    Histories with no common commit are refused (UnrelatedHistoriesError) unless
    ``allow_unrelated``: see ``refuse_unrelated``.

    Returns what was done ("up to date", "fast-forward", "merged") and the conflicts the
    policy settled. Local edits are committed first, and again whenever one appears while
    the work tree is being updated. In a Letta repo an edit Letta's rules keep out of commits
    (a read-only file) that the merge must rewrite is set aside first (``_set_aside_held_edit``,
    not with ``ff_only``: its commit would diverge), listed among the conflicts as ``held``.

    ``committed``: the caller committed every local edit moments ago (pull, sync), so the
    first round takes no snapshot of its own: an edit landing since is safe all the same,
    as the update replaces a file only while it holds its committed version (else
    LocalEditError, and the next round commits it first).
    """
    history = agent.history
    allow_unrelated = allow_unrelated or history.head() is None  # no commit yet: not unrelated
    set_aside: dict[str, TreeEntry | None] = {}  # held edits whose copy is committed
    kept: list[Conflict] = []
    with history.locked():
        for attempt in range(ATTEMPTS):
            if attempt or not committed:
                agent.commit(origin=origin)
            ours = history.head()
            if theirs is None or ours == theirs or (ours and history.is_ancestor(theirs, ours)):
                return "up to date", kept
            refuse_unrelated(history, ours, theirs, source, allow_unrelated)
            try:
                if ours is None or history.is_ancestor(ours, theirs):
                    current = _on_disk_now(history.head_tree(ours), set_aside)
                    with agent.updating(current, history.tree_of(theirs)):
                        history.move_branch(ours, theirs, f"fast-forward to {source}".encode())
                    return "fast-forward", kept
                if ff_only:
                    raise DivergedError(source, ours, theirs)
                conflicts = _merge_commit(agent, ours, theirs, source, policy, set_aside)
                return "merged", kept + conflicts
            except LocalEditError as edit:
                set_aside.pop(edit.path, None)  # edited again since: looked at afresh
                # with ff_only a copy's commit would itself make the histories diverge
                aside = None if ff_only else _set_aside_held_edit(agent, edit.path, origin)
                if aside is not None:
                    set_aside[edit.path], conflict = aside
                    kept = [c for c in kept if c != conflict] + [conflict]
                    continue
                reason = agent.left_out_reason(edit.path)
                if reason is not None:  # committing cannot settle it: say so, never spin
                    raise UncommittableEditError(edit.path, reason) from edit
                continue
        raise ConcurrentUpdateError(
            "files kept changing while memfs was merging; every edit is committed, run sync again"
        )


def refuse_unrelated(
    history: History, ours: str | None, theirs: str, source: str, allow: bool
) -> None:
    """Refuse to merge two non-empty histories that share no commit, unless ``allow``.

    As git does: such a merge grafts one history onto the other, and every file both hold
    becomes an add/add conflict (a partial checkout committed as a new root, an agent folder
    created twice). An agent with no commit yet is not unrelated: it simply takes theirs.
    """
    if allow or ours is None or history.merge_bases(ours, theirs):
        return
    raise UnrelatedHistoriesError(source, ours, theirs)


def _merge_commit(
    agent: Agent,
    ours: str,
    theirs: str,
    source: str,
    policy: Policy,
    set_aside: dict[str, TreeEntry | None] | None = None,
) -> list[Conflict]:
    from memfs.merge import Side, merge

    history = agent.history
    ours_newer = (history.commit_time(ours), ours) >= (history.commit_time(theirs), theirs)
    local = Side(history.head_tree(ours), ours, ours[:7])  # ours is HEAD: the index has it
    remote = Side(history.tree_of(theirs), theirs, theirs[:7])
    newer, older = (local, remote) if ours_newer else (remote, local)
    result = merge(
        merge_base_tree(history, ours, theirs),
        newer,
        older,
        read=history.blob,
        store=history.store_blob,
        policy=policy,
        ours_is_newer=ours_newer,
        layout=merge_layout(local.files, remote.files),
    )
    tree = history.tree_from_entries(result.files)
    summary = f"memfs: merge {source}"
    if result.conflicts:
        summary += f" ({len(result.conflicts)} conflicts settled by '{policy}')"
    body = "\n".join(
        f"conflict: {c.path} ({c.kind}) -> {c.copy_path or c.resolution}" for c in result.conflicts
    )
    message = with_trailers(
        summary + ("\n\n" + body if body else ""),
        {TRAILER_HOST: hostname(), TRAILER_ORIGIN: "merge"},
    )
    with agent.updating(_on_disk_now(local.files, set_aside or {}), result.files):
        history.commit_tree(tree, (ours, theirs), message, agent.author())
    return result.conflicts


def _on_disk_now(tree: Files, set_aside: dict[str, TreeEntry | None]) -> Files:
    """What the work tree holds: ``tree``, but the held edits set aside as they are on disk
    (committed as copies, so an update may replace them; None: deleted)."""
    current = dict(tree)
    for path, entry in set_aside.items():
        if entry is None:
            current.pop(path, None)
        else:
            current[path] = entry
    return current


def _set_aside_held_edit(
    agent: Agent, path: str, origin: str
) -> tuple[TreeEntry | None, Conflict] | None:
    """Keep an edit Letta's rules hold out of commits where Letta never loads it, so a merge
    that must rewrite ``path`` can go on; None if ``path`` is not such an edit.

    In a Letta repo a change to a file read-only at HEAD (or one Letta's installed hook
    refuses) is never committed (memfs.lettahook). When the remote changed that file, the
    merge cannot wait for the edit to become committable: it would stop on every cycle. So
    the edit is copied to ``.memfs-conflicts/<path>.conflict-<sha>`` (named by its content,
    as apply.py names a save met by a merge; no ``.md`` ending, so Letta's hook and prompt
    never read it) and that copy is committed; only then may the update replace the file.
    A crash at any point leaves the edit on disk or in a commit: the copy's name comes from
    its content, so a second run finds the copy it made. A held deletion needs no copy: the
    remote's version comes back, as in a delete-vs-modify merge. Returns the entry the path
    has on disk (None: deleted) and the conflict to report.
    """
    from memfs.merge import Conflict

    if not agent.layout.is_letta:
        return None
    committed = agent.commit(origin=origin, paths=(path,))
    if committed is not None:
        return None  # it could be committed after all: the merge simply goes round again
    reasons = [r for r in agent.held if r.path == path and r.message != lettahook.WAITING]
    if not reasons:
        return None
    why = "; ".join(reason.render() for reason in reasons)
    entry = entry_on_disk(agent.root / path)
    if entry is None:
        return None, Conflict(path, "held", "theirs")
    if entry.mode == MODE_FOLDER:
        return None  # a folder where the file was: not an edit memfs can copy
    data = read_worktree_data(agent.root / path, entry.mode)
    copy, written = _write_held_copy(agent, path, entry, data)
    agent.commit(
        message=f"memfs: set aside the held edit of {path} at {copy}\n\n{why}",
        origin=origin,
        paths=(copy,),
    )
    if agent.history.entries_at(agent.history.head(), copy).get(copy) != entry:
        if written and entry_on_disk(agent.root / copy) == entry:
            remove_file(agent.root, copy)  # a duplicate of the edit, still at its path
        return None  # the copy cannot be committed either (Letta's hook refuses every commit)
    return entry, Conflict(path, "held", "copy", copy)


def _write_held_copy(agent: Agent, path: str, entry: TreeEntry, data: bytes) -> tuple[str, bool]:
    """The copy of a held edit under ``.memfs-conflicts/``: one already holding it, or a new
    one; and whether it was written now."""
    from memfs.merge import letta_conflict_copy_path

    label = entry.sha[:7]
    for number in range(1, 100):
        copy = letta_conflict_copy_path(path, label if number == 1 else f"{label}-{number}")
        found = entry_on_disk(agent.root / copy)
        if found == entry:
            return copy, False
        if found is None:
            write_file(agent.root, copy, entry.mode, data)
            return copy, True
    raise MemfsError(f"too many copies of {path} in .memfs-conflicts/: resolve some first")


def merge_layout(ours: Files, theirs: Files) -> Layout:
    """The layout a merge of these two trees follows: memfs-native with agent.yaml, else a
    Letta repo, v2 as soon as either side has a root MEMORY.md (Letta's hook then checks the
    merged tree as v2)."""
    if MANIFEST_FILE in ours:
        return Layout.NATIVE
    return Layout.LETTA_V2 if V2_MARKER in ours or V2_MARKER in theirs else Layout.LETTA_V1


def merge_base_tree(history: History, a: str, b: str, depth: int = 0) -> Files:
    """The tree to merge ``a`` and ``b`` against: their merge base, or, after criss-cross
    merges left several, a virtual base merged from them (git's recursive strategy).

    Picking one of several bases makes a merge see both sides change a file only one side
    changed, and can bring an older version back. The bases are folded oldest first, each
    pair against its own base; a conflict inside the virtual base goes to the newer side.
    Every machine computes the same virtual base for the same two commits.
    """
    from memfs.merge import Side, merge

    bases = history.merge_bases(a, b)
    if not bases:
        return {}
    tree = history.tree_of(bases[0])
    if depth > MAX_BASE_DEPTH:
        return tree
    folded = bases[0]
    for other in bases[1:]:
        base = merge_base_tree(history, folded, other, depth + 1)
        result = merge(
            base,
            Side(history.tree_of(other), other, other[:7]),
            Side(tree, folded, folded[:7]),
            read=history.blob,
            store=history.store_blob,
            policy="ours",
            ours_is_newer=True,
        )
        tree, folded = result.files, other
    return tree


def pull(
    agent: Agent,
    remote: str | None = None,
    policy: str | None = None,
    ff_only: bool = False,
    origin: str = "cli",
    progress: Progress | None = None,
    allow_unrelated: bool = False,
    opened: dict[str, Remote] | None = None,
) -> SyncReport:
    """Commit local edits, then fetch and merge from one remote or every non-mirror remote.

    ``opened``: remotes already open, by name (the watcher's, holding the manifest its poll
    just read, so the fetch does not read it again)."""
    chosen = conflict_policy(agent, policy)
    report = SyncReport(committed=agent.commit(origin=origin))
    for config in _selected(agent, remote, include_mirrors=remote is not None):
        already = (opened or {}).get(config.name)
        report.remotes.append(
            _pull_one(agent, config, chosen, ff_only, origin, progress, already, allow_unrelated)
        )
    report.head = agent.history.head()
    _record(agent, report)
    _consolidate(agent)
    return report


def _pull_one(
    agent: Agent,
    config: RemoteConfig,
    policy: Policy,
    ff_only: bool,
    origin: str,
    progress: Progress | None = None,
    remote: Remote | None = None,
    allow_unrelated: bool = False,
) -> RemoteOutcome:
    outcome = RemoteOutcome(config.name)
    try:
        outcome.fetched = fetch_remote(agent, config, progress, remote)
        outcome.integrated, outcome.conflicts = integrate(
            agent,
            outcome.fetched,
            config.name,
            policy,
            ff_only,
            origin,
            allow_unrelated,
            committed=True,  # pull and sync commit before they fetch
        )
    except RemoteError as error:
        outcome.error = str(error)
    return outcome


# -- push ----------------------------------------------------------------------------------


def push_remote(
    agent: Agent,
    config: RemoteConfig,
    policy: Policy,
    origin: str = "cli",
    progress: Progress | None = None,
    remote: Remote | None = None,
    allow_unrelated: bool = False,
) -> RemoteOutcome:
    """Push the branch to one remote, merging first (retrying) if the remote moved on.

    The window between reading the remote and swapping it is kept short: after a merge the
    push is tried at once against the state just fetched; only a lost swap backs off.
    """
    history = agent.history
    branch = history.branch()
    outcome = RemoteOutcome(config.name)
    if agent.is_read_only_mount():
        raise RemoteError(
            config.display_url, f"{agent.root} is a read-only mount: nothing is pushed from it"
        )
    remote = remote or open_for(agent, config, progress)
    theirs = (
        remote.head(branch)
        if config.mirror  # a mirror with commits of its own is refused, not merged: no upload
        else _head_while_uploading(history, remote, config.name, branch)
    )
    for attempt in range(PUSH_ATTEMPTS):
        local = history.head()
        if local is None or theirs == local:
            outcome.pushed = outcome.pushed or "up to date"
            return outcome
        if theirs is not None and not (
            history.has_commit(theirs) and history.is_ancestor(theirs, local)
        ):
            if config.mirror:
                raise RemoteError(
                    config.display_url,
                    f"mirror {config.name} has commits this agent does not; mirrors are never "
                    "merged from, so fix it by hand (memfs never force-pushes)",
                )
            outcome.fetched = theirs = fetch_remote(agent, config, progress, remote)
            integrated, conflicts = integrate(
                agent, theirs, config.name, policy, origin=origin, allow_unrelated=allow_unrelated
            )
            outcome.integrated = outcome.integrated or integrated
            outcome.conflicts += conflicts
            continue
        folder = _checked_out_folder(remote, branch)
        if folder is not None:
            theirs = _deliver_to_folder(agent, folder, config, policy, origin, allow_unrelated)
            outcome.pushed = "pushed"  # delivered, even if it merged commits of its own
            if theirs == local:
                history.set_ref(_tracking_ref(config.name, branch), local, "push: merged there")
                return outcome
            continue  # it merged with commits of its own: bring those here, then look again
        try:
            remote.push(history, branch, local, expected=theirs)
        except PushRejectedError:
            _backoff(attempt)  # someone pushed between our look and our swap: look again
            theirs = remote.head(branch)
            continue
        history.set_ref(_tracking_ref(config.name, branch), local, f"push: to {config.name}")
        outcome.pushed = "pushed"
        return outcome
    raise PushRejectedError(config.display_url, f"still moving after {PUSH_ATTEMPTS} attempts")


def _head_while_uploading(history: History, remote: Remote, name: str, branch: str) -> str | None:
    """``remote.head(branch)``; a bucket uploads the pack of what the local branch adds to
    the remote-tracking ref meanwhile, one round trip less when the remote is still where
    this machine last saw it (``BucketRemote.head_while_uploading``)."""
    local, seen = history.head(), history.ref(_tracking_ref(name, branch))
    overlap = getattr(remote, "head_while_uploading", None)
    if overlap is None or local is None or seen is None or seen == local:
        return remote.head(branch)
    if not (history.has_commit(seen) and history.is_ancestor(seen, local)):
        return remote.head(branch)
    return overlap(history, branch, local, seen)  # type: ignore[no-any-return]


def push_letta_mirror(
    agent: Agent, policy: Policy, origin: str = "cli", progress: Progress | None = None
) -> RemoteOutcome | None:
    """Push the branch to the mirror Letta Code names in ``letta.memoryRepository.url``.

    What Letta Code's post-commit hook does after each commit: a plain push, never forced,
    never fetched or merged from (a mirror that has commits of its own is left alone). A
    failure is returned in the outcome, for the caller to report as a warning: the mirror is
    a copy, so it never fails a sync. None if the repository names no mirror.
    """
    config = letta_mirror(agent.history)
    if config is None or agent.is_read_only_mount():
        return None
    try:
        return push_remote(agent, config, policy, origin, progress)
    except RemoteError as error:
        return RemoteOutcome(config.name, error=str(error))


def _checked_out_folder(remote: Remote, branch: str) -> str | None:
    """The work tree a push to ``remote`` would land in, for a git repository on this
    machine with ``branch`` checked out (see GitRemote.checked_out_folder). Asked of the
    remote itself: a bucket push never imports the git remote (dulwich's client, ~10 ms)."""
    checked_out_folder = getattr(remote, "checked_out_folder", None)
    return checked_out_folder(branch) if checked_out_folder is not None else None


def _deliver_to_folder(
    agent: Agent,
    folder: str,
    config: RemoteConfig,
    policy: Policy,
    origin: str,
    allow_unrelated: bool = False,
) -> str | None:
    """Push into an agent folder that has its files checked out: merge there, as a pull.

    Moving its branch alone would leave its files behind and its next commit would undo the
    push (git refuses such a push: ``receive.denyCurrentBranch``). Instead the folder fetches
    this agent's commits and integrates them under its own lock, exactly as ``memfs pull``
    run there would: its own edits are committed first and never overwritten. Returns the
    folder's branch afterwards.
    """
    from memfs.opening import open_agent

    history = agent.history
    try:
        target = open_agent(folder)
    except NotAnAgentError as error:
        raise RemoteError(
            config.display_url,
            f"{config.display_url} has its files checked out and is not a memfs agent: a push "
            "would move its branch but not its files; push to a bare repository instead",
        ) from error
    with target:
        if target.is_read_only_mount():
            raise RemoteError(
                config.display_url, f"{folder} is a read-only mount: nothing is pushed into it"
            )
        from memfs.remotes.git import GitRemote  # dulwich's client: only when it is needed

        local = GitRemote(str(agent.root)).fetch(target.history, history.branch())
        try:
            source = f"{agent.name} at {agent.root}"
            integrate(target, local, source, policy, origin=origin, allow_unrelated=allow_unrelated)
        except RemoteError:
            raise
        except MemfsError as error:
            raise RemoteError(config.display_url, f"{config.display_url}: {error}") from error
        return target.history.head()


def _backoff(attempt: int) -> None:
    """Wait a little before trying again, jittered so racing writers spread out (cap 1 s)."""
    time.sleep(random.uniform(0, min(1.0, 0.01 * 2**attempt)))


def push(
    agent: Agent,
    remote: str | None = None,
    policy: str | None = None,
    origin: str = "cli",
    progress: Progress | None = None,
    allow_unrelated: bool = False,
) -> SyncReport:
    """Commit local edits and push to one remote or to every remote (mirrors included).

    An agent with no remote at all is pushed to the default cloud, as remote ``origin``.
    """
    chosen = conflict_policy(agent, policy)
    report = SyncReport(committed=agent.commit(origin=origin))
    if remote is None and not list_remotes(agent.history):
        from memfs.cloud import add_default_cloud_remote

        report.created_remote = add_default_cloud_remote(agent)
    for config in _selected(agent, remote, include_mirrors=True):
        try:
            report.remotes.append(
                push_remote(agent, config, chosen, origin, progress, None, allow_unrelated)
            )
        except RemoteError as error:
            report.remotes.append(RemoteOutcome(config.name, error=str(error)))
    mirrored = push_letta_mirror(agent, chosen, origin, progress)
    report.mirrors = [mirrored] if mirrored else []
    report.head = agent.history.head()
    _record(agent, report)
    _consolidate(agent)
    return report


# -- the whole cycle -----------------------------------------------------------------------


def sync(
    agent: Agent,
    policy: str | None = None,
    origin: str = "cli",
    progress: Progress | None = None,
    allow_unrelated: bool = False,
) -> SyncReport:
    """Commit, fetch and merge from every non-mirror remote, then push to every remote."""
    chosen = conflict_policy(agent, policy)
    report = SyncReport(committed=agent.commit(origin=origin))
    outcomes: dict[str, RemoteOutcome] = {}
    opened: dict[str, Remote] = {}  # one connection per remote for the whole cycle
    for config in _selected(agent, None, include_mirrors=True):
        try:
            opened[config.name] = open_for(agent, config, progress)
        except RemoteError as error:
            outcomes[config.name] = RemoteOutcome(config.name, error=str(error))
    for config in _selected(agent, None, include_mirrors=False):
        if config.name in opened:
            outcomes[config.name] = _pull_one(
                agent, config, chosen, False, origin, progress, opened[config.name], allow_unrelated
            )
    for config in _selected(agent, None, include_mirrors=True):
        outcome = outcomes.setdefault(config.name, RemoteOutcome(config.name))
        if outcome.error is not None:
            continue
        try:
            pushed = push_remote(
                agent, config, chosen, origin, progress, opened[config.name], allow_unrelated
            )
        except RemoteError as error:
            outcome.error = str(error)
            continue
        outcome.pushed = pushed.pushed
        outcome.conflicts += pushed.conflicts
        outcome.integrated = outcome.integrated or pushed.integrated
    report.remotes = list(outcomes.values())
    mirrored = push_letta_mirror(agent, chosen, origin, progress)
    report.mirrors = [mirrored] if mirrored else []
    report.head = agent.history.head()
    _record(agent, report)
    _consolidate(agent)
    return report


def _consolidate(agent: Agent) -> None:
    """Merge the local packs once there are many (``repack.py``): every fetch and push adds
    one. Housekeeping after a sync that succeeded: a failure to write, or a lock another
    process holds, leaves every object where it was, and the next sync tries again."""
    from memfs.repack import consolidate_if_due

    if agent.is_read_only_mount():
        return
    with contextlib.suppress(OSError, LockTimeoutError, RepositoryDamagedError):
        consolidate_if_due(agent.history)  # damage: left as it is, for git fsck to name


def _record(agent: Agent, report: SyncReport) -> None:
    """Remember the last sync in ``.git/memfs/state.json`` for ``status``."""
    path = agent.history.state_dir / "state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        state = {}
    state["last_sync"] = utc_now().isoformat()
    remotes = state.setdefault("remotes", {})
    for outcome in report.remotes + report.mirrors:
        entry = remotes.setdefault(outcome.remote, {})
        entry["last_error"] = outcome.error
        if outcome.error is None:
            entry["last_ok"] = state["last_sync"]
    errors = [o.error for o in report.remotes if o.error]
    state["last_error"] = errors[0] if errors else None
    with contextlib.suppress(OSError):
        _replace_unsynced(path, json.dumps(state, indent=2).encode())


def _replace_unsynced(path: Path, data: bytes) -> None:
    """Replace ``path`` whole by a rename, without fsync: for ``state.json``, which only
    reports (``status``). A crash may lose the last report, read as none, never a commit;
    two fsyncs less in every push, pull and sync (each several ms on a busy disk)."""
    import tempfile

    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


# -- clone ---------------------------------------------------------------------------------


def clone(
    url: str,
    directory: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> Agent:
    """Check an agent out from ``url`` into ``directory`` (default: the URL's last part).

    A Letta Code memory repo (no agent.yaml) is recorded as one in ``.git/config``, named
    ``name`` (a cloud's name for it), else after its folder; nothing is added to its tree.

    A relative local path is taken from the current folder and stored absolute, so the
    remote means the same place from inside the agent. A folder left by a clone or checkout
    that stopped midway (see ``memfs.checkout``) is replaced, once every file in it is
    checked to be what that checkout wrote.
    """
    url = resolve_url(url, Path.cwd())
    remote = open_remote(url, progress)
    root = Path(directory) if directory is not None else Path(_name_from_url(url))
    root = root.expanduser().resolve()
    check_outside(url, root)
    stale = unfinished(root) if root.is_dir() else None
    if stale is not None:
        _clear_unfinished(root, stale)
    created = not root.exists()
    if not created and (not root.is_dir() or any(root.iterdir())):
        raise MemfsError(f"{root} already exists and is not an empty folder")
    try:
        branch = remote.default_branch() or "main"
        if not is_valid_branch(branch):
            raise RemoteCorruptError(redact(url), f"its default branch {branch!r} is not a name")
        root.mkdir(parents=True, exist_ok=True)
        history = History.create(root)
        mark_started(root, redact(url), "")
        history.point_head_at(branch)
        config = add_remote(history, "origin", url)
        agent = Agent(root, history)
        sha = fetch_remote(agent, config, progress, remote)  # its manifest read: one GET less
        if sha is None:
            raise RemoteNotFoundError(redact(url), f"it has no branch {branch} to clone")
        mark_started(root, redact(url), sha)
        layout = remote_layout(history, sha)
        if layout is not None and layout.is_letta:
            _record_cloned_letta_repo(history, root, url, layout, name, remote)
        agent.check_out_fresh(sha, f"clone: from {redact(url)}")
        crash_point("checkout.finish")
        mark_finished(root)
        return agent
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:
            _empty_folder(root)
        raise


def _record_cloned_letta_repo(
    history: History,
    root: Path,
    url: str,
    layout: Layout,
    name: str | None,
    remote: Remote | None = None,
) -> None:
    """A cloned Letta Code memory repo opens as one: who it is goes to ``.git/config``
    (``[memfs]``), as ``memfs init`` adopting one writes it; nothing is added to its tree. Its
    name is ``name`` (a cloud's name for it), else its folder's; its id is the Letta agent's
    when the URL names one (``letta://ID``, ``.../v1/git/ID/state.git``)."""
    from memfs.layout import letta_repo_name
    from memfs.opening import record_letta_identity
    from memfs.remotes import letta_agent_id

    letta_id = None
    with contextlib.suppress(MemfsError):
        letta_id = letta_agent_id(url)
    if letta_id is not None:
        created = utc_now().isoformat().replace("+00:00", "Z")
        history.set_config_values("memfs", {"id": letta_id, "created": created})
    else:  # a bucket names the agent it holds (memfs.json): every checkout is that agent
        identity = getattr(remote, "identity", lambda: None)()
        if identity is not None and identity.id:
            values = {"id": identity.id}
            values.update({"created": identity.created_at} if identity.created_at else {})
            history.set_config_values("memfs", values)
    chosen = name if name is not None and is_valid_name(name) else letta_repo_name(root)
    record_letta_identity(history, chosen, layout)


def _clear_unfinished(root: Path, stale: UnfinishedCheckout) -> None:
    """Empty a folder a stopped checkout left, refusing if anything in it is not its own.

    A file counts as the checkout's own if it holds what the commit has at its path, or the
    start of it (the process was killed while writing it). Anything else was put there
    since: it is never deleted.
    """
    expected: dict[str, tuple[int, bytes]] = {}
    with contextlib.suppress(Exception):  # a repository the kill left unreadable holds nothing
        history = History.open(root)
        try:
            tree = history.tree_of(stale.sha) if stale.sha else {}
            blobs = history.read_blobs({entry.sha for entry in tree.values()})
            expected = {path: (e.mode, blobs[e.sha]) for path, e in tree.items()}
        finally:
            history.close()
    for folder, dirs, files in os.walk(root):
        relative = os.path.relpath(folder, root)
        if relative == ".":
            dirs[:] = [name for name in dirs if name != ".git"]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = name if relative == "." else f"{relative}/{name}"
            if not _written_by_checkout(root / path, expected.get(path)):
                raise MemfsError(
                    f"{root} is an unfinished checkout, but {path} is not what it wrote; "
                    "move that file out of the folder and run the clone again"
                )
    _empty_folder(root)


def _written_by_checkout(full: Path, entry: tuple[int, bytes] | None) -> bool:
    """Whether the file at ``full`` is (the start of) what a checkout wrote there."""
    if entry is None:
        return False
    mode, data = entry
    try:
        if full.is_symlink():
            return mode == 0o120000 and os.fsencode(os.readlink(full)) == data
        if not full.is_file():
            return False  # a folder, a FIFO, a device: never what a checkout writes
        on_disk = full.read_bytes()
    except OSError:
        return False
    return mode != 0o120000 and data.startswith(on_disk)


def _empty_folder(root: Path) -> None:
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink()


def _name_from_url(url: str) -> str:
    """The folder a clone goes to by default: the URL's last part, never '.' or '..'; the
    agent id for a Letta memory repository (``letta://ID``, ``.../v1/git/ID/state.git``)."""
    from memfs.remotes import letta_agent_id

    with contextlib.suppress(MemfsError):
        agent_id = letta_agent_id(url)
        if agent_id is not None:
            return agent_id
    tail = url.rstrip("/").replace(":", "/").rsplit("/", 1)[-1].removesuffix(".git")
    return "agent" if tail in ("", ".", "..") else tail


def compact_remote(agent: Agent, remote: str, grace_s: float) -> tuple[int, int]:
    """Compact an object-store remote: (packs merged, packs deleted)."""
    config = get_remote(agent.history, remote)
    target = open_for(agent, config)
    if not hasattr(target, "compact"):
        raise MemfsError(f"{remote} is a git host: it packs its own objects")
    with agent.history.locked():
        return target.compact(agent.history, grace_s)  # type: ignore[attr-defined]
