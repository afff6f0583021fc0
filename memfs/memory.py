"""One memory file: a Markdown block with front matter, or a YAML mapping.

A ``MemoryFile`` reads its file once and can be edited through ``.description``, ``.value``,
``.read_only`` and ``.limit``; ``save()`` writes it back crash-safely, keeping unknown front
matter keys and, when only the body changed, the front matter text byte-for-byte.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from memfs.errors import SchemaError
from memfs.layout import Layout, hook_checks, in_context
from memfs.layout import label_of as layout_label_of
from memfs.schema import (
    KNOWN_FRONT_MATTER_KEYS,
    Problem,
    front_matter_error,
    key_lines,
    validation_problems,
)
from memfs.util import atomic_write
from memfs.yamllib import yaml

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs import lettafm

# The readers (memfs.frontmatter, memfs.lettafm) and the work tree's file access are imported
# where a file is read or written: a command answered from the parse cache reads no memory
# file, and a clean ``status``, ``ls`` or ``context`` saves their import (~3 ms).

MARKDOWN_SUFFIXES = (".md",)
YAML_SUFFIXES = (".yaml", ".yml")
PINNED_FOLDER = "system"


def is_memory_path(path: str) -> bool:
    """Whether ``path`` (posix, relative to the agent) holds a memory block."""
    return path != "agent.yaml" and path.endswith(MARKDOWN_SUFFIXES + YAML_SUFFIXES)


def label_of(path: str) -> str:
    """``system/persona.md`` -> ``system/persona``."""
    return str(PurePosixPath(path).with_suffix(""))


class MemoryFile:
    """A memory block stored as a file in the agent directory."""

    def __init__(self, root: Path, path: str, raw: bytes, layout: Layout = Layout.NATIVE) -> None:
        self.root = root
        self.path = path
        self.layout = layout
        self.label = layout_label_of(path, layout)
        self.kind = "yaml" if path.endswith(YAML_SUFFIXES) else "markdown"
        # A Letta repo's Markdown is read as Letta Code reads it (line by line, memfs.lettafm).
        self.letta = layout.is_letta and self.kind == "markdown"
        self._letta_document: lettafm.LettaDocument | None = None
        self._raw = raw
        self._text: str | None = None
        self._decode_error = ""
        from memfs import frontmatter

        self._document = frontmatter.Document(front_matter=None, body="")
        self._original_metadata: dict[str, Any] = {}
        self._metadata_error: Problem | None = None
        self._decode()
        self.metadata: dict[str, Any] = dict(self._original_metadata)
        self.value: str = self._document.body if self.kind == "markdown" else (self._text or "")

    @classmethod
    def load(cls, root: Path, path: str, layout: Layout = Layout.NATIVE) -> MemoryFile:
        """Read the file at ``path``; UnsafePathError if it resolves outside the agent."""
        from memfs.pathcheck import read_inside

        return cls(root, path, read_inside(root, path), layout)

    # -- typed access -------------------------------------------------------------------

    @property
    def raw(self) -> bytes:
        """The file's bytes as read."""
        return self._raw

    @property
    def pinned(self) -> bool:
        """Whether the harness always puts this file in the agent's context (``system/``)."""
        return in_context(self.path, self.layout)

    @property
    def description(self) -> str | None:
        value = self.metadata.get("description")
        return value if isinstance(value, str) else None

    @description.setter
    def description(self, value: str | None) -> None:
        self._set("description", value)

    @property
    def read_only(self) -> bool:
        return self.metadata.get("read_only") is True

    @read_only.setter
    def read_only(self, value: bool) -> None:
        self._set("read_only", value if value else None)

    @property
    def limit(self) -> int | None:
        value = self.metadata.get("limit")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @limit.setter
    def limit(self, value: int | None) -> None:
        self._set("limit", value)

    @property
    def extra(self) -> dict[str, Any]:
        """Front matter keys memfs does not know, kept as they are."""
        return {k: v for k, v in self.metadata.items() if k not in KNOWN_FRONT_MATTER_KEYS}

    @property
    def size(self) -> int:
        """Characters in the value (the body of a Markdown file)."""
        return len(self.value)

    @property
    def unreadable(self) -> bool:
        """Whether memfs cannot read the value at all (not UTF-8, front matter it cannot
        parse): ``render`` refuses such a file."""
        return bool(self._decode_error or self._metadata_error)

    def _set(self, key: str, value: Any) -> None:
        if value is None:
            self.metadata.pop(key, None)
        else:
            self.metadata[key] = value

    # -- reading ------------------------------------------------------------------------

    def _decode(self) -> None:
        try:
            self._text = self._raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line = self._raw[: error.start].count(b"\n") + 1
            byte = self._raw[error.start]
            binary = b"\0" in self._raw
            self._decode_error = (
                "binary content in a memory file (it is versioned but cannot be read as text)"
                if binary
                else f"not valid UTF-8 (byte 0x{byte:02x} on line {line})"
            )
            return
        if self.letta:
            self._load_letta(self._text)
        elif self.kind == "markdown":
            from memfs import frontmatter

            self._document = frontmatter.split(self._text)
            self._load_front_matter()
        else:
            self._load_yaml()

    def _load_front_matter(self) -> None:
        document = self._document
        if document.unclosed:
            self._metadata_error = Problem(
                self.path, 1, "front matter starts with '---' but has no closing '---' line"
            )
            return
        from memfs import frontmatter

        try:
            self._original_metadata = frontmatter.load_metadata(document.front_matter)
        except yaml.YAMLError as error:
            self._metadata_error = _yaml_problem(self.path, error, first_line=2)
        except TypeError as error:
            self._metadata_error = Problem(self.path, 2, str(error))

    def _load_letta(self, text: str) -> None:
        """Front matter read as Letta Code reads it; values typed as memfs shows them."""
        from memfs import frontmatter, lettafm

        document = lettafm.parse(text)
        self._letta_document = document
        self._document = frontmatter.Document(
            front_matter=document.front_matter if document.has_front_matter else None,
            body=document.body,
        )
        metadata: dict[str, Any] = {}
        for key, value in document.fields.items():
            if isinstance(value, str) and self.layout.v2 and key in lettafm.V2_KEYS:
                metadata[key] = lettafm.v2_value(value)
            elif key == "read_only" and value in ("true", "false"):
                metadata[key] = value == "true"
            elif key == "limit" and isinstance(value, str) and value.isdigit():
                metadata[key] = int(value)
            else:
                metadata[key] = value
        self._original_metadata = metadata

    def _load_yaml(self) -> None:
        assert self._text is not None
        from memfs import frontmatter

        try:
            data = frontmatter.load_yaml(self._text)
        except yaml.YAMLError as error:
            self._metadata_error = _yaml_problem(self.path, error, first_line=1)
            return
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self._metadata_error = Problem(self.path, 1, "a YAML memory file must be a mapping")
            return
        self._original_metadata = data

    # -- validation ---------------------------------------------------------------------

    def problems(self) -> list[Problem]:
        """Everything wrong with this file, errors first."""
        if self._decode_error:
            return [Problem(self.path, 1, self._decode_error)]
        if self._metadata_error:
            return [self._metadata_error]
        if self.letta:
            problems = self._letta_problems()
        elif self.kind == "yaml":
            problems = self._yaml_problems()
        else:
            problems = self._markdown_problems()
        if "\0" in (self._text or ""):
            line = (self._text or "")[: (self._text or "").index("\0")].count("\n") + 1
            problems.insert(0, Problem(self.path, line, "contains NUL characters"))
        return problems

    def _markdown_problems(self) -> list[Problem]:
        extra = self.extra
        over_limit = self.over_limit
        invalid = front_matter_error(self.metadata)
        if invalid is None and not over_limit and not extra:
            return []
        lines = key_lines(self._document.front_matter or "")  # only to locate problems
        problems: list[Problem] = []
        if invalid is not None:
            problems.extend(validation_problems(self.path, invalid, lines, first_line=2))
        if over_limit:
            problems.append(self._over_limit_problem())
        for key in extra:
            line = 2 + lines.get(str(key), 0)
            problems.append(
                Problem(self.path, line, f"unknown front matter key {key!r} (kept)", "warning")
            )
        return problems

    def _letta_problems(self) -> list[Problem]:
        """What Letta's pre-commit hook would refuse in this file alone, and a legacy limit.

        Changes against HEAD (``read_only`` added, flipped, removed; a read-only file edited)
        are the agent's to check: they need the committed version.
        """
        problems: list[Problem] = []
        if self.hook_checked:
            from memfs import lettafm

            text_now = self._text or ""
            line_of = lettafm.message_lines(text_now)
            for message in lettafm.validate(self.path, text_now, None, self.layout.v2, False):
                text = message.removeprefix(f"{self.path}: ")
                problems.append(Problem(self.path, line_of(text), text))
        if self.over_limit:
            problems.append(self._over_limit_problem())
        return problems

    @property
    def hook_checked(self) -> bool:
        """Whether Letta's hook validates this file's front matter (system/, reference/ in v1)."""
        return hook_checks(self.path, {self.path, "MEMORY.md"}, self.layout)

    def _line_naming(self, message: str) -> int:
        """The front matter line of the key a message quotes ('description'), else line 1."""
        from memfs import lettafm

        return lettafm.message_lines(self._text or "")(message)

    @property
    def over_limit(self) -> bool:
        limit = self.limit
        return limit is not None and limit > 0 and self.size > limit

    def _over_limit_problem(self) -> Problem:
        """``limit`` is legacy and advisory (as in Letta): over it is a warning, never an error."""
        if self.letta:
            line = self._line_naming("'limit'")
        else:
            lines = key_lines(self._document.front_matter or "")
            line = 2 + lines["limit"] if "limit" in lines else 1
        return Problem(
            self.path,
            line,
            f"body is {self.size} characters, over its limit of {self.limit} (advisory)",
            "warning",
        )

    def _yaml_problems(self) -> list[Problem]:
        description = self.metadata.get("description")
        if description is not None and not isinstance(description, str):
            line = 1 + key_lines(self._text or "").get("description", 0)
            return [Problem(self.path, line, f"description: must be text, got {description!r}")]
        return []

    def require_valid(self) -> None:
        """Raise SchemaError if the file has errors (warnings are fine)."""
        errors = [p for p in self.problems() if p.severity == "error"]
        if errors:
            raise SchemaError(errors)

    # -- writing ------------------------------------------------------------------------

    def render(self) -> bytes:
        """The file's bytes as they would be saved."""
        if self._decode_error or self._metadata_error:
            raise SchemaError(self.problems())
        if self.kind == "yaml":
            return self.value.encode()
        if self.letta:
            return self._render_letta().encode()
        from memfs import frontmatter

        if self.metadata == self._original_metadata:
            document = frontmatter.Document(
                front_matter=self._document.front_matter,
                body=self.value,
                opening=self._document.opening,
                closing=self._document.closing,
            )
            if document.front_matter is not None or not frontmatter.starts_with_fence(self.value):
                return frontmatter.join(document).encode()
        return frontmatter.render(self.metadata, self.value, self._document).encode()

    def _render_letta(self) -> str:
        """The file as Letta writes it: only changed front matter lines are rewritten."""
        from memfs import lettafm

        text = self._text or ""
        document = self._letta_document
        assert document is not None
        if not document.has_front_matter and self.metadata:
            description = str(self.metadata.get("description") or "")
            if self.layout.v2:
                name = str(self.metadata.get("name") or lettafm.default_name(self.label))
                return lettafm.render_v2(name, description, self.value)
            return lettafm.render_v1(description, self.value, self.read_only)
        header = text[: len(text) - len(document.body)] if document.has_front_matter else ""
        for key in {*self.metadata, *self._original_metadata}:
            new, old = self.metadata.get(key), self._original_metadata.get(key)
            if new != old:
                header = lettafm.set_field(header, key, self._letta_field(key, new))
        return header + self.value

    def _letta_field(self, key: str, value: Any) -> str | None:
        """A front matter value as Letta writes it (None removes the line)."""
        if value is None or (key == "read_only" and value is False):
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        from memfs import lettafm

        text = lettafm.one_line(str(value))
        if self.layout.v2 and key in lettafm.V2_KEYS:
            return lettafm.render_v2_value(text)
        return text

    def save(self) -> None:
        """Write the file back (crash-safe); refuses a file whose front matter it cannot read."""
        data = self.render()
        atomic_write(self.root / self.path, data)
        self._raw = data
        self._decode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "path": self.path,
            "description": self.description,
            "pinned": self.pinned,
            "read_only": self.read_only,
            "size": self.size,
            "limit": self.limit,
        }


def _yaml_problem(path: str, error: yaml.YAMLError, first_line: int) -> Problem:
    mark = getattr(error, "problem_mark", None)
    line = first_line + mark.line if mark is not None else first_line
    what = getattr(error, "problem", None) or str(error).split("\n", 1)[0]
    return Problem(path, line, f"invalid YAML: {what}")
