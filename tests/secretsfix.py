"""An agent with secrets for tests: pushed to a folder cloud, secrets set through the library
on this test's machine (its identity beside MEMFS_CONFIG, as conftest isolates it)."""

from __future__ import annotations

from pathlib import Path

import memfs
from memfs.remotes.configure import add_remote
from memfs.secrets.store import SecretStore, push_secrets
from memfs.sync import push


def agent_with_secrets(base: Path, values: dict[str, str], name: str = "keeper") -> Path:
    """A pushed agent at ``base/name`` holding ``values`` (pushed to its cloud too)."""
    root = base / name
    with memfs.init(root, name=name) as agent:
        add_remote(agent.history, "origin", "memfs::" + (base / "cloud" / name).as_uri())
        assert push(agent).ok
        for key, value in values.items():
            SecretStore.load(agent).set(key, value)
        assert push_secrets(agent)
    return root
