"""What import-af writes, checked by Letta Code's own code (tests/lettacode.py): the paths and
bytes its local backend gives a block, its front matter reader, and its pre-commit hook, both on
the import commit and on a real `git commit` with its hooks installed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from memfs.agentfile import block_path, import_agent_file, read_agent_file

from .conftest import git, write
from .lettacode import LettaCode, hook_verdict
from .test_af_roundtrip import team_document
from .test_letta import AGENT_FILES, FIRST_SCHEMA


def memory_files(root: Path) -> dict[str, str]:
    """Every Markdown file committed in ``root``, by path."""
    paths = [p for p in git(root, "ls-files", "-z").split("\0") if p.endswith(".md")]
    return {path: (root / path).read_text(encoding="utf-8") for path in paths}


LABELS = [
    "human",
    "system/human",
    "projects/garden",
    "/leading",
    "//double//slash/",
    "notizen/über-uns",
    "a\\b",
    "  padded  ",
    "notes.md",
    "system",
    "skills",
    "x/./y",
    "../outside",
]


@pytest.mark.parametrize("label", LABELS)
def test_block_path_is_letta_codes(letta_code: LettaCode, label: str) -> None:
    """memoryBlockPath, then renderInitialMemoryFile's segment rules (no file for . and ..)."""
    rendered = letta_code.render_initial_memory_file(label, "v", "d")
    assert block_path(label) == (rendered["relativePath"] if rendered else None)


def test_every_file_is_the_one_letta_code_writes_for_the_block(
    letta_code: LettaCode, tmp_path: Path
) -> None:
    source = write(tmp_path, "team.af", json.dumps(team_document(), ensure_ascii=False))
    with import_agent_file(source, tmp_path / "team") as imported:
        roots = [agent.root for agent in imported.agents]
    blocks = {b["id"]: b for b in team_document()["blocks"]}
    for root, agent in zip(roots, team_document()["agents"], strict=True):
        files = memory_files(root)
        expected = {}
        for block_id in agent["block_ids"]:
            block = blocks[block_id]
            rendered = letta_code.render_initial_memory_file(
                block["label"], block["value"], block["description"]
            )
            assert rendered is not None
            content = rendered["content"]
            if block["read_only"]:  # the server's serialize_block adds it; the local backend not
                content = content.replace("\n---\n", "\nread_only: true\n---\n", 1)
            expected[rendered["relativePath"]] = content
        assert files == expected


@pytest.mark.parametrize("source", [*AGENT_FILES, FIRST_SCHEMA], ids=lambda p: p.stem)
def test_letta_reads_each_imported_fixture_block_and_its_hook_takes_the_commit(
    letta_code: LettaCode, tmp_path: Path, source: Path
) -> None:
    original = read_agent_file(source)
    with import_agent_file(source, tmp_path / "agent") as imported:
        (agent,) = imported.agents
        by_path = {m.path: m for m in agent.memory.values()}
    files = memory_files(agent.root)
    assert len(files) == len(original["blocks"])
    for block in original["blocks"]:
        path = block_path(block["label"])
        assert path is not None
        read = letta_code.parse_frontmatter(files[path])
        assert read["body"] == block["value"].strip()  # Letta's reader trims the value
        assert read["frontmatter"]["description"] == by_path[path].description
        assert (block["description"] or "").strip() in ("", read["frontmatter"]["description"])
        assert letta_code.validate_frontmatter(path, files[path]) == []
    verdict = hook_verdict(letta_code, agent.root)
    assert verdict.accepted, verdict.output


def test_letta_hook_takes_edits_of_an_imported_agent_and_guards_its_read_only_block(
    letta_code: LettaCode, tmp_path: Path
) -> None:
    """The import commit itself carries ``read_only: true`` for a read-only block, as Letta's
    server writes it; the hook refuses that from an agent (a new read_only field), which is
    its only complaint. After it, commits through the hook work as in any Letta repo."""
    source = write(tmp_path, "team.af", json.dumps(team_document(), ensure_ascii=False))
    with import_agent_file(source, tmp_path / "team", agent="main") as imported:
        (agent,) = imported.agents
    root = agent.root
    verdict = hook_verdict(letta_code, root)
    complaints = [line.strip() for line in verdict.output.splitlines() if "system/" in line]
    assert not verdict.accepted
    assert complaints == [
        "system/persona.md: 'read_only' is a protected field and cannot be set by the agent"
    ], verdict.output
    letta_code.install_hooks(root)
    write(root, "system/human.md", (root / "system/human.md").read_text() + "Likes tea.\n")
    git(root, "commit", "-q", "-am", "agent edit")
    write(root, "system/persona.md", (root / "system/persona.md").read_text() + "Changed.\n")
    refused = subprocess.run(
        [
            "git",
            "-c",
            "user.name=Ada",
            "-c",
            "user.email=ada@example.org",
            "commit",
            "-q",
            "-am",
            "x",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "read_only" in refused.stdout + refused.stderr
