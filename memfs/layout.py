"""The three layouts of an agent directory, told apart by their files (DESIGN.md §2).

- ``NATIVE``: memfs's own, with ``agent.yaml``; Markdown and YAML memory, front matter as YAML.
- ``LETTA_V1``: a Letta Code MemFS repo (``system/`` pinned, everything else on demand).
- ``LETTA_V2``: a Letta Code MemFS v2 repo, marked by a root ``MEMORY.md``: root ``*.md`` files
  are in context, a folder is memory only when it has its own ``MEMORY.md``.

In both Letta layouts only ``.md`` files are memory, read as Letta Code reads them
(memfs.lettafm), and ``skills/<name>/SKILL.md`` is the skill ``skills/<name>`` (other files under
``skills/`` are not memory: letta-ai/letta path_mapping.py). The rules here are ported from
Letta Code 0.32.18 src/agent/memory-format.ts and its pre-commit hook.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection
from pathlib import Path, PurePosixPath

from memfs.schema import is_valid_name
from memfs.util import LazyPattern

MANIFEST_FILE = "agent.yaml"
V2_MARKER = "MEMORY.md"
V2_CONFIG = ".memfs.config.json"
# The files Letta's v1 hook checks (added or modified): system/ and reference/ Markdown.
_V1_CHECKED = LazyPattern(r"(?:memory/)?(?:system|reference)/.*\.md\Z", re.DOTALL)
_SKILL = LazyPattern(r"skills/[^/]+/SKILL\.md\Z")


class Layout(enum.Enum):
    NATIVE = "memfs"
    LETTA_V1 = "letta-v1"
    LETTA_V2 = "letta-v2"

    @property
    def is_letta(self) -> bool:
        return self is not Layout.NATIVE

    @property
    def v2(self) -> bool:
        return self is Layout.LETTA_V2


def detect(paths: Collection[str]) -> Layout:
    """The layout of a tree holding ``paths`` (agent.yaml wins, then a root MEMORY.md)."""
    if MANIFEST_FILE in paths:
        return Layout.NATIVE
    if V2_MARKER in paths:
        return Layout.LETTA_V2
    return Layout.LETTA_V1


def looks_like_letta(paths: Collection[str]) -> bool:
    """Whether a tree without agent.yaml is a Letta memory repo (system/ or a root MEMORY.md)."""
    return V2_MARKER in paths or any(path.startswith("system/") for path in paths)


def is_memory_path(path: str, layout: Layout) -> bool:
    """Whether ``path`` holds a memory block in ``layout``."""
    if layout is Layout.NATIVE:
        return path != MANIFEST_FILE and path.endswith((".md", ".yaml", ".yml"))
    if not path.endswith(".md"):
        return False
    return not path.startswith("skills/") or _SKILL.match(path) is not None


def label_of(path: str, layout: Layout) -> str:
    """``system/persona.md`` -> ``system/persona``; a Letta skill is ``skills/<name>``."""
    if layout.is_letta and _SKILL.match(path):
        return path.rsplit("/", 1)[0]
    return str(PurePosixPath(path).with_suffix(""))


def in_context(path: str, layout: Layout) -> bool:
    """Whether the harness puts ``path`` into the prompt (pinned memory)."""
    if layout is Layout.LETTA_V2:
        return path.endswith(".md") and "/" not in path
    return path.startswith("system/")


def is_projected(path: str, paths: Collection[str], layout: Layout) -> bool:
    """Whether Letta Code treats ``path`` as memory at all (v2: every folder has a MEMORY.md)."""
    if layout is not Layout.LETTA_V2:
        return True
    if path == "skills" or path.startswith("skills/"):
        return False
    folders = path.split("/")[:-1]
    return all(
        "/".join(folders[: depth + 1]) + "/" + V2_MARKER in paths for depth in range(len(folders))
    )


def hook_checks(path: str, paths: Collection[str], layout: Layout) -> bool:
    """Whether Letta's pre-commit hook validates ``path``'s front matter in ``layout``."""
    if layout is Layout.LETTA_V1:
        return _V1_CHECKED.match(path) is not None
    if layout is Layout.LETTA_V2:
        return (
            path.endswith(".md")
            and not path.startswith("skills/")
            and is_projected(path, paths, layout)
        )
    return False


def letta_repo_name(root: Path) -> str:
    """A Letta repo's name when none was recorded: Letta Code keeps a repo at
    ``~/.letta/agents/<agent-id>/memory``, so ``memory`` gives the agent id."""
    name = root.parent.name if root.name == "memory" and root.parent.name else root.name
    return name if is_valid_name(name) else "agent"
