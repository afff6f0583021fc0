"""Writing ``.git/config`` so that git and dulwich read back every value as written.

dulwich (1.2) quotes a value holding ``#`` but not one holding ``;``, which git's config syntax
also takes for the start of a comment: a remote URL or a description with a ``;`` was cut
there when read back. ``save_config`` writes the file as dulwich does, quoting such values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def save_config(config: ConfigFile) -> None:
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
