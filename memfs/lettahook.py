"""Letta Code's pre-commit hook as a gate in front of every commit memfs makes in a Letta repo.

Letta Code installs a pre-commit hook into its memory repos (src/agent/memory-git-hooks.ts,
@letta-ai/letta-code 0.32.18) and its memory tool refuses to touch a ``read_only`` block. memfs
commits with dulwich, which runs no hook, so it applies the same rules itself, in-process:

- ``read_only`` (every Letta repo, hook or not): a file read-only at HEAD is never changed,
  renamed or deleted, and the flag is never set, flipped or removed. A person may lift this for
  named paths (``allow_read_only``), as ``git commit --no-verify`` would; an agent or a watcher
  never.
- with Letta's hook installed (``.git/hooks/pre-commit`` carrying its "Installed by Letta Code
  CLI" line): everything that hook checks, with its messages: the front matter of the files it
  validates (v1: ``system/`` and ``reference/`` files added or modified, HEAD as the previous
  version; v2: every projected file, every commit), flat ``skills/x.md`` files, and the tree
  constraints of ``.git/hooks/letta-memory-constraints.cjs`` (a root ``MEMORY.md`` and one per
  folder, depth, characters a file and in context, from ``.memfs.config.json`` or Letta's
  defaults; the config itself only changes with ``LETTA_MEMORY_CONSTRAINTS_UPDATE=1``).

``review`` splits a proposed commit into what may be committed and what is held: a held change
stays in the work tree, uncommitted, and is reported as ``path:line: what is wrong``. An error
no held change can settle (the tree at HEAD already breaks a constraint) blocks the whole
commit, as the hook would refuse every commit until it is fixed.

This module is the gate: the rules of a repo, the ``read_only`` rule, and the split into
allowed and held. What the hook script checks (its file selection, flat skills, and the
messages of the tree constraints as refusals) is ``memfs.lettahookscript``, loaded only for a
repo with the hook installed; the tree constraints are ``memfs.lettaconstraints`` (ports of
Letta Code 0.32.18's ``validateMemoryTreeConstraints`` and ``parseMemoryConstraintsConfig``);
``memfs.lettafm.validate`` is its ``validateMemoryFileFrontmatter``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from memfs import lettafm
from memfs.layout import Layout, is_memory_path
from memfs.record import FrozenRecord, Record
from memfs.schema import Problem
from memfs.trees import Files, TreeEntry, blob_sha

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HOOK_MARK = "# Installed by Letta Code CLI"
POLICY_FILE = "letta-memory-layout-policy"
WAITING = "waits: Letta's hook refuses every commit until the error above is fixed"

Payload = Mapping[str, tuple[int, bytes] | None]
"""A proposed commit: path -> (mode, content), or None for a deletion."""


class Rules(FrozenRecord):
    """Which of Letta's rules a repo's commits must keep."""

    __slots__ = _fields = ("layout", "hook_installed", "policy", "allow_read_only")
    layout: Layout
    hook_installed: bool
    policy: str  # the layout policy Letta's hook reads; "" when the file is absent
    allow_read_only: frozenset[str]

    def __init__(
        self,
        layout: Layout,
        hook_installed: bool = False,
        policy: str = "",
        allow_read_only: frozenset[str] = frozenset(),
    ) -> None:
        self._set(layout, hook_installed, policy, allow_read_only)

    @classmethod
    def of_repo(
        cls, control_dir: Path, layout: Layout, allow_read_only: Iterable[str] = ()
    ) -> Rules:
        """The rules for the repo whose ``.git`` is ``control_dir``."""
        installed = hook_installed(control_dir)
        return cls(
            layout=layout,
            hook_installed=installed,
            policy=layout_policy(control_dir) if installed else "",
            allow_read_only=frozenset(p.strip("/") for p in allow_read_only),
        )

    def as_installed(self) -> Rules:
        """These rules as if Letta's hook were installed (what ``check`` reports): Letta Code
        installs its hooks with the ``root-marker`` policy on every clone, pull and push."""
        if self.hook_installed:
            return self
        return Rules(self.layout, True, "root-marker", self.allow_read_only)

    def lifts(self, path: str) -> bool:
        """Whether a person asked to change the read-only file ``path`` (or its folder)."""
        return any(path == p or path.startswith(p + "/") for p in self.allow_read_only if p)

    @property
    def active(self) -> bool:
        """Whether any rule applies (memfs-native agents without Letta's hook have none)."""
        return self.layout.is_letta or self.hook_installed

    @property
    def tree_wide(self) -> bool:
        """Whether the review needs HEAD's whole tree (the hook looks at all of it)."""
        return self.hook_installed


def hook_installed(control_dir: Path) -> bool:
    """Whether ``.git/hooks/pre-commit`` is the hook Letta Code writes (its marker line)."""
    try:
        with open(control_dir / "hooks" / "pre-commit", "rb") as hook:
            head = hook.read(4096)
    except OSError:
        return False
    return HOOK_MARK.encode() in (line.rstrip(b"\r") for line in head.split(b"\n")[:5])


def layout_policy(control_dir: Path) -> str:
    """``.git/letta-memory-layout-policy`` as the hook reads it (``cat``, so trailing newline
    dropped by the shell), "" when absent."""
    try:
        text = (control_dir / POLICY_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text.rstrip("\n")


class Refusal(FrozenRecord):
    """One reason a change is not committed: the hook's message, located to a line."""

    __slots__ = _fields = ("path", "message", "line", "blocking")
    path: str
    message: str
    line: int
    blocking: bool  # no held change settles it: the hook refuses every commit

    def __init__(self, path: str, message: str, line: int = 1, blocking: bool = False) -> None:
        self._set(path, message, line, blocking)

    def problem(self) -> Problem:
        return Problem(self.path, self.line, self.message)

    def render(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class Verdict(Record):
    """A proposed commit, split: what may be committed, and what is held and why."""

    __slots__ = _fields = ("allowed", "held", "blocked", "overridden")
    allowed: dict[str, tuple[int, bytes] | None]
    held: dict[str, list[Refusal]]
    blocked: list[Refusal]  # no held change settles these
    overridden: list[str]  # read-only, committed on request

    def __init__(
        self,
        allowed: dict[str, tuple[int, bytes] | None],
        held: dict[str, list[Refusal]] | None = None,
        blocked: list[Refusal] | None = None,
        overridden: list[str] | None = None,
    ) -> None:
        self.allowed = allowed
        self.held = {} if held is None else held
        self.blocked = [] if blocked is None else blocked
        self.overridden = [] if overridden is None else overridden

    @property
    def errors(self) -> list[Refusal]:
        """The refusals that say what is wrong (not the changes merely waiting behind one)."""
        return [refusal for refusal in self.refusals if refusal.message != WAITING]

    @property
    def refusals(self) -> list[Refusal]:
        """Every reason, blocked ones first, then by path."""
        held = [refusal for path in sorted(self.held) for refusal in self.held[path]]
        return self.blocked + held


class Tree:
    """The tree a commit would record: HEAD's entries with the proposed changes on top."""

    def __init__(self, head: Files, changes: Payload, read: Callable[[str], bytes]) -> None:
        self.head = head
        self.changes = changes
        self._read = read
        self._new_entries = {
            path: TreeEntry(change[0], blob_sha(change[1]))
            for path, change in changes.items()
            if change is not None
        }

    def entries(self, included: set[str]) -> Files:
        tree = dict(self.head)
        for path in included:
            entry = self._new_entries.get(path)
            if entry is None:
                tree.pop(path, None)
            else:
                tree[path] = entry
        return tree

    def sha(self, path: str, included: set[str]) -> str | None:
        """The blob sha ``path`` has in the commit (no read: results are cached by it)."""
        entry = self._new_entries.get(path) if path in included else self.head.get(path)
        return None if entry is None else entry.sha

    def data(self, path: str, included: set[str]) -> bytes | None:
        if path in included:
            change = self.changes[path]
            return None if change is None else change[1]
        entry = self.head.get(path)
        return None if entry is None else self._read(entry.sha)

    def previous(self, path: str) -> bytes | None:
        entry = self.head.get(path)
        return None if entry is None else self._read(entry.sha)


def decode(data: bytes) -> str:
    """Text as node's ``utf8`` decoding gives it to the hook (bad bytes become U+FFFD)."""
    return data.decode("utf-8", errors="replace")


def review(
    rules: Rules,
    head: Files,
    changes: Payload,
    read: Callable[[str], bytes],
    cache: dict[str, Any] | None = None,
    first_commit: bool = False,
) -> Verdict:
    """Split ``changes`` (a commit on top of ``head``) into what Letta's rules let through.

    ``head`` is HEAD's tree: all of it when ``rules.tree_wide``, else at least the entries of
    the changed paths. ``read`` gives a blob's bytes by sha; ``cache`` (kept by the caller)
    saves re-reading unchanged files between commits. A ``first_commit`` (the repo has none
    yet: an import, an adoption) creates its blocks as Letta's server does, ``read_only``
    included; only an installed hook still refuses that.
    """
    verdict = Verdict(allowed=dict(changes))
    if not rules.active or not (changes or rules.hook_installed):
        return verdict  # with the hook, a tree with no change may still be one it refuses
    cache = {} if cache is None else cache
    tree = Tree(head, changes, read)
    held: dict[str, list[Refusal]] = {}
    for path in sorted(changes) if not (first_commit and not rules.hook_installed) else ():
        refusals = _read_only_refusals(rules, tree, path)
        if refusals:
            held[path] = refusals
        elif rules.lifts(path) and _read_only_refusals(Rules(rules.layout), tree, path):
            verdict.overridden.append(path)
    blocked: list[Refusal] = []
    if rules.hook_installed:  # the hook's checks and Letta's constraints: loaded only here
        from memfs.lettahookscript import hook_refusals

        while True:
            included = set(changes) - set(held)
            found, blocked = hook_refusals(rules, tree, included, cache)
            if not found:
                break
            for path, refusals in found.items():
                held.setdefault(path, []).extend(refusals)
    if blocked:
        verdict.blocked = [Refusal(r.path, r.message, r.line, blocking=True) for r in blocked]
        verdict.allowed = {}
        for path in changes:
            held.setdefault(path, [Refusal(path, WAITING)])
        verdict.held = held
        return verdict
    verdict.held = held
    verdict.allowed = {path: change for path, change in changes.items() if path not in held}
    return verdict


# -- read_only --------------------------------------------------------------------------------


def _read_only_refusals(rules: Rules, tree: Tree, path: str) -> list[Refusal]:
    """A read-only file changed, or the ``read_only`` line set, flipped or removed.

    Letta's memory tool refuses to edit, rename or delete a read-only block (src/tools/impl/
    memory.ts ``loadEditableMemoryFile``); its hook refuses the front matter changes.
    """
    if rules.lifts(path) or not is_memory_path(path, rules.layout):
        return []  # read_only is a block's flag: a notes.txt or a conflict copy has none
    previous_data = tree.previous(path)
    change = tree.changes[path]
    previous = decode(previous_data) if previous_data is not None else None
    if previous is not None and lettafm.read_only_at(previous):
        if change is None:
            return [Refusal(path, "file is read_only and cannot be deleted")]
        return [Refusal(path, "file is read_only and cannot be modified", 1)]
    if change is None:
        return []
    text = decode(change[1])
    messages = lettafm.validate(path, text, previous, v2=False)
    protected = [m for m in messages if "'read_only' is a protected field" in m]
    line_of = lettafm.message_lines(text)
    return [refusal_at(path, message, line_of) for message in protected]


def refusal_at(path: str, message: str, line_of: Callable[[str], int]) -> Refusal:
    """A hook message (``path: what``) as a refusal located to the key it quotes."""
    what = message.removeprefix(f"{path}: ")
    return Refusal(path, what, line_of(what))
