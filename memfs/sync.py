"""One sync cycle (DESIGN.md §6): commit -> fetch -> merge -> update the work tree -> push.

Written once for every kind of remote (``memfs.remotes.Remote``). The rules it keeps:
- a file is rewritten by a merge only if it still holds what was last committed; otherwise
  the edit is committed and the merge goes round again;
- no version is lost: delete-vs-modify keeps the modified file, conflicts are settled by the
  policy, and a merge commit has both parents;
- a push moves the remote only from the commit memfs merged (compare-and-swap); a rejected
  push is fetched, merged and retried, never forced.

This module runs the steps for every remote and keeps the report: the fetch and the merge
live in memfs.incoming, the push to one remote in memfs.outgoing, the report's classes in
memfs.syncreport, the checkout of a new agent in memfs.cloning; their names are re-exported
here, as callers used them before the splits.
"""

from __future__ import annotations

import contextlib
import json

from memfs.agent import Agent
from memfs.errors import LockTimeoutError, MemfsError, RemoteError, RepositoryDamagedError
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
from memfs.outgoing import (  # noqa: F401 (sync's API, moved)
    PUSH_ATTEMPTS,
    push_letta_mirror,
    push_remote,
    upload_ahead,
)
from memfs.remotes import Remote, RemoteConfig, get_remote, list_remotes
from memfs.remotestate import RemoteState, remote_states, tracking_ref  # noqa: F401 (sync's API, moved)
from memfs.schema import MANIFEST_FILE
from memfs.secrets.hooks import push_pending, read_meta
from memfs.syncreport import RemoteOutcome, SyncReport
from memfs.util import replace_unsynced, utc_now_text

TYPE_CHECKING = False  # typing and memfs.merge load when used (~2 and ~9 ms of a push)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from memfs.history import History
    from memfs.merge import Policy


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
    prescan: bool = False,
) -> SyncReport:
    """Commit local edits, then fetch and merge from one remote or every non-mirror remote.

    ``opened``: remotes already open, by name (the watcher's, holding the manifest its poll
    just read, so the fetch does not read it again). ``announce``: write this one-shot
    environment's presence record (named ``env_name``), as ``memfs pull`` does.
    ``prescan``: as ``push``'s."""
    chosen = conflict_policy(agent, policy)
    opened = dict(opened or {})  # and those opened here: the presence record goes through them
    with _scanning_early(agent, prescan):
        _open_reading(agent, remote, remote is not None, progress, opened)
        # a commit record, made here if there is none, is carried across the merge that
        # follows (memfs.updaterecord): the next pull's or push's commit stats the tree
        report = SyncReport(committed=agent.commit(origin=origin))
    for config in _selected(agent, remote, include_mirrors=remote is not None):
        report.remotes.append(
            _pull_one(agent, config, chosen, ff_only, origin, progress, opened, allow_unrelated)
        )
    report.head = agent.history.head()
    _finish(agent, report, announce, env_name, opened)
    return report


@contextlib.contextmanager
def _scanning_early(agent: Agent, wanted: bool) -> Iterator[None]:
    """With ``wanted``, the scan of the commit that follows starts in a child process now
    (``memfs.prescan``), while the remotes are opened; a child whose answer the commit did
    not take (it failed, or took another path) is ended on the way out."""
    if wanted and not agent.is_read_only_mount():
        from memfs import prescan

        agent.prescan = prescan.start(agent)
    try:
        yield
    finally:
        if agent.prescan is not None:
            agent.prescan.discard()
            agent.prescan = None


def _open_reading(
    agent: Agent,
    name: str | None,
    include_mirrors: bool,
    progress: Progress | None,
    opened: dict[str, Remote],
    ahead: bool = False,
) -> None:
    """Open the remotes a push or pull will use and start reading their manifests
    (``BucketRemote.prefetch``) before the local commit, so that round trip (on S3 with the
    connection's TLS handshake) overlaps the commit's scan and the loading of the repository;
    with ``ahead`` (a push) the upload of what is committed already starts too
    (``outgoing.upload_ahead``). What cannot be opened is left to the step that needs it,
    which reports it as before."""
    try:
        configs = _selected(agent, name, include_mirrors)
    except MemfsError:
        return  # an unknown remote: said after the commit, as before
    for config in configs:
        if config.name in opened:
            continue  # the caller's (a watcher's, holding the manifest its poll read)
        try:
            remote = open_for(agent, config, progress)
        except MemfsError:
            continue
        prefetch = getattr(remote, "prefetch", None)
        if prefetch is not None:
            prefetch(None if ahead else _packs_for(agent, config.name))
        if ahead:
            upload_ahead(agent, config, remote)
        opened[config.name] = remote


def _packs_for(agent: Agent, name: str) -> tuple[History, str, str | None] | None:
    """What a pull's prefetch needs to download the packs its fetch will import
    (``BucketRemote.download_ahead``); None for an agent with no commit yet (a first fetch
    takes the packs with their indexes, checked: memfs.remotes.bucketfetch)."""
    history = agent.history
    try:
        if history.head() is None:
            return None
        branch = history.branch()
        return history, branch, history.ref(tracking_ref(name, branch))
    except MemfsError:
        return None


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


def push(
    agent: Agent,
    remote: str | None = None,
    policy: str | None = None,
    origin: str = "cli",
    progress: Progress | None = None,
    allow_unrelated: bool = False,
    announce: bool = False,
    env_name: str | None = None,
    prescan: bool = False,
) -> SyncReport:
    """Commit local edits and push to one remote or to every remote (mirrors included).

    An agent with no remote at all is pushed to the default cloud, as remote ``origin``.
    ``announce``: write this one-shot environment's presence record (``memfs push``).
    ``prescan``: the commit's scan runs in a child process while the remotes are opened
    (``memfs.prescan``): for a one-shot process with no thread of its own at work yet.
    """
    chosen = conflict_policy(agent, policy)
    opened: dict[str, Remote] = {}  # the presence record goes through these
    with _scanning_early(agent, prescan):
        if not agent.is_read_only_mount():  # push_remote says why nothing is pushed
            _open_reading(agent, remote, True, progress, opened, ahead=True)
        report = SyncReport(committed=agent.commit(origin=origin))
    if remote is None and not list_remotes(agent.history):
        from memfs.cloud import add_default_cloud_remote

        report.created_remote = add_default_cloud_remote(agent)
    for config in _selected(agent, remote, include_mirrors=True):
        try:
            if config.name not in opened and not agent.is_read_only_mount():
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
    report = SyncReport(committed=agent.commit(origin=origin))  # as pull
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

        for remote in (opened or {}).values():  # a manifest read never waited for (prefetch)
            with contextlib.suppress(MemfsError):  # is done before its storage is written to
                getattr(remote, "settle", lambda: None)()

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
    state["last_sync"] = utc_now_text()
    remotes = state.setdefault("remotes", {})
    for outcome in report.remotes + report.mirrors:
        entry = remotes.setdefault(outcome.remote, {})
        entry["last_error"] = outcome.error
        if outcome.error is None:
            entry["last_ok"] = state["last_sync"]
    errors = [o.error for o in report.remotes if o.error]
    state["last_error"] = errors[0] if errors else None
    with contextlib.suppress(OSError):
        # only reports (``status``): a crash may lose the last report, never a commit
        replace_unsynced(path, json.dumps(state, indent=2).encode())


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
