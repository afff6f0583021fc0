"""The push side of a sync (DESIGN.md §6): the branch sent to one remote, merging first when
the remote moved on, never forced; a push to a folder with its files checked out is merged
there as a pull; Letta Code's push-only mirror.

A push moves the remote only from the commit memfs merged (compare-and-swap); a rejected
push is fetched, merged and retried after a jittered back-off. memfs.sync runs it for every
remote and reports; the fetch and merge it needs are memfs.incoming's.
"""

from __future__ import annotations

import time

from memfs.agent import Agent
from memfs.errors import MemfsError, NotAnAgentError, PushRejectedError, RemoteError
from memfs.history import History
from memfs.incoming import Progress, fetch_remote, integrate, open_for, refuse_vanished
from memfs.remotes import Remote, RemoteConfig, letta_mirror
from memfs.remotestate import tracking_ref as _tracking_ref
from memfs.secrets.hooks import has_secrets
from memfs.syncreport import RemoteOutcome

TYPE_CHECKING = False
if TYPE_CHECKING:  # memfs.merge is imported when a merge happens (~9 ms a push spares)
    from memfs.merge import Policy

PUSH_ATTEMPTS = 60


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
    if agent.is_read_only_mount():
        raise RemoteError(
            config.display_url, f"{agent.root} is a read-only mount: nothing is pushed from it"
        )
    if not _guarded(agent):
        return _push(agent, config, policy, origin, progress, remote, allow_unrelated)
    from memfs.secrets.outgoing import SecretInPushError

    try:
        return _push(agent, config, policy, origin, progress, remote, allow_unrelated)
    except SecretInPushError as error:
        error.locate(history, history.head())
        raise


def _guarded(agent: Agent) -> bool:
    """Arm the push guard of an agent with secrets: a blob holding a secret's value is
    refused before anything is uploaded (memfs.secrets.outgoing, review11 F12). A plain
    agent pays a stat, no import."""
    if not has_secrets(agent):
        agent.history.outgoing_check = None
        return False
    from memfs.secrets.outgoing import arm

    arm(agent)
    return True


def _push(
    agent: Agent,
    config: RemoteConfig,
    policy: Policy,
    origin: str,
    progress: Progress | None,
    remote: Remote | None,
    allow_unrelated: bool,
) -> RemoteOutcome:
    """``push_remote`` once its guard is armed."""
    history = agent.history
    branch = history.branch()
    outcome = RemoteOutcome(config.name)
    remote = remote or open_for(agent, config, progress)
    theirs = (
        remote.head(branch)
        if config.mirror  # a mirror with commits of its own is refused, not merged: no upload
        else _head_while_uploading(history, remote, config.name, branch)
    )
    if theirs is None:
        refuse_vanished(history, config, branch)  # a folder not mounted is no new store
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


def upload_ahead(agent: Agent, config: RemoteConfig, remote: Remote) -> None:
    """Before the commit a push makes first: start uploading to a bucket what the branch
    already adds to where this machine last saw the remote (``BucketRemote.upload_ahead``),
    so the upload overlaps the commit's scan. Nothing is started when nothing is committed
    ahead of the remote-tracking ref; a failure here is left to the push, which says it."""
    start = getattr(remote, "upload_ahead", None)
    if start is None or config.mirror:
        return
    history = agent.history
    try:
        local, seen = history.head(), history.ref(_tracking_ref(config.name, history.branch()))
        if local is None or seen is None or seen == local:
            return
        if history.has_commit(seen) and history.is_ancestor(seen, local):
            _guarded(agent)  # a pack holding a secret's value is not started (the push says why)
            start(history, local, seen)
    except MemfsError:
        return


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
        return RemoteOutcome(config.name).fail(error)


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
    import random  # only a lost race waits

    time.sleep(random.uniform(0, min(1.0, 0.01 * 2**attempt)))
