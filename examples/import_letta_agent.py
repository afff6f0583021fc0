"""Bring a Letta Agent File in, edit its memory as files, and send it back out.

python examples/import_letta_agent.py AGENT.af
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from memfs.agentfile import export_agent_file, import_agent_file

source = Path(sys.argv[1])
work = Path(tempfile.mkdtemp(prefix="memfs-example-af-"))
imported = import_agent_file(source, work / "agent")  # one folder per agent in the file
agent = imported.agents[0]
print("blocks:", ", ".join(sorted(agent.memory)))

human = agent.memory.get("system/human")
if human is not None:
    human.value += "Edited as a plain file by memfs.\n"
    human.save()
    agent.commit(message="memfs: note from the example")

export_agent_file(agent, work / "out.af")
blocks = json.loads((work / "out.af").read_text())["blocks"]
print("exported:", [block["label"] for block in blocks])
