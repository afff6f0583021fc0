"""memfs context: pinned blocks in full, the rest as a tree, conflicts first, errors named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import memfs
from memfs.context import build_context
from memfs.localecompare import collation_key

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


def test_a_file_memfs_cannot_read_is_reported_and_the_rest_shown(agent: memfs.Agent) -> None:
    write(agent.root, "system/human.md", "---\nlimit: 5\n---\nfar too long\n")
    result = run_cli("-C", str(agent.root), "context")
    assert result.exit_code == 0 and result.stderr == "", "a limit is advisory"
    assert "far too long" in result.stdout
    write(agent.root, "system/human.md", "---\ndescription: [broken\n---\nx\n")
    (agent.root / "reference").mkdir()
    (agent.root / "reference/latin1.md").write_bytes(b"caf\xe9\n")
    result = run_cli("-C", str(agent.root), "context")
    assert result.exit_code == 0, "one broken file never fails the whole agent"
    assert result.stderr.splitlines() == [
        "memfs: reference/latin1.md:1: not valid UTF-8 (byte 0xe9 on line 1)",
        "memfs: system/human.md:3: invalid YAML: did not find expected ',' or ']'",
    ]
    assert "<system/persona>" in result.stdout and "<system/human>" not in result.stdout
    data = json.loads(run_cli("-C", str(agent.root), "context", "--format", "json").stdout)
    assert [p["path"] for p in data["problems"]] == ["reference/latin1.md", "system/human.md"]
    assert [b["label"] for b in data["blocks"]] == ["system/persona"]
    strict = run_cli("-C", str(agent.root), "context", "--strict")
    assert strict.exit_code == 1 and strict.stdout == result.stdout
    listed = run_cli("-C", str(agent.root), "ls")
    assert listed.exit_code == 0 and listed.stderr == result.stderr
    assert "system/human" in listed.stdout and "reference/latin1" in listed.stdout


def test_letta_layouts_in_text_and_json(tmp_path: Path) -> None:
    """v1: system/ is pinned. v2: the root *.md files are; a folder without MEMORY.md is not
    memory at all, nor is skills/ (Letta's isProjectedMemoryPath)."""
    v1 = tmp_path / "v1"
    write(v1, "system/persona.md", "---\ndescription: a: b\n---\nI am v1.\n")
    write(v1, "reference/notes.md", "---\ndescription: # Notes\n---\nn\n")
    write(v1, "notes.txt", "not memory in a Letta repo")
    with memfs.init(v1) as agent:
        built = build_context(agent)
    assert [(b.label, b.description) for b in built.blocks] == [("system/persona", "a: b")]
    assert [(f.path, f.description) for f in built.files] == [("reference/notes.md", "# Notes")]
    v2 = tmp_path / "v2"
    write(v2, "MEMORY.md", "# Memory\n")
    write(v2, "persona.md", '---\nname: "Persona"\ndescription: "Who: me"\n---\nI am v2.\n')
    write(v2, "projects/MEMORY.md", "# Projects\n")
    write(v2, "projects/letta.md", '---\nname: "Letta"\ndescription: "L"\n---\nx\n')
    write(v2, "drafts/silent.md", '---\nname: "S"\ndescription: "s"\n---\nx\n')
    write(v2, "skills/review/SKILL.md", "---\nname: review\ndescription: r\n---\nx\n")
    with memfs.init(v2) as agent:
        built = build_context(agent, "HEAD")
        assert build_context(agent).to_dict() == built.to_dict()
    assert [(b.label, b.description) for b in built.blocks] == [
        ("MEMORY", None),
        ("persona", "Who: me"),
    ]
    assert [f.path for f in built.files] == ["projects/MEMORY.md", "projects/letta.md"]
    result = run_cli("context", str(v2))
    assert result.exit_code == 0 and result.stderr == ""
    assert "<persona>\n<description>\nWho: me\n</description>" in result.stdout


def test_letta_only_options_need_the_letta_format(agent: memfs.Agent) -> None:
    result = run_cli("-C", str(agent.root), "context", "--agent-id", "x")
    assert result.exit_code == 2 and "--agent-id goes with --format letta" in result.stderr
    result = run_cli("-C", str(agent.root), "context", "--messages", "0")
    assert result.exit_code == 2 and "--messages goes with --format letta" in result.stderr
    result = run_cli("-C", str(agent.root), "context", "--from-head", "--rev", "HEAD")
    assert result.exit_code == 2
    result = run_cli("-C", str(agent.root), "context", "--format", "letta", "--now", "soon")
    assert result.exit_code == 2 and "not an ISO 8601 time" in result.stderr


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


MARKED = "<<<<<<< 1a2b3c4\nmine\n=======\ntheirs\n>>>>>>> 5d6e7f8\n"
OTHER = "---\ndescription: other\n---\nCOPY-CONTENT\n"
# layout -> (files that make it, its conflict copy of the pinned file, its file with markers)
LAYOUT_CONFLICTS = {
    "native": (
        {},
        "system/persona.conflict-1a2b3c4.md",
        "reference/notes.md",
    ),
    "letta-v1": (
        {"system/persona.md": "---\ndescription: me\n---\nI am v1.\n"},
        ".memfs-conflicts/system/persona.md.conflict-1a2b3c4",
        "reference/notes.md",
    ),
    "letta-v2": (
        {
            "MEMORY.md": "# Memory\n",
            "persona.md": '---\nname: "Persona"\ndescription: "me"\n---\nI am v2.\n',
        },
        ".memfs-conflicts/persona.md.conflict-1a2b3c4",
        "notes.txt",
    ),
}


@pytest.mark.parametrize("layout", sorted(LAYOUT_CONFLICTS))
def test_open_conflicts_come_first_with_and_without_a_revision(layout: str, tmp_path: Path) -> None:
    """For every layout, from the work tree and from a commit (--rev): both the conflict copy
    (in a Letta repo under .memfs-conflicts/, which is not memory) and a file with markers
    are listed first, in text and JSON, and the copy is never a block."""
    root = tmp_path / layout
    files, copy, marked = LAYOUT_CONFLICTS[layout]
    for path, text in files.items():
        write(root, path, text)
    with memfs.init(root, name="conflicted") as agent:
        assert agent.layout.is_letta == (layout != "native")
        write(root, copy, OTHER)
        write(root, marked, MARKED)
        agent.commit()
        original = copy.removeprefix(".memfs-conflicts/").replace(".conflict-1a2b3c4", "")
        expected = [
            {"path": original, "kind": "copy", "copy_path": copy},
            {"path": marked, "kind": "markers", "copy_path": None},
        ]
        expected.sort(key=lambda conflict: str(conflict["copy_path"] or conflict["path"]))
        for rev in (None, "HEAD"):
            built = build_context(agent, rev)
            assert built.to_dict()["conflicts"] == expected, rev
            text = built.render()
            assert text.startswith("<memory_conflicts>\n"), rev
            assert f"- {original} (other version: {copy})" in text
            assert f"- {marked} (conflict markers inside)" in text
            assert "COPY-CONTENT" not in text, "a conflict copy is never rendered as a block"
        for args in ((), ("--rev", "HEAD")):
            result = run_cli("context", str(root), "--format", "json", *args)
            assert result.exit_code == 0, result.stderr
            data = json.loads(result.output)
            assert list(data)[:2] == ["agent", "conflicts"] and data["conflicts"] == expected
        write(root, copy, "")
        (root / copy).unlink()
        agent.commit()
        assert [c["path"] for c in build_context(agent, "HEAD~1").to_dict()["conflicts"]] == [
            c["path"] for c in expected
        ]
        assert build_context(agent, "HEAD").conflicts == build_context(agent).conflicts


# The order node (ICU 78, en-US) gives these with localeCompare, checked when written.
ICU_ORDER = [
    "\t", " ", "_", "-", ",", ";", ":", "!", "?", ".", "'", '"', "(", ")", "[", "]", "{", "}",
    "@", "*", "/", "\\", "&", "#", "%", "`", "^", "+", "<", "=", ">", "|", "~", "$",
    "0", "1", "½", "10", "2", "²", "9", "a", "A", "á", "Á", "ä", "ab", "aB", "Ab", "ae", "æ",
    "Æ", "af", "b_c", "b-c", "B-c", "bc", "d", "đ", "ð", "e", "é", "f", "fi", "ﬁ", "i", "ı",  # noqa: RUF001
    "l", "ł", "m", "o", "ø", "ss", "ß", "st", "th", "x y", "Ⅻ", "xy", "z", "þ", "α", "Ω",  # noqa: RUF001
    "е", "ж", "א", "ا", "가", "あ", "ア", "い", "一", "丁",  # noqa: RUF001
]  # fmt: skip


# Typographic marks in file names: dashes, quotes, bullets, emoji, currencies (node's order).
ICU_MARKS_ORDER = [
    "a-b", "a\u2013b", "a\u2014b", "a\u2026", "a.b", "a\u00b7b", "a's", "a\u2018s", "a\u2019s",
    'a"q"', "a\u201cq\u201d", "a\u2022b", "a\u00a9", "a\u2192b", "a\u00b1", "a\u2705",
    "a\U0001f600", "a\U0001f680", "a$", "a\u20ac", "ab",
]  # fmt: skip


def test_collation_key_orders_as_localecompare() -> None:
    for expected in (ICU_ORDER, ICU_MARKS_ORDER):
        shuffled = sorted(expected, key=lambda text: text.encode()[::-1])
        assert sorted(shuffled, key=collation_key) == expected
    assert collation_key("x\u200by") == collation_key("xy"), "format characters are ignored"
    assert collation_key("e\u0301") == collation_key("é"), "canonically equal strings are equal"
    assert collation_key("\u0661") == collation_key("1"), "digits of every script are digits"
