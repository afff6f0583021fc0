"""What a harness puts in the system prompt: pinned memory in full, the rest as a tree.

This is memfs's own rendering (``Context.render``, text or JSON): deterministic (sorted by path)
so a prompt only changes when memory does. Open conflicts come first, naming both files, so the
agent itself can reconcile them (as Letta Code's conflict reminder does); a conflict copy is
never rendered as a block of its own. Letta Code's rendering of the same memory, byte for byte
as it compiles it into its prompt, is ``memfs.lettacontext``.

A file memfs cannot read never fails the whole agent (DESIGN.md §2): its problems are returned
with the context (``problems``, ``path:line: what``) and the rest is rendered, as Letta Code
skips files it cannot read.
"""

from __future__ import annotations

import os

from memfs import frontmatter
from memfs.agent import Agent
from memfs.conflicts import OpenConflict, find_in, original_path
from memfs.errors import SchemaError, UnsafePathError
from memfs.layout import Layout, in_context, is_memory_path, is_projected
from memfs.markers import has_markers, is_conflict_copy
from memfs.memory import MemoryFile
from memfs.parsecache import Parsed
from memfs.pathcheck import read_inside
from memfs.record import FrozenRecord, Record
from memfs.schema import Problem
from memfs.secrets.hooks import masker
from memfs.secrets.hooks import names as secret_names
from memfs.trees import Files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SECRETS_LINE = "Secrets (environment variables for memfs run; values hidden): "
GITLINK_MODE = 0o160000  # a submodule: a commit, not a file


class Block(FrozenRecord):
    """A pinned memory file, as the agent sees it."""

    __slots__ = _fields = ("label", "path", "description", "chars", "limit", "read_only", "value")
    label: str
    path: str
    description: str | None
    chars: int
    limit: int | None
    read_only: bool
    value: str

    def __init__(
        self,
        label: str,
        path: str,
        description: str | None,
        chars: int,
        limit: int | None,
        read_only: bool,
        value: str,
    ) -> None:
        self._set(label, path, description, chars, limit, read_only, value)


class Entry(FrozenRecord):
    """A memory file that is not pinned: listed with its description, read on demand."""

    __slots__ = _fields = ("path", "label", "description")
    path: str
    label: str
    description: str | None

    def __init__(self, path: str, label: str, description: str | None) -> None:
        self._set(path, label, description)


class Context(Record):
    """An agent's prompt context."""

    __slots__ = _fields = ("name", "blocks", "files", "conflicts", "problems", "secrets")
    name: str
    blocks: list[Block]
    files: list[Entry]
    conflicts: list[OpenConflict]
    problems: list[Problem]
    secrets: list[str]  # names only (memfs.secrets)

    def __init__(
        self,
        name: str,
        blocks: list[Block] | None = None,
        files: list[Entry] | None = None,
        conflicts: list[OpenConflict] | None = None,
        problems: list[Problem] | None = None,
        secrets: list[str] | None = None,
    ) -> None:
        self.name = name
        self.blocks = [] if blocks is None else blocks
        self.files = [] if files is None else files
        self.conflicts = [] if conflicts is None else conflicts
        self.problems = [] if problems is None else problems
        self.secrets = [] if secrets is None else secrets

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.name,
            "conflicts": [c.to_dict() for c in self.conflicts],
            "blocks": [b._asdict() for b in self.blocks],
            "files": [f._asdict() for f in self.files],
            "problems": [p.to_dict() for p in self.problems],
            "secrets": self.secrets,
        }

    def render(self) -> str:
        """The context as prompt text."""
        parts = []
        if self.conflicts:
            lines = [
                "<memory_conflicts>",
                "Memory has unresolved sync conflicts. Reconcile each file with the other version,",
                "then delete the conflict copy (or remove the markers):",
            ]
            for conflict in self.conflicts:
                where = (
                    f"other version: {conflict.copy_path}"
                    if conflict.copy_path
                    else "conflict markers inside"
                )
                lines.append(f"- {conflict.path} ({where})")
            lines.append("</memory_conflicts>")
            parts.append("\n".join(lines))
        blocks = ["<memory_blocks>"]
        for block in self.blocks:
            limit = block.limit if block.limit is not None else "none"
            blocks += [
                f"<{block.label}>",
                "<description>",
                block.description or "",
                "</description>",
                "<metadata>",
                f"- chars_current={block.chars}",
                f"- chars_limit={limit}",
                f"- read_only={'true' if block.read_only else 'false'}",
                "</metadata>",
                "<value>",
                block.value.rstrip("\n"),
                "</value>",
                f"</{block.label}>",
            ]
        blocks.append("</memory_blocks>")
        parts.append("\n".join(blocks))
        if self.files:
            parts.append(
                "\n".join(
                    [
                        "<memory_files>",
                        "More memory, not loaded: read a file when it is relevant.",
                        *_tree(self.files),
                        "</memory_files>",
                    ]
                )
            )
        if self.secrets:
            parts.append(SECRETS_LINE + ", ".join(self.secrets))
        return "\n\n".join(parts) + "\n"


def build_context(agent: Agent, rev: str | None = None) -> Context:
    """The context of the work tree, or of revision ``rev``.

    In a Letta v2 repo the pinned files are the root ``*.md`` files and only folders indexed by
    a ``MEMORY.md`` are memory; in v1 and memfs-native agents, ``system/`` is pinned. A file
    that cannot be read (not UTF-8, front matter memfs cannot parse) is left out and named in
    ``problems``.
    """
    context = _build(agent, rev)
    mask = masker(agent)  # a file the commit guard holds may hold a secret's value (§6.2)
    context.blocks = [
        b._replace(
            label=mask(b.label),
            path=mask(b.path),
            value=mask(b.value),
            description=mask(b.description) if b.description else b.description,
        )
        for b in context.blocks
    ]
    context.files = [
        f._replace(
            label=mask(f.label),
            path=mask(f.path),
            description=mask(f.description) if f.description else f.description,
        )
        for f in context.files
    ]
    return context


def _build(agent: Agent, rev: str | None) -> Context:
    layout = agent.layout
    context = Context(name=agent.name, secrets=secret_names(agent))
    if not rev:
        _add_on_disk(context, agent, layout)
        return context
    tree = agent.history.tree_of(agent.history.resolve(rev))
    contents = _contents_at(agent, tree, layout)
    context.conflicts = _conflicts_at(agent, tree)
    for path in sorted(contents):
        if is_conflict_copy(path) or not is_projected(path, contents.keys(), layout):
            continue
        memory_file = MemoryFile(agent.root, path, contents[path], layout)
        problems = unreadable(memory_file)
        if problems:
            context.problems += problems
            continue
        if memory_file.pinned:
            context.blocks.append(_block(memory_file))
        else:
            context.files.append(Entry(path, memory_file.label, memory_file.description))
    return context


def unreadable(memory_file: MemoryFile) -> list[Problem]:
    """Why memfs cannot read this file's description and value (not UTF-8, front matter it
    cannot parse), or nothing. Other problems are ``memfs check``'s to report."""
    try:
        memory_file.render()
    except SchemaError as error:
        return [problem for problem in error.problems if problem.severity == "error"]
    return []


def _add_on_disk(context: Context, agent: Agent, layout: Layout) -> None:
    """The work tree's memory into ``context``, from one snapshot: pinned files read in full,
    the others (thousands, maybe) from the parse cache where their stat data is unchanged."""
    snapshot = agent.snapshot()
    context.conflicts = find_in(
        agent.root,
        {path: entry.sha for path, entry in snapshot.files.items()},
        agent.history.state_dir / "markers.json",
    )
    parsed = agent.parsed_memory(snapshot, layout, kept=True)
    for path, found in parsed.items():
        if is_conflict_copy(path) or not is_projected(path, parsed.keys(), layout):
            continue
        if found.unreadable:
            context.problems += [p for p in found.problem_list(path) if p.severity == "error"]
            continue
        if not in_context(path, layout):
            context.files.append(Entry(path, found.label, found.description))
            continue
        block = _block_from_cache(agent, path, found, snapshot.stats.get(path), layout)
        if block is not None:
            context.blocks.append(block)
            continue
        try:
            memory_file = MemoryFile(agent.root, path, read_inside(agent.root, path), layout)
        except (OSError, UnsafePathError):
            continue  # gone since: status and check report it; the prompt never shows it
        problems = unreadable(memory_file)
        if problems:
            context.problems += problems
            continue
        context.blocks.append(_block(memory_file))


def _block_from_cache(
    agent: Agent, path: str, found: Parsed, st: os.stat_result | None, layout: Layout
) -> Block | None:
    """A pinned Markdown file's block from what the parse cache knows of it (description,
    limit, read_only, size) and its body cut from the file read now, without parsing its
    front matter again (that costs PyYAML's import); None when the file is not known to be
    what was parsed (its stat changed since the snapshot), or is not plain Markdown."""
    if st is None or layout.is_letta or not path.endswith(".md") or found.unreadable:
        return None
    try:
        raw = read_inside(agent.root, path)
        now = os.lstat(agent.root / path)
        text = raw.decode("utf-8")
    except (OSError, UnsafePathError, UnicodeDecodeError):
        return None
    if (now.st_mtime_ns, now.st_ctime_ns, now.st_size, now.st_ino) != (
        st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino
    ):  # fmt: skip
        return None
    document = frontmatter.split(text)
    if document.unclosed or len(document.body) != found.size:
        return None
    return Block(
        label=found.label,
        path=path,
        description=found.description,
        chars=found.size,
        limit=found.limit,
        read_only=found.read_only,
        value=document.body,
    )


def _block(memory_file: MemoryFile) -> Block:
    return Block(
        label=memory_file.label,
        path=memory_file.path,
        description=memory_file.description,
        chars=memory_file.size,
        limit=memory_file.limit,
        read_only=memory_file.read_only,
        value=memory_file.value,
    )


def _contents_at(agent: Agent, tree: Files, layout: Layout) -> dict[str, bytes]:
    history = agent.history
    return {
        path: history.blob(entry.sha)
        for path, entry in tree.items()
        if is_memory_path(path, layout) and entry.mode != GITLINK_MODE
    }


def _conflicts_at(agent: Agent, tree: Files) -> list[OpenConflict]:
    """The open conflicts in a commit's tree, found as ``conflicts.find`` finds them in the
    work tree: every conflict copy by its name (in a Letta repo under ``.memfs-conflicts/``,
    which is not memory), every regular text file holding conflict markers."""
    texts = {path: e.sha for path, e in tree.items() if e.mode in (0o100644, 0o100755)}
    blobs = agent.history.read_blobs(set(texts.values()))
    found = []
    for path in sorted(tree):
        if is_conflict_copy(path):
            found.append(OpenConflict(original_path(path), "copy", path))
        elif path in texts:
            data = blobs[texts[path]]
            if b"\0" not in data[:8000] and has_markers(data):
                found.append(OpenConflict(path, "markers"))
    return found


def _tree(entries: list[Entry]) -> list[str]:
    """``reference/garden/tomatoes.md`` as an indented tree with descriptions."""
    lines: list[str] = []
    shown: set[str] = set()
    for entry in sorted(entries, key=lambda e: e.path):
        parts = entry.path.split("/")
        for depth in range(len(parts) - 1):
            folder = "/".join(parts[: depth + 1])
            if folder not in shown:
                shown.add(folder)
                lines.append(f"{'  ' * depth}{parts[depth]}/")
        note = f": {entry.description}" if entry.description else ""
        lines.append(f"{'  ' * (len(parts) - 1)}{parts[-1]}{note}")
    return lines
