"""Letta Agent Files: the real fixtures round-trip; edits are carried; bad files are clear."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import memfs
from memfs import lettafm
from memfs.agentfile import AgentFileError, export_agent_file, import_agent_file, read_agent_file
from memfs.layout import Layout

from .conftest import assert_git_agrees, run_cli, write

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "agent-file"
AGENT_FILES = sorted(FIXTURES.glob("*.af"))


def blocks_of(document: dict) -> list[tuple]:
    return [
        (b["label"], b["value"], b["description"], b["limit"], b["read_only"], b["metadata"])
        for b in document["blocks"]
    ]


def assert_letta_accepts(root: Path) -> None:
    """Every Markdown file under system/ passes Letta's pre-commit hook rules for a new file.

    memfs.lettafm's port of the hook, so these round trips run without node; the same files
    go through Letta Code's own hook and reader in tests/test_af_lettacode.py.
    """
    for file in sorted((root / "system").rglob("*.md")):
        path = file.relative_to(root).as_posix()
        text = file.read_text(encoding="utf-8")
        read_only = lettafm.read_only_at(text)
        assert lettafm.validate(path, text, None, v2=False, changes=read_only is False) == []


def test_the_fixtures_are_there() -> None:
    assert len(AGENT_FILES) == 4, f"expected the agent-file fixtures in {FIXTURES}"


@pytest.mark.parametrize("source", AGENT_FILES, ids=lambda p: p.stem)
def test_import_then_export_gives_back_the_same_document(tmp_path: Path, source: Path) -> None:
    original = read_agent_file(source)
    with import_agent_file(source, tmp_path / "agent") as imported:
        (agent,) = imported.agents
        assert_git_agrees(agent.root)
        assert agent.layout is Layout.LETTA_V1 and not (agent.root / "agent.yaml").exists()
        labels = {m.label.removeprefix("system/") for m in agent.memory.values() if m.pinned}
        assert labels == {b["label"] for b in original["blocks"]}
        assert_letta_accepts(agent.root)
        exported = export_agent_file(agent, tmp_path / "out.af").document
    assert imported.warnings == []
    assert blocks_of(exported) == blocks_of(original)
    assert exported == original, "settings, tools and messages come back as they were"
    assert json.loads((tmp_path / "out.af").read_text()) == original


def test_an_edit_is_carried_into_the_export(tmp_path: Path) -> None:
    source = FIXTURES / "memgpt_agent.af"
    (agent,) = import_agent_file(source, tmp_path / "agent").agents
    human = agent.memory["system/human"]
    human.value += "Favourite colour: green\n"
    human.save()
    agent.commit()
    write(
        agent.root,
        "system/projects.md",
        "---\ndescription: Current projects\nlimit: 500\n---\nmemfs\n",
    )
    (agent.root / "system/persona.md").unlink()
    result = run_cli("export-af", str(agent.root), "-o", str(tmp_path / "edited.af"))
    assert result.exit_code == 0, result.stderr
    exported = json.loads((tmp_path / "edited.af").read_text())
    blocks = {b["label"]: b for b in exported["blocks"]}
    assert blocks["human"]["value"].endswith("Favourite colour: green\n")
    assert "persona" not in blocks
    assert (blocks["projects"]["value"], blocks["projects"]["limit"]) == ("memfs\n", 500)
    assert set(exported["agents"][0]["block_ids"]) == {b["id"] for b in exported["blocks"]}
    original = read_agent_file(source)
    assert (
        exported["agents"][0]["tools"] == original["agents"][0]["tools"]
        if "tools" in original["agents"][0]
        else True
    )
    assert exported["tools"] == original["tools"]


def test_double_encoded_files_are_read() -> None:
    raw = json.loads((FIXTURES / "customer_service.af").read_text())
    assert isinstance(raw, str), "this fixture is a JSON string holding the document"
    assert (
        read_agent_file(FIXTURES / "customer_service.af")["agents"][0]["name"] == "customer_service"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"blocks": []}', "it has no 'agents' list"),
        ('{"agents": []}', "its 'agents' list is empty"),
        ('{"name": "old", "core_memory": 3}', "its 'core_memory' is not a list of blocks"),
        ('{"agents": [{"name": "a", "block_ids": 5}]}', "agent 'a' has 'block_ids' that are not"),
        (
            '{"agents": [{"block_ids": ["b"]}], "blocks": [{"id": "b", "label": "h"}]}',
            "block 'h' has no text value",
        ),
        ('{"agents": [{}], "blocks": [7]}', "an entry of 'blocks' is not an object"),
        ('{"agents": [{}], "groups": {}}', "'groups' is not a list"),
        ('{"agents": [{}], "blocks": [{"id": ["b"]}]}', "block None has an id that is not text"),
        ('{"agents": [{}], "blocks": [{"id": "b"}, {"id": "b"}]}', "two blocks have the id 'b'"),
        ('{"agents": [1]}', "an entry of 'agents' is not an object"),
        ('"just a string"', "not valid JSON"),
        ('"[1, 2]"', "it has no 'agents' list"),
    ],
)
def test_malformed_agent_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    bad = write(tmp_path, "bad.af", content)
    with pytest.raises(AgentFileError, match=message):
        import_agent_file(bad, tmp_path / "agent")
    result = run_cli("import-af", str(bad), str(tmp_path / "agent2"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"memfs: {bad} is not a usable Letta Agent File: {message}")
    assert not (tmp_path / "agent2").exists()


def test_export_of_a_native_agent(agent: memfs.Agent, tmp_path: Path) -> None:
    document = export_agent_file(agent, tmp_path / "native.af").document
    assert document["agents"][0]["name"] == "test-agent"
    assert {b["label"] for b in document["blocks"]} == {"human", "persona"}


def agent_file_with(blocks: list[tuple[str, str]]) -> dict:
    """A minimal one-agent .af document holding ``blocks`` as (label, value)."""
    return {
        "agents": [{"name": "lossy", "block_ids": [f"block-{i}" for i in range(len(blocks))]}],
        "blocks": [
            {"id": f"block-{i}", "label": label, "value": value, "limit": 5000}
            for i, (label, value) in enumerate(blocks)
        ],
    }


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([("human", "one"), ("human", "two")], "would both be the memory file system/human.md"),
        ([("human", "one"), ("system/human", "two")], "would both be the memory file"),
        ([("Human", "one"), ("human", "two")], "would both be the memory file"),
        ([("human", "one"), ("human.md", "two")], "would both be the memory file"),
        ([("human", "x" * (10 * 1024 * 1024 + 1))], "over the 10485760-byte size cap"),
        ([("notes/../../outside", "x")], "a '.' or '..' in its path"),
        ([(".env", "x")], "memfs leaves such files out"),
    ],
    ids=[
        "same-label",
        "label-and-system-label",
        "same-but-case",
        "label-and-label-dot-md",
        "over-the-cap",
        "dot-dot",
        "ignored-name",
    ],
)
def test_an_import_that_would_drop_a_block_is_refused_before_writing(
    tmp_path: Path, blocks: list[tuple[str, str]], message: str
) -> None:
    source = write(tmp_path, "lossy.af", json.dumps(agent_file_with(blocks)))
    with pytest.raises(AgentFileError, match=message):
        import_agent_file(source, tmp_path / "agent")
    assert not (tmp_path / "agent").exists()
    result = run_cli("import-af", str(source), str(tmp_path / "agent"))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and message.split(" ")[0] in result.stderr
    assert not (tmp_path / "agent").exists()


def test_every_imported_block_is_committed_and_exported(tmp_path: Path) -> None:
    blocks = [("human", "h"), ("projects/garden", "g"), ("system/style", "s"), ("a\\b", "x")]
    source = write(tmp_path, "fine.af", json.dumps(agent_file_with(blocks)))
    (agent,) = import_agent_file(source, tmp_path / "agent").agents
    assert_git_agrees(agent.root)
    tree = agent.history.tree_of(agent.history.head())
    expected = {"system/human.md", "system/projects/garden.md", "system/style.md", "system/a/b.md"}
    assert expected <= set(tree)
    exported = export_agent_file(agent, tmp_path / "out.af").document
    assert sorted(b["label"] for b in exported["blocks"]) == sorted(label for label, _ in blocks)


def test_an_agent_imported_before_exports_as_before(tmp_path: Path) -> None:
    """A memfs-native agent with the first sidecar format (blocks named by memfs_path)."""
    agent = memfs.init(tmp_path / "old", templates=False)
    write(
        agent.root,
        "system/human.md",
        "---\ndescription: Who\nlimit: 500\nread_only: false\n---\nAda\n",
    )
    write(agent.root, "projects/garden.md", "---\ndescription: Beds\n---\nTomatoes\n")
    stubs = [
        {"id": "block-1", "label": "human", "memfs_path": "system/human.md", "metadata": {}},
        {"id": "block-2", "label": "projects/garden", "memfs_path": "projects/garden.md"},
    ]
    sidecar = {"agents": [{"name": "old", "block_ids": ["block-1", "block-2"]}], "blocks": stubs}
    write(agent.root, ".letta/agent-file.json", json.dumps(sidecar))
    agent.commit()
    exported = export_agent_file(agent, tmp_path / "out.af").document
    assert [(b["label"], b["value"], b["description"], b["limit"]) for b in exported["blocks"]] == [
        ("human", "Ada\n", "Who", 500),
        ("projects/garden", "Tomatoes\n", "Beds", None),
    ]


def test_odd_groups_come_back_as_they_were(tmp_path: Path) -> None:
    document = agent_file_with([("human", "h")])
    document["groups"] = [5, {"id": "g", "agent_ids": 3}, {"id": "h", "agent_ids": ["x"]}]
    source = write(tmp_path, "odd.af", json.dumps(document))
    (agent,) = import_agent_file(source, tmp_path / "agent").agents
    exported = export_agent_file(agent, tmp_path / "out.af")
    assert exported.document["groups"] == [5, {"id": "g", "agent_ids": 3}]
    assert exported.warnings == [
        "left out group 'h': it names agents not in this export (export them together to keep it)"
    ]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"agent_index": 7}, "its 'agent_index' names no agent"),
        ({"files": {"block-0": "system/human.md"}}, "its 'files' are not a map"),
        ({"document": {"agents": "x"}}, "it has no 'agents' list"),
        ({"source": None}, "its 'source' or 'secrets_left_out' is damaged"),
    ],
)
def test_a_damaged_sidecar_is_one_clear_error(tmp_path: Path, damage: dict, message: str) -> None:
    source = write(tmp_path, "in.af", json.dumps(agent_file_with([("human", "h")])))
    (agent,) = import_agent_file(source, tmp_path / "agent").agents
    sidecar = agent.root / ".letta/agent-file.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), **damage}))
    result = run_cli("export-af", str(agent.root), "-o", str(tmp_path / "out.af"))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"memfs: {sidecar} is not a usable Letta Agent File: {message}")
    assert not (tmp_path / "out.af").exists()


FIRST_SCHEMA = FIXTURES / "first-schema" / "deep-thought.af"


def test_a_file_of_lettas_first_schema_comes_back_in_it(tmp_path: Path) -> None:
    original = json.loads(FIRST_SCHEMA.read_text(encoding="utf-8"))
    assert "core_memory" in original and "agents" not in original
    (agent,) = import_agent_file(FIRST_SCHEMA, tmp_path / "agent").agents
    assert sorted(agent.memory) == [
        f"system/{b['label']}" for b in sorted(original["core_memory"], key=lambda b: b["label"])
    ]
    assert_letta_accepts(agent.root)
    assert export_agent_file(agent, tmp_path / "out.af").document == original
    write(agent.root, "system/new.md", "---\ndescription: Fresh\n---\nIdea\n")
    exported = export_agent_file(agent, tmp_path / "edited.af").document
    new = exported["core_memory"][-1]
    assert "agents" not in exported and "blocks" not in exported
    assert {k: new[k] for k in ("label", "value", "description", "metadata_", "limit")} == {
        "label": "new",
        "value": "Idea\n",
        "description": "Fresh",
        "metadata_": {},
        "limit": 100000,
    }
    assert set(new) == set(original["core_memory"][0]), "the first schema's fields, no others"


def test_memfs_letta_still_gives_the_agentfile_api() -> None:
    """Code written against ``memfs.letta`` keeps working: each name is agentfile's own."""
    import memfs.agentfile
    import memfs.letta
    from memfs.agentfile import document, sidecar

    homes = [memfs.agentfile, document, sidecar]
    for name in memfs.letta.__all__:
        home = next(module for module in homes if hasattr(module, name))
        assert getattr(memfs.letta, name) is getattr(home, name), name
    assert set(memfs.agentfile.__all__) <= set(memfs.letta.__all__)
