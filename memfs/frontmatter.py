"""Split a Markdown memory file into YAML front matter and body, and put it back together.

``split`` keeps every byte (fence style, line endings), so ``join(split(text)) == text`` for any
text. ``render`` builds a file from metadata and a body; ``load_metadata`` parses the YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

# libyaml's loader is ~10x faster than the pure-Python one; both read the same YAML 1.1.
YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPENING = re.compile(r"---[ \t]*(\r?\n)")
_CLOSING = re.compile(r"^---[ \t]*(?:\r?\n|\Z)", re.MULTILINE)


@dataclass(frozen=True)
class Document:
    """A memory file cut into its parts; ``front_matter`` is None when the file has none."""

    front_matter: str | None
    body: str
    opening: str = "---\n"
    closing: str = "---\n"
    unclosed: bool = False

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


def load_yaml(text: str) -> Any:
    """Parse YAML safely, with libyaml when it is installed."""
    return yaml.load(text, Loader=YamlLoader)


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
        if load_yaml(text) == metadata:
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
