"""Writing ``.git/config`` so that git and dulwich read back every value as written.

dulwich (1.2) quotes a value holding ``#`` but not one holding ``;``, which git's config syntax
also takes for the start of a comment: a remote URL or a description with a ``;`` was cut
there when read back. ``save_config`` writes the file as dulwich does, quoting such values.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dulwich.config import ConfigFile

_QUOTE_IF_IN = (b"#", b";", b"\r")


def format_value(value: bytes) -> bytes:
    """``value`` as a git config file holds it: escaped, quoted where git would misread it."""
    escaped = (
        value.replace(b"\\", b"\\\\")
        .replace(b"\n", b"\\n")
        .replace(b"\t", b"\\t")
        .replace(b'"', b'\\"')
    )
    if value != value.strip(b" \t") or any(c in value for c in _QUOTE_IF_IN):
        return b'"' + escaped + b'"'
    return escaped


def _subsection(name: bytes) -> bytes:
    """A subsection name inside its quotes: only ``"`` and ``\\`` are escaped (git-config)."""
    if b"\n" in name or b"\0" in name:
        raise ValueError(f"subsection name {name!r} holds a character git forbids there")
    return name.replace(b"\\", b"\\\\").replace(b'"', b'\\"')


def save_config(config: ConfigFile | PlainConfig) -> None:
    """Write ``config`` back to its file, atomically (dulwich's GitFile), every value intact."""
    from dulwich.file import GitFile

    if config.path is None:
        raise ValueError("this configuration has no file to be written to")
    with GitFile(config.path, "wb") as out:
        for section in config.sections():
            if len(section) == 1:
                out.write(b"[" + section[0] + b"]\n")
            else:
                out.write(b"[" + section[0] + b' "' + _subsection(section[1]) + b'"]\n')
            for key, value in config.items(section):
                out.write(b"\t" + key + b" = " + format_value(value) + b"\n")


Section = tuple[bytes, ...]

_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_NOT_PLAIN = frozenset(b'"\\#;\r')  # what a plain value holds none of


@functools.cache
def _section() -> re.Pattern[bytes]:
    """A section header's pattern, compiled on first use (every command loads this module)."""
    return re.compile(rb'\[([A-Za-z0-9-]+)(?: "([^"\\\n]*)")?\]')


class PlainConfig:
    """A ``.git/config`` read without dulwich.config (whose import, with logging, costs a
    small agent's ``status`` ~5 ms): the reads ``status`` makes (``get``, ``get_boolean``,
    ``sections``, ``items``, ``has_section``) answered as dulwich's ``ConfigFile`` answers
    them. Made by ``read_config`` only for a file in the plain form git and memfs write;
    anything else (a write, another method) loads dulwich's and goes on with it."""

    def __init__(self, path: str, values: dict[Section, list[tuple[bytes, bytes]]]) -> None:
        self.path = path
        self._values = values  # by section as written, in file order; values in order
        self._real: ConfigFile | None = None

    def _dulwich(self) -> ConfigFile:
        if self._real is None:
            from dulwich.config import ConfigFile

            self._real = ConfigFile.from_path(self.path)
        return self._real

    def __getattr__(self, name: str) -> object:
        return getattr(self._dulwich(), name)

    def _find(self, section: Section) -> list[list[tuple[bytes, bytes]]]:
        wanted = (section[0].lower(), *section[1:])
        return [
            pairs for key, pairs in self._values.items() if (key[0].lower(), *key[1:]) == wanted
        ]

    def get(self, section: Section, name: bytes) -> bytes:
        """The last value of ``name`` in ``section`` (with a subsection: there, else in the
        section without it, as dulwich reads); KeyError if none."""
        if self._real is not None:
            return self._real.get(section, name)
        lowered = name.lower()
        for candidate in [section, section[:1]] if len(section) > 1 else [section]:
            found = [v for pairs in self._find(candidate) for k, v in pairs if k.lower() == lowered]
            if found:
                return found[-1]
        raise KeyError(name)

    def get_boolean(
        self, section: Section, name: bytes, default: bool | None = None
    ) -> bool | None:
        if self._real is not None:
            return self._real.get_boolean(section, name, default)
        try:
            value = self.get(section, name).lower()
        except KeyError:
            return default
        if value in (b"true", b"false"):
            return value == b"true"
        raise ValueError(f"not a valid boolean string: {value!r}")

    def sections(self) -> Iterator[Section]:
        if self._real is not None:
            return self._real.sections()
        seen: set[Section] = set()
        unique = []
        for key in self._values:
            lowered = _lowered(key)
            if lowered not in seen:
                seen.add(lowered)
                unique.append(key)
        return iter(unique)

    def items(self, section: Section) -> Iterator[tuple[bytes, bytes]]:
        if self._real is not None:
            return self._real.items(section)
        return iter([pair for pairs in self._find(section) for pair in pairs])

    def has_section(self, name: Section) -> bool:
        return name in self.sections()


def _lowered(section: Section) -> Section:
    """A section as dulwich compares it: the name in lower case, the subsection as it is."""
    return (section[0].lower(), *section[1:])


def read_config(path: str) -> PlainConfig | None:
    """``path`` read as ``PlainConfig`` if every line is in the plain form (a section header,
    ``key = value`` with no quote, backslash or comment in it, a comment line, a blank
    line), None for anything else (dulwich reads that); OSError if it cannot be read."""
    with open(path, "rb") as file:
        data = file.read()
    values: dict[Section, list[tuple[bytes, bytes]]] = {}
    pairs: list[tuple[bytes, bytes]] | None = None
    for line in data.split(b"\n"):
        line = line.strip(b" \t")
        if not line or line[:1] in (b"#", b";"):
            continue
        if line[:1] == b"[":
            match = _section().fullmatch(line)
            if match is None or match[1].lower() in (b"include", b"includeif"):
                return None
            section = (match[1],) if match[2] is None else (match[1], match[2])
            pairs = values.setdefault(section, [])
            continue
        name, equals, value = line.partition(b"=")
        name, value = name.rstrip(b" \t"), value.strip(b" \t")
        if pairs is None or not equals or not name or not _NAME_CHARS.issuperset(name):
            return None
        if not _NOT_PLAIN.isdisjoint(value):
            return None
        pairs.append((name, value))
    return PlainConfig(path, values)
