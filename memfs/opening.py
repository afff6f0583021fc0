"""Opening, finding, creating and adopting agents: where an ``Agent`` comes from.

``open_agent`` opens a folder that is an agent (agent.yaml, or a Letta Code memory repo),
``find_agent`` the one containing a folder, ``init_agent`` creates a memfs-native agent or
adopts the memory folder already there; a Letta repo is adopted as it is, its name and id
recorded in .git/config (``record_letta_identity``) rather than in its tree.
"""

from __future__ import annotations

import os
from pathlib import Path

from memfs.agent import Agent
from memfs.checkout import unfinished
from memfs.errors import (
    AgentExistsError,
    InvalidNameError,
    ManifestMissingError,
    NotAnAgentError,
    UnfinishedCheckoutError,
)
from memfs.gitconfig import read_config
from memfs.history import History
from memfs.layout import V2_MARKER, Layout, letta_repo_name
from memfs.schema import MANIFEST_FILE, is_valid_name
from memfs.util import atomic_write, utc_now
from memfs.yamllib import yaml

PERSONA_TEMPLATE = """---
description: Who I am, how I speak and how I behave.
limit: 5000
---
I am a helpful assistant. I keep my memory in files and update it as I learn.
"""
HUMAN_TEMPLATE = """---
description: What I know about the person I work with.
limit: 5000
---
Nothing yet.
"""


def open_agent(path: str | os.PathLike[str] = ".") -> Agent:
    """Open the agent whose directory is ``path``."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise NotAnAgentError(str(path), "no such directory")
    _refuse_unfinished_checkout(root)
    if not is_agent_folder(root):
        raise NotAnAgentError(
            str(path), f"no {MANIFEST_FILE}, and not a Letta memory repo (no .git with system/)"
        )
    return _open_folder(root, str(path))


def find_agent(start: str | os.PathLike[str] = ".") -> Agent:
    """Open the agent containing ``start`` (agent.yaml, or a Letta memory repo, there or above)."""
    here = Path(start).expanduser().resolve()
    for folder in (here, *here.parents):
        _refuse_unfinished_checkout(folder)
        if is_agent_folder(folder):
            return _open_folder(folder, str(folder))
    raise NotAnAgentError(
        str(start), f"no {MANIFEST_FILE} or Letta memory repo here or in a parent folder"
    )


def _open_folder(root: Path, shown: str) -> Agent:
    """The agent in ``root``; ManifestMissingError for a memfs-native agent whose agent.yaml
    was deleted (it would otherwise open as a Letta repo and commit the deletion)."""
    history = History.open(root)
    if _lost_manifest(root, history):
        history.close()
        raise ManifestMissingError(shown)
    return Agent(root, history)


def _lost_manifest(root: Path, history: History) -> bool:
    """agent.yaml is in HEAD but not in the work tree of a repo memfs never adopted as Letta's."""
    if (root / MANIFEST_FILE).is_file() or _adopted(root):
        return False
    return bool(history.entries_at(history.head(), MANIFEST_FILE))


def is_agent_folder(root: Path) -> bool:
    """A git work tree holding agent.yaml, or a Letta Code memory repo.

    A Letta repo has ``system/`` or a root ``MEMORY.md`` (in the work tree; a fresh clone may
    hold nothing yet), or was adopted by ``memfs init`` (``[memfs] layout`` in .git/config).
    """
    if not (root / ".git").exists():
        return False
    if (root / MANIFEST_FILE).is_file():
        return True
    if (root / "system").is_dir() or (root / V2_MARKER).is_file():
        return True
    return _adopted(root)


def _adopted(root: Path) -> bool:
    """Whether ``memfs init`` or a clone recorded this repo as a Letta repo in .git/config."""
    path = str(root / ".git" / "config")
    try:
        config = read_config(path)  # the plain form, without dulwich.config's import
        if config is None:
            from dulwich.config import ConfigFile

            config = ConfigFile.from_path(path)
        layout = config.get((b"memfs",), b"layout")
    except (OSError, ValueError, KeyError):
        return False
    return layout.startswith(b"letta")


def _refuse_unfinished_checkout(root: Path) -> None:
    """A clone or checkout stopped midway in ``root``: no command may commit its files."""
    stale = unfinished(root)
    if stale is not None:
        raise UnfinishedCheckoutError(str(root), stale.url)


def _is_letta_folder(root: Path) -> bool:
    """A Letta Code memory folder (or repo): system/ or a root MEMORY.md, and no agent.yaml."""
    if (root / ".git").exists() and _adopted(root):
        return True
    return (root / V2_MARKER).is_file() or (root / "system").is_dir()


def adopt_letta_repo(root: Path, name: str | None = None, description: str = "") -> Agent:
    """Take a Letta Code memory repo on as it is: no agent.yaml, no starter file in its tree.

    Who the agent is goes to ``.git/config`` (``[memfs]``), where Letta never looks; pending
    edits are committed as any commit is (a file Letta's hook would refuse is still saved).
    """
    if (root / ".git").exists() and _adopted(root):
        raise AgentExistsError(str(root), "a Letta memory repo memfs already adopted")
    name = name or letta_repo_name(root)
    if not is_valid_name(name):
        raise InvalidNameError(name)
    history = History.create(root)
    if _lost_manifest(root, history):
        raise ManifestMissingError(str(root))
    history.refuse_during_git_operation()  # before .git/config records anything
    paths = set(history.tree_of(history.head())) | set(worktree_names(root))
    layout = Layout.LETTA_V2 if V2_MARKER in paths else Layout.LETTA_V1
    record_letta_identity(history, name, layout, description)
    agent = Agent(root, history)
    agent.commit(message=f"memfs: adopt agent {name}", origin="cli")
    return agent


def record_letta_identity(
    history: History, name: str, layout: Layout, description: str = ""
) -> None:
    """Write memfs's metadata for a Letta repo into .git/config (kept by clones: not synced)."""
    values = {"layout": layout.value, "name": name}
    if history.config_value("memfs", "id") is None:
        import uuid  # with platform, ~2 ms: an agent's id is made only here and by init

        values["id"] = f"agent-{uuid.uuid4()}"
        values["created"] = utc_now().isoformat().replace("+00:00", "Z")
    if description:
        values["description"] = description
    history.set_config_values("memfs", values)


def worktree_names(root: Path) -> list[str]:
    """The top-level names in ``root`` (enough to tell a layout: MEMORY.md, system/)."""
    return [entry.name for entry in root.iterdir() if entry.name != ".git"]


def init_agent(
    path: str | os.PathLike[str] = ".",
    name: str | None = None,
    description: str = "",
    templates: bool = True,
    layout: Layout | None = None,
) -> Agent:
    """Create an agent in ``path``, or adopt the memory folder (or git repo) already there.

    A Letta Code memory folder (system/ or a root MEMORY.md) is adopted as it is, without
    agent.yaml, unless ``layout`` is ``Layout.NATIVE``. ``templates=False`` adds no starter
    persona/human files (an import brings its own memory).
    """
    root = Path(path).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise NotAnAgentError(str(path), "it is a file, not a folder")
    _refuse_unfinished_checkout(root)  # its files are a partial copy of another agent
    if (root / MANIFEST_FILE).exists():
        raise AgentExistsError(str(path))
    if layout is not Layout.NATIVE and root.is_dir() and _is_letta_folder(root):
        return adopt_letta_repo(root, name, description)
    name = name or root.name
    if not is_valid_name(name):
        raise InvalidNameError(name)
    root.mkdir(parents=True, exist_ok=True)
    adopting = any(entry.name != ".git" for entry in root.iterdir())
    history = History.create(root)
    system = root / "system"
    if templates and not (system.is_dir() and any(system.glob("*.md"))):
        system.mkdir(exist_ok=True)
        for file_name, text in (("persona.md", PERSONA_TEMPLATE), ("human.md", HUMAN_TEMPLATE)):
            if not (system / file_name).exists():
                atomic_write(system / file_name, text.encode())
    import uuid  # with platform, ~2 ms: an agent's id is made only here and by adoption

    manifest = {
        "name": name,
        "id": f"agent-{uuid.uuid4()}",
        "description": description,
        "created_at": utc_now().isoformat().replace("+00:00", "Z"),
        "format": 1,
    }
    atomic_write(root / MANIFEST_FILE, yaml.safe_dump(manifest, sort_keys=False).encode())
    agent = Agent(root, history)
    verb = "adopt" if adopting else "create"
    agent.commit(message=f"memfs: {verb} agent {name}", origin="cli")
    return agent
