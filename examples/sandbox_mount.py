"""Mount an agent into a throwaway sandbox folder, let "the agent" edit it, unmount.

python examples/sandbox_mount.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import memfs
from memfs import sync
from memfs.context import build_context
from memfs.remotes.configure import add_remote

work = Path(tempfile.mkdtemp(prefix="memfs-example-mount-"))
home = memfs.init(work / "home" / "garden", name="garden")
add_remote(home.history, "origin", f"memfs::{(work / 'cloud' / 'garden').as_uri()}")
sync.push(home)

sandbox = work / "sandbox" / "memory"
with memfs.mounted(f"memfs::{(work / 'cloud' / 'garden').as_uri()}", sandbox) as agent:
    print(build_context(agent).render())  # what the harness puts in the prompt
    notes = sandbox / "reference" / "session.md"  # what the agent writes while it works
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text("---\ndescription: Notes from the sandbox session\n---\nWatered at 7.\n")
# unmounted: committed, pushed, watcher stopped

sync.sync(home)
print((home.root / "reference" / "session.md").read_text())
