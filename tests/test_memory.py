"""Memory files: editing round-trips every byte it should; problems are located to a line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memfs.errors import SchemaError
from memfs.memory import MemoryFile, is_memory_path, label_of

from .conftest import write

PERSONA = """---
description: Who I am.
limit: 100
color: blue   # an unknown key, with a comment
tags: [a, b]
---
I am helpful.
"""


def load(root: Path, path: str, text: str | bytes) -> MemoryFile:
    write(root, path, text)
    return MemoryFile.load(root, path)


def test_reads_known_keys_and_body(tmp_path: Path) -> None:
    memory = load(tmp_path, "system/persona.md", PERSONA)
    assert memory.label == "system/persona"
    assert memory.pinned
    assert (memory.description, memory.limit, memory.read_only) == ("Who I am.", 100, False)
    assert memory.value == "I am helpful.\n"
    assert memory.extra == {"color": "blue", "tags": ["a", "b"]}


def test_editing_the_body_keeps_front_matter_byte_for_byte(tmp_path: Path) -> None:
    memory = load(tmp_path, "system/persona.md", PERSONA)
    memory.value = "I am very helpful.\n\n  indented  \n"
    memory.save()
    text = (tmp_path / "system/persona.md").read_text()
    assert text == PERSONA.replace("I am helpful.\n", "I am very helpful.\n\n  indented  \n")


def test_editing_metadata_keeps_unknown_keys_and_body(tmp_path: Path) -> None:
    memory = load(tmp_path, "reference/notes.md", PERSONA)
    memory.description = "Changed."
    memory.read_only = True
    memory.save()
    again = MemoryFile.load(tmp_path, "reference/notes.md")
    assert again.description == "Changed."
    assert again.read_only is True
    assert again.extra == {"color": "blue", "tags": ["a", "b"]}
    assert again.value == "I am helpful.\n"
    assert not again.pinned


def test_untouched_file_saves_identically(tmp_path: Path) -> None:
    original = "---\r\ndescription: crlf file\r\n---\r\nline one\r\nline two"
    memory = load(tmp_path, "a.md", original)
    memory.save()
    assert (tmp_path / "a.md").read_bytes() == original.encode()


@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=300))
def test_any_body_round_trips_through_save(
    tmp_path_factory: pytest.TempPathFactory, body: str
) -> None:
    root = tmp_path_factory.mktemp("rt")
    memory = load(root, "m.md", PERSONA)
    memory.value = body
    memory.save()
    assert MemoryFile.load(root, "m.md").value == body
    assert MemoryFile.load(root, "m.md").extra == {"color": "blue", "tags": ["a", "b"]}


def test_body_that_looks_like_front_matter_survives_a_file_without_any(tmp_path: Path) -> None:
    memory = load(tmp_path, "plain.md", "plain text\n")
    memory.value = "---\nnot: metadata\n---\n"
    memory.save()
    again = MemoryFile.load(tmp_path, "plain.md")
    assert again.value == "---\nnot: metadata\n---\n"
    assert again.metadata == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\ndescription: [unclosed\n---\nbody", "m.md:3: invalid YAML"),
        ("---\nlimit: lots\n---\nbody", "m.md:2: limit: must be a whole number, got 'lots'"),
        ("---\nread_only: yes please\n---\n", "m.md:2: read_only: must be true or false"),
        ("---\ndescription: 5\n---\n", "m.md:2: description: must be text, got 5"),
        ("---\nlimit: 0\n---\n", "m.md:2: limit: must be greater than 0"),
        ("---\n- a list\n---\n", "m.md:2: front matter must be a mapping"),
        ("---\nno closing fence\n", "m.md:1: front matter starts with '---' but has no closing"),
    ],
)
def test_problems_name_the_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    problems = load(tmp_path, "m.md", text).problems()
    assert problems, "expected a problem"
    assert problems[0].render().startswith(expected)
    assert problems[0].severity == "error"


def test_a_limit_is_advisory_a_warning_never_an_error(tmp_path: Path) -> None:
    """As in Letta, where ``limit`` is legacy: a value over it is saved and only warned about."""
    problems = load(tmp_path, "m.md", "---\na: 1\n\nlimit: 3\n---\nfour").problems()
    over = [p for p in problems if "over its limit" in p.message]
    assert [p.render() for p in over] == [
        "m.md:4: warning: body is 4 characters, over its limit of 3 (advisory)"
    ]


def test_unknown_keys_are_warnings(tmp_path: Path) -> None:
    problems = load(tmp_path, "m.md", PERSONA).problems()
    assert [p.render() for p in problems] == [
        "m.md:4: warning: unknown front matter key 'color' (kept)",
        "m.md:5: warning: unknown front matter key 'tags' (kept)",
    ]


def test_non_utf8_and_binary_files_are_problems_not_crashes(tmp_path: Path) -> None:
    latin = load(tmp_path, "latin.md", "caf\xe9\nline".encode("latin-1"))
    assert latin.problems()[0].render() == "latin.md:1: not valid UTF-8 (byte 0xe9 on line 1)"
    binary = load(tmp_path, "bin.md", b"\x89PNG\x00\xff\x00")
    assert "binary content" in binary.problems()[0].message
    with pytest.raises(SchemaError, match=r"latin\.md:1: not valid UTF-8"):
        latin.save()
    assert (tmp_path / "latin.md").read_bytes() == "caf\xe9\nline".encode("latin-1")


def test_broken_front_matter_is_never_overwritten_by_save(tmp_path: Path) -> None:
    broken = "---\ndescription: [unclosed\n---\nbody"
    memory = load(tmp_path, "m.md", broken)
    memory.value = "new body"
    with pytest.raises(SchemaError):
        memory.save()
    assert (tmp_path / "m.md").read_text() == broken


def test_yaml_memory_files(tmp_path: Path) -> None:
    good = load(tmp_path, "reference/contacts.yaml", "description: People\nalice: a@x\n")
    assert (good.kind, good.description, good.problems()) == ("yaml", "People", [])
    bad = load(tmp_path, "reference/bad.yml", "a: 1\nb: [\n")
    assert bad.problems()[0].render().startswith("reference/bad.yml:3: invalid YAML")
    not_mapping = load(tmp_path, "list.yaml", "- 1\n- 2\n")
    assert not_mapping.problems()[0].message == "a YAML memory file must be a mapping"


def test_memory_paths_and_labels() -> None:
    assert is_memory_path("system/persona.md")
    assert is_memory_path("notes/x.yml")
    assert not is_memory_path("agent.yaml")
    assert not is_memory_path("image.png")
    assert label_of("reference/deep/topic.md") == "reference/deep/topic"
