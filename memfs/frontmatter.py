"""Split a Markdown memory file into YAML front matter and body, and put it back together.

``split`` keeps every byte (fence style, line endings), so ``join(split(text)) == text`` for any
text. ``render`` builds a file from metadata and a body; ``load_metadata`` parses the YAML.

``load_yaml`` is the one YAML reader for text memfs did not write itself (front matter, *.yaml
memory, agent.yaml, the user config): it is bounded in size, depth and in what aliases may
expand to, so a hostile file (a "billion laughs") is reported as invalid YAML instead of
hanging memfs. Issue 11's line-by-line front matter reader is meant to go through it too.
"""

from __future__ import annotations

import re

from memfs.record import FrozenRecord
from memfs.yamllib import yaml

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def yaml_loader() -> Any:
    """libyaml's loader, ~10x faster than the pure-Python one; both read the same YAML 1.1.
    (A function, not a constant: PyYAML is imported on first use, see memfs.yamllib.)"""
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# Bounds on YAML memfs reads: the text parsed, and the nodes aliases may add when expanded
# (a document's own nodes are bounded by its size; aliases are what multiply them).
MAX_YAML_CHARS = 1024 * 1024
MAX_ALIAS_NODES = 10_000
# libyaml composes nested collections recursively in C: past some tens of thousands of levels
# it overflows the stack (a segfault, not an exception), so depth is checked before composing.
MAX_YAML_DEPTH = 500
_OPENING = re.compile(r"---[ \t]*(\r?\n)")
_CLOSING = re.compile(r"^---[ \t]*(?:\r?\n|\Z)", re.MULTILINE)


class Document(FrozenRecord):
    """A memory file cut into its parts; ``front_matter`` is None when the file has none."""

    __slots__ = _fields = ("front_matter", "body", "opening", "closing", "unclosed")
    front_matter: str | None
    body: str
    opening: str
    closing: str
    unclosed: bool

    def __init__(
        self,
        front_matter: str | None,
        body: str,
        opening: str = "---\n",
        closing: str = "---\n",
        unclosed: bool = False,
    ) -> None:
        self._set(front_matter, body, opening, closing, unclosed)

    @property
    def body_line(self) -> int:
        """The 1-based line number where the body starts."""
        if self.front_matter is None:
            return 1
        return 2 + self.front_matter.count("\n") + 1


def split(text: str) -> Document:
    """Cut ``text`` into front matter and body without losing a byte."""
    opening = _OPENING.match(text)
    if opening is None:
        return Document(front_matter=None, body=text)
    rest_start = opening.end()
    closing = _CLOSING.search(text, rest_start)
    if closing is None:
        return Document(front_matter=None, body=text, unclosed=True)
    return Document(
        front_matter=text[rest_start : closing.start()],
        body=text[closing.end() :],
        opening=opening.group(0),
        closing=closing.group(0),
    )


def join(document: Document) -> str:
    """Inverse of ``split``."""
    if document.front_matter is None:
        return document.body
    return document.opening + document.front_matter + document.closing + document.body


def starts_with_fence(text: str) -> bool:
    """Whether ``text`` would be read as opening a front matter block."""
    return _OPENING.match(text) is not None


def load_metadata(front_matter: str | None) -> dict[str, Any]:
    """Parse front matter YAML into a mapping; raises yaml.YAMLError or TypeError."""
    if front_matter is None or not front_matter.strip():
        return {}
    data = load_yaml(front_matter)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TypeError(f"front matter must be a mapping of keys to values, not {_kind(data)}")
    return data


_too_complex: type[Exception] | None = None


def too_complex_error() -> type[Exception]:
    """``YamlTooComplexError``: YAML memfs refuses to parse (too long, too deep, or aliases
    that expand without bound), a subclass of ``yaml.MarkedYAMLError`` made on first use."""
    global _too_complex
    if _too_complex is None:
        _too_complex = type(
            "YamlTooComplexError",
            (yaml.MarkedYAMLError,),
            {"__module__": __name__, "__doc__": too_complex_error.__doc__},
        )
    return _too_complex


def __getattr__(name: str) -> Any:
    """``YamlTooComplexError`` and ``YamlLoader`` as module attributes, made on first use."""
    if name == "YamlTooComplexError":
        return too_complex_error()
    if name == "YamlLoader":
        return yaml_loader()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_yaml(text: str | bytes) -> Any:
    """Parse YAML safely and boundedly, with libyaml when it is installed.

    Raises yaml.YAMLError for invalid YAML, and its subclass YamlTooComplexError for text
    over MAX_YAML_CHARS, nested over MAX_YAML_DEPTH levels, or with aliases that would expand
    to more than MAX_ALIAS_NODES extra nodes.
    """
    node = compose_yaml(text)
    if node is None:
        return None
    loader = yaml_loader()("")
    try:
        return loader.construct_document(node)
    except RecursionError:
        raise too_complex_error()(problem="nested too deeply; not parsed") from None
    finally:
        loader.dispose()


def yaml_error_summary(error: yaml.YAMLError) -> str:
    """``invalid YAML``, saying why when memfs itself refused to parse it."""
    if isinstance(error, too_complex_error()) and error.problem:
        return f"invalid YAML: {error.problem}"
    return "invalid YAML"


def compose_yaml(text: str | bytes) -> yaml.Node | None:
    """The node tree of ``text`` (to locate keys by line), under the same bounds as load_yaml."""
    if len(text) > MAX_YAML_CHARS:
        raise too_complex_error()(
            problem=f"over {MAX_YAML_CHARS // 1024} KiB of YAML; not parsed (kept as it is)"
        )
    if len(text) > 2 * MAX_YAML_DEPTH:  # shorter text cannot nest that deep
        _check_depth(text)
    loader = yaml_loader()(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node)
        return node
    finally:
        loader.dispose()


def _check_depth(text: str | bytes) -> None:
    """Refuse YAML nested deeper than MAX_YAML_DEPTH, reading its events (no recursion)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml_loader()):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise too_complex_error()(
                    problem=f"nested more than {MAX_YAML_DEPTH} levels deep; not parsed",
                    problem_mark=event.start_mark,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases expand to more than MAX_ALIAS_NODES extra nodes.

    Aliases make the composed graph a DAG (or a cycle): its size as a tree is computed once
    per distinct node, without recursion, so the check costs O(distinct nodes) however large
    the expansion or deep the nesting.
    """
    expanded: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            total = 1 + sum(expanded[id(child)] for child in children)
            in_progress.discard(key)
            expanded[key] = total
            # Every node below this one has been visited: what exceeds the distinct nodes
            # seen so far can only come from aliases.
            if total > len(expanded) + len(in_progress) + MAX_ALIAS_NODES:
                raise too_complex_error()(
                    problem=f"aliases expand to more than {MAX_ALIAS_NODES} extra nodes"
                    " (a 'billion laughs'?); not parsed",
                    problem_mark=node.start_mark,
                )
            continue
        if key in expanded:
            continue
        if key in in_progress:
            raise too_complex_error()(
                problem="an alias refers to a node that contains it (a recursive structure)",
                problem_mark=node.start_mark,
            )
        in_progress.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children) if id(child) not in expanded)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def dump_metadata(metadata: dict[str, Any]) -> str:
    """Render metadata as block-style YAML, keeping key order.

    Non-ASCII text stays readable, except where PyYAML would write a character it later
    reads as a line break (NEL, U+2028): then everything is escaped so nothing changes.
    """
    for allow_unicode in (True, False):
        text = yaml.safe_dump(
            metadata,
            sort_keys=False,
            allow_unicode=allow_unicode,
            default_flow_style=False,
            width=2**16,
        )
        if yaml.load(text, Loader=yaml_loader()) == metadata:  # our own output: no bound needed
            return text
    return text


def render(metadata: dict[str, Any], body: str, template: Document | None = None) -> str:
    """Build file text from ``metadata`` and ``body``, reusing ``template``'s fence style."""
    has_fences = template is not None and template.front_matter is not None
    opening = template.opening if has_fences else "---\n"  # type: ignore[union-attr]
    newline = "\r\n" if opening.endswith("\r\n") else "\n"
    closing = template.closing if has_fences else ""  # type: ignore[union-attr]
    if not closing.endswith("\n"):
        closing = "---" + newline
    if not metadata:
        if starts_with_fence(body):
            # An empty front matter block keeps a body that starts with '---' from being
            # mistaken for front matter when the file is read back.
            return opening + closing + body
        return body
    return opening + dump_metadata(metadata) + closing + body


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__
