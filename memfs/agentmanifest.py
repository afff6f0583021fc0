"""agent.yaml: its problems, its settings, and the manifest model (``Agent.manifest``).

Every command asks for a setting or two (the name, max_file_size, ``sync``), so they are read
without pydantic (~0.1 s to import) and remembered with the text they came from in
``.git/memfs/manifest.json``; the model is built only when ``Agent.manifest`` is asked for. A
Letta repo has no agent.yaml: who it is lives in ``.git/config`` (``[memfs]``).
"""

from __future__ import annotations

import contextlib
import json

from memfs.errors import MemfsError, SchemaError
from memfs.layout import letta_repo_name
from memfs.schema import (
    MANIFEST_FILE,
    Problem,
    is_valid_name,
    key_lines,
    manifest_error,
    validation_problems,
)
from memfs.util import atomic_write
from memfs.yamllib import yaml

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.agent import Agent
    from memfs.models import AgentManifest

MANIFEST_MEMO = "manifest.json"  # in .git/memfs: what agent.yaml's text says (summary)
# The YAML reader (memfs.frontmatter) and the work tree's limits (memfs.worktree) are imported
# where used: a command the memo answers (a clean status, ls, context) needs neither.


def problems(agent: Agent) -> list[Problem]:
    """What is wrong with agent.yaml (a Letta repo has none, and needs none)."""
    if agent.layout.is_letta:
        return []
    return summary(agent)[0]


def summary(agent: Agent) -> tuple[list[Problem], Any, Any]:
    """agent.yaml's problems, name and max_file_size, remembered with its text in
    ``.git/memfs/manifest.json``: every command asks, and parsing YAML costs a small
    agent's ``status`` a tenth of its time (PyYAML's import). The memo holds for exactly
    the text it was made from; losing it only costs that parse."""
    try:
        text = (agent.root / MANIFEST_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return [Problem(MANIFEST_FILE, 1, "missing: every agent needs agent.yaml")], None, None
    except UnicodeDecodeError:
        return [Problem(MANIFEST_FILE, 1, "not valid UTF-8")], None, None
    memo_path = agent.history.state_dir / MANIFEST_MEMO
    with contextlib.suppress(OSError, ValueError, TypeError):
        memo = json.loads(memo_path.read_bytes())
        if memo["text"] == text:
            found = [Problem(MANIFEST_FILE, int(line), str(message), severity)
                     for line, message, severity in memo["problems"]]  # fmt: skip
            return found, memo["name"], memo["max_file_size"]
    from memfs.frontmatter import load_yaml

    found = problems_of(text)
    data = {} if found else load_yaml(text)
    name, max_file_size = data.get("name"), data.get("max_file_size")
    if all(value is None or type(value) in (str, int) for value in (name, max_file_size)):
        rows = [[p.line, p.message, p.severity] for p in found]
        memo = {"text": text, "problems": rows, "name": name, "max_file_size": max_file_size}
        with contextlib.suppress(OSError):  # a read-only agent: only costs time
            atomic_write(memo_path, json.dumps(memo).encode())
    return found, name, max_file_size


def problems_of(text: str) -> list[Problem]:
    """What is wrong with agent.yaml holding ``text``."""
    from memfs.frontmatter import load_yaml, yaml_error_summary

    try:
        data = load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = (mark.line + 1) if mark else 1
        return [Problem(MANIFEST_FILE, line, yaml_error_summary(error))]
    if not isinstance(data, dict):
        return [Problem(MANIFEST_FILE, 1, "must be a mapping of keys to values")]
    error = manifest_error(data)
    if error is not None:
        return validation_problems(MANIFEST_FILE, error, key_lines(text), first_line=1)
    return []


def manifest(agent: Agent) -> AgentManifest:
    """agent.yaml, validated; SchemaError if it is broken.

    A Letta repo keeps who it is out of its tree, in ``.git/config`` (``[memfs]``): the
    manifest is made from that, with the folder's name when nothing was recorded.
    """
    if agent.layout.is_letta:
        return letta_manifest(agent)
    found = problems(agent)
    if found:
        raise SchemaError(found)
    from memfs.frontmatter import load_yaml
    from memfs.models import AgentManifest

    data = load_yaml((agent.root / MANIFEST_FILE).read_text(encoding="utf-8"))
    return AgentManifest.model_validate(data)


def setting(agent: Agent, key: str) -> Any:
    """An extra key of agent.yaml (``sync``, say), read without building the model (every
    push and pull asks; pydantic costs ~0.1 s to load); None for a Letta repo, a key that
    is not there, or an agent.yaml that is broken (``check`` reports that)."""
    if agent.layout.is_letta or problems(agent):
        return None
    from memfs.frontmatter import load_yaml

    data = load_yaml((agent.root / MANIFEST_FILE).read_text(encoding="utf-8"))
    return data.get(key) if isinstance(data, dict) else None


def letta_manifest(agent: Agent) -> AgentManifest:
    """A Letta repo's manifest, from ``.git/config``'s ``[memfs]`` and the folder's name."""
    from memfs.models import AgentManifest

    history = agent.history
    name = history.config_value("memfs", "name") or letta_repo_name(agent.root)
    created = history.config_value("memfs", "created") or "1970-01-01T00:00:00Z"
    return AgentManifest(
        name=name if is_valid_name(name) else "agent",
        id=history.config_value("memfs", "id") or f"letta-{name}",
        description=history.config_value("memfs", "description") or "",
        created_at=created,  # type: ignore[arg-type]
    )


def name(agent: Agent) -> str:
    """The agent's name; the folder's name if agent.yaml cannot be read."""
    if not agent.layout.is_letta:  # read without pydantic, as max_file_size is
        found, named, _ = summary(agent)
        return agent.root.name if found else str(named)
    try:
        return manifest(agent).name
    except MemfsError:
        return agent.root.name


def max_file_size(agent: Agent) -> int:
    """agent.yaml's max_file_size, read without building the manifest (every snapshot asks,
    and the pydantic model costs more to import than a whole ``memfs status``)."""
    from memfs.worktree import DEFAULT_MAX_FILE_SIZE

    if agent.layout.is_letta:
        return DEFAULT_MAX_FILE_SIZE
    found, _, size = summary(agent)
    if found:
        return DEFAULT_MAX_FILE_SIZE
    return size or DEFAULT_MAX_FILE_SIZE
