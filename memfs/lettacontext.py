"""Letta Code's memory section of the system prompt, byte for byte, for MemFS v1 and v2 repos.

``build_letta_context`` reads the repository as Letta Code's prompt compiler does (every ``.md``
file ``git ls-tree`` lists, read with ``git show``, front matter by Letta's line reader; not
memfs's layout) and renders it as Letta does: ``<self>`` and the ``system/`` tree
(``renderMemfsProjection``), or a v2 repo (a root ``MEMORY.md``) as its root files and indexed
folders (``renderRootMemoryProjection``, Letta Code after 0.32.18, on request);
``MemoryMetadata`` and ``inject_core_memory`` give the rest of Letta's system prompt. It is
apart from ``memfs.context`` (memfs's own rendering) because every line here answers to Letta
Code's code, not to memfs's choices.

A file memfs cannot read never fails the whole agent (DESIGN.md §2): its problems are returned
with the context (``problems``, ``path:line: what``) and the rest is rendered, as Letta Code
skips files it cannot read.

Ported from @letta-ai/letta-code (Apache-2.0), src/backend/local/system-prompt-compilation.ts:
v1 from the published 0.32.18 (renderMemfsProjection, renderSystemTree,
renderExternalProjection, compileMemoryMetadata), which compiles every repo, v2 too, that way;
and, on request (``root_projection``), a v2 repo as renderRootMemoryProjection in the same file
on GitHub (commit 09c38f9b, after 0.32.18) renders it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from memfs import lettafm
from memfs.agent import Agent
from memfs.context import GITLINK_MODE
from memfs.errors import MemfsError, UnsafePathError
from memfs.layout import Layout, is_projected
from memfs.localecompare import collation_key
from memfs.pathcheck import read_inside
from memfs.schema import Problem

MEMORY_DIR_PLACEHOLDER = "${MEMORY_DIR}"
# Letta reads each file with execFileSync("git", ["show", ...]): node's default maxBuffer
# (1 MiB) makes a larger file fail, and Letta skips it.
LETTA_MAX_FILE_BYTES = 1024 * 1024
_CHILD_INDEX = re.compile(r"[^/]+/MEMORY\.md\Z")
_V2_INSTRUCTIONS = (
    "<instructions>",
    "Root Markdown files are core memory and are already loaded below.",
    "A child directory is memory only when it contains MEMORY.md.",
    "Nested Markdown remains deferred. Read a child MEMORY.md before selecting deeper files.",
    "Directories without MEMORY.md remain silent. skills/ follows the Agent Skills format.",
    "</instructions>",
)


@dataclass(frozen=True)
class LettaFile:
    """A Markdown file as Letta Code's prompt compiler reads it."""

    path: str
    label: str
    raw: str  # the whole file, decoded (v2 shows root files as they are)
    value: str  # the body as Letta's parseFrontmatter returns it
    description: str


@dataclass(frozen=True)
class MemoryMetadata:
    """What Letta Code puts after the memory (``<memory_metadata>``)."""

    agent_id: str
    conversation_id: str = "default"
    compiled_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    previous_messages: int = 0

    def render(self) -> str:
        """Letta Code's ``compileMemoryMetadata``."""
        return "\n".join(
            [
                "<memory_metadata>",
                f"- AGENT_ID: {self.agent_id}",
                f"- CONVERSATION_ID: {self.conversation_id}",
                f"- System prompt last recompiled: {_utc_timestamp(self.compiled_at)}",
                f"- {self.previous_messages} previous messages between you and the user are "
                "stored in recall memory",
                "</memory_metadata>",
            ]
        )


@dataclass
class LettaContext:
    """Letta Code's memory section (``text``), the files it was made of, and what memfs found
    wrong while reading them (reported, never fatal)."""

    text: str
    files: list[LettaFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def build_letta_context(
    agent: Agent,
    rev: str | None = None,
    metadata: MemoryMetadata | None = None,
    root_projection: bool = False,
) -> LettaContext:
    """The memory section Letta Code would compile for ``agent``, byte for byte.

    Letta Code compiles from HEAD (pass ``rev="HEAD"``); without ``rev`` the work tree as it
    is now, uncommitted edits included, is rendered the same way. Every ``.md`` file counts, as
    in Letta (it reads ``git ls-tree``, not memfs's layout). The published Letta Code (0.32.18)
    compiles a v2 repo like a v1 one; ``root_projection`` renders a v2 repo (a root
    ``MEMORY.md``) as its successor does, root files in full and indexed folders deferred.
    With ``metadata``, ``<memory_metadata>`` follows, as in Letta's ``compileLocalSystemPrompt``.
    """
    paths, read, problems = _letta_listing(agent, rev)
    v2 = root_projection and "MEMORY.md" in paths
    all_paths = set(paths)
    files: list[LettaFile] = []
    for path in paths:
        label = path.removesuffix(".md")
        if v2 and "/" in path and not _is_child_index(path, all_paths):
            files.append(LettaFile(path, label, "", "", ""))  # listed, never read (v2)
            continue
        data = read(path)
        if data is None:
            continue  # Letta's git show failed: the file is skipped
        files.append(_letta_file(path, data, problems))
    files.sort(key=lambda file: collation_key(file.label))
    if not files:
        text = ""
    elif v2:
        text = render_letta_v2(files)
    else:
        text = render_letta_v1(files)
    parts = [text] + ([metadata.render()] if metadata else [])
    text = "\n\n".join(part for part in parts if lettafm.js_trim(part))
    from memfs.secrets.hooks import masker  # a held file may hold a secret's value (§6.2)

    return LettaContext(text=masker(agent)(text), files=files, problems=problems)


def letta_agent_id(agent: Agent) -> str:
    """Letta Code keeps an agent's memory at ``~/.letta/agents/<agent-id>/memory``: that id;
    else the one it records in the repo's git config (``letta.agentId``, set on every repo
    it inits or syncs); otherwise the id memfs keeps for the agent."""
    root = agent.root
    if root.name == "memory" and root.parent.parent.name == "agents":
        return root.parent.name
    recorded = (agent.history.config_value("letta", "agentId") or "").strip()
    if recorded:
        return recorded
    try:
        return agent.manifest.id
    except MemfsError:  # a broken agent.yaml: its name still says who it is
        return agent.name


CORE_MEMORY_VARIABLE = "{CORE_MEMORY}"


def inject_core_memory(system_prompt: str, core_memory: str) -> str:
    """Letta Code's ``injectCoreMemory``: the memory replaces ``{CORE_MEMORY}`` in the raw
    system prompt, or follows it after a blank line when the prompt has no such variable."""
    if CORE_MEMORY_VARIABLE not in system_prompt:
        system_prompt = f"{lettafm.js_trim_end(system_prompt)}\n\n{CORE_MEMORY_VARIABLE}"
    return system_prompt.replace(CORE_MEMORY_VARIABLE, core_memory)


def _letta_listing(
    agent: Agent, rev: str | None
) -> tuple[list[str], Callable[[str], bytes | None], list[Problem]]:
    """The ``.md`` paths Letta's ``git ls-tree -r --name-only`` gives, in git's order; a
    function reading one (None where Letta's ``git show`` would fail); problems found."""
    problems: list[Problem] = []
    history = agent.history
    if rev is not None:
        # Before the first commit Letta compiles nothing (rev-parse HEAD fails): no files.
        unborn = rev == "HEAD" and history.head() is None
        tree = {} if unborn else history.tree_of(history.resolve(rev))
        blobs = {path: entry.sha for path, entry in tree.items() if entry.mode != GITLINK_MODE}
        paths = list(tree)

        def read_file(path: str) -> bytes | None:
            return history.blob(blobs[path]) if path in blobs else None

    else:
        # git's tree order is the order of the paths' bytes.
        paths = sorted(agent.worktree_files(), key=lambda p: p.encode("utf-8", "surrogateescape"))

        def read_file(path: str) -> bytes | None:
            try:
                return read_inside(agent.root, path)
            except (OSError, UnsafePathError):
                problems.append(Problem(path, 1, "could not be read (left out)"))
                return None

    def read(path: str) -> bytes | None:
        data = read_file(path)
        if data is not None and len(data) > LETTA_MAX_FILE_BYTES:
            problems.append(Problem(path, 1, "over 1 MiB: Letta Code leaves it out of the prompt"))
            return None
        return data

    quote_non_ascii = _git_quotes_non_ascii(agent)
    existing = set(paths)
    # A name git quotes never ends in .md; one Letta trims is not found by git show.
    listed = [_as_listed(path, quote_non_ascii) for path in paths]
    return [path for path in listed if path.endswith(".md") and path in existing], read, problems


def _as_listed(path: str, quote_non_ascii: bool) -> str:
    """``path`` as Letta reads it from ``git ls-tree`` output: quoted by git (then it never
    ends in ``.md``) when it holds control characters, ``"``, ``\\``, or non-ASCII with
    ``core.quotePath`` on (git's default), then trimmed (JavaScript ``trim``)."""
    needs_quotes = any(
        char in '"\\'
        or ord(char) < 0x20
        or ord(char) == 0x7F
        or (quote_non_ascii and ord(char) > 0x7F)
        for char in path
    )
    return f'"{path}"' if needs_quotes else lettafm.js_trim(path)


def _git_quotes_non_ascii(agent: Agent) -> bool:
    """git's ``core.quotePath`` (repository, then global config; on by default)."""
    try:
        value = agent.history.repo.get_config_stack().get((b"core",), b"quotepath")
    except KeyError:
        return True
    if not isinstance(value, bytes):
        return True  # a bare "quotepath" line means true
    return value.decode("utf-8", "replace").strip().lower() not in ("false", "no", "off", "0", "")


def _is_child_index(path: str, all_paths: set[str]) -> bool:
    """A folder's ``MEMORY.md`` one level down, indexed from the root (v2's deferred memory)."""
    return (
        _CHILD_INDEX.match(path) is not None
        and not path.startswith("skills/")
        and is_projected(path, all_paths, Layout.LETTA_V2)
    )


def _letta_file(path: str, data: bytes, problems: list[Problem]) -> LettaFile:
    """Read a file as Letta does: decoded as UTF-8 (bad bytes become U+FFFD, as in node), then
    its front matter by Letta's line-based reader."""
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        problems.append(
            Problem(
                path, line, f"not valid UTF-8 (byte 0x{data[error.start]:02x}): shown as U+FFFD"
            )
        )
        raw = data.decode("utf-8", "replace")
    document = lettafm.parse(raw)
    description = document.fields.get("description")
    return LettaFile(
        path=path,
        label=path.removesuffix(".md"),
        raw=raw,
        value=document.letta_value,
        description=lettafm.js_trim(description) if isinstance(description, str) else "",
    )


def render_letta_v1(files: list[LettaFile]) -> str:
    """Letta Code's ``renderMemfsProjection`` of a v1 repo: ``<self>`` (system/persona), then
    ``<memory>`` with the system/ tree and the tree of the other files (skills left out).
    ``files`` come sorted by label as Letta sorts them."""
    lines = ["Reminder: <projection> contains the local path of the memory file projection."]
    persona = next((file for file in files if file.label == "system/persona"), None)
    if persona is not None:
        lines += [
            "",
            "<self>",
            "<projection>$MEMORY_DIR/system/persona.md</projection>",
            lettafm.js_trim_end(persona.value),
            "</self>",
        ]
    system = [f for f in files if f.label.startswith("system/") and f.label != "system/persona"]
    external = [
        f for f in files if not f.label.startswith("system/") and not f.label.startswith("skills/")
    ]
    if system or external:
        lines += ["", "<memory>"]
        tree = _render_system_tree(system)
        if tree:
            lines.append(tree)
        if external:
            lines.append(_render_external_tree(external))
        lines.append("</memory>")
    return "\n".join(lines)


class _Node:
    """A folder of the system/ tree; ``file`` is set when a file has this label too."""

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.file: LettaFile | None = None


def _render_system_tree(files: Iterable[LettaFile]) -> str:
    """Letta Code's ``renderSystemTree``: nested label tags, each file's projection path,
    description and value (only its first line indented, as Letta writes it)."""
    root = _Node()
    for file in files:
        parts = [part for part in file.label.removeprefix("system/").split("/") if part]
        if not parts:
            continue
        node = root
        for part in parts:
            node = node.children.setdefault(part, _Node())
        node.file = file
    lines: list[str] = []

    def render(node: _Node, indent: int, path_parts: list[str]) -> None:
        pad = "  " * indent
        for key in sorted(node.children, key=collation_key):
            child = node.children[key]
            child_parts = [*path_parts, key]
            lines.append(f"{pad}<{key}>")
            if child.file is not None:
                lines.append(
                    f"{pad}  <projection>$MEMORY_DIR/system/{'/'.join(child_parts)}.md</projection>"
                )
                description = lettafm.js_trim(child.file.description)
                if description:
                    lines.append(f"{pad}  <description>{description}</description>")
                value = lettafm.js_trim_end(child.file.value)
                if value:
                    lines.append(f"{pad}  {value}")
            render(child, indent + 1, child_parts)
            lines.append(f"{pad}</{key}>")

    render(root, 0, [])
    return "\n".join(lines)


def _render_external_tree(files: Iterable[LettaFile]) -> str:
    """Letta Code's ``renderExternalProjection``: every other file as a tree, folders first.

    Letta applies no cap here (its MEMORY_TREE_MAX_* caps belong to renderMemoryFilesystemTree,
    which the prompt compiler does not call), so neither does memfs."""
    root: dict[str, Any] = {}
    for file in files:
        parts = [part for part in file.path.split("/") if part]
        if not parts:
            continue
        node = root
        for part in parts[:-1]:
            existing = node.get(part)
            if not isinstance(existing, dict):
                existing = node[part] = {}
            node = existing
        node[parts[-1]] = None
    lines = ["<external_projection>", f"{MEMORY_DIR_PLACEHOLDER}/"]

    def render(node: dict[str, Any], prefix: str) -> None:
        entries = sorted(
            node.items(),
            key=lambda item: (not isinstance(item[1], dict), collation_key(item[0])),
        )
        for index, (name, child) in enumerate(entries):
            last = index == len(entries) - 1
            folder = isinstance(child, dict)
            lines.append(f"{prefix}{'└── ' if last else '├── '}{name}{'/' if folder else ''}")
            if folder:
                render(child, prefix + ("    " if last else "│   "))

    render(root, "")
    lines.append("</external_projection>")
    return "\n".join(lines)


def render_letta_v2(files: list[LettaFile]) -> str:
    """Letta Code's ``renderRootMemoryProjection``: the root files as they are, then the
    indexed child folders as deferred memory."""
    all_paths = {file.path for file in files}
    by_path = sorted(files, key=lambda file: collation_key(file.path))
    root_files = [file for file in by_path if "/" not in file.path]
    indexes = [file for file in by_path if _is_child_index(file.path, all_paths)]
    lines = [f'<memory root="{MEMORY_DIR_PLACEHOLDER}">', *_V2_INSTRUCTIONS]
    for file in root_files:
        lines += [
            f'<file name="{_escape_attribute(file.path)}">',
            lettafm.js_trim_end(file.raw),
            "</file>",
        ]
    if indexes:
        lines.append("<deferred-memory>")
        for file in indexes:
            folder = _escape_attribute(file.path.removesuffix("/MEMORY.md"))
            lines.append(f'<directory path="{folder}/" index="{folder}/MEMORY.md" />')
        lines.append("</deferred-memory>")
    lines.append("</memory>")
    return "\n".join(lines)


def _escape_attribute(value: str) -> str:
    for char, entity in (
        ("&", "&amp;"),
        ('"', "&quot;"),
        ("'", "&#x27;"),
        ("<", "&lt;"),
        (">", "&gt;"),
    ):
        value = value.replace(char, entity)
    return value


def _utc_timestamp(moment: datetime) -> str:
    """Letta Code's ``formatUtcTimestamp``: ``2026-01-02 03:04:05 AM UTC+0000``."""
    utc = moment.astimezone(timezone.utc)
    meridiem = "AM" if utc.hour < 12 else "PM"
    hour = utc.hour % 12 or 12
    return f"{utc:%Y-%m-%d} {hour:02d}:{utc:%M:%S} {meridiem} UTC+0000"
