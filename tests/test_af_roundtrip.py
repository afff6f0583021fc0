"""Letta Agent Files built to hit every edge: two agents sharing blocks, nested labels, a
leading '/', non-ASCII, values over their limit, descriptions Letta's line reader would change,
metadata and secrets. Each comes back equal (secret values excepted, and said), every file
memfs writes is one Letta's hook and reader accept, and the CLI says what it left out."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import memfs
from memfs import lettafm
from memfs.agentfile import (
    AgentFileError,
    AgentFileExportError,
    export_agent_file,
    export_agent_files,
    import_agent_file,
)
from memfs.layout import Layout

from .conftest import assert_git_agrees, git, memfs_process, write
from .test_letta import assert_letta_accepts

SECRET = "sk-test-never-commit-3f9a"
CLI_TIMEOUT = 60


def block(
    block_id: str,
    label: str,
    value: str,
    description: str | None = None,
    limit: int = 20000,
    read_only: bool = False,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A block as Letta's server exports it (BlockSchema)."""
    return {
        "value": value,
        "limit": limit,
        "project_id": None,
        "template_name": None,
        "is_template": False,
        "preserve_on_migration": False,
        "label": label,
        "read_only": read_only,
        "description": description,
        "metadata": metadata or {},
        "hidden": None,
        "id": block_id,
    }


def team_document() -> dict[str, Any]:
    """A main agent and its sleeptime agent sharing two blocks, with secrets everywhere."""
    blocks = [
        block("block-0", "human", "Name: Ada\n", "What I know\nabout the human", limit=5000),
        block("block-1", "persona", "I am Main.", "a: b # not a comment", read_only=True),
        block("block-2", "projects/garden", "Tomatoes\n\n", None),
        block("block-3", "/leading", "  slash  ", "  padded  "),
        block("block-4", "notizen/über-uns", "Grüße 🌱", "Über uns"),
        block("block-5", "scratch", "x" * 120, "#hash first", limit=100),
        block("block-6", "meta", "---\nnot front matter\n---\n", "'quoted'", metadata={"n": 2}),
        block("block-7", "sleep_notes", "", "Sleeptime notes"),
        block("block-8", "orphan", "nobody uses me", "Unused"),
    ]
    main = {
        "id": "agent-0",
        "name": "main",
        "agent_type": "letta_v1_agent",
        "system": "You are Main.",
        "description": "The main agent",
        "block_ids": [f"block-{i}" for i in range(7)],
        "tool_ids": ["tool-0"],
        "secrets": {"OPENAI_API_KEY": SECRET},
        "tool_exec_environment_variables": {"OPENAI_API_KEY": SECRET},
        "llm_config": {"model": "gpt-4o-mini", "context_window": 32000},
        "messages": [{"id": "message-0", "role": "user", "content": [{"text": "hi"}]}],
        "in_context_message_ids": ["message-0"],
        "metadata": {"k": "v"},
        "tags": ["a"],
    }
    sleeptime = {
        "id": "agent-1",
        "name": "main-sleeptime",
        "agent_type": "sleeptime_agent",
        "system": "You tidy memory.",
        "block_ids": ["block-0", "block-1", "block-7"],
        "secrets": {"EMPTY": ""},
        "tool_exec_environment_variables": [{"key": "LIST_KEY", "value": SECRET}],
        "messages": [],
    }
    return {
        "agents": [main, sleeptime],
        "groups": [
            {
                "id": "group-0",
                "agent_ids": ["agent-1"],
                "manager_config": {"manager_type": "sleeptime", "manager_agent_id": "agent-0"},
                "shared_block_ids": [],
            }
        ],
        "blocks": blocks,
        "files": [],
        "sources": [],
        "tools": [{"id": "tool-0", "name": "send_message", "source_code": "def f(): ..."}],
        "mcp_servers": [
            {
                "id": "mcp_server-0",
                "server_type": "stdio",
                "server_name": "github",
                "token": SECRET,
                "custom_headers": {"Authorization": SECRET},
                "stdio_config": {"command": "gh-mcp", "env": {"GH_TOKEN": SECRET}},
            }
        ],
        "metadata": {"revision_id": "abc"},
        "created_at": "2026-03-24T00:00:00Z",
    }


def without_secret_values(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` as it comes back: the same, every secret value empty (as Letta exports)."""
    expected = copy.deepcopy(document)
    main, sleeptime = expected["agents"]
    main["secrets"] = {"OPENAI_API_KEY": ""}
    main["tool_exec_environment_variables"] = {"OPENAI_API_KEY": ""}
    sleeptime["tool_exec_environment_variables"] = [{"key": "LIST_KEY", "value": ""}]
    server = expected["mcp_servers"][0]
    server["token"] = None
    server["custom_headers"] = {"Authorization": ""}
    server["stdio_config"]["env"] = {"GH_TOKEN": ""}
    return expected


SECRETS_LEFT_OUT = [
    "agent 'main' secrets.OPENAI_API_KEY",
    "agent 'main' tool_exec_environment_variables.OPENAI_API_KEY",
    "agent 'main-sleeptime' tool_exec_environment_variables.LIST_KEY",
    "mcp server 'github' token",
    "mcp server 'github' custom_headers.Authorization",
    "mcp server 'github' stdio_config.env.GH_TOKEN",
]


def memfs_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The memfs CLI as a whole process."""
    return memfs_process(*args, cwd=cwd, timeout=CLI_TIMEOUT)


@pytest.fixture
def team_file(tmp_path: Path) -> Path:
    return write(tmp_path, "team.af", json.dumps(team_document(), ensure_ascii=False))


def test_every_block_lands_where_letta_puts_it_written_as_letta_writes_it(
    tmp_path: Path, team_file: Path
) -> None:
    with import_agent_file(team_file, tmp_path / "team") as imported:
        main, sleeptime = imported.agents
        assert (main.root, sleeptime.root) == (
            tmp_path / "team/main",
            tmp_path / "team/main-sleeptime",
        )
        for agent in imported.agents:
            assert agent.layout is Layout.LETTA_V1
            assert not (agent.root / "agent.yaml").exists()
            assert_git_agrees(agent.root)
            assert_letta_accepts(agent.root)
        files = {
            path: (main.root / path).read_text(encoding="utf-8")
            for path in git(main.root, "ls-files", "-z").split("\0")
            if path.endswith(".md")
        }
    assert files == {
        "system/human.md": "---\ndescription: What I know about the human\n---\nName: Ada\n",
        "system/persona.md": "---\ndescription: a: b # not a comment\nread_only: true\n---\nI am Main.",
        "system/projects/garden.md": "---\ndescription: Memory block projects/garden\n---\nTomatoes\n\n",
        "system/leading.md": "---\ndescription: padded\n---\n  slash  ",
        "system/notizen/über-uns.md": "---\ndescription: Über uns\n---\nGrüße 🌱",
        "system/scratch.md": "---\ndescription: #hash first\n---\n" + "x" * 120,
        "system/meta.md": "---\ndescription: 'quoted'\n---\n---\nnot front matter\n---\n",
    }
    # Letta's reader sees each block's value (trimmed, as it does) and a description.
    for path, text in files.items():
        document = lettafm.parse(text)
        original = next(
            b for b in team_document()["blocks"] if path.endswith(b["label"].lstrip("/") + ".md")
        )
        assert document.letta_value == lettafm.js_trim(original["value"])
        assert document.text("description")
    assert (
        sleeptime.root / "system/sleep_notes.md"
    ).read_text() == "---\ndescription: Sleeptime notes\n---\n"
    assert imported.secrets_left_out == SECRETS_LEFT_OUT


def test_two_agents_sharing_blocks_come_back_as_one_equal_file(
    tmp_path: Path, team_file: Path
) -> None:
    with import_agent_file(team_file, tmp_path / "team") as imported:
        result = export_agent_files(imported.agents, tmp_path / "out.af")
    expected = without_secret_values(team_document())
    assert result.document["blocks"] == expected["blocks"], "label, value, description, limit..."
    assert result.document == expected, "settings, tools, messages, groups come back equal"
    assert json.loads((tmp_path / "out.af").read_text(encoding="utf-8")) == expected
    assert result.secrets_left_out == SECRETS_LEFT_OUT
    assert result.warnings == []


def test_one_agent_of_a_set_exports_its_own_file_and_says_what_it_leaves(
    tmp_path: Path, team_file: Path
) -> None:
    with import_agent_file(team_file, tmp_path / "team") as imported:
        main, sleeptime = imported.agents
        mine = export_agent_file(sleeptime, tmp_path / "sleeptime.af")
        main_alone = export_agent_file(main, tmp_path / "main.af")
    expected = without_secret_values(team_document())
    assert mine.document["agents"] == [expected["agents"][1]]
    assert [b["id"] for b in mine.document["blocks"]] == ["block-0", "block-1", "block-7"]
    assert mine.document["blocks"] == [expected["blocks"][i] for i in (0, 1, 7)]
    assert mine.document["tools"] == expected["tools"]
    assert mine.document["groups"] == []
    assert any("left out group 'group-0'" in w for w in mine.warnings)
    assert any("left out block 'orphan'" in w for w in mine.warnings)
    assert main_alone.document["blocks"] == expected["blocks"][:7]
    assert main_alone.document["agents"] == [expected["agents"][0]]


def test_secret_values_are_never_committed(tmp_path: Path, team_file: Path) -> None:
    with import_agent_file(team_file, tmp_path / "team", agent="main") as imported:
        (agent,) = imported.agents
        assert agent.root == tmp_path / "team"
    history = git(agent.root, "log", "--all", "-p", "--format=%H")
    on_disk = [
        p.read_bytes() for p in agent.root.rglob("*") if p.is_file() and ".git" not in p.parts
    ]
    assert SECRET not in history and all(SECRET.encode() not in data for data in on_disk)
    assert '"OPENAI_API_KEY": ""' in history, "the key stays, as in Letta's own exports"
    for key in SECRETS_LEFT_OUT:
        assert any(key in warning for warning in imported.warnings), key


def test_an_edit_to_one_copy_of_a_shared_block_wins_two_different_edits_are_refused(
    tmp_path: Path, team_file: Path
) -> None:
    with import_agent_file(team_file, tmp_path / "team") as imported:
        main, sleeptime = imported.agents
        human = sleeptime.memory["system/human"]
        human.value = "Name: Ada Lovelace\n"
        human.save()
        result = export_agent_files([main, sleeptime], tmp_path / "one.af")
        shared = next(b for b in result.document["blocks"] if b["id"] == "block-0")
        assert (shared["value"], shared["limit"]) == ("Name: Ada Lovelace\n", 5000)
        assert shared["description"] == "What I know\nabout the human"
        other = main.memory["system/human"]
        other.value = "Name: Ada Byron\n"
        other.save()
        with pytest.raises(AgentFileExportError, match="block 'human' is shared by"):
            export_agent_files([main, sleeptime], tmp_path / "two.af")
    assert not (tmp_path / "two.af").exists()
    run = memfs_cli("export-af", "team/main", "team/main-sleeptime", "-o", "two.af", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and "edited differently in each" in run.stderr
    assert not (tmp_path / "two.af").exists()


def test_a_field_comes_from_the_file_only_once_the_file_changed_it(
    tmp_path: Path, team_file: Path
) -> None:
    with import_agent_file(team_file, tmp_path / "team", agent="main") as imported:
        (agent,) = imported.agents
        human = agent.memory["system/human"]
        human.description = "Who Ada is"
        human.save()
        write(agent.root, "system/new/idea.md", "---\ndescription: Fresh\nlimit: 40\n---\nIdea\n")
        (agent.root / "system/leading.md").unlink()
        agent.commit()
        document = export_agent_file(agent, tmp_path / "out.af").document
    blocks = {b["label"]: b for b in document["blocks"]}
    assert blocks["human"]["description"] == "Who Ada is"
    assert blocks["human"]["limit"] == 5000, "limit stays from the sidecar"
    assert blocks["projects/garden"]["description"] is None, "the file's fallback is not exported"
    assert blocks["persona"]["read_only"] is True
    assert "/leading" not in blocks, "a deleted file is a deleted block"
    new = blocks["new/idea"]
    assert (new["value"], new["description"], new["limit"]) == ("Idea\n", "Fresh", 40)
    assert document["agents"][0]["block_ids"][-1] == new["id"]
    assert "block-3" not in document["agents"][0]["block_ids"]


def test_native_flag_makes_a_memfs_agent_that_round_trips(tmp_path: Path, team_file: Path) -> None:
    with import_agent_file(team_file, tmp_path / "team", native=True) as imported:
        for agent in imported.agents:
            assert agent.layout is Layout.NATIVE and (agent.root / "agent.yaml").is_file()
            assert agent.check() == [] or all(p.severity == "warning" for p in agent.check())
        result = export_agent_files(imported.agents, tmp_path / "out.af")
    assert result.document == without_secret_values(team_document())


def test_cli_imports_every_agent_and_warns_of_what_it_leaves_out(
    tmp_path: Path, team_file: Path
) -> None:
    run = memfs_cli("import-af", "team.af", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert [(a["name"], a["layout"], a["blocks"]) for a in report["agents"]] == [
        ("main", "letta-v1", 7),
        ("main-sleeptime", "letta-v1", 3),
    ]
    assert report["secrets_left_out"] == SECRETS_LEFT_OUT
    lines = run.stderr.splitlines()
    assert (
        "memfs: warning: block 'scratch' of agent 'main' is 120 characters, over its limit "
        "of 100: imported whole (a limit is advisory)" in lines
    )
    assert sum("secret" in line for line in lines) == len(SECRETS_LEFT_OUT)
    check = memfs_cli("check", cwd=tmp_path / "team" / "main")
    assert check.returncode == 0, check.stdout + check.stderr
    export = memfs_cli(
        "export-af", "team/main", "team/main-sleeptime", "-o", "out.af", "--json", cwd=tmp_path
    )
    assert export.returncode == 0, export.stderr
    assert json.loads(export.stdout)["secrets_left_out"] == SECRETS_LEFT_OUT
    assert "has no values for 6 secrets left out at import" in export.stderr
    exported = json.loads((tmp_path / "out.af").read_text(encoding="utf-8"))
    assert exported == without_secret_values(team_document())


def test_cli_refusals_are_one_line_and_write_nothing(tmp_path: Path, team_file: Path) -> None:
    document = team_document()
    document["blocks"].append(block("block-9", "system/human", "clash"))
    document["agents"][0]["block_ids"].append("block-9")
    write(tmp_path, "clash.af", json.dumps(document))
    write(tmp_path, "old.af", json.dumps({"name": "old", "core_memory": 3}))
    cases = [
        (
            ("import-af", "clash.af", "out"),
            1,
            "blocks 'human' and 'system/human' would both be the memory file system/human.md",
        ),
        (
            ("import-af", "team.af", "out", "--agent", "nobody"),
            1,
            "it holds no agent named 'nobody' (it holds 'main', 'main-sleeptime')",
        ),
        (("import-af", "old.af", "out"), 1, "its 'core_memory' is not a list of blocks"),
        (("import-af", "none.af", "out"), 1, "none.af is not a usable Letta Agent File: no such"),
        (("export-af", "nowhere", "-o", "x.af"), 3, "nowhere"),
    ]
    for args, code, message in cases:
        run = memfs_cli(*args, cwd=tmp_path)
        assert run.returncode == code, (args, run.returncode, run.stderr)
        assert run.stderr.count("\n") == 1 and message in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clash.af", "old.af", "team.af"]
    (tmp_path / "full").mkdir()
    write(tmp_path / "full", "main/keep.txt", "mine")
    run = memfs_cli("import-af", "team.af", "full", cwd=tmp_path)
    assert (run.returncode, run.stderr.count("\n")) == (1, 1)
    assert "already exists and is not empty" in run.stderr
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["main"], "nothing written"


def test_cli_agent_option_imports_one(tmp_path: Path, team_file: Path) -> None:
    run = memfs_cli("import-af", "team.af", "sleepy", "--agent", "main-sleeptime", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"Imported main-sleeptime into {tmp_path / 'sleepy'} (3 memory blocks)\n"
    agent = memfs.open(tmp_path / "sleepy")
    with agent:
        assert sorted(agent.memory) == ["system/human", "system/persona", "system/sleep_notes"]


def test_agents_from_different_imports_are_not_exported_as_one(
    tmp_path: Path, team_file: Path, agent: memfs.Agent
) -> None:
    with (
        import_agent_file(team_file, tmp_path / "one") as one,
        import_agent_file(team_file, tmp_path / "two") as two,
    ):
        with pytest.raises(AgentFileExportError, match=r"imported from different \.af files"):
            export_agent_files([one.agents[0], two.agents[1]], tmp_path / "x.af")
        with (
            pytest.raises(AgentFileExportError, match="are the same agent of the"),
            memfs.open(one.agents[0].root) as again,
        ):
            export_agent_files([one.agents[0], again], tmp_path / "x.af")
        with pytest.raises(AgentFileExportError, match=r"was not imported from an \.af file"):
            export_agent_files([one.agents[0], agent], tmp_path / "x.af")
    assert not (tmp_path / "x.af").exists()


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
LABEL = st.text(st.sampled_from("abcXYZ_-/. \\ü🌱:#'\"\r\n\t"), min_size=1, max_size=12)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    blocks=st.lists(
        st.tuples(LABEL, TEXT, st.none() | TEXT, st.booleans(), st.integers(0, 50)),
        min_size=1,
        max_size=4,
    )
)
def test_any_block_that_is_imported_comes_back_equal(
    tmp_path_factory: pytest.TempPathFactory, blocks: list[tuple[str, str, str | None, bool, int]]
) -> None:
    """Whatever the label, value and description, an accepted import round-trips exactly; a
    refused one writes nothing."""
    tmp = tmp_path_factory.mktemp("any")
    document = {
        "agents": [{"id": "agent-0", "name": "any", "block_ids": []}],
        "blocks": [],
    }
    for i, (label, value, description, read_only, limit) in enumerate(blocks):
        document["blocks"].append(block(f"block-{i}", label, value, description, limit, read_only))
        document["agents"][0]["block_ids"].append(f"block-{i}")
    source = write(tmp, "any.af", json.dumps(document))
    try:
        imported = import_agent_file(source, tmp / "agent")
    except AgentFileError:
        assert not (tmp / "agent").exists()
        return
    with imported:
        (agent,) = imported.agents
        assert_letta_accepts(agent.root)
        assert export_agent_file(agent, tmp / "out.af").document == document
