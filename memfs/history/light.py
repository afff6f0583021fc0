"""Refs and loose objects read without dulwich: what a clean ``status``, ``context`` or ``ls``
asks of the repository.

Those commands need the branch HEAD names, its tip, the tip's tree sha and that the tree is
there; importing dulwich's repository and object store for that costs more (~15 ms) than the
rest of a small agent's ``status``. These readers answer the plain cases (a ``.git`` folder of
its own, a loose ref or a ``packed-refs`` line, a loose object) and say "not answered"
(``None``) for everything else, which ``History`` then asks dulwich: a linked work tree
(``commondir``), a symbolic ref other than HEAD, an object only in a pack. What they read is
checked as dulwich checks it, so damage is reported alike (``memfs.damage``).
"""

from __future__ import annotations

import zlib
from pathlib import Path

_HEX = frozenset(b"0123456789abcdef")


class LightRepo:
    """The plain-case readers for the repository whose control folder is ``control``."""

    def __init__(self, control: Path) -> None:
        self.control = control
        # a linked work tree keeps refs and objects in its common folder: dulwich's case
        self.plain = not (control / "commondir").exists()

    def head_target(self) -> bytes | None:
        """The ref HEAD names (``refs/heads/main``), ``HEAD`` itself when it holds a sha
        (detached); None when not answered here."""
        if not self.plain:
            return None
        try:
            text = (self.control / "HEAD").read_bytes().strip()
        except OSError:
            return None
        if text.startswith(b"ref: "):
            name = text[5:].strip()
            if name.startswith(b"refs/") and b".." not in name and b"\0" not in name:
                return name
            return None
        return b"HEAD" if len(text) == 40 else None

    def ref(self, name: bytes) -> tuple[bool, bytes | None]:
        """(answered, the sha ref ``name`` holds or None if there is no such ref). A loose
        ref is returned as it is stored (the caller checks it is a sha); a symbolic one is
        not answered."""
        if not self.plain or not name.startswith(b"refs/"):
            return False, None
        try:
            with open(self.control / name.decode("utf-8", "surrogateescape"), "rb") as file:
                text = file.read(40)  # what dulwich takes of a loose ref
        except FileNotFoundError:
            return True, self._packed_ref(name)
        except OSError:
            return False, None
        if text.startswith(b"ref:"):
            return False, None
        return True, text

    def _packed_ref(self, name: bytes) -> bytes | None:
        try:
            data = (self.control / "packed-refs").read_bytes()
        except FileNotFoundError:
            return None
        suffix = b" " + name
        for line in data.splitlines():
            if line.endswith(suffix) and len(line) == 40 + len(suffix):
                return line[:40]
        return None

    def loose(self, sha: bytes) -> tuple[bytes, bytes] | None:
        """(type, content) of the loose object ``sha`` (hex), None if it is not loose.

        A corrupt file raises zlib.error or ObjectFormatException, as dulwich would."""
        hex_sha = sha.decode("ascii")
        try:
            with open(self.control / "objects" / hex_sha[:2] / hex_sha[2:], "rb") as file:
                raw = zlib.decompress(file.read())
        except FileNotFoundError:
            return None
        header, nul, content = raw.partition(b"\0")
        kind, _, size = header.partition(b" ")
        if not nul or not size.isdigit() or int(size) != len(content):
            from dulwich.errors import ObjectFormatException  # dulwich (typing): only if damaged

            raise ObjectFormatException(f"object {hex_sha} has a garbled header")
        return kind, content

    def commit_tree(self, sha: bytes) -> bytes | None:
        """The tree sha of the loose commit ``sha``; None if it is not loose."""
        found = self.loose(sha)
        if found is None:
            return None
        kind, content = found
        if kind != b"commit":
            from dulwich.errors import NotCommitError

            raise NotCommitError(sha)
        tree = content[5:45]
        if not content.startswith(b"tree ") or content[45:46] != b"\n" or not _is_hex(tree):
            from dulwich.errors import ObjectFormatException

            raise ObjectFormatException(f"commit {sha.decode()} names no tree")
        return tree

    def is_tree(self, sha: bytes) -> bool | None:
        """Whether the loose object ``sha`` reads as a tree (NotTreeError if it is another
        kind); None if it is not loose."""
        found = self.loose(sha)
        if found is None:
            return None
        if found[0] != b"tree":
            from dulwich.errors import NotTreeError

            raise NotTreeError(sha)
        return True


def _is_hex(sha: bytes) -> bool:
    return len(sha) == 40 and _HEX.issuperset(sha)
