"""What a remote sends, brought in: the fetch of an agent's branch with its checks (same kind
of agent, same id, nothing but files and symlinks), and the merge of the fetched commit into
the work tree (``integrate``), as DESIGN.md §6 describes. Used by pull, push, sync and clone
(memfs.sync, memfs.cloning) and by ``memfs serve``'s writes.
"""

from __future__ import annotations

import stat
from collections.abc import Callable

from memfs import updaterecord
from memfs.agent import Agent
from memfs.errors import (
    ConcurrentUpdateError,
    DivergedError,
    LocalEditError,
    MemfsError,
    NotAMemfsRemoteError,
    RemoteError,
    RepositoryDamagedError,
    UncommittableEditError,
    UnrelatedHistoriesError,
)
from memfs.history import History
from memfs.layout import V2_MARKER, Layout
from memfs.remotes import (
    Remote,
    RemoteConfig,
    check_outside,
    open_remote,
)
from memfs.remotestate import tracking_ref as _tracking_ref
from memfs.schema import MANIFEST_FILE, manifest_data
from memfs.secrets.hooks import after_fetch
from memfs.trees import (
    TRAILER_HOST,
    TRAILER_ORIGIN,
    Files,
    TreeEntry,
    read_worktree_data,
    with_trailers,
)
from memfs.util import hostname

TYPE_CHECKING = False
if TYPE_CHECKING:  # memfs.merge is imported when a merge happens (~9 ms a push or pull spares)
    from memfs.merge import Conflict, Policy


Progress = Callable[[str], None]
ATTEMPTS = 5  # rounds of commit-then-merge while edits keep landing during a merge
MAX_BASE_DEPTH = 8


def open_for(agent: Agent, config: RemoteConfig, progress: Progress | None = None) -> Remote:
    """Open a configured remote of ``agent``, refusing one that lies inside the agent itself."""
    check_outside(config.url, agent.root)
    return open_remote(config.url, progress, encrypt=config.encrypt)


def fetch_remote(
    agent: Agent,
    config: RemoteConfig,
    progress: Progress | None = None,
    remote: Remote | None = None,
) -> str | None:
    """Fetch the agent's branch from one remote; its sha, or None if the remote has none."""
    history = agent.history
    try:
        history.adopt_orphan_keeps()  # those of a fetch killed before its ref: released below
        return _fetch(agent, config, progress, remote)
    finally:
        history.release_kept()  # a ref reaches the fetched objects now (or none will)


def _fetch(
    agent: Agent, config: RemoteConfig, progress: Progress | None, remote: Remote | None
) -> str | None:
    history = agent.history
    branch = history.branch()
    remote = remote or open_for(agent, config, progress)
    sha = remote.fetch(history, branch)
    if sha is None:
        refuse_vanished(history, config, branch)
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
    seen = history.ref(_tracking_ref(config.name, branch))
    if sha != seen:
        _refuse_foreign_entries(history, sha, config.display_url, seen)
    history.set_ref(_tracking_ref(config.name, branch), sha, f"fetch: from {config.name}")
    after_fetch(agent, config, remote)  # the secrets of the manifest read, once it is ours (§6)
    return sha


def refuse_vanished(history: History, config: RemoteConfig, branch: str) -> None:
    """Refuse an object store this checkout has synced with (its tracking ref is here) that
    now holds no agent: a folder cloud whose disk is not mounted looks just so, and a push
    would write a new store under the empty mountpoint that no other machine sees. Only a
    first push creates a store."""
    if config.kind != "bucket" or history.ref(_tracking_ref(config.name, branch)) is None:
        return
    url = config.display_url
    raise RemoteError(
        url,
        f"{url} is gone: this agent synced with it before and it holds no agent now (a "
        f"folder not mounted?); nothing was pushed. If it was emptied on purpose, 'memfs "
        f"remote remove {config.name}' and 'memfs remote add {config.name} URL' start it anew",
    )


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


def _refuse_foreign_entries(history: History, sha: str, url: str, seen: str | None) -> None:
    """Refuse a fetched commit whose tree holds anything but files, folders and symlinks.

    A submodule (gitlink, mode 160000) names a commit of another repository that no pack
    carries: checking it out or merging it would fail halfway. Nothing is merged from it.
    Only what changed since ``seen`` (the commit last fetched from there, checked then) is
    looked at, when it is here: a one-file pull flattens no tree for this.
    """
    try:
        changes = history.tree_changes(seen, sha) if seen and history.has_commit(seen) else None
        if changes is not None:
            tree = {path: new for path, (_, new) in changes.items() if new is not None}
        else:
            tree = history.tree_of(sha)
    except RepositoryDamagedError as error:  # a commit or tree of the fetched tip is in no pack
        raise _incomplete(url, sha, str(error)) from error
    for path, entry in tree.items():  # each file the tip brings must have come with it
        if entry.mode != 0o160000 and not history.has_commit(entry.sha):
            raise _incomplete(url, sha, f"{path!r} (object {entry.sha}) is in none of its packs")
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


def _incomplete(url: str, sha: str, what: str) -> RemoteError:
    """A fetched commit whose objects the remote's packs do not all hold: refused before any
    ref names it (the local repository stays whole; a clone from there would not be)."""
    text = f"{url}: commit {sha[:7]} is incomplete there: {what}; nothing was merged"
    return RemoteError(url, text)


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
                agent.commit(origin=origin)  # its record is carried across the merge
            ours = history.head()
            if theirs is None or ours == theirs or (ours and history.is_ancestor(theirs, ours)):
                return "up to date", kept
            refuse_unrelated(history, ours, theirs, source, allow_unrelated)
            try:
                if ours is None or history.is_ancestor(ours, theirs):
                    files = history.head_tree(ours)
                    current = _on_disk_now(files, set_aside)
                    target = history.tree_after(files, ours, theirs)  # flattens no tree
                    carried = None if set_aside else updaterecord.before_update(agent, ours)
                    with agent.updating(current, target):
                        history.move_branch(ours, theirs, f"fast-forward to {source}".encode())
                    updaterecord.after_update(agent, carried, current, target)
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
    if allow or ours is None or history.is_ancestor(ours, theirs):
        return  # a fast-forward (the walk is the new commits; no merge-base search)
    if history.merge_bases(ours, theirs):
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
    # theirs and the base, as ours with what changed: subtrees of equal sha skipped whole
    remote = Side(history.tree_after(local.files, ours, theirs), theirs, theirs[:7])
    newer, older = (local, remote) if ours_newer else (remote, local)
    result = merge(
        merge_base_tree(history, ours, theirs, known=local.files),
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
    current = _on_disk_now(local.files, set_aside or {})
    carried = None if set_aside else updaterecord.before_update(agent, ours)
    with agent.updating(current, result.files):
        history.commit_tree(tree, (ours, theirs), message, agent.author())
    updaterecord.after_update(agent, carried, current, result.files)
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
    from memfs import lettahook  # Letta's rules: only a held edit in a Letta repo needs them
    from memfs.apply import MODE_FOLDER, entry_on_disk  # a push or pull that merges nothing
    from memfs.merge import Conflict  # loads neither
    from memfs.worktreewrite import remove_file  # nor the work tree's writers

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
    from memfs.apply import entry_on_disk
    from memfs.merge import letta_conflict_copy_path
    from memfs.worktreewrite import write_file

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


def merge_base_tree(
    history: History, a: str, b: str, depth: int = 0, known: Files | None = None
) -> Files:
    """The tree to merge ``a`` and ``b`` against: their merge base, or, after criss-cross
    merges left several, a virtual base merged from them (git's recursive strategy).

    Picking one of several bases makes a merge see both sides change a file only one side
    changed, and can bring an older version back. The bases are folded oldest first, each
    pair against its own base; a conflict inside the virtual base goes to the newer side.
    Every machine computes the same virtual base for the same two commits. ``known``: the
    files of ``a``, if the caller has them (the base is then read as what changed from ``a``).
    """
    from memfs.merge import Side, merge

    bases = history.merge_bases(a, b)
    if not bases:
        return {}
    if known is not None:
        tree = history.tree_after(known, a, bases[0])
    else:
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
