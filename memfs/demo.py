"""The story ``memfs demo`` tells: one agent, two machines, one cloud, nothing lost.

Machine A creates an agent and edits its memory; it syncs to a cloud; machine B checks it out by
name; both edit at once; both sync and converge on one history; the harness gets the context.
Everything happens in a temporary folder (the cloud too): no account, no network, seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from memfs import sync
from memfs.cloud import agent_url, checkout
from memfs.context import build_context
from memfs.opening import init_agent
from memfs.remotes.configure import add_remote


@dataclass(frozen=True)
class Step:
    """One thing the demo did: a title, the command a user would type, what it showed."""

    title: str
    command: str
    output: str


def demo_cloud(workdir: Path) -> str:
    """The URL of the demo's cloud: a folder in ``workdir``."""
    return (workdir / "cloud").as_uri()


def run_demo(workdir: Path) -> Iterator[Step]:
    """Tell the two-machine story in ``workdir``."""
    cloud = demo_cloud(workdir)
    a_root = workdir / "machine-a" / "garden"
    b_root = workdir / "machine-b" / "garden"

    a = init_agent(a_root, name="garden", description="helps with the vegetable garden")
    yield Step(
        "Machine A: create an agent, a folder of memory files in a git repository",
        f"memfs init {a_root} --description 'helps with the vegetable garden'",
        "\n".join(f"{m.label:<16} {m.description or ''}" for m in a.memory.values()),
    )

    human = a.memory["system/human"]
    human.value = "Name: Ada.\nGrows tomatoes and beans.\nPrefers short answers.\n"
    human.save()
    add_remote(a.history, "origin", agent_url(cloud, "garden"))
    report = sync.sync(a)
    yield Step(
        "Machine A: the agent (or you, in any editor) edits memory; it is committed and synced",
        f"$EDITOR system/human.md && memfs sync    # cloud: {cloud}",
        f"committed {report.committed.short if report.committed else '-'}: "
        + (report.committed.summary if report.committed else "")
        + f"\norigin: {report.remotes[0].pushed}",
    )

    b = checkout("garden", b_root, cloud=cloud)
    yield Step(
        "Machine B: check the agent out of the cloud by name",
        f"memfs checkout garden {b_root} --cloud {cloud}",
        (b_root / "system/human.md").read_text(),
    )

    a_human = a.memory["system/human"]
    a_human.value = a_human.value.replace("Name: Ada.", "Name: Ada Lovelace.")
    a_human.save()
    b_human = b.memory["system/human"]
    b_human.value = b_human.value.replace(
        "Prefers short answers.", "Prefers short answers, in French."
    )
    b_human.save()
    notes = b_root / "reference" / "harvest.md"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text("---\ndescription: What was harvested when\n---\nJuly: 3 kg of tomatoes.\n")
    yield Step(
        "Both machines edit at once: A the first line of human.md, B the last one and a new file",
        "(on A) $EDITOR system/human.md   (on B) $EDITOR system/human.md reference/harvest.md",
        "A: Name: Ada Lovelace.\nB: Prefers short answers, in French.  +reference/harvest.md",
    )

    outcomes = [sync.sync(machine) for machine in (a, b, a)]
    merged = [o.integrated for report in outcomes for o in report.remotes if o.integrated]
    yield Step(
        "Both sync: the edits merge line by line, nothing is lost, both hold the same history",
        "memfs sync   (on A, then B, then A)",
        f"{', '.join(merged)}\n\n"
        + (a_root / "system/human.md").read_text()
        + f"\nsame head on A and B: {a.history.head() == b.history.head()}",
    )
    yield Step(
        "The merged history: who changed what, where",
        "memfs log",
        "\n".join(
            f"{e.short}  {(e.host or '') + '/' + (e.origin or ''):<16} {e.summary}" for e in a.log()
        ),
    )
    yield Step(
        "What a harness puts in the agent's prompt",
        "memfs context",
        build_context(b).render(),
    )
    a.close()
    b.close()


def serve_demo(workdir: Path, listen: str, ready: Callable[[str], None]) -> None:
    """The optional last step: serve the demo's cloud (git, Letta's memory API, the console)
    until SIGTERM or Ctrl-C; ``ready`` gets the base URL once it accepts connections. The
    demo's own token file (none) keeps a user's tokens out of it: open on loopback only."""
    from memfs.server.runner import serve

    serve(
        demo_cloud(workdir),
        listen,
        token_file=workdir / "tokens.json",
        cache_dir=workdir / "serve-cache",
        access_log=False,
        announce=lambda said: ready(said.url),
    )
