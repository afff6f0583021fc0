"""memfs context: pinned blocks in full, the rest as a tree, conflicts first, errors named."""

from __future__ import annotations

import json

import memfs
from memfs.context import build_context

from .conftest import run_cli, write


def test_pinned_blocks_in_full_and_the_rest_as_a_tree(agent: memfs.Agent) -> None:
    write(
        agent.root,
        "system/human.md",
        "---\ndescription: The user.\nlimit: 100\nread_only: true\n---\nName: Ada\n",
    )
    write(
        agent.root, "reference/garden/tomatoes.md", "---\ndescription: Growing notes\n---\nWater.\n"
    )
    write(agent.root, "reference/misc.md", "no front matter\n")
    write(agent.root, "reference/contacts.yaml", "description: People\nbob: b@x\n")
    text = build_context(agent).render()
    assert text.startswith(
        "<memory_blocks>\n<system/human>\n<description>\nThe user.\n</description>"
    )
    assert "- chars_current=10\n- chars_limit=100\n- read_only=true" in text
    assert "<value>\nName: Ada\n</value>\n</system/human>" in text
    assert "<system/persona>" in text
    assert text.endswith(
        "<memory_files>\nMore memory, not loaded: read a file when it is relevant.\n"
        "reference/\n  contacts.yaml: People\n  garden/\n    tomatoes.md: Growing notes\n"
        "  misc.md\n</memory_files>\n"
    )
    assert build_context(agent).render() == text, "the same memory gives the same context"


def test_json_and_cli(agent: memfs.Agent) -> None:
    result = run_cli("context", str(agent.root), "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.output)
    assert [b["label"] for b in data["blocks"]] == ["system/human", "system/persona"]
    assert data["blocks"][0]["limit"] == 5000 and data["conflicts"] == [] and data["files"] == []
    assert run_cli("-C", str(agent.root), "context").output.startswith("<memory_blocks>")


def test_context_at_a_revision(agent: memfs.Agent) -> None:
    write(agent.root, "system/human.md", "---\ndescription: d\n---\nv2\n")
    agent.commit()
    write(agent.root, "system/human.md", "---\ndescription: d\n---\nv3 (not committed)\n")
    assert "Nothing yet." in build_context(agent, "HEAD~1").render()
    assert "<value>\nv2\n</value>" in build_context(agent, "HEAD").render()
    assert "v3 (not committed)" in build_context(agent).render()


def test_broken_files_are_errors_naming_the_file(agent: memfs.Agent) -> None:
    write(agent.root, "system/human.md", "---\nlimit: 5\n---\nfar too long\n")
    result = run_cli("-C", str(agent.root), "context")
    assert result.exit_code == 0, "a limit is advisory"
    assert "far too long" in result.output
    write(agent.root, "system/human.md", "---\ndescription: [broken\n---\nx\n")
    result = run_cli("-C", str(agent.root), "context")
    assert result.exit_code == 1 and result.stderr.startswith(
        "memfs: system/human.md:3: invalid YAML"
    )


def test_conflicts_come_first_and_copies_are_not_blocks(agent: memfs.Agent) -> None:
    write(
        agent.root,
        "system/persona.conflict-1a2b3c4.md",
        "---\ndescription: other\n---\nthe other version\n",
    )
    write(
        agent.root,
        "reference/notes.md",
        "<<<<<<< 1a2b3c4\nmine\n=======\ntheirs\n>>>>>>> 5d6e7f8\n",
    )
    text = build_context(agent).render()
    assert text.startswith("<memory_conflicts>\n")
    assert "- reference/notes.md (conflict markers inside)" in text
    assert "- system/persona.md (other version: system/persona.conflict-1a2b3c4.md)" in text
    assert "COPY-CONTENT" not in text, "a conflict copy is never rendered as a block"
    assert "<system/persona.conflict" not in text
