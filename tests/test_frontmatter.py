"""Front matter: split/join keeps every byte; render/parse keeps metadata and body."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from memfs import frontmatter

yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\ufeff"), max_size=40),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
metadata = st.dictionaries(
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=15),
    yaml_values,
    max_size=6,
)
bodies = st.text(st.characters(exclude_categories=("Cs",)), max_size=200) | st.sampled_from(
    ["", "---\n", "---\nx: 1\n---\n", "body\n---\nmore", "\r\n---\r\n"]
)


@given(st.text(st.characters(exclude_categories=("Cs",))))
def test_split_then_join_gives_back_every_byte(text: str) -> None:
    assert frontmatter.join(frontmatter.split(text)) == text


@given(metadata, bodies)
def test_render_then_parse_gives_back_metadata_and_body(meta: dict, body: str) -> None:
    text = frontmatter.render(meta, body)
    document = frontmatter.split(text)
    assert document.body == body
    assert frontmatter.load_metadata(document.front_matter) == meta


@given(metadata, bodies, st.sampled_from(["---\n", "---\r\n", "--- \n"]))
def test_render_keeps_the_template_fence_style(meta: dict, body: str, opening: str) -> None:
    template = frontmatter.split(f"{opening}a: 1\n---\nold")
    document = frontmatter.split(frontmatter.render(meta, body, template))
    assert document.body == body
    assert frontmatter.load_metadata(document.front_matter) == meta


@pytest.mark.parametrize(
    ("text", "front", "body", "line"),
    [
        ("---\ndescription: x\n---\nhello\n", "description: x\n", "hello\n", 4),
        ("---\r\nlimit: 5\r\n---\r\nbody", "limit: 5\r\n", "body", 4),
        ("no front matter\n", None, "no front matter\n", 1),
        ("---\nunclosed\n", None, "---\nunclosed\n", 1),
        ("---\n---\nbody", "", "body", 3),
        ("---\na: 1\n---", "a: 1\n", "", 4),
    ],
)
def test_split_examples(text: str, front: str | None, body: str, line: int) -> None:
    document = frontmatter.split(text)
    assert (document.front_matter, document.body, document.body_line) == (front, body, line)


def test_unclosed_front_matter_is_flagged() -> None:
    assert frontmatter.split("---\nkey: value\nno closing fence").unclosed


def test_metadata_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="must be a mapping"):
        frontmatter.load_metadata("- a\n- b\n")


def billion_laughs(levels: int = 9) -> str:
    """A YAML mapping whose aliases expand to 9**levels strings (a "billion laughs")."""
    lines = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for level in range(1, levels):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (billion_laughs(), "aliases expand"),
        ("a: &x [1, *x]\n", "recursive"),
        ("[" * 100_000 + "]" * 100_000, "level"),  # libyaml's composer would overflow the C stack
        ("- " * 100_000 + "x\n", "nested more than"),
        ("x: " + "y" * frontmatter.MAX_YAML_CHARS + "\n", "KiB of YAML"),
    ],
    ids=["billion-laughs", "recursive-alias", "deep-flow", "deep-block", "too-long"],
)
def test_hostile_yaml_is_refused_quickly(text: str, why: str) -> None:
    with pytest.raises(yaml.YAMLError, match=why):
        frontmatter.load_yaml(text)
    with pytest.raises(yaml.YAMLError, match=why):
        frontmatter.load_metadata(text)


def test_harmless_aliases_still_load() -> None:
    assert frontmatter.load_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}
    nested = frontmatter.load_yaml("[" * 100 + "x" + "]" * 100 + "\n# " + "padding " * 200)
    for _ in range(100):
        nested = nested[0]
    assert nested == "x"
