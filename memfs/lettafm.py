"""Letta's front matter: read, check and write memory files the way Letta Code does.

Letta Code does not read front matter as YAML. Its reader (``parseFrontmatter`` in
letta-ai/letta-code src/utils/frontmatter.ts) takes one ``key: value`` per line, cut at the
first colon, unquoted; ``description: a: b`` is valid there and means ``a: b``. Its pre-commit
hook (``validateMemoryFileFrontmatter``, src/memory-frontmatter.ts, embedded in the hook) checks
the same lines with its own rules. This module ports both, so that memfs reads every file Letta
accepts with the same description and value, and writes only files Letta's reader and hook
accept (``render_v1``/``render_v2`` are Letta Code's ``renderMemoryMarkdown``).

Ported from @letta-ai/letta-code 0.32.18 (Apache-2.0); tests/test_lettacode.py runs the
originals with node and compares.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable

from memfs.record import FrozenRecord

# What JavaScript's String.prototype.trim() removes (WhiteSpace and LineTerminator): Python's
# str.strip() differs (it keeps U+FEFF and removes U+001C..U+001F and U+0085).
JS_WHITESPACE = (
    "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_FRONT_MATTER = re.compile(r"---\n([\s\S]*?)\n---(?:\n([\s\S]*))?\Z")
_BLOCK_SCALAR = re.compile(r"([|>])([+-]?)\Z")
V1_KEYS = ("description", "read_only", "limit")
V2_KEYS = ("name", "description")

FieldValue = str | list[str]


def js_trim(text: str) -> str:
    return text.strip(JS_WHITESPACE)


def js_trim_start(text: str) -> str:
    return text.lstrip(JS_WHITESPACE)


def js_trim_end(text: str) -> str:
    return text.rstrip(JS_WHITESPACE)


def normalize_newlines(text: str) -> str:
    """What Letta's reader does first: drop a BOM, turn CRLF and CR into LF."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


class LettaDocument(FrozenRecord):
    """A memory file as Letta Code reads it.

    ``fields`` are the front matter values as Letta's reader gives them (strings, lists for
    ``- item`` lines under an empty key); ``body`` is the text after the closing fence exactly as
    written (memfs's value); ``letta_value`` is the body as Letta's reader returns it (trimmed
    when there is front matter), which is what its prompt shows. ``has_front_matter`` is False
    when Letta finds none (the whole text is then the body).
    """

    __slots__ = _fields = ("fields", "body", "has_front_matter", "front_matter", "keys")
    fields: dict[str, FieldValue]
    body: str
    has_front_matter: bool
    front_matter: str
    keys: tuple[str, ...]

    def __init__(
        self,
        fields: dict[str, FieldValue],
        body: str,
        has_front_matter: bool,
        front_matter: str = "",
        keys: tuple[str, ...] = (),
    ) -> None:
        self._set(fields, body, has_front_matter, front_matter, keys)

    @property
    def letta_value(self) -> str:
        """The body as Letta's reader returns it: trimmed after front matter, else untouched."""
        body = normalize_newlines(self.body)
        return js_trim(body) if self.has_front_matter else body

    def text(self, key: str) -> str | None:
        """A field as a string (a list field is not one), or None when absent."""
        value = self.fields.get(key)
        return value if isinstance(value, str) else None


def parse(text: str) -> LettaDocument:
    """Read ``text`` as Letta Code's ``parseFrontmatter`` does (body kept exact, see above)."""
    normalized = normalize_newlines(text)
    match = _FRONT_MATTER.match(normalized)
    if match is None:
        return LettaDocument(fields={}, body=_exact_body(text, None), has_front_matter=False)
    front_matter = match.group(1)
    fields: dict[str, FieldValue] = {}
    keys: list[str] = []
    lines = front_matter.split("\n")
    pending: str | None = None
    items: list[str] = []

    def save_pending() -> None:
        nonlocal pending, items
        if pending is not None:
            fields[pending] = items if items else ""
        pending, items = None, []

    index = 0
    while index < len(lines):
        line = lines[index]
        trimmed = js_trim(line)
        indentation = len(line) - len(js_trim_start(line))
        if indentation > 0:
            if indentation <= 2 and trimmed.startswith("-") and pending is not None:
                items.append(js_trim(trimmed[1:]))
            index += 1
            continue
        save_pending()
        colon = line.find(":")
        if colon > 0:
            key = js_trim(line[:colon])
            value = js_trim(line[colon + 1 :])
            keys.append(key)
            block = _BLOCK_SCALAR.match(value)
            if block is not None:
                following = index + 1
                block_lines: list[str] = []
                while following < len(lines):
                    candidate = lines[following]
                    if js_trim(candidate) and candidate == js_trim_start(candidate):
                        break
                    block_lines.append(candidate)
                    following += 1
                fields[key] = _block_scalar(block_lines, block.group(1), block.group(2))
                index = following
                continue
            if value:
                fields[key] = value
            else:
                pending = key
        index += 1
    save_pending()
    return LettaDocument(
        fields=fields,
        body=_exact_body(text, front_matter),
        has_front_matter=True,
        front_matter=front_matter,
        keys=tuple(keys),
    )


def _exact_body(text: str, front_matter: str | None) -> str:
    """The text after the closing fence, with the file's own line endings."""
    if front_matter is None:
        return text
    start = text.removeprefix("\ufeff")
    # The fences and the front matter may use CRLF: skip as many lines as Letta's match used.
    skip = front_matter.count("\n") + 3  # opening fence, the front matter's lines, closing fence
    position = 0
    for _ in range(skip):
        newline = _next_line_end(start, position)
        if newline < 0:
            return ""
        position = newline
    return start[position:]


def _next_line_end(text: str, position: int) -> int:
    """Index just after the next line ending (LF, CRLF or CR) at or after ``position``."""
    for index in range(position, len(text)):
        char = text[index]
        if char == "\n":
            return index + 1
        if char == "\r":
            return index + 2 if text.startswith("\n", index + 1) else index + 1
    return -1


def _block_scalar(lines: list[str], style: str, chomping: str) -> str:
    """A ``|`` or ``>`` value, as Letta's ``parseBlockScalar`` folds it."""
    indents = [len(line) - len(js_trim_start(line)) for line in lines if js_trim(line)]
    indent = min(indents) if indents else None
    deindented = [line[indent:] if js_trim(line) and indent is not None else "" for line in lines]
    if style == "|":
        value = "\n".join(deindented)
    else:
        value, breaks = "", 0
        for line in deindented:
            if not line:
                breaks += 1
                continue
            if value:
                value += "\n" * breaks if breaks > 0 else " "
            elif breaks > 0:
                value += "\n" * breaks
            value += line
            breaks = 0
        value += "\n" * breaks
    if chomping == "+":
        return value + "\n"
    stripped = value.rstrip("\n")
    return stripped if chomping == "-" else stripped + "\n"


# -- the pre-commit hook's rules -------------------------------------------------------------


def hook_value(text: str | None, key: str) -> str:
    """A front matter value as the hook's ``legacyValue`` reads it (every ``key:`` line)."""
    lines = (text or "").split("\n")
    try:
        end = lines.index("---", 1)
    except ValueError:
        return ""
    found = [line[len(key) + 1 :].strip(" ") for line in lines[1:end] if line.startswith(f"{key}:")]
    return "\n".join(found)


def validate(
    path: str, content: str, previous: str | None, v2: bool, changes: bool = True
) -> list[str]:
    """The pre-commit hook's checks of one file, with its messages (``path: ...``).

    ``previous`` is the file at HEAD (None for a new file): ``read_only`` may not be added,
    changed or removed, and a file read-only at HEAD may not change at all (v1).
    ``changes=False`` checks the file alone, leaving out those rules about changes.
    """
    errors: list[str] = []
    lines = content.split("\n")
    if v2 and path.split("/")[-1] == "MEMORY.md":
        return [f"{path}: MEMORY.md must not have frontmatter"] if lines[0] == "---" else []
    if lines[0] != "---":
        return [f"{path}: missing frontmatter (must start with ---)"]
    try:
        closing = lines.index("---", 1)
    except ValueError:
        return [f"{path}: frontmatter opened but never closed (missing closing ---)"]
    if changes and not v2 and previous and hook_value(previous, "read_only") == "true":
        return [f"{path}: file is read_only and cannot be modified"]
    seen: set[str] = set()
    allowed = V2_KEYS if v2 else V1_KEYS
    for line in lines[1:closing]:
        if not line or (not v2 and line[0] in " \t"):
            continue
        separator = line.find(":")
        raw_key = line if separator < 0 else line[:separator]
        key = raw_key.strip(" ") if v2 else raw_key.replace(" ", "")
        value = (line if separator < 0 else line[separator + 1 :]).strip(" ")
        if key not in allowed:
            errors.append(f"{path}: unknown frontmatter key '{key}' (allowed: {' '.join(allowed)})")
            continue
        if v2 and key in seen:
            errors.append(f"{path}: duplicate frontmatter key '{key}'")
        seen.add(key)
        if key == "read_only" and changes:
            if not previous:
                errors.append(
                    f"{path}: 'read_only' is a protected field and cannot be set by the agent"
                )
            elif value != hook_value(previous, key):
                errors.append(
                    f"{path}: 'read_only' is a protected field and cannot be changed by the agent"
                )
        if (v2 or key == "description") and (not value or (v2 and value in ('""', "''"))):
            errors.append(f"{path}: '{key}' must not be empty")
    for key in V2_KEYS if v2 else ("description",):
        if key not in seen:
            errors.append(f"{path}: missing required field '{key}'")
    removed = hook_value(previous, "read_only") and not hook_value(content, "read_only")
    if changes and not v2 and removed:
        errors.append(
            f"{path}: 'read_only' is a protected field and cannot be removed by the agent"
        )
    return errors


def message_lines(text: str) -> Callable[[str], int]:
    """Where a message of ``validate`` points in ``text``: the front matter line of the key it
    quotes ('description'), else line 1. The keys' lines are found once, not per message: one
    file may draw thousands of messages (one per unknown key)."""
    key_lines: dict[str, int] = {}
    for number, line in enumerate(text.split("\n")[1:], start=2):
        if line == "---":
            break
        key_lines.setdefault(line.split(":", 1)[0].strip(), number)

    def line_of(message: str) -> int:
        quoted = message.split("'")
        key = quoted[1] if len(quoted) > 2 else None
        return key_lines.get(key, 1) if key else 1

    return line_of


def read_only_at(text: str | None) -> bool:
    """Whether Letta's hook treats a file with this content as read-only."""
    return hook_value(text, "read_only") == "true"


# -- writing ---------------------------------------------------------------------------------


def one_line(value: str) -> str:
    """Letta Code's ``sanitizeFrontmatterValue``: newlines become spaces, ends trimmed."""
    return js_trim(re.sub(r"\r?\n", " ", value))


def render_v1(
    description: str, body: str, read_only: bool = False, extra_lines: Iterable[str] = ()
) -> str:
    """A v1 memory file as Letta writes it: ``description`` always, ``read_only`` when true.

    ``extra_lines`` are further ``key: value`` lines to keep (a ``limit`` that was there).
    """
    lines = ["---", f"description: {one_line(description)}"]
    if read_only:
        lines.append("read_only: true")
    lines.extend(extra_lines)
    lines.append("---")
    header = "\n".join(lines)
    return f"{header}\n{body}" if body else f"{header}\n"


def render_v2(name: str, description: str, body: str) -> str:
    """A v2 memory file as Letta writes it: ``name`` and ``description``, JSON-quoted."""
    lines = [
        "---",
        f"name: {_json_string(one_line(name))}",
        f"description: {_json_string(one_line(description))}",
        "---",
    ]
    header = "\n".join(lines)
    return f"{header}\n{body}" if body else f"{header}\n"


def render_v2_value(value: str) -> str:
    """A v2 field value as Letta Code writes it (JSON-quoted)."""
    return _json_string(value)


def _json_string(value: str) -> str:
    """``JSON.stringify`` of a string (non-ASCII kept, as JavaScript does)."""
    return json.dumps(value, ensure_ascii=False)


def v2_value(raw: str) -> str:
    """A v2 field as Letta's memory tool reads it (``parseV2FrontmatterValue``): unquoted."""
    trimmed = js_trim(raw)
    if len(trimmed) >= 2 and trimmed.startswith('"') and trimmed.endswith('"'):
        try:
            parsed = json.loads(trimmed)
        except ValueError:
            return trimmed[1:-1]
        if isinstance(parsed, str):
            return parsed
    if len(trimmed) >= 2 and trimmed.startswith("'") and trimmed.endswith("'"):
        return trimmed[1:-1].replace("''", "'")
    return trimmed


def default_name(label: str) -> str:
    """Letta Code's ``defaultMemoryName``: ``projects/my-notes`` -> ``My Notes``."""
    file_name = label.replace("\\", "/").rsplit("/", 1)[-1]
    file_name = re.sub(r"\.md$", "", file_name, flags=re.IGNORECASE)
    words = [word for word in re.split(r"[-_]+", file_name) if word]
    return " ".join(word[0].upper() + word[1:] for word in words) or "Memory"


def set_field(text: str, key: str, value: str | None) -> str:
    """``text`` with front matter line ``key: value`` set (None removes it), the rest as is.

    Only the line is touched, so every other byte Letta or a person wrote stays. A file without
    front matter gets one.
    """
    document = parse(text)
    if not document.has_front_matter:
        lines = ["---"] + ([f"{key}: {value}"] if value is not None else []) + ["---"]
        return "\n".join(lines) + "\n" + text
    newline = "\r\n" if text.removeprefix("\ufeff").startswith("---\r\n") else "\n"
    head = normalize_newlines(text).split("\n")
    closing = head.index("---", 1)
    front = head[1:closing]
    updated: list[str] = []
    done = False
    for line in front:
        if line.startswith(f"{key}:") or (":" in line and js_trim(line.split(":", 1)[0]) == key):
            if not done and value is not None:
                updated.append(f"{key}: {value}")
            done = True
            continue
        updated.append(line)
    if not done and value is not None:
        updated.append(f"{key}: {value}")
    prefix = "\ufeff" if text.startswith("\ufeff") else ""
    return prefix + newline.join(["---", *updated, "---"]) + newline + document.body
