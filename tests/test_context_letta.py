"""memfs context --format letta: byte for byte what Letta Code's own prompt compiler gives.

The oracle is Letta Code's renderMemfsProjection / compileLocalSystemPrompt run with node
(tests/lettacode.py), on repos Letta's code wrote and on repos memfs wrote. Letta Code 0.32.18
compiles every repo as v1; the v2 rendering (renderRootMemoryProjection, letta-code on GitHub
after 0.32.18) is checked against its expected text.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

import memfs
from memfs.lettacontext import MemoryMetadata, build_letta_context
from memfs.opening import open_agent

from .conftest import run_cli
from .lettacode import LettaCode, letta_repo, server_commit


def committed_repo(path: Path, files: dict[str, str | bytes], quote_path: bool = True) -> Path:
    """A memory repo holding ``files`` committed with plain git (as Letta's server commits:
    no hook), so content Letta's hook would refuse can be tested too."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    if not quote_path:
        subprocess.run(["git", "-C", str(path), "config", "core.quotePath", "false"], check=True)
    server_commit(path, files, "memory")
    return path


def memfs_letta(repo: Path, from_head: bool = True) -> str:
    with open_agent(repo) as agent:
        return build_letta_context(agent, "HEAD" if from_head else None).text


# Each case: files as Letta's server or a person might have committed them.
TRICKY = {
    "nested system folders": {
        "system/persona.md": "---\ndescription: Who I am\n---\nI am careful.\n",
        "system/project/x.md": "---\ndescription: X\n---\nProject X\nsecond line\n",
        "system/project/deep/y.md": "---\ndescription: Y\n---\nY",
        "system/project.md": "---\ndescription: the folder has a file of its name\n---\nP",
        "system/persona/extra.md": "---\ndescription: under persona\n---\nextra",
    },
    "descriptions with colons, a leading #, block scalars and lists": {
        "system/human.md": "---\ndescription: a: b: c\n---\nName: Ada\n",
        "system/notes.md": "---\ndescription: # Notes: loose ends\n---\n# Heading\n",
        "system/folded.md": "---\ndescription: >\n  folded\n  text\nread_only: true\n---\nv",
        "system/literal.md": "---\ndescription: |-\n  two\n  lines\n---\nv",
        "system/list.md": "---\ndescription:\n  - a\n  - b\n---\nlist is no description",
        "system/spaces.md": "---\ndescription:    padded   \nlimit: 5\n---\nover its limit",
    },
    "blank lines, CRLF, BOM, empty values, no front matter": {
        "system/persona.md": "",
        "system/blank.md": "---\ndescription: d\n---\n\n\n  indented after blank lines\n\n\n",
        "system/crlf.md": "---\r\ndescription: crlf\r\n---\r\nline 1\r\nline 2\r\n",
        "system/cr.md": "---\rdescription: old mac\r---\rline\r",
        "system/bom.md": "\ufeff---\ndescription: bom\n---\nafter a BOM",
        "system/empty-description.md": "---\ndescription:\n---\nvalue",
        "system/empty-value.md": "---\ndescription: nothing below\n---\n",
        "system/no-front-matter.md": "\n\n  kept as Letta keeps it  \n\n",
        "system/unclosed.md": "---\ndescription: never closed\nbody",
    },
    "labels Letta sorts with localeCompare": {
        **{
            f"system/{name}.md": f"---\ndescription: {name}\n---\n{name}"
            for name in ["a", "B", "b-c", "b_c", "b.c", "10", "9", "Zed", "zed", "x y", "A1"]
        },
        **{f"reference/{name}.md": "x" for name in ["Beta", "alpha", "_under", "-dash", "1one"]},
    },
    "many external files (over Letta's tree caps) and skills": {
        "system/persona.md": "---\ndescription: p\n---\np",
        **{f"reference/f{index:03d}.md": "x" for index in range(120)},
        **{f"archive/{folder}/note-{index}.md": "y" for folder in "abc" for index in range(3)},
        "skills/review/SKILL.md": "---\nname: review\ndescription: Review\n---\nRead the diff.",
        "skills/review/notes.md": "a skill's other file",
        "skills.md": "a root file named skills",
        "system.md": "a root file named system",
        "README.md": "every .md counts",
        "data.txt": "not Markdown",
    },
    "files Letta cannot read or leaves out": {
        "system/ok.md": "---\ndescription: ok\n---\nfine",
        "system/latin1.md": b"---\ndescription: caf\xe9\n---\nbody \xff\xfe end\n",
        "system/big.md": "---\ndescription: big\n---\n" + "x" * (1024 * 1024),
        'system/quote".md': "a name git quotes",
        "system/ leading-space.md": "a name Letta trims",
        "system/café.md": "non-ASCII: git quotes it by default",
    },
}


@pytest.mark.parametrize("case", list(TRICKY), ids=list(TRICKY))
def test_tricky_repos_render_as_letta_code_renders_them(
    letta_code: LettaCode, tmp_path: Path, case: str
) -> None:
    repo = committed_repo(tmp_path / "memory", TRICKY[case])
    assert memfs_letta(repo) == letta_code.compile_memory(repo)


def test_non_ascii_labels_with_quote_path_off(letta_code: LettaCode, tmp_path: Path) -> None:
    """With core.quotePath off git lists non-ASCII names as they are, and Letta sorts them."""
    names = ["éclair", "eclair", "Eclair", "ábc", "abd", "Ωmega", "日本", "zeta", "ß", "ss", "æon"]
    names += [
        "a\u2013b",
        "a-b",
        "it\u2019s",
        "it's",
        "\u201cq\u201d",
        "\u2022 b",
        "\U0001f600",
        "\u20acuro",
    ]
    files = {f"system/{name}.md": f"---\ndescription: {name}\n---\n{name}" for name in names}
    files |= {f"reference/{name}.md": "x" for name in names}
    repo = committed_repo(tmp_path / "memory", files, quote_path=False)
    expected = letta_code.compile_memory(repo)
    assert "<éclair>" in expected and "<日本>" in expected
    assert memfs_letta(repo) == expected


def test_a_repo_letta_code_wrote(letta_code: LettaCode, letta_v1_repo: Path) -> None:
    expected = letta_code.compile_memory(letta_v1_repo)
    assert expected.startswith("Reminder: <projection>") and "<self>" in expected
    result = run_cli("context", str(letta_v1_repo), "--format", "letta", "--from-head")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == expected.encode(), "exactly the bytes, no newline added"


def test_a_repo_memfs_wrote(letta_code: LettaCode, tmp_path: Path) -> None:
    """memfs adopts a Letta folder, edits a block and commits: Letta compiles what memfs shows."""
    root = tmp_path / "memory"
    (root / "system").mkdir(parents=True)
    (root / "system/persona.md").write_text("---\ndescription: Who I am\n---\nI am new.\n")
    (root / "reference").mkdir()
    (root / "reference/notes.md").write_text("---\ndescription: notes: many\n---\nn\n")
    with memfs.init(root) as agent:
        persona = agent.memory["system/persona"]
        persona.description = "Who I am: a careful agent"
        persona.value = "\nI am careful.\n\nI keep notes.\n"
        persona.save()
        agent.commit()
        expected = letta_code.compile_memory(root)
        assert "Who I am: a careful agent" not in expected, "Letta shows no persona description"
        assert "I am careful.\n\nI keep notes.\n</self>" in expected
        assert build_letta_context(agent, "HEAD").text == expected
        assert build_letta_context(agent).text == expected, "a clean work tree is HEAD"


def test_the_work_tree_renders_as_it_will_once_committed(
    letta_code: LettaCode, letta_v1_repo: Path
) -> None:
    with open_agent(letta_v1_repo) as agent:
        committed = build_letta_context(agent, "HEAD").text
        (letta_v1_repo / "system/human.md").write_text(
            "---\ndescription: What I know about the user\n---\nName: Ada (edited)\n"
        )
        (letta_v1_repo / "reference/new.md").write_text("---\ndescription: new\n---\nnew\n")
        now = build_letta_context(agent).text
        assert now != committed and "Name: Ada (edited)" in now and "new.md" in now
        assert build_letta_context(agent, "HEAD").text == committed, "--from-head: as Letta"
        agent.commit()
    assert letta_code.compile_memory(letta_v1_repo) == now


def test_memory_metadata_as_compile_local_system_prompt(
    letta_code: LettaCode, letta_v1_repo: Path, tmp_path: Path
) -> None:
    compiled = letta_code.compile_prompt(
        letta_v1_repo,
        agent_id="agent-123",
        conversation_id="conv-9",
        now_iso="2026-01-02T15:04:05.000Z",
        previous_messages=42,
    )
    metadata = MemoryMetadata(
        agent_id="agent-123",
        conversation_id="conv-9",
        compiled_at=datetime(2026, 1, 2, 15, 4, 5, tzinfo=timezone.utc),
        previous_messages=42,
    )
    with open_agent(letta_v1_repo) as agent:
        assert build_letta_context(agent, "HEAD", metadata).text == compiled["coreMemory"]
    result = run_cli(
        *("context", str(letta_v1_repo), "--format", "letta", "--from-head"),
        *("--agent-id", "agent-123", "--conversation-id", "conv-9"),
        *("--now", "2026-01-02T15:04:05Z", "--messages", "42"),
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == compiled["coreMemory"]
    # Midnight is 12 AM in Letta's clock, and an empty repo gives the metadata alone.
    empty = committed_repo(tmp_path / "empty", {"system/.keep": ""})
    at_midnight = letta_code.compile_prompt(empty, now_iso="2026-01-02T00:00:00.000Z")
    with open_agent(empty) as agent:
        midnight = datetime(2026, 1, 2, tzinfo=timezone.utc)
        ours = MemoryMetadata("agent-00000000-0000-4000-8000-000000000000", "default", midnight)
        assert build_letta_context(agent, "HEAD", ours).text == at_midnight["coreMemory"]


def test_unreadable_files_are_reported_and_the_rest_rendered(
    letta_code: LettaCode, tmp_path: Path
) -> None:
    repo = committed_repo(tmp_path / "memory", TRICKY["files Letta cannot read or leaves out"])
    result = run_cli("context", str(repo), "--format", "letta", "--from-head")
    assert result.exit_code == 0
    assert result.stdout == letta_code.compile_memory(repo)
    assert result.stderr.splitlines() == [
        "memfs: system/big.md:1: over 1 MiB: Letta Code leaves it out of the prompt",
        "memfs: system/latin1.md:2: not valid UTF-8 (byte 0xe9): shown as U+FFFD",
    ]
    strict = run_cli("context", str(repo), "--format", "letta", "--from-head", "--strict")
    assert strict.exit_code == 1 and strict.stdout == result.stdout


V2_EXPECTED = """<memory root="${MEMORY_DIR}">
<instructions>
Root Markdown files are core memory and are already loaded below.
A child directory is memory only when it contains MEMORY.md.
Nested Markdown remains deferred. Read a child MEMORY.md before selecting deeper files.
Directories without MEMORY.md remain silent. skills/ follows the Agent Skills format.
</instructions>
<file name="a&amp;b.md">
---
name: "A&b"
description: "an ampersand in the name"
---
amp
</file>
<file name="MEMORY.md">
# Memory

- persona.md: who I am
- projects/: what I work on
</file>
<file name="persona.md">
---
name: "Persona"
description: "Who I am: a coding agent"
---
I am careful.
</file>
<deferred-memory>
<directory path="projects/" index="projects/MEMORY.md" />
</deferred-memory>
</memory>"""


def test_a_v2_repo_renders_its_root_files_and_indexed_folders(
    letta_code: LettaCode, tmp_path: Path
) -> None:
    """renderRootMemoryProjection (letta-code after 0.32.18): root files as they are, sorted
    by localeCompare; folders with a MEMORY.md deferred; the rest (skills, notes/) silent."""
    repo = letta_repo(
        letta_code,
        tmp_path / "memory",
        "v2",
        {
            "MEMORY.md": "# Memory\n\n- persona.md: who I am\n- projects/: what I work on\n\n",
            "persona.md": '---\nname: "Persona"\ndescription: "Who I am: a coding agent"\n---\n'
            "I am careful.\n",
            "a&b.md": '---\nname: "A&b"\ndescription: "an ampersand in the name"\n---\namp\n',
            "projects/MEMORY.md": "# Projects\n",
            "projects/letta.md": '---\nname: "Letta"\ndescription: "Letta"\n---\nLetta.\n',
        },
    )
    server_commit(
        repo,
        {"skills/review/SKILL.md": "---\nname: review\n---\nx\n", "notes/n.md": "silent"},
        "add",
    )
    compiled = letta_code.compile_memory(repo)
    with open_agent(repo) as agent:
        assert build_letta_context(agent, "HEAD", root_projection=True).text == V2_EXPECTED
        # the published Letta Code compiles a v2 repo as v1: every file an external file
        assert build_letta_context(agent, "HEAD").text == compiled
    if compiled.startswith("<memory root="):  # a Letta Code release that renders v2
        assert compiled == V2_EXPECTED
    else:
        assert compiled.startswith("Reminder: <projection>")


def test_a_v2_repo_letta_code_wrote(letta_code: LettaCode, letta_v2_repo: Path) -> None:
    published = run_cli("context", str(letta_v2_repo), "--format", "letta", "--from-head")
    assert published.exit_code == 0, published.stderr
    assert published.stdout == letta_code.compile_memory(letta_v2_repo), "byte for byte"
    result = run_cli(
        "context", str(letta_v2_repo), "--format", "letta", "--from-head", "--root-projection"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith('<memory root="${MEMORY_DIR}">\n<instructions>\n')
    assert '<file name="persona.md">\n---\nname: "Persona"\n' in result.stdout
    assert '<directory path="projects/" index="projects/MEMORY.md" />' in result.stdout
    assert "letta.md" not in result.stdout, "deferred files stay out of the prompt"


def test_before_the_first_commit_letta_compiles_no_memory(
    letta_code: LettaCode, tmp_path: Path
) -> None:
    repo = tmp_path / "memory"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "system").mkdir()
    (repo / "system/persona.md").write_text("---\ndescription: d\n---\nnot committed\n")
    expected = letta_code.compile_prompt(repo, agent_id="a", now_iso="2026-01-01T13:00:00.000Z")
    result = run_cli(
        *("context", str(repo), "--format", "letta", "--from-head"),
        *("--agent-id", "a", "--now", "2026-01-01T13:00:00Z"),
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == expected["coreMemory"]
    assert letta_code.compile_memory(repo) == ""
    now = run_cli("context", str(repo), "--format", "letta")
    assert "not committed" in now.stdout, "the work tree is rendered as it will be committed"


@pytest.mark.parametrize(
    "system",
    ["You are an agent.\n\n{CORE_MEMORY}\n\nEnd: {CORE_MEMORY}", "No variable here.\n\n\n"],
)
def test_the_whole_system_prompt(
    letta_code: LettaCode, letta_v1_repo: Path, tmp_path: Path, system: str
) -> None:
    compiled = letta_code.compile_prompt(
        letta_v1_repo, agent_id="agent-1", now_iso="2026-03-04T05:06:07.000Z", system=system
    )
    (tmp_path / "system.md").write_text(system)
    result = run_cli(
        *("context", str(letta_v1_repo), "--format", "letta", "--from-head"),
        *("--agent-id", "agent-1", "--now", "2026-03-04T05:06:07Z", "--messages", "0"),
        *("--system", str(tmp_path / "system.md")),
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == compiled["content"]
