"""What a ``git push`` through ``memfs serve`` does: a compare-and-swap push to the bucket.

The client's pack is already in the cached repository (objects only, ``gitpack.receive``);
here each ref command is decided. Only the agent's branch may move, only forward from the
bucket's head as the client saw it, and only to commits memfs can check out safely:

- another ref, a tag, a deletion: refused with a reason git prints after ``[remote rejected]``;
- the client's old tip is not the bucket's head (someone pushed since it fetched): ``fetch
  first``, as git says it (git and Letta Code then pull and push again);
- the new tip does not descend from the bucket's head (a forced push): ``non-fast-forward``;
- a new commit whose tree would write outside the agent (``..``, ``.git``, absolute or
  escaping symlinks), holds a submodule, is malformed (what ``git fsck --strict`` rejects) or
  lacks objects, or that turns the agent into another (agent.yaml dropped or added, another
  agent id): refused, naming the path or object;
- otherwise the bucket's manifest is swapped from the old head to the new one with the same
  compare-and-swap every memfs push uses; a lost race is ``fetch first`` again.

Then the cached work tree is brought to the new head, so the next read sees it at once.
Any well-formed memory tree is accepted: validation of memory files never blocks a push.
"""

from __future__ import annotations

import logging
import stat

from dulwich.errors import ObjectFormatException
from dulwich.objects import Blob, Commit, ObjectID, Tree

from memfs.agent import Agent
from memfs.agentidentity import change_reason
from memfs.errors import MemfsError, PushRejectedError, RepositoryDamagedError, UnsafePathError
from memfs.faults import crash_point
from memfs.layout import MANIFEST_FILE
from memfs.pathcheck import check_incoming_tree
from memfs.remotes.bucket import BucketRemote
from memfs.remotestate import tracking_ref
from memfs.server.gitpack import RefUpdate
from memfs.trees import MODE_EXECUTABLE, MODE_FILE, MODE_SYMLINK
from memfs.worktree import check_path

log = logging.getLogger("memfs.server.git")

REMOTE = "origin"  # the cached checkout's remote: the agent's folder in the bucket
FETCH_FIRST = "fetch first"
NON_FAST_FORWARD = "non-fast-forward"
MAX_NEW_COMMITS = 10_000  # one push: far beyond any memory history's growth between pulls
_MODES = (MODE_FILE, MODE_EXECUTABLE, MODE_SYMLINK, stat.S_IFDIR)


class Refused(Exception):
    """A pushed commit memfs will not take; the message is the reason shown to the client."""


def decide(
    agent: Agent, remote: BucketRemote, updates: list[RefUpdate], atomic: bool
) -> list[str | None]:
    """The outcome of each ref command of one push (None: done), pushing to the bucket."""
    branch = agent.history.branch()
    reasons: list[str | None] = [static_refusal(update, branch) for update in updates]
    if atomic and any(reasons):
        return [reason or "atomic push failed" for reason in reasons]
    for index, update in enumerate(updates):
        if reasons[index] is not None:
            continue
        try:
            reasons[index] = push_branch(agent, remote, branch, update)
        except MemfsError as error:  # the bucket unreachable, the checkout's lock held, ...
            log.warning("push to %s failed: %s", agent.root.name, error)
            reasons[index] = f"memfs: {error}"
    return reasons


def static_refusal(update: RefUpdate, branch: str) -> str | None:
    """Why a command is refused whatever the bucket holds: another ref, or a deletion."""
    if update.ref != f"refs/heads/{branch}":
        what = "tags" if update.ref.startswith("refs/tags/") else "other refs"
        return f"memfs serves one branch, {branch}: {what} cannot be pushed"
    if update.new is None:
        return f"memfs never deletes the agent's branch {branch}"
    return None


def push_branch(agent: Agent, remote: BucketRemote, branch: str, update: RefUpdate) -> str | None:
    """Check ``update.new`` and swap the bucket's head to it; the refusal reason, or None."""
    history = agent.history
    assert update.new is not None
    with history.locked():
        current = remote.head(branch)  # kept by the remote: the swap is checked against it
        if current != update.old:
            return FETCH_FIRST
        if current is not None and not history.has_commit(current):
            remote.fetch(history, branch)  # pushed since the cache was read: its objects
        try:
            check_commits(agent, update.new, current)
        except Refused as refused:
            log.info("push to %s refused: %s", agent.root.name, refused)
            return str(refused)
        try:
            remote.push(history, branch, update.new, expected=current)
        except PushRejectedError:
            return FETCH_FIRST
        except MemfsError as error:
            log.warning("push to %s failed: %s", agent.root.name, error)
            return f"memfs: the bucket refused the push: {error}"
        crash_point("serve.git.pushed")
        history.set_ref(tracking_ref(REMOTE, branch), update.new, "push: through memfs serve")
    _bring_work_tree(agent, update.new)
    return None


def _bring_work_tree(agent: Agent, new: str) -> None:
    """Move the cached checkout to the pushed head; a failure only delays it to the next read
    (which finds the checkout behind the bucket and fetches, or clones it again)."""
    from memfs.server.checkouts import move_to

    try:
        move_to(agent, new, "serve: git push")
    except MemfsError as error:
        log.warning("cache of %s not updated after a push: %s", agent.root.name, error)


def check_commits(agent: Agent, new: str, base: str | None) -> None:
    """Refuse the commits of ``new`` not in ``base`` that memfs cannot take (module doc)."""
    history = agent.history
    store = history.repo.object_store
    try:
        tip = store[ObjectID(new.encode())]
    except KeyError:
        raise Refused(f"memfs: missing object {new[:12]}: the pack did not carry it") from None
    if not isinstance(tip, Commit):
        raise Refused(f"memfs: {new[:12]} is not a commit")
    try:
        if base is not None and not history.is_ancestor(base, new):
            raise Refused(NON_FAST_FORWARD)
    except RepositoryDamagedError:  # a parent the pack should have carried is missing
        raise Refused(
            f"memfs: {new[:12]}'s history is incomplete: the pack lacks objects"
        ) from None
    checker = _TreeChecker(agent)
    if base is not None:
        checker.trust(store[ObjectID(base.encode())])
    walker = history.repo.get_walker(
        include=[ObjectID(new.encode())], exclude=[ObjectID(base.encode())] if base else None
    )
    try:
        for count, entry in enumerate(walker, start=1):
            if count > MAX_NEW_COMMITS:
                raise Refused(f"memfs: more than {MAX_NEW_COMMITS} new commits in one push")
            commit = entry.commit
            _check_object(commit)
            checker.check_commit(commit)
    except KeyError as missing:
        raise Refused(
            f"memfs: missing object {_sha_text(missing)}: the pack did not carry it"
        ) from None
    _check_same_agent(agent, new, base)


class _TreeChecker:
    """Checks the trees of new commits, each (tree, folder) once however many commits share
    it; what the bucket's head holds already is trusted (a one-file push checks the trees on
    the changed path and the new blob, not the whole agent)."""

    def __init__(self, agent: Agent) -> None:
        self.root = agent.root
        self.store = agent.history.repo.object_store
        self.links: dict[tuple[bytes, str], dict[str, bytes]] = {}  # symlinks under a subtree
        self.blobs: set[bytes] = set()

    def trust(self, commit: object) -> None:
        """Record the tree of ``commit``, a commit the bucket holds, as checked."""
        assert isinstance(commit, Commit)
        self._tree(commit.tree, "", trusted=True)

    def check_commit(self, commit: Commit) -> None:
        links = self._tree(commit.tree, "")
        try:
            check_incoming_tree(
                self.root, {path: (MODE_SYMLINK, data) for path, data in links.items()}
            )
        except UnsafePathError as error:
            raise Refused(f"memfs: commit {commit.id.decode()[:7]}: {error}") from None

    def _tree(self, sha: bytes, folder: str, trusted: bool = False) -> dict[str, bytes]:
        """The symlinks (path -> target) under tree ``sha`` at ``folder``, checking it unless
        it is ``trusted``."""
        known = self.links.get((sha, folder))
        if known is not None:
            return known
        tree = self.store[ObjectID(sha)]
        if not isinstance(tree, Tree):
            raise Refused(f"memfs: {sha.decode()[:12]} is not a tree")
        if not trusted:
            _check_object(tree)
        links: dict[str, bytes] = {}
        for item in tree.iteritems():
            path = folder + item.path.decode("utf-8", "surrogateescape")
            if not trusted:
                _check_entry(path, item.mode)
            if item.mode == stat.S_IFDIR:
                links.update(self._tree(item.sha, path + "/", trusted))
            elif item.mode == MODE_SYMLINK:
                links[path] = self._blob(item.sha).data
            elif trusted:
                self.blobs.add(item.sha)
            elif item.sha not in self.blobs:
                self._blob(item.sha)
        self.links[(sha, folder)] = links
        return links

    def _blob(self, sha: bytes) -> Blob:
        blob = self.store[ObjectID(sha)]
        if not isinstance(blob, Blob):
            raise Refused(f"memfs: {sha.decode()[:12]} is not a file's content")
        self.blobs.add(sha)
        return blob


def _check_entry(path: str, mode: int) -> None:
    """Refuse a tree entry memfs cannot check out: an unsafe path, a submodule, an odd mode."""
    try:
        check_path(path)
    except UnsafePathError as error:
        raise Refused(f"memfs: {error}") from None
    if mode not in _MODES:
        what = "a submodule" if mode == 0o160000 else f"mode {mode:o}"
        raise Refused(f"memfs: {path!r} is {what}: agents hold only files and symlinks")


def _check_object(obj: Commit | Tree) -> None:
    """dulwich's format checks (what ``git fsck`` finds malformed), as a refusal."""
    try:
        obj.check()
    except ObjectFormatException as error:
        what = f"{obj.type_name.decode()} {obj.id.decode()[:12]}"
        raise Refused(f"memfs: malformed {what}: {error}") from None


def _check_same_agent(agent: Agent, new: str, base: str | None) -> None:
    """Refuse a push that makes the agent another one: every memfs pull would refuse it."""
    if base is None:
        return
    history = agent.history
    before, after = history.file_at(base, MANIFEST_FILE), history.file_at(new, MANIFEST_FILE)
    reason = change_reason(before, after)  # as the commit gate holds it (memfs/agentrules.py)
    if reason is not None:
        raise Refused(f"memfs: {reason}")
    from memfs.sync import remote_layout

    if after is None and remote_layout(history, new) is None:
        raise Refused(
            "memfs: the push leaves no system/ folder and no root MEMORY.md: a Letta Code "
            "memory repo keeps one, so other memfs clients would refuse it"
        )


def _sha_text(missing: KeyError) -> str:
    value = missing.args[0] if missing.args else b""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return text[:12]
