"""What may go into a commit: Letta's rules (memfs/lettahook.py) and the secrets guard.

A proposed commit goes through ``gate``, which splits it into what is let through and what
stays in the work tree (a Letta repo's read_only files, what Letta's installed pre-commit hook
refuses, a file holding a secret's value, agent.yaml deleted or given another id: see
memfs/agentidentity.py), listed in ``Agent.held``. Restore and revert ask
``refuse`` first, so a change Letta's rules would hold back is refused before anything moves.
"""

from __future__ import annotations

import os

from memfs import agentidentity, agentmanifest, worktree
from memfs.agentstatus import (
    Snapshot,
    ignore_rules,
    on_disk,
    read_change,
    scan,
)
from memfs.errors import CommitRefusedError, MemfsError
from memfs.layout import MANIFEST_FILE
from memfs.schema import Problem
from memfs.secrets.hooks import has_secrets
from memfs.trees import Files, compare_trees

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs import lettahook
    from memfs.agent import Agent

# memfs.lettahook and memfs.secrets.guard are imported where used: only a Letta repo, one
# with a pre-commit hook, or one with secrets needs them.


def letta_rules(agent: Agent, allow_read_only: tuple[str, ...] = ()) -> lettahook.Rules:
    """The Letta rules this repo's commits keep (memfs.lettahook): read_only in a Letta
    repo, and everything Letta's pre-commit hook checks when it is installed."""
    from memfs import lettahook

    return lettahook.Rules.of_repo(agent.history.control_dir, agent.layout, allow_read_only)


def gate(
    agent: Agent,
    head_tree: Files,
    payload: dict[str, tuple[int, bytes] | None],
    origin: str,
    allow_read_only: tuple[str, ...] = (),
    first_commit: bool = False,
) -> lettahook.Verdict:
    """Split a proposed commit into what Letta's rules let through and what stays in the
    work tree; only a person's command (origin ``cli``) may lift read_only."""
    if allow_read_only and origin != "cli":
        raise MemfsError(f"only a person's command may change a read-only file, not {origin}")
    from memfs import lettahook

    rules = letta_rules(agent, allow_read_only)
    verdict = lettahook.review(
        rules, head_tree, payload, agent.history.blob, agent._hook_cache, first_commit
    )
    if has_secrets(agent):  # a file holding a secret's value stays on disk (§6.2)
        from memfs.secrets.guard import guard_verdict

        guard_verdict(agent, verdict)
    identity = agentidentity.refusal(head_tree, verdict.allowed, agent.history.blob)
    if identity is not None:  # agent.yaml deleted or given another id: every pull refuses it
        del verdict.allowed[identity.path]
        verdict.held.setdefault(identity.path, []).append(identity)
    agent.held = verdict.refusals
    agent.overridden = [path for path in verdict.overridden if path in verdict.allowed]
    return verdict


def hook_problems(
    agent: Agent, head_tree: Files, snapshot: Snapshot, known: list[Problem]
) -> list[Problem]:
    """What Letta's pre-commit hook would say of the work tree as a commit, installed or
    not (its change rules, v2 folders, the tree constraints), beyond ``known``."""
    from memfs import lettahook

    rules = letta_rules(agent).as_installed()
    changes = compare_trees(head_tree, snapshot.files)
    payload = {change.path: read_change(agent, change, snapshot) for change in changes}
    verdict = lettahook.review(rules, head_tree, payload, agent.history.blob, agent._hook_cache)
    seen = {(p.path, p.message) for p in known}
    found = []
    for refusal in verdict.errors:
        if (refusal.path, refusal.message) not in seen:
            seen.add((refusal.path, refusal.message))
            found.append(refusal.problem())
    return found


def refuse(
    agent: Agent,
    action: str,
    head_tree: Files,
    current: Files,
    target: Files,
    origin: str,
    allow_read_only: bool,
) -> tuple[str, ...]:
    """Raise CommitRefusedError if Letta's rules would hold back any part of going from
    ``current`` to ``target`` (or an edit waiting there that memfs cannot commit), or it
    would delete agent.yaml or change its id (memfs/agentidentity.py), before anything is
    written; the paths read_only is lifted for."""
    changes = compare_trees(current, target)
    waiting = [r.render() for r in agent.held if any(c.path == r.path for c in changes)]
    if waiting:
        raise CommitRefusedError(
            action,
            [f"{line} (an uncommitted edit there would be overwritten)" for line in waiting],
        )
    for change in changes:  # never a commit that makes the agent another (or none)
        if change.path == MANIFEST_FILE:
            before = head_tree.get(MANIFEST_FILE)
            reason = agentidentity.change_reason(
                None if before is None else agent.history.blob(before.sha),
                None if change.new is None else agent.history.blob(change.new.sha),
            )
            if reason is not None:
                raise CommitRefusedError(action, [reason])
    allowed = tuple(change.path for change in changes) if allow_read_only else ()
    if not letta_rules(agent).active and not has_secrets(agent):
        return allowed  # else Letta's rules or the secrets guard may hold a part back
    blobs = agent.history.read_blobs({c.new.sha for c in changes if c.new is not None})
    payload = {
        c.path: (c.new.mode, blobs[c.new.sha]) if c.new is not None else None for c in changes
    }
    verdict = gate(agent, head_tree, payload, origin, allowed)
    agent.held = []
    if verdict.refusals:
        read_only = any("read_only" in r.message for r in verdict.refusals)
        hint = "--allow-read-only changes read-only files on purpose" if read_only else ""
        raise CommitRefusedError(action, [r.render() for r in verdict.refusals], hint)
    return allowed


def left_out_reason(agent: Agent, path: str) -> str | None:
    """Why the file at ``path`` is not committed as it is on disk, if it is not: left out
    of versioning, or held back by Letta's rules (read_only, its installed hook)."""
    head = agent.history.head()
    tracked = frozenset(agent.history.entries_at(head, path))
    found = worktree.scan_paths(
        agent.root, ignore_rules(agent), [path], agentmanifest.max_file_size(agent), tracked
    )
    skipped = next((item.reason for item in found.skipped if item.path == path), None)
    if skipped is None and has_secrets(agent):
        held = secret_reason(agent, path)
        if held is not None:
            return held
    if skipped is not None or not letta_rules(agent).active:
        return skipped
    head_tree = agent.history.head_tree(head)
    taken = scan(agent, head_tree)
    changes = compare_trees(head_tree, taken.files, (path,))
    payload = {change.path: read_change(agent, change, taken) for change in changes}
    from memfs import lettahook

    verdict = lettahook.review(
        letta_rules(agent), head_tree, payload, agent.history.blob, agent._hook_cache
    )
    refusals = [r for r in verdict.refusals if r.path == path] or verdict.blocked
    if not refusals:
        return None
    return "Letta's rules keep it out of commits: " + "; ".join(r.render() for r in refusals)


def secret_reason(agent: Agent, path: str) -> str | None:
    """Why the file at ``path`` is kept out of commits by the secrets guard, if it is."""
    from memfs.secrets.guard import review, values_of

    entry = on_disk(agent, path)
    if entry is None or not os.path.isfile(agent.root / path):
        return None
    data = (agent.root / path).read_bytes()
    refusals = review({path: (entry.mode, data)}, values_of(agent))[1]
    return refusals[0].render() if refusals else None
