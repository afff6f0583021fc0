"""Two machines, one agent, one cloud (a local folder): edit on both, sync, converge.

python examples/two_machines.py [WORKDIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import memfs
from memfs import sync
from memfs.cloud import agent_url, checkout
from memfs.context import build_context
from memfs.remotes.configure import add_remote

work = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="memfs-example-"))
cloud = (work / "cloud").as_uri()

laptop = memfs.init(work / "laptop" / "garden", name="garden", description="garden helper")
add_remote(laptop.history, "origin", agent_url(cloud, "garden"))
laptop.memory["system/human"].value = "Name: Ada.\nGrows tomatoes.\n"
laptop.memory["system/human"].save()
sync.sync(laptop)

server = checkout("garden", work / "server" / "garden", cloud=cloud)

human = laptop.memory["system/human"]
human.value = human.value.replace("Name: Ada.", "Name: Ada Lovelace.")
human.save()
other = server.memory["system/human"]
other.value += "Also grows beans.\n"
other.save()

for machine in (laptop, server, laptop):
    report = sync.sync(machine)
    assert report.ok, report.to_dict()

assert laptop.history.head() == server.history.head()
print((laptop.root / "system/human.md").read_text())
print(build_context(server).render())
