"""memfs: an AI agent's memory as plain files, versioned with git and synced to any remote.

    >>> import memfs
    >>> agent = memfs.init("my-agent", name="my-agent")
    >>> agent.memory["system/persona"].value
    >>> agent.commit()
    >>> memfs.sync.sync(agent)              # commit, fetch, merge, push to every remote
    >>> memfs.clone(url, "elsewhere")       # check an agent out on another machine
    >>> with memfs.watch(agent):            # edits are committed and synced by themselves
    ...     ...

Names are imported on first use, so ``import memfs`` (and the ``memfs`` command) stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "CommitInfo",
    "FileChange",
    "MemfsError",
    "MemoryFile",
    "Problem",
    "Status",
    "__version__",
    "clone",
    "errors",
    "init",
    "mounted",
    "open",
    "watch",
]

_LAZY = {
    "Agent": ("memfs.agent", "Agent"),
    "Status": ("memfs.agent", "Status"),
    "init": ("memfs.opening", "init_agent"),
    "open": ("memfs.opening", "open_agent"),
    "clone": ("memfs.cloning", "clone"),
    "watch": ("memfs.watcher", "watch"),
    "mounted": ("memfs.mount", "mounted"),
    "CommitInfo": ("memfs.trees", "CommitInfo"),
    "FileChange": ("memfs.trees", "FileChange"),
    "MemoryFile": ("memfs.memory", "MemoryFile"),
    "Problem": ("memfs.schema", "Problem"),
    "MemfsError": ("memfs.errors", "MemfsError"),
    "errors": ("memfs.errors", None),
}

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs import errors
    from memfs.agent import Agent, Status
    from memfs.cloning import clone
    from memfs.errors import MemfsError
    from memfs.memory import MemoryFile
    from memfs.mount import mounted
    from memfs.opening import init_agent as init
    from memfs.opening import open_agent as open
    from memfs.schema import Problem
    from memfs.trees import CommitInfo, FileChange
    from memfs.watcher import watch


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'memfs' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
