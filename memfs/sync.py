"""One sync cycle (DESIGN.md §6): commit -> fetch -> merge -> update the work tree -> push.

Written once for every kind of remote (``memfs.remotes.Remote``). The rules it keeps:
- a file is rewritten by a merge only if it still holds what was last committed; otherwise
  the edit is committed and the merge goes round again;
- no version is lost: delete-vs-modify keeps the modified file, conflicts are settled by the
  policy, and a merge commit has both parents;
- a push moves the remote only from the commit memfs merged (compare-and-swap); a rejected
  push is fetched, merged and retried, never forced.

The fetch and the merge live in memfs.incoming, the checkout of a new agent in memfs.cloning;
their names are re-exported here, as callers used them before the split.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memfs.agent import Agent
from memfs.errors import (
    LockTimeoutError,
    MemfsError,
    NotAnAgentError,
    PushRejectedError,
    RemoteError,
    RepositoryDamagedError,
)
from memfs.history import History
from memfs.incoming import (  # noqa: F401 (sync's API, moved)
    Progress,
    fetch_remote,
    integrate,
    merge_base_tree,
    merge_layout,
    open_for,
    refuse_unrelated,
    remote_layout,
)
from memfs.remotes import (
    Remote,
    RemoteConfig,
    get_remote,
    letta_mirror,
    list_remotes,
)
from memfs.remotestate import RemoteState, remote_states  # noqa: F401 (sync's API, moved)
from memfs.remotestate import tracking_ref as _tracking_ref
from memfs.schema import MANIFEST_FILE
from memfs.secrets.hooks import push_pending, read_meta
from memfs.trees import (
    CommitInfo,
)
from memfs.util import TEMP_PREFIX, utc_now

if TYPE_CHECKING:  # memfs.merge is imported when a merge happens (~9 ms a push or pull spares)
    from memfs.merge import Conflict, Policy

PUSH_ATTEMPTS = 60


@dataclass
class RemoteOutcome:
    """What one sync step did with one remote."""

    remote: str
    fetched: str | None = None
    integrated: str = ""  # "up to date" | "fast-forward" | "merged" | ""
    pushed: str = ""  # "pushed" | "up to date" | ""
    conflicts: list[Conflict] = field(default_factory=list)
    error: str | None = None
    exit_code: int = 7  # of the error: 10 for a key or integrity problem (issue 14)

    def fail(self, error: RemoteError) -> RemoteOutcome:
        """Record ``error``; the outcome itself, for one-line use."""
        self.error = str(error)
        self.exit_code = 10 if error.exit_code == 10 else 7
        return self

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


def fetch(agent: Agent, remote: str | None = None, progress: Progress | None = None) -> SyncReport:
    """Fetch from one remote, or from every remote that is not a mirror."""
    report = SyncReport()
    for config in _selected(agent, remote, include_mirrors=remote is not None):
        outcome = RemoteOutcome(config.name)
        try:
            outcome.fetched = fetch_remote(agent, config, progress)
        except RemoteError as error:
            outcome.fail(error)
        report.remotes.append(outcome)
    report.head = agent.history.head()
    _consolidate(agent)
    return report


def pull(
    agent: Agent,
    remote: str | None = None,
    policy: str | None = None,
    ff_only: bool = False,
    origin: str = "cli",
    progress: Progress | None = None,
    allow_unrelated: bool = False,
    opened: dict[str, Remote] | None = None,
    announce: bool = False,
    env_name: str | None = None,
) -> SyncReport:
    """Commit local edits, then fetch and merge from one remote or every non-mirror remote.

    ``opened``: remotes already open, by name (the watcher's, holding the manifest its poll
    just read, so the fetch does not read it again). ``announce``: write this one-shot
    environment's presence record (named ``env_name``), as ``memfs pull`` does."""
    chosen = conflict_policy(agent, policy)
    report = SyncReport(committed=agent.commit(origin=origin))
    opened = dict(opened or {})  # and those opened here: the presence record goes through them
    for config in _selected(agent, remote, include_mirrors=remote is not None):
        report.remotes.append(
            _pull_one(agent, config, chosen, ff_only, origin, progress, opened, allow_unrelated)
        )
    report.head = agent.history.head()
    _finish(agent, report, announce, env_name, opened)
    return report


def _pull_one(
    agent: Agent,
    config: RemoteConfig,
    policy: Policy,
    ff_only: bool,
    origin: str,
    progress: Progress | None = None,
    opened: dict[str, Remote] | None = None,
    allow_unrelated: bool = False,
) -> RemoteOutcome:
    """Fetch from one remote and integrate; the remote opened here is added to ``opened``."""
    outcome = RemoteOutcome(config.name)
    opened = {} if opened is None else opened
    try:
        remote = opened.get(config.name) or open_for(agent, config, progress)
        opened[config.name] = remote
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
        outcome.fail(error)
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


def push(
    agent: Agent,
    remote: str | None = None,
    policy: str | None = None,
    origin: str = "cli",
    progress: Progress | None = None,
    allow_unrelated: bool = False,
    announce: bool = False,
    env_name: str | None = None,
) -> SyncReport:
    """Commit local edits and push to one remote or to every remote (mirrors included).

    An agent with no remote at all is pushed to the default cloud, as remote ``origin``.
    ``announce``: write this one-shot environment's presence record (``memfs push``).
    """
    chosen = conflict_policy(agent, policy)
    report = SyncReport(committed=agent.commit(origin=origin))
    if remote is None and not list_remotes(agent.history):
        from memfs.cloud import add_default_cloud_remote

        report.created_remote = add_default_cloud_remote(agent)
    opened: dict[str, Remote] = {}  # the presence record goes through these
    for config in _selected(agent, remote, include_mirrors=True):
        try:
            if not agent.is_read_only_mount():  # push_remote says why nothing is pushed
                opened[config.name] = open_for(agent, config, progress)
            already = opened.get(config.name)
            report.remotes.append(
                push_remote(agent, config, chosen, origin, progress, already, allow_unrelated)
            )
        except RemoteError as error:
            report.remotes.append(RemoteOutcome(config.name).fail(error))
    mirrored = push_letta_mirror(agent, chosen, origin, progress)
    report.mirrors = [mirrored] if mirrored else []
    _push_secrets(agent, report)
    report.head = agent.history.head()
    _finish(agent, report, announce, env_name, opened)
    return report


# -- the whole cycle -----------------------------------------------------------------------


def sync(
    agent: Agent,
    policy: str | None = None,
    origin: str = "cli",
    progress: Progress | None = None,
    allow_unrelated: bool = False,
    announce: bool = False,
    env_name: str | None = None,
) -> SyncReport:
    """Commit, fetch and merge from every non-mirror remote, then push to every remote.

    ``announce``: write this one-shot environment's presence record (``memfs sync``)."""
    chosen = conflict_policy(agent, policy)
    report = SyncReport(committed=agent.commit(origin=origin))
    outcomes: dict[str, RemoteOutcome] = {}
    opened: dict[str, Remote] = {}  # one connection per remote for the whole cycle
    for config in _selected(agent, None, include_mirrors=True):
        try:
            opened[config.name] = open_for(agent, config, progress)
        except RemoteError as error:
            outcomes[config.name] = RemoteOutcome(config.name).fail(error)
    for config in _selected(agent, None, include_mirrors=False):
        if config.name in opened:
            outcomes[config.name] = _pull_one(
                agent, config, chosen, False, origin, progress, opened, allow_unrelated
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
            outcome.fail(error)
            continue
        outcome.pushed = pushed.pushed
        outcome.conflicts += pushed.conflicts
        outcome.integrated = outcome.integrated or pushed.integrated
    report.remotes = list(outcomes.values())
    mirrored = push_letta_mirror(agent, chosen, origin, progress)
    report.mirrors = [mirrored] if mirrored else []
    _push_secrets(agent, report)
    report.head = agent.history.head()
    _finish(agent, report, announce, env_name, opened)
    return report


def _finish(
    agent: Agent,
    report: SyncReport,
    announce: bool,
    name: str | None,
    opened: dict[str, Remote] | None = None,
) -> None:
    """What every sync, pull and push ends with: the report kept for ``status``, the
    presence record if ``announce`` (a one-shot sync's, memfs/presence.py: one PUT, ``mode:
    cli, state: stopped``, through a remote already open; it never fails the sync), and the
    local packs' housekeeping, which runs while the record's request is on its way."""
    _record(agent, report)
    sent = None
    if announce:
        from memfs.presence import sending

        sent = sending(agent, report, name, opened)
    try:
        _consolidate(agent)
    finally:
        if sent is not None:
            sent()


def _push_secrets(agent: Agent, report: SyncReport) -> None:
    """Send the secret changes made here and not pushed yet (memfs.secrets); a failure is
    the error of the remote they go to, the memory's push stands."""
    try:
        push_pending(agent)
    except RemoteError as error:
        name = read_meta(agent.history.state_dir).get("remote")
        outcome = next((o for o in report.remotes if o.remote == name), None)
        if outcome is None:
            outcome = RemoteOutcome(str(name))
            report.remotes.append(outcome)
        if outcome.error is None:
            outcome.fail(error)


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
    two fsyncs less in every push, pull and sync (each several ms on a busy disk). The temp
    file is named by process and time, created exclusively (tempfile costs ~3 ms to import)."""
    temp = path.parent / f"{TEMP_PREFIX}{path.name}-{os.getpid()}-{time.monotonic_ns()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # as mkstemp made it
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def compact_remote(agent: Agent, remote: str, grace_s: float) -> tuple[int, int]:
    """Compact an object-store remote: (packs merged, packs deleted)."""
    config = get_remote(agent.history, remote)
    target = open_for(agent, config)
    if not hasattr(target, "compact"):
        raise MemfsError(f"{remote} is a git host: it packs its own objects")
    with agent.history.locked():
        # reseal: an encrypted remote's packs are sealed again under the newest epoch (after
        # 'memfs key rm --no-reseal', or a rotation whose compaction lost to pushers)
        return target.compact(agent.history, grace_s, reseal=True)  # type: ignore[attr-defined]


def __getattr__(name: str) -> Any:
    """``memfs.sync.clone``, moved to memfs.cloning (which imports this module)."""
    if name == "clone":
        from memfs.cloning import clone

        return clone
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
