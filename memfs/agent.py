"""An agent: a directory of memory files versioned by git.

``init`` creates or adopts one, ``open`` opens one; an ``Agent`` reads its memory, reports its
status and problems, commits, and reads and rolls back its history. Rolling back always makes
a new commit: no memfs operation rewrites history, and pending edits are committed first so
nothing a user wrote is ever lost.

``Agent`` is the facade; the work is in one module per concept, each a set of functions of
the agent:
- memfs/agentmanifest.py  agent.yaml: problems, settings (read without pydantic), the model
- memfs/agentstatus.py    the work tree as a commit would record it (snapshot), status, check
- memfs/agentrules.py     what may go into a commit: Letta's rules, the secrets guard
- memfs/agentcommit.py    commit, the watcher's index-free commit, the index after them
- memfs/agenthistory.py   log, diff, show; restore and revert (as new commits)
- memfs/agentupdate.py    moving the work tree to another tree (journaled), crash recovery
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from memfs import agentmanifest, agentstatus
from memfs.agentmanifest import MANIFEST_MEMO as MANIFEST_MEMO  # re-exported
from memfs.agentstatus import JOURNAL as JOURNAL  # re-exported: memfs.apply.JOURNAL
from memfs.agentstatus import Snapshot, Status
from memfs.errors import UnsafePathError
from memfs.history import History
from memfs.ignore import IgnoreRules
from memfs.layout import V2_MARKER, Layout, is_memory_path
from memfs.memory import MemoryFile
from memfs.parsecache import Parsed
from memfs.schema import MANIFEST_FILE, Problem
from memfs.trees import CommitInfo, FileChange, Files, file_mode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs import lettahook, prescan, worktree
    from memfs.models import AgentManifest

__all__ = ["JOURNAL", "MANIFEST_MEMO", "Agent", "Snapshot", "Status"]

# agentcommit, agentrules, agenthistory and agentupdate are imported where used: a clean
# ``status`` (every turn of an agent's harness) needs none of them.


class Agent:
    """An agent directory. Use ``memfs.open`` or ``memfs.init`` to get one."""

    def __init__(self, root: Path, history: History) -> None:
        self.root = root
        self.history = history
        self._memory_cache: dict[str, tuple[tuple[int, int, int], MemoryFile]] = {}
        self._active_update: str | None = None  # the token of the update being applied
        self._hook_cache: dict[str, Any] = {}  # Letta's hook rules: results by blob
        # What the last commit left in the work tree, and why (see memfs.lettahook).
        self.held: list[lettahook.Refusal] = []
        # What the last commit's snapshot left out of versioning (too large, a symlink
        # leaving the agent...): what ``status().skipped`` would say, without a second walk.
        self.skipped: list[worktree.Skipped] = []
        self.overridden: list[str] = []  # read-only files it changed on a person's request
        # The next commit's scan, started early in a child by a push or pull (memfs.prescan).
        self.prescan: prescan.Early | None = None

    def __repr__(self) -> str:
        return f"<Agent {self.root}>"

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.history.close()

    @property
    def path(self) -> Path:
        return self.root

    @property
    def layout(self) -> Layout:
        """memfs-native (agent.yaml), or a Letta Code repo: v2 with a root MEMORY.md, else v1.

        Read from the files each time (two stats), so a MEMORY.md that arrives with a merge
        switches the rules at once, as it does for Letta Code.
        """
        if (self.root / MANIFEST_FILE).is_file():
            return Layout.NATIVE
        if (self.root / V2_MARKER).is_file() or V2_MARKER in self.history.entries_at(
            self.history.head(), V2_MARKER
        ):
            return Layout.LETTA_V2
        return Layout.LETTA_V1

    # -- the manifest (memfs/agentmanifest.py) ------------------------------------------

    def manifest_problems(self) -> list[Problem]:
        """What is wrong with agent.yaml (a Letta repo has none, and needs none)."""
        return agentmanifest.problems(self)

    @property
    def manifest(self) -> AgentManifest:
        """agent.yaml, validated; SchemaError if it is broken. A Letta repo's is made from
        ``.git/config``'s ``[memfs]``, with the folder's name when nothing was recorded."""
        return agentmanifest.manifest(self)

    def manifest_setting(self, key: str) -> Any:
        """An extra key of agent.yaml (``sync``, say), read without building the model; None
        for a Letta repo, a key that is not there, or an agent.yaml that is broken."""
        return agentmanifest.setting(self, key)

    @property
    def name(self) -> str:
        """The agent's name; the folder's name if agent.yaml cannot be read."""
        return agentmanifest.name(self)

    def _max_file_size(self) -> int:
        return agentmanifest.max_file_size(self)

    # -- memory -------------------------------------------------------------------------

    def committed_memory_count(self) -> int:
        """How many memory files the last commit holds: what a fresh clone or checkout has,
        counted from the tree without reading or parsing a file (``memory`` parses them)."""
        layout = self.layout
        return sum(
            1 for path in self.history.tree_of(self.history.head()) if is_memory_path(path, layout)
        )

    @property
    def memory(self) -> dict[str, MemoryFile]:
        """Every memory file in the work tree, by label, sorted by path.

        The same MemoryFile comes back while its file is unchanged on disk, so
        ``agent.memory[label].value = ...`` then ``agent.memory[label].save()`` saves the edit;
        a file changed on disk (by an editor, a merge) is read afresh.
        """
        snapshot = self._snapshot(self.history.head_tree(self.history.head()))
        layout = self.layout
        files: dict[str, MemoryFile] = {}
        cache: dict[str, tuple[tuple[int, int, int], MemoryFile]] = {}
        for path in sorted(snapshot.stats):
            if not (is_memory_path(path, layout) and path in snapshot.files):
                continue
            st = snapshot.stats[path]
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            cached = self._memory_cache.get(path)
            if cached is not None and cached[0] == key and cached[1].layout is layout:
                memory_file = cached[1]
            else:
                try:
                    memory_file = MemoryFile.load(self.root, path, layout)
                except (OSError, UnsafePathError):
                    continue  # gone, or a symlink chain leaving the agent: never read
            cache[path] = (key, memory_file)
            files[memory_file.label] = memory_file
        self._memory_cache = cache
        return files

    def parsed_memory(
        self, snapshot: Snapshot, layout: Layout, kept: bool = False
    ) -> dict[str, Parsed]:
        """What every memory file in ``snapshot`` holds, by path, sorted; from the parse
        cache where the file's stat data is unchanged (see agentstatus.parsed_memory)."""
        return agentstatus.parsed_memory(self, snapshot, layout, kept)

    # -- the work tree and its status (memfs/agentstatus.py) ----------------------------

    def snapshot(self, head_tree: Files | None = None) -> Snapshot:
        """The work tree as the next commit would record it, against ``head_tree`` (HEAD's
        tree by default): one walk, stat data taken once, hashing only what the index cannot
        vouch for. A command takes one and passes it to everything it does."""
        return agentstatus.snapshot(self, head_tree)

    def _snapshot(self, head_tree: Files) -> Snapshot:
        """A snapshot taken by walking the work tree now (no status record)."""
        return agentstatus.scan(self, head_tree)

    def _rules(self) -> IgnoreRules:
        return agentstatus.ignore_rules(self)

    def _read_change(self, change: FileChange, snapshot: Snapshot) -> tuple[int, bytes] | None:
        """The content to commit for one change; None if the file is (now) gone."""
        return agentstatus.read_change(self, change, snapshot)

    def status(self) -> Status:
        """Uncommitted changes, validation problems, files left out, and open conflicts;
        the last answer again while nothing it was made from has changed (statusrecord)."""
        return agentstatus.status(self)

    def check(self) -> list[Problem]:
        """Validate agent.yaml and every memory file; errors and warnings, by path.

        Files memfs cannot version (too large, symlinks leaving the agent) are errors too.
        """
        return agentstatus.check(self)

    def worktree_files(self) -> list[str]:
        """Every path a commit would hold now."""
        return sorted(self._snapshot(self.history.head_tree(self.history.head())).files)

    def file_mode(self, path: str) -> int:
        """The git mode of the file at ``path``."""
        return file_mode((self.root / path).lstat())

    def is_read_only_mount(self) -> bool:
        """Whether this folder is a read-only (or pinned) mount: nothing is pushed from it."""
        try:
            marker = json.loads((self.history.state_dir / "mount.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(isinstance(marker, dict) and marker.get("read_only"))

    # -- what may be committed (memfs/agentrules.py) ------------------------------------

    def letta_rules(self, allow_read_only: tuple[str, ...] = ()) -> lettahook.Rules:
        """The Letta rules this repo's commits keep (memfs.lettahook): read_only in a Letta
        repo, and everything Letta's pre-commit hook checks when it is installed."""
        from memfs import agentrules

        return agentrules.letta_rules(self, allow_read_only)

    def _gate(
        self,
        head_tree: Files,
        payload: dict[str, tuple[int, bytes] | None],
        origin: str,
        allow_read_only: tuple[str, ...] = (),
        first_commit: bool = False,
    ) -> lettahook.Verdict:
        """Split a proposed commit into what Letta's rules let through and what stays in the
        work tree (agentrules.gate; kept here for memfs/fastcommit.py on branch commit12)."""
        from memfs import agentrules

        return agentrules.gate(self, head_tree, payload, origin, allow_read_only, first_commit)

    def left_out_reason(self, path: str) -> str | None:
        """Why the file at ``path`` is not committed as it is on disk, if it is not: left out
        of versioning, or held back by Letta's rules (read_only, its installed hook) or the
        secrets guard."""
        from memfs import agentrules

        return agentrules.left_out_reason(self, path)

    # -- commit (memfs/agentcommit.py) --------------------------------------------------

    def commit(
        self,
        message: str | None = None,
        origin: str = "cli",
        paths: tuple[str, ...] = (),
        allow_read_only: tuple[str, ...] = (),
        remember: bool = True,
    ) -> CommitInfo | None:
        """Commit every change in the work tree (or only under ``paths``); None if none.

        Broken memory files are committed like any other: nothing a user wrote is dropped.
        In a Letta repo a change Letta's rules refuse (a read-only file, or what its installed
        pre-commit hook rejects) is left in the work tree and listed in ``self.held``;
        ``allow_read_only`` (a person's command only) lets read-only files at those paths change.
        GitOperationInProgressError while plain git is midway through a rebase or merge here,
        DetachedHeadError while HEAD is not a branch. ``remember``: keep the commit record
        that makes the next commit stat-only (memfs.fastcommit); a pull, whose merge moves
        HEAD right after, passes False and spares writing one it would invalidate.
        """
        from memfs import agentcommit

        return agentcommit.commit(self, message, origin, paths, allow_read_only, remember)

    def commit_paths(
        self,
        paths: list[str],
        message: str | None = None,
        origin: str = "watch",
        update_index: bool = True,
    ) -> CommitInfo | None:
        """Commit what is on disk now at ``paths`` (files or folders), and nothing else: the
        watcher's O(changed files) commit; the index follows here or, with
        ``update_index=False``, later by ``refresh_index_paths``."""
        from memfs import agentcommit

        return agentcommit.commit_paths(self, paths, message, origin, update_index)

    def refresh_index_paths(self, paths: list[str]) -> None:
        """Bring the index in line with HEAD for ``paths`` (after index-free commits)."""
        from memfs import agentcommit

        agentcommit.refresh_index_paths(self, paths)

    def refresh_index(self) -> None:
        """Rewrite the index for HEAD, so ``git status`` and memfs's stat cache agree."""
        from memfs import agentcommit

        agentcommit.refresh_index(self)

    def author(self) -> str:
        """``Name <email>`` for commits: user config, then git config, then memfs@host."""
        from memfs import agentcommit

        return agentcommit.author(self)

    # -- history (memfs/agenthistory.py) ------------------------------------------------

    def log(self, path: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        """Commits, newest first; with ``path``, those that changed it (following renames).

        PathNotFoundError for a path that no commit touched and that is not on disk.
        """
        from memfs import agenthistory

        return agenthistory.log(self, path, limit)

    def diff(
        self, rev: str | None = None, rev2: str | None = None, paths: tuple[str, ...] = ()
    ) -> bytes:
        """A unified diff: work tree against HEAD or ``rev``, or ``rev`` against ``rev2``."""
        from memfs import agenthistory

        return agenthistory.diff(self, rev, rev2, paths)

    def split_revisions(self, args: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Split ``[REV [REV2]] [--] [PATH...]`` into revisions and paths, as git does."""
        from memfs import agenthistory

        return agenthistory.split_revisions(self, args)

    def show(self, spec: str) -> bytes:
        """``REV:PATH``: the file as it was; ``REV``: the commit and what it changed."""
        from memfs import agenthistory

        return agenthistory.show(self, spec)

    def restore(
        self, path: str, to: str, origin: str = "cli", allow_read_only: bool = False
    ) -> CommitInfo | None:
        """Bring ``path`` (a file or folder) back to how it was at ``to``, as a new commit.

        In a Letta repo a restore Letta's rules refuse (it would change a read-only file, or
        make a commit its installed hook rejects) raises CommitRefusedError before any file is
        touched; ``allow_read_only`` (a person's command) lets it change read-only files.
        """
        from memfs import agenthistory

        return agenthistory.restore(self, path, to, origin, allow_read_only)

    def revert(
        self, rev: str, origin: str = "cli", allow_read_only: bool = False
    ) -> CommitInfo | None:
        """Undo the changes of commit ``rev`` in a new commit on top of the current head.

        Refused as ``restore`` is when Letta's rules refuse the result (CommitRefusedError).
        """
        from memfs import agenthistory

        return agenthistory.revert(self, rev, origin, allow_read_only)

    # -- changing the work tree (memfs/agentupdate.py) ----------------------------------

    def updating(
        self, current: Files, target: Files, index: bool = True
    ) -> contextlib.AbstractContextManager[Any]:
        """Make the work tree go from ``current`` to ``target`` for a commit of ``target``
        made inside (the branch moved to a commit whose tree is ``target``).

        Journaled and edit-safe (memfs/apply.py): a file is replaced only while it holds its
        ``current`` version (else LocalEditError: the caller commits and goes round again),
        and a change stopped before its commit is rolled back, never committed half done.
        Once the branch has moved, the index is rewritten before the journal goes (``index``;
        off when the commit inside writes it), so a crash in between is finished by
        ``recover`` and never leaves ``git status`` describing the old tree.
        """
        from memfs import agentupdate

        return agentupdate.updating(self, current, target, index)

    def recover(self) -> bool:
        """Finish or roll back a work-tree update that a crash left behind (memfs/apply.py);
        whether there was one. Without a journal there is none: nothing more is loaded (the
        updater and its imports, ~3 ms of every commit)."""
        if not os.path.lexists(self.history.state_dir / JOURNAL):
            return False
        from memfs import agentupdate

        return agentupdate.recover(self)

    def check_out_fresh(self, sha: str, reason: str) -> None:
        """Fill an empty work tree with commit ``sha`` and point the unborn branch at it.

        Every path is checked before the first file is written (see worktreewrite.populate).
        """
        from memfs import agentupdate

        agentupdate.check_out_fresh(self, sha, reason)
