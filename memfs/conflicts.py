"""Open conflicts in the work tree, and settling them by hand.

A merge settles every conflict by policy so syncing never stops, but leaves the evidence for a
person or the agent to reconcile: conflict copies (``name.conflict-<sha>.md``) and git-style
markers. ``find`` lists them; ``resolve`` keeps one side or both and commits.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from memfs.errors import MemfsError, UnsafePathError
from memfs.markers import (
    CONFLICT_COPY,
    LETTA_CONFLICTS,
    has_markers,
    is_conflict_copy,
    resolve_markers,
)
from memfs.pathcheck import read_inside
from memfs.record import FrozenRecord
from memfs.trees import CommitInfo, blob_sha, read_worktree_data
from memfs.util import atomic_write

TYPE_CHECKING = False
if TYPE_CHECKING:  # agent.py uses find_in for its status: no import cycle at runtime
    from typing import Literal

    from memfs.agent import Agent

    Keep = Literal["ours", "theirs", "both"]


class OpenConflict(FrozenRecord):
    """One unresolved conflict: a copy beside ``path``, or markers inside it."""

    __slots__ = _fields = ("path", "kind", "copy_path")
    path: str
    kind: str  # "copy" | "markers"
    copy_path: str | None

    def __init__(self, path: str, kind: str, copy_path: str | None = None) -> None:
        self._set(path, kind, copy_path)

    def to_dict(self) -> dict[str, str | None]:
        return {"path": self.path, "kind": self.kind, "copy_path": self.copy_path}


def original_path(copy_path: str) -> str:
    """``notes/a.conflict-1a2b3c4.md`` -> ``notes/a.md``; in a Letta repo
    ``.memfs-conflicts/system/a.md.conflict-1a2b3c4`` -> ``system/a.md``."""
    pure = PurePosixPath(copy_path.removeprefix(LETTA_CONFLICTS + "/"))
    return str(pure.with_name(CONFLICT_COPY.sub("", pure.name, count=1)))


def find(agent: Agent) -> list[OpenConflict]:
    """Every conflict copy and every file with conflict markers, by path."""
    return find_in(agent.root, dict.fromkeys(agent.worktree_files()))


def find_in(
    root: Path, files: Mapping[str, str | None], cache_file: Path | None = None
) -> list[OpenConflict]:
    """The open conflicts among ``files`` (path -> blob sha if known) under ``root``.

    With ``cache_file``, which blobs hold markers is remembered by sha, so a status of a large
    agent reads only the files whose content it has not seen.
    """
    cache = _MarkerCache(cache_file)
    found = []
    for path in sorted(files):
        if is_conflict_copy(path):
            found.append(OpenConflict(original_path(path), "copy", path))
        elif cache.has_markers(root, path, files[path]):
            found.append(OpenConflict(path, "markers"))
    cache.save()
    return found


class _MarkerCache:
    """Whether a blob holds conflict markers, by sha, kept in a JSON file (or nowhere).

    Losing or failing to write the file only costs time; a read-only agent works without it.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._known: dict[str, bool] = {}
        if path is not None:
            with contextlib.suppress(OSError, ValueError, TypeError):
                self._known = dict(json.loads(path.read_text()))
        self._used: dict[str, bool] = {}

    def has_markers(self, root: Path, path: str, sha: str | None) -> bool:
        if sha is not None and sha in self._known:
            self._used[sha] = self._known[sha]
            return self._known[sha]
        try:
            content = read_inside(root, path)
        except (OSError, UnsafePathError):
            return False  # gone, or a link leading out of the agent: never read
        marked = b"\0" not in content[:8000] and has_markers(content)
        if self.path is not None:
            self._used[blob_sha(content)] = marked  # what was actually read
        return marked

    def save(self) -> None:
        if self.path is not None and self._used != self._known:
            with contextlib.suppress(OSError):
                self.path.parent.mkdir(exist_ok=True)
                atomic_write(self.path, json.dumps(self._used).encode())


def resolve(agent: Agent, path: str, keep: Keep) -> CommitInfo | None:
    """Settle the conflict at ``path`` (the file or its conflict copy) and commit.

    ``ours`` keeps the file at the path (the upper side of markers); ``theirs`` keeps the
    conflict copy (the lower side); ``both`` keeps both, one after the other.
    """
    with agent.history.locked():
        agent.history.refuse_during_git_operation()  # before any file is rewritten
        conflict = settle(agent, path, keep)
        # A Letta repo's copy of a read-only block reads as read-only itself (its front matter
        # says so), but it is no block: removing it is what this person's command asks for.
        copy = conflict.copy_path if conflict.kind == "copy" and agent.layout.is_letta else None
        return agent.commit(
            message=f"memfs: resolve conflict in {conflict.path} (kept {keep})",
            allow_read_only=(copy,) if copy else (),
        )


def settle(agent: Agent, path: str, keep: Keep) -> OpenConflict:
    """The work-tree half of ``resolve``: rewrite the files, commit nothing (a caller that
    commits and pushes on its own, like ``memfs serve``, does the rest); the conflict settled."""
    from memfs.worktreewrite import write_file  # the writers load only to settle

    path = path.strip("/")
    matches = [c for c in find(agent) if path in (c.path, c.copy_path)]
    if not matches:
        raise MemfsError(f"no open conflict at {path}: see 'memfs conflicts'")
    copies = [c for c in matches if c.kind == "copy"]
    if len(copies) > 1 and path not in {c.copy_path for c in copies}:
        names = ", ".join(str(c.copy_path) for c in copies)
        raise MemfsError(f"{path} has several conflict copies ({names}): name the one to resolve")
    conflict = next((c for c in matches if c.copy_path == path), matches[0])
    if conflict.kind == "markers":
        content = (agent.root / conflict.path).read_bytes()
        mode = agent.file_mode(conflict.path)
        write_file(agent.root, conflict.path, mode, resolve_markers(content, keep))
    else:
        assert conflict.copy_path is not None
        _resolve_copy(agent, conflict.path, conflict.copy_path, keep)
    return conflict


def _resolve_copy(agent: Agent, path: str, copy_path: str, keep: Keep) -> None:
    from memfs.worktreewrite import remove_file, write_file

    copy_mode = agent.file_mode(copy_path)
    copy_data = read_worktree_data(agent.root / copy_path, copy_mode)
    if keep == "theirs":
        write_file(agent.root, path, copy_mode, copy_data)
    elif keep == "both":
        mode = agent.file_mode(path)
        current = read_worktree_data(agent.root / path, mode)
        letta = agent.layout.is_letta
        write_file(agent.root, path, mode, _concatenate(path, current, copy_data, letta))
    remove_file(agent.root, copy_path)


def _concatenate(path: str, first: bytes, second: bytes, letta: bool = False) -> bytes:
    """Both versions in one file; a Markdown file keeps only the first one's front matter
    (read as Letta reads it in a Letta repo, so its hook still accepts the file)."""
    if path.endswith(".md"):
        from memfs import frontmatter, lettafm  # here: finding conflicts reads no front matter

        with contextlib.suppress(UnicodeDecodeError):
            text = second.decode()
            body = lettafm.parse(text).body if letta else frontmatter.split(text).body
            second = body.encode()
    joiner = b"" if first.endswith(b"\n") or not first else b"\n"
    return first + joiner + b"\n" + second
