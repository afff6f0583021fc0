"""Letta Code memory repos opened as they are: layouts, Letta's front matter, edits line by line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import memfs
from memfs import lettafm
from memfs.layout import Layout, detect, in_context, is_memory_path, is_projected, label_of
from memfs.memory import MemoryFile

from .conftest import git, memfs_process, write


def letta_git_repo(root: Path, files: dict[str, str]) -> Path:
    """A memory repo as Letta Code leaves it: plain git, one commit, no memfs metadata."""
    for path, text in files.items():
        write(root, path, text)
    git(root.parent, "init", "-q", "-b", "main", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "letta memory")
    return root


def memfs_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return memfs_process(*args, cwd=cwd)


V1 = {
    "system/persona.md": "---\ndescription: Who I am: Letta\n---\nI am Letta.\n",
    "system/project/notes.md": "---\ndescription: # Project notes\nlimit: 5\n---\n\n\nLong notes\n",
    "reference/api.md": "---\ndescription: API\n---\nGET /\n",
    "skills/search/SKILL.md": "---\nname: search\ndescription: find things\n---\nSteps\n",
    "skills/search/helper.md": "not memory\n",
}
V2 = {
    "MEMORY.md": "# Memory index\n",
    "persona.md": '---\nname: "Persona"\ndescription: "Who I am: \\"Letta\\""\n---\nI am Letta.\n',
    "projects/MEMORY.md": "Projects\n",
    "projects/letta.md": '---\nname: "Letta"\ndescription: "the project"\n---\nbody\n',
    "loose/x.md": '---\nname: "X"\ndescription: "not projected"\n---\nx\n',
}


def test_layouts_are_told_apart_by_their_files() -> None:
    assert detect({"agent.yaml", "system/a.md", "MEMORY.md"}) is Layout.NATIVE
    assert detect({"MEMORY.md", "persona.md"}) is Layout.LETTA_V2
    assert detect({"system/persona.md"}) is Layout.LETTA_V1
    assert is_memory_path("skills/search/SKILL.md", Layout.LETTA_V1)
    assert not is_memory_path("skills/search/helper.md", Layout.LETTA_V1)
    assert not is_memory_path("notes.yaml", Layout.LETTA_V1), "only .md is memory in Letta"
    assert is_memory_path("notes.yaml", Layout.NATIVE)
    assert label_of("skills/search/SKILL.md", Layout.LETTA_V1) == "skills/search"
    assert in_context("persona.md", Layout.LETTA_V2) and not in_context("a/b.md", Layout.LETTA_V2)
    assert in_context("system/x/y.md", Layout.LETTA_V1)
    paths = set(V2)
    assert is_projected("projects/letta.md", paths, Layout.LETTA_V2)
    assert not is_projected("loose/x.md", paths, Layout.LETTA_V2)


def test_a_v1_repo_opens_as_letta_code_left_it(tmp_path: Path) -> None:
    root = letta_git_repo(tmp_path / "agents" / "agent-123" / "memory", V1)
    agent = memfs.open(root)
    assert agent.layout is Layout.LETTA_V1
    assert agent.name == "agent-123", "Letta Code keeps a repo at agents/<id>/memory"
    memory = agent.memory
    assert set(memory) == {
        "system/persona",
        "system/project/notes",
        "reference/api",
        "skills/search",
    }
    assert memory["system/persona"].description == "Who I am: Letta"
    assert memory["system/project/notes"].description == "# Project notes"
    assert memory["system/project/notes"].value == "\n\nLong notes\n", "memfs keeps every byte"
    assert memory["system/persona"].pinned and not memory["reference/api"].pinned
    assert [p.render() for p in agent.check()] == [
        "system/project/notes.md:3: warning: body is 13 characters, over its limit of 5 (advisory)"
    ], "a repo Letta accepts has no errors; a legacy limit only warns"
    assert agent.status().clean
    assert not (root / "agent.yaml").exists()


def test_a_v2_repo_reads_names_and_quoted_descriptions(tmp_path: Path) -> None:
    root = letta_git_repo(tmp_path / "memory", V2)
    agent = memfs.open(root)
    assert agent.layout is Layout.LETTA_V2
    persona = agent.memory["persona"]
    assert persona.description == 'Who I am: "Letta"'
    assert persona.metadata["name"] == "Persona"
    assert persona.pinned and not agent.memory["projects/letta"].pinned
    # Letta's tree constraints (root-marker, MemFS v2) refuse a folder without its MEMORY.md
    assert [p.render() for p in agent.check()] == [
        "loose/x.md:1: missing required index loose/MEMORY.md"
    ]


def test_a_plain_git_repo_is_still_not_an_agent(tmp_path: Path) -> None:
    root = letta_git_repo(tmp_path / "code", {"README.md": "hello\n"})
    result = memfs_cli(root, "status")
    assert result.returncode == 3
    assert "not a Letta memory repo" in result.stderr or "Letta memory repo" in result.stderr


def test_cli_status_commit_and_log_in_a_letta_repo(tmp_path: Path) -> None:
    root = letta_git_repo(tmp_path / "memory", V1)
    (root / "system/persona.md").write_text("---\ndescription: Who I am: Letta\n---\nI am Ada.\n")
    result = memfs_cli(root, "commit", "-m", "rename")
    assert result.returncode == 0, result.stderr
    assert git(root, "log", "--format=%s").splitlines()[0] == "rename"
    assert git(root, "ls-files").splitlines() == sorted(V1), "nothing added to the tree"
    assert memfs_cli(root, "status").returncode == 0


def test_init_adopts_a_v2_folder_without_adding_files(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    for path, text in V2.items():
        write(root, path, text)
    result = memfs_cli(tmp_path, "init", str(root), "--name", "ezra")
    assert result.returncode == 0, result.stderr
    assert git(root, "ls-files").splitlines() == sorted(V2)
    agent = memfs.open(root)
    assert agent.layout is Layout.LETTA_V2 and agent.name == "ezra"
    again = memfs_cli(tmp_path, "init", str(root))
    assert again.returncode != 0 and "already" in again.stderr


@pytest.mark.parametrize(
    ("text", "description", "value"),
    [
        ("---\ndescription: a: b\n---\nv\n", "a: b", "v\n"),
        ("---\r\ndescription: crlf\r\n---\r\nline\r\n", "crlf", "line\r\n"),
        ("\ufeff---\ndescription: bom\n---\nv", "bom", "v"),
        ("---\ndescription:   spaced   \n---\n", "spaced", ""),
        ("no front matter\n", None, "no front matter\n"),
        ("---\ndescription: |\n  two\n  lines\n---\nv", "two\nlines\n", "v"),
    ],
)
def test_letta_front_matter_is_read_line_by_line(
    tmp_path: Path, text: str, description: str | None, value: str
) -> None:
    memory = MemoryFile(tmp_path, "system/x.md", text.encode(), Layout.LETTA_V1)
    assert memory.description == description
    assert memory.value == value


def test_edits_touch_only_the_lines_that_change(tmp_path: Path) -> None:
    text = "---\ndescription: Who I am: Letta\nlimit: 500\n---\nI am Letta.\n"
    write(tmp_path, "system/persona.md", text)
    memory = MemoryFile.load(tmp_path, "system/persona.md", Layout.LETTA_V1)
    memory.value = "I am Ada.\n"
    assert memory.render().decode() == text.replace("Letta.\n", "Ada.\n")
    memory.description = "Who I am\nnow"
    rendered = memory.render().decode()
    assert rendered == "---\ndescription: Who I am now\nlimit: 500\n---\nI am Ada.\n"
    assert lettafm.validate("system/persona.md", rendered, text, v2=False) == []
    memory.read_only = False
    assert "read_only" not in memory.render().decode(), "false is never written"


def test_v2_edits_write_json_quoted_values(tmp_path: Path) -> None:
    write(tmp_path, "persona.md", V2["persona.md"])
    memory = MemoryFile.load(tmp_path, "persona.md", Layout.LETTA_V2)
    memory.description = 'says "hi": twice'
    rendered = memory.render().decode()
    assert 'description: "says \\"hi\\": twice"' in rendered
    assert lettafm.validate("persona.md", rendered, None, v2=True) == []
    assert MemoryFile(tmp_path, "persona.md", rendered.encode(), Layout.LETTA_V2).description == (
        'says "hi": twice'
    )


def test_what_letta_would_refuse_is_reported_with_its_line(tmp_path: Path) -> None:
    text = "---\ndescription: ok\ncolour: red\n---\nbody\n"
    memory = MemoryFile(tmp_path, "system/x.md", text.encode(), Layout.LETTA_V1)
    assert [p.render() for p in memory.problems()] == [
        "system/x.md:3: unknown frontmatter key 'colour' (allowed: description read_only limit)"
    ]
    outside = MemoryFile(tmp_path, "notes/x.md", text.encode(), Layout.LETTA_V1)
    assert outside.problems() == [], "Letta's v1 hook checks only system/ and reference/"
    missing = MemoryFile(tmp_path, "x.md", b"---\nname: x\n---\n", Layout.LETTA_V2)
    assert [p.message for p in missing.problems()] == ["missing required field 'description'"]


def test_renderers_write_what_letta_writes() -> None:
    assert lettafm.render_v1("d: e\n", "v") == "---\ndescription: d: e\n---\nv"
    assert (
        lettafm.render_v1("d", "", read_only=True) == "---\ndescription: d\nread_only: true\n---\n"
    )
    assert lettafm.render_v2("N", 'é "q"', "v") == (
        '---\nname: "N"\ndescription: "é \\"q\\""\n---\nv'
    )
    assert lettafm.default_name("projects/my-notes_2") == "My Notes 2"
    assert lettafm.set_field("---\r\ndescription: a\r\n---\r\nv", "read_only", "true") == (
        "---\r\ndescription: a\r\nread_only: true\r\n---\r\nv"
    )
