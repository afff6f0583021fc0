"""What Letta Code's pre-commit hook script checks, ported: the files it validates and its tree
constraints, as refusals of the changes that cause them.

The script (src/agent/memory-git-hooks.ts, @letta-ai/letta-code 0.32.18) refuses flat
``skills/x.md`` files, validates the front matter of the files it selects (v1: ``system/`` and
``reference/`` files added or modified, against HEAD; v2: every projected file of the commit),
then runs ``letta-memory-constraints.cjs`` (``memfs.lettaconstraints``). ``hook_refusals``
answers what it says of one candidate commit and blames each error on the change that caused
it, or reports it as blocking when no change did. It stands apart from the gate
(``memfs.lettahook``, which applies Letta's ``read_only`` rule to every Letta repo) because only
a repo with Letta's hook installed runs it: the others load neither it nor the constraints.
"""

from __future__ import annotations

import os
import re

from memfs import lettafm
from memfs.layout import V2_CONFIG, V2_MARKER
from memfs.lettaconstraints import (
    CORE,
    DEFAULT_CONFIG,
    V1_CHECKED,
    indexes,
    parse_config,
    regular,
    tree_constraint_errors,
)
from memfs.lettahook import Refusal, Rules, Tree, decode, refusal_at
from memfs.trees import Files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONFIG_UPDATE_ENV = "LETTA_MEMORY_CONSTRAINTS_UPDATE"
FLAT_SKILL_V1 = re.compile(r"(?:memory/)?skills/[^/]+\.md\Z", re.DOTALL)
FLAT_SKILL_V2 = re.compile(r"skills/[^/]+\.md\Z", re.DOTALL)
FLAT_SKILL_MESSAGE = "invalid skill path (skills must be folders). Use skills/<name>/SKILL.md"


def _uses_v2(rules: Rules, tree: Tree, entries: Files) -> bool:
    """The hook's ``use_v2_validation``: shared-memory, or root-marker with a MEMORY.md in the
    index or at HEAD."""
    if rules.policy == "shared-memory":
        return True
    return rules.policy == "root-marker" and (V2_MARKER in entries or V2_MARKER in tree.head)


def hook_refusals(
    rules: Rules, tree: Tree, included: set[str], cache: dict[str, Any]
) -> tuple[dict[str, list[Refusal]], list[Refusal]]:
    """What the hook says of the commit holding ``included``: refusals of changes in it,
    and errors none of them caused (blocked)."""
    entries = tree.entries(included)
    found: dict[str, list[Refusal]] = {}
    blocked: list[Refusal] = []
    written = sorted(p for p in included if tree.changes[p] is not None)
    v2 = _uses_v2(rules, tree, entries)
    flat = FLAT_SKILL_V2 if v2 else FLAT_SKILL_V1
    for path in written:
        if flat.match(path):
            found.setdefault(path, []).append(Refusal(path, FLAT_SKILL_MESSAGE))
    if v2:
        for path in sorted(entries):
            if not path.endswith(".md") or path.startswith("skills/"):
                continue
            if rules.policy == "root-marker" and not _indexed(path, entries):
                continue
            refusals = _file_refusals(path, tree, included, True, cache)
            if not refusals:
                continue
            if path in included:
                found.setdefault(path, []).extend(refusals)
                continue
            culprits = [index for index in indexes(path) if index in included]
            if culprits:  # a MEMORY.md added now brings the file into view
                for culprit in culprits:
                    found.setdefault(culprit, []).extend(_blame(r, culprit) for r in refusals)
            else:
                blocked.extend(refusals)
    else:
        for path in written:
            if V1_CHECKED.match(path):
                refusals = _file_refusals(path, tree, included, False, cache, rules)
                if refusals:
                    found.setdefault(path, []).extend(refusals)
    if found:
        return found, blocked
    for refusal in _constraint_refusals(rules, tree, entries, included, cache):
        culprits = _culprits(refusal, tree, entries, included, cache)
        if culprits:
            for culprit in culprits:
                found.setdefault(culprit, []).append(_blame(refusal, culprit))
        else:
            blocked.append(refusal)
    return found, blocked


def _blame(refusal: Refusal, culprit: str) -> Refusal:
    """``refusal`` held against the change that caused it (a deleted MEMORY.md, a root file
    that grew), with the hook's whole message."""
    if refusal.path == culprit:
        return refusal
    return Refusal(culprit, f"{refusal.path}: {refusal.message}")


def _indexed(path: str, entries: Files) -> bool:
    return all(index in entries for index in indexes(path))


def _file_refusals(
    path: str,
    tree: Tree,
    included: set[str],
    v2: bool,
    cache: dict[str, Any],
    rules: Rules | None = None,
) -> list[Refusal]:
    """validateMemoryFileFrontmatter on one file (v1: against its HEAD version)."""
    key = f"v2:{tree.sha(path, included)}:{path}"
    if v2 and key in cache:
        return [Refusal(*item) for item in cache[key]]
    data = tree.data(path, included)
    if data is None:
        return []
    overridden = rules is not None and rules.lifts(path)
    text = decode(data)
    previous_data = None if v2 else tree.previous(path)
    previous = decode(previous_data) if previous_data is not None else None
    messages = lettafm.validate(path, text, previous, v2, changes=not overridden)
    line_of = lettafm.message_lines(text)
    refusals = [refusal_at(path, message, line_of) for message in messages]
    if v2:
        cache[key] = [(r.path, r.message, r.line) for r in refusals]
    return refusals


# -- the tree constraints ---------------------------------------------------------------------


def _constraint_refusals(
    rules: Rules, tree: Tree, entries: Files, included: set[str], cache: dict[str, Any]
) -> list[Refusal]:
    """letta-memory-constraints.cjs, as the hook runs it (``validate_memory_constraints``)."""
    root_marker = rules.policy == "root-marker"
    has_root = root_marker and (V2_MARKER in entries or V2_MARKER in tree.head)
    if not (has_root or V2_CONFIG in entries or V2_CONFIG in tree.head):
        return []
    refusals: list[Refusal] = []
    config_changed = (V2_CONFIG in included) and tree.head.get(V2_CONFIG) != entries.get(V2_CONFIG)
    if config_changed and os.environ.get(CONFIG_UPDATE_ENV) != "1":
        refusals.append(Refusal(V2_CONFIG, "is protected and requires human approval to change"))
    has_config = V2_CONFIG in entries
    if not has_config and not has_root:
        return refusals
    config: dict[str, Any] = dict(DEFAULT_CONFIG)
    if has_config:
        if not regular(entries[V2_CONFIG].mode):
            return [*refusals, Refusal(V2_CONFIG, "constraint config must be a regular file")]
        data = tree.data(V2_CONFIG, included) or b""
        parsed, errors = parse_config(decode(data))
        if errors or refusals:
            return refusals + [_constraint_refusal(error) for error in errors]
        assert parsed is not None
        config = {**DEFAULT_CONFIG, **parsed} if root_marker else parsed
    errors = tree_constraint_errors(
        {path: entry.mode for path, entry in entries.items()},
        lambda path: _characters(tree, path, included, cache),
        config,
        rules.policy,
        require_root_marker=V2_MARKER in tree.head,
    )
    return refusals + [_constraint_refusal(error) for error in errors]


def _constraint_refusal(error: str) -> Refusal:
    """``path: what`` from the validator as a refusal (``core memory: ...`` has no file)."""
    if error.startswith(f"{CORE}: "):
        return Refusal(CORE, error.removeprefix(f"{CORE}: "))
    if error.startswith(f"{V2_CONFIG} "):
        return Refusal(V2_CONFIG, error.removeprefix(f"{V2_CONFIG} "))
    path, _, what = error.partition(": ")
    return Refusal(path, what)


def _characters(tree: Tree, path: str, included: set[str], cache: dict[str, Any]) -> int:
    """Characters (code points) of a file as the validator counts them, cached by blob."""
    key = f"chars:{tree.sha(path, included)}"
    count = cache.get(key)
    if count is None:
        count = cache[key] = len(decode(tree.data(path, included) or b""))
    return int(count)


def _culprits(
    refusal: Refusal, tree: Tree, entries: Files, included: set[str], cache: dict[str, Any]
) -> list[str]:
    """The changes in ``included`` that a tree constraint error comes from, if any."""
    path, message = refusal.path, refusal.message
    if path == CORE:  # in-context files that grew or came in
        grown = []
        for changed in sorted(included):
            if changed.endswith(".md") and "/" not in changed and tree.changes[changed]:
                before = tree.head.get(changed)
                now = _characters(tree, changed, included, cache)
                if before is None or now > len(decode(tree.previous(changed) or b"")):
                    grown.append(changed)
        return grown
    if message.startswith("missing required index "):
        index = message.removeprefix("missing required index ")
        if index in included:  # deleted now: keeping it keeps the file's edit too
            return [index]
    return [path] if path in included else []
