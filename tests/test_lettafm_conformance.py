"""memfs.lettafm against Letta Code's own reader, hook validator and writer, run with node.

Random front matter built from the pieces that trip readers up (colons, quotes, `#`, indents,
block scalars, lists, CRLF, a BOM, blank lines, unclosed fences), with a fixed seed, so a
failure names its case and replays.
"""

from __future__ import annotations

import random

import pytest

from memfs import lettafm

from .lettacode import LettaCode

KEYS = ["description", "read_only", "limit", "name", "metadata", "Description", " description"]
VALUES = [
    "a: b", "# heading", "'quoted'", '"json \\" q"', "", "  spaced  ", "true", "false", "5",
    "|", ">-", "|+", "é ünïcode", "- item", "x\ty", "::", "https://x.y/z",
]  # fmt: skip
BODIES = ["", "\n", "body\n", "\n\n  lead\n\n", "---\nnot fm\n---\n", "a\r\nb\r\n", " \t"]


def random_document(rng: random.Random) -> tuple[str, str | None]:
    """A memory file's text, and a previous version of it (or None)."""
    lines = []
    for _ in range(rng.randrange(0, 5)):
        shape = rng.randrange(6)
        key, value = rng.choice(KEYS), rng.choice(VALUES)
        if shape == 0:
            lines.append(f"{key}: {value}")
        elif shape == 1:
            lines.append(f"{key}:{value}")
        elif shape == 2:
            lines.append(f"  {rng.choice(['- ', '', '   - '])}{value}")
        elif shape == 3:
            lines.append("")
        elif shape == 4:
            lines.append(f"{key}: |\n  one\n\n  two")
        else:
            lines.append(value)
    fence = rng.choice(["---", "---", "---", "--- ", "----"])
    text = "---\n" + "\n".join(lines) + f"\n{fence}\n" + rng.choice(BODIES)
    if rng.random() < 0.1:
        text = text.replace("\n", "\r\n")
    if rng.random() < 0.05:
        text = "\ufeff" + text
    if rng.random() < 0.05:
        text = rng.choice(BODIES) + text
    previous = None
    if rng.random() < 0.5:
        previous = "---\ndescription: d\n" + rng.choice(
            ["read_only: true\n", "read_only: false\n", ""]
        )
        previous += "---\nold\n"
    return text, previous


CASES = [random_document(random.Random(seed)) for seed in range(400)]


@pytest.mark.timeout(120)
def test_lettafm_reads_every_case_as_letta_code(letta_code: LettaCode) -> None:
    differ = []
    for index, (text, _) in enumerate(CASES):
        expected = letta_code.parse_frontmatter(text)
        document = lettafm.parse(text)
        got = {"frontmatter": document.fields, "body": document.letta_value}
        if got != expected:
            differ.append((index, text, expected, got))
    assert not differ, f"{len(differ)} cases differ; first: {differ[0]}"


@pytest.mark.timeout(120)
def test_lettafm_validates_every_case_as_the_hook(letta_code: LettaCode) -> None:
    differ = []
    for index, (text, previous) in enumerate(CASES):
        for v2 in (False, True):
            path = "system/x.md" if not v2 else rng_path(index)
            expected = letta_code.validate_frontmatter(path, text, previous, v2)
            got = lettafm.validate(path, text, previous, v2)
            if got != expected:
                differ.append((index, v2, text, previous, expected, got))
    assert not differ, f"{len(differ)} cases differ; first: {differ[0]}"


def rng_path(index: int) -> str:
    return ["x.md", "MEMORY.md", "a/MEMORY.md", "a/b.md"][index % 4]


@pytest.mark.parametrize(
    ("description", "body", "read_only"),
    [("d", "v\n", False), ("a: b\nc", "", True), ("  é  ", "\n\nx", False), ("#h", "---\n", False)],
)
def test_what_lettafm_writes_is_what_letta_code_writes(
    letta_code: LettaCode, description: str, body: str, read_only: bool
) -> None:
    front = {"description": description, **({"read_only": "true"} if read_only else {})}
    assert lettafm.render_v1(description, body, read_only) == letta_code.render_memory_markdown(
        front, body, "system/x.md", v2=False
    )
    assert lettafm.render_v2("My name", description, body) == letta_code.render_memory_markdown(
        {"name": "My name", "description": description}, body, "x.md", v2=True
    )
    assert lettafm.default_name("a/my-notes_x") == letta_code.default_memory_name("a/my-notes_x")
