"""The story ``memfs demo`` tells: an agent's memory edited, committed, diffed, rolled back.

Each step is a library call; the CLI prints the steps. Runs in a temporary folder with no
account and no network.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from memfs.agent import init_agent


@dataclass(frozen=True)
class Step:
    """One thing the demo did: a title, the command a user would type, what it showed."""

    title: str
    command: str
    output: str


def run_demo(workdir: Path) -> Iterator[Step]:
    """Create an agent in ``workdir`` and walk through editing and history."""
    path = workdir / "demo-agent"
    agent = init_agent(path, name="demo-agent", description="memfs demo agent")
    yield Step(
        "Create an agent: a folder of memory files in a git repository",
        f"memfs init {path} --description 'memfs demo agent'",
        "\n".join(f"{m.label:<16} {m.description or ''}" for m in agent.memory.values()),
    )

    human = agent.memory["system/human"]
    human.value = "Name: Ada. Prefers short answers. Works on a vegetable garden.\n"
    human.save()
    yield Step(
        "The agent (or you, in any editor) edits a memory file",
        "$EDITOR system/human.md",
        (path / "system/human.md").read_text(),
    )

    status = agent.status()
    yield Step(
        "memfs sees the change",
        "memfs status",
        "\n".join(f"{c.status}: {c.path}" for c in status.changes),
    )

    info = agent.commit()
    assert info is not None
    yield Step(
        "Commit it; the message says what changed", "memfs commit", f"[{info.short}] {info.summary}"
    )

    yield Step(
        "Every version is kept",
        "memfs log",
        "\n".join(f"{e.short}  {e.summary}" for e in agent.log()),
    )
    yield Step(
        "See exactly what changed", "memfs diff HEAD~1 HEAD", agent.diff("HEAD~1", "HEAD").decode()
    )

    restored = agent.restore("system/human.md", to="HEAD~1")
    assert restored is not None
    yield Step(
        "Roll the file back, as a new commit (history is never rewritten)",
        "memfs restore system/human.md --to HEAD~1",
        f"[{restored.short}] {restored.summary}\n\n" + (path / "system/human.md").read_text(),
    )
    yield Step(
        "It is an ordinary git repository: git log, git diff, GitHub all work",
        f"git -C {path} log --oneline",
        "\n".join(f"{e.short} {e.summary}" for e in agent.log()),
    )
    agent.close()
