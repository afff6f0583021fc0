"""An agent: a directory of memory files versioned by git.

``init`` creates or adopts one, ``open`` opens one; an ``Agent`` reads its memory, reports its
status and problems, commits, and reads and rolls back its history. Rolling back always makes
a new commit: no memfs operation rewrites history, and pending edits are committed first so
nothing a user wrote is ever lost.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memfs import worktree
from memfs.errors import (
    CommitRefusedError,
    MemfsError,
    PathNotFoundError,
    RevertConflictError,
    RevisionNotFoundError,
    SchemaError,
    UnsafePathError,
)
from memfs.faults import crash_point
from memfs.frontmatter import load_yaml, yaml_error_summary
from memfs.history import History
from memfs.ignore import IgnoreRules
from memfs.layout import V2_MARKER, Layout, is_memory_path, letta_repo_name
from memfs.memory import MemoryFile
from memfs.parsecache import ParseCache, Parsed
from memfs.schema import (
    MANIFEST_FILE,
    Problem,
    is_valid_name,
    key_lines,
    manifest_error,
    validation_problems,
)
from memfs.secrets.hooks import has_secrets
from memfs.trees import (
    TRAILER_HOST,
    TRAILER_ORIGIN,
    CommitInfo,
    FileChange,
    Files,
    TreeEntry,
    blob_sha,
    compare_trees,
    file_mode,
    read_worktree_data,
    with_trailers,
    write_diff,
)
from memfs.util import atomic_write, hostname
from memfs.yamllib import yaml

if TYPE_CHECKING:
    from memfs import lettahook
    from memfs.conflicts import OpenConflict
    from memfs.models import AgentManifest

# Imported where used: memfs.apply (work-tree updates), memfs.conflicts (with the merge
# rules), memfs.config (the user's identity), memfs.lettahook (Letta's commit rules): a clean
# ``status`` needs only a little of them.
JOURNAL = "update.json"  # memfs.apply.JOURNAL: a merge's journal, there while it runs
MANIFEST_MEMO = "manifest.json"  # in .git/memfs: what agent.yaml's text says (_manifest_summary)


@dataclass
class Status:
    """What differs from the last commit, and what is wrong or left out."""

    branch: str
    head: str | None
    changes: list[FileChange]
    problems: list[Problem]
    secrets: list[str] = field(default_factory=list)
    skipped: list[worktree.Skipped] = field(default_factory=list)
    conflicts: list[OpenConflict] = field(default_factory=list)
    update_pending: bool = False  # a merge's journal is there: running now, or stopped midway
    # Changes the next commit leaves in the work tree, and why (a Letta repo's read_only, or
    # what Letta's installed pre-commit hook would refuse): kept, never committed by memfs.
    held: list[Problem] = field(default_factory=list)
    blocked: bool = False  # Letta's hook refuses any commit until the tree is fixed
    # plain git stopped midway here ("rebase", "merge", ...): memfs commits nothing until done
    git_operation: str | None = None
    detached: bool = False  # HEAD names a commit, not a branch: memfs commits nothing

    @property
    def clean(self) -> bool:
        return not self.changes

    def to_dict(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "head": self.head,
            "clean": self.clean,
            "changes": [{"path": c.path, "status": c.status} for c in self.changes],
            "problems": [p.to_dict() for p in self.problems],
            "ignored_secrets": self.secrets,
            "skipped": [s.to_dict() for s in self.skipped],
            "conflicts": [c.to_dict() for c in self.conflicts],
            "update_pending": self.update_pending,
            "held": [p.to_dict() for p in self.held],
            "blocked": self.blocked,
            "git_operation": self.git_operation,
            "detached": self.detached,
        }


@dataclass
class Snapshot:
    """The work tree as the next commit would record it."""

    files: Files
    stats: dict[str, os.stat_result]
    scan: worktree.Scan

    def stats_matching(self, tree: Files) -> dict[str, os.stat_result]:
        """Stat data that may vouch for ``tree``'s shas: where the file on disk is what it holds."""
        return {
            path: st for path, st in self.stats.items() if tree.get(path) == self.files.get(path)
        }


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

    # -- the manifest -------------------------------------------------------------------

    def manifest_problems(self) -> list[Problem]:
        """What is wrong with agent.yaml (a Letta repo has none, and needs none)."""
        if self.layout.is_letta:
            return []
        return self._manifest_summary()[0]

    def _manifest_summary(self) -> tuple[list[Problem], Any, Any]:
        """agent.yaml's problems, name and max_file_size, remembered with its text in
        ``.git/memfs/manifest.json``: every command asks, and parsing YAML costs a small
        agent's ``status`` a tenth of its time (PyYAML's import). The memo holds for exactly
        the text it was made from; losing it only costs that parse."""
        try:
            text = (self.root / MANIFEST_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return [Problem(MANIFEST_FILE, 1, "missing: every agent needs agent.yaml")], None, None
        except UnicodeDecodeError:
            return [Problem(MANIFEST_FILE, 1, "not valid UTF-8")], None, None
        memo_path = self.history.state_dir / MANIFEST_MEMO
        with contextlib.suppress(OSError, ValueError, TypeError):
            memo = json.loads(memo_path.read_bytes())
            if memo["text"] == text:
                problems = [Problem(MANIFEST_FILE, int(line), str(message), severity)
                            for line, message, severity in memo["problems"]]  # fmt: skip
                return problems, memo["name"], memo["max_file_size"]
        problems = self._manifest_problems_of(text)
        data = {} if problems else load_yaml(text)
        name, max_file_size = data.get("name"), data.get("max_file_size")
        if all(value is None or type(value) in (str, int) for value in (name, max_file_size)):
            rows = [[p.line, p.message, p.severity] for p in problems]
            memo = {"text": text, "problems": rows, "name": name, "max_file_size": max_file_size}
            with contextlib.suppress(OSError):  # a read-only agent: only costs time
                atomic_write(memo_path, json.dumps(memo).encode())
        return problems, name, max_file_size

    def _manifest_problems_of(self, text: str) -> list[Problem]:
        """What is wrong with agent.yaml holding ``text``."""
        try:
            data = load_yaml(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = (mark.line + 1) if mark else 1
            return [Problem(MANIFEST_FILE, line, yaml_error_summary(error))]
        if not isinstance(data, dict):
            return [Problem(MANIFEST_FILE, 1, "must be a mapping of keys to values")]
        error = manifest_error(data)
        if error is not None:
            return validation_problems(MANIFEST_FILE, error, key_lines(text), first_line=1)
        return []

    @property
    def manifest(self) -> AgentManifest:
        """agent.yaml, validated; SchemaError if it is broken.

        A Letta repo keeps who it is out of its tree, in ``.git/config`` (``[memfs]``): the
        manifest is made from that, with the folder's name when nothing was recorded.
        """
        if self.layout.is_letta:
            return self._letta_manifest()
        problems = self.manifest_problems()
        if problems:
            raise SchemaError(problems)
        from memfs.models import AgentManifest

        data = load_yaml((self.root / MANIFEST_FILE).read_text(encoding="utf-8"))
        return AgentManifest.model_validate(data)

    def manifest_setting(self, key: str) -> Any:
        """An extra key of agent.yaml (``sync``, say), read without building the model (every
        push and pull asks; pydantic costs ~0.1 s to load); None for a Letta repo, a key that
        is not there, or an agent.yaml that is broken (``check`` reports that)."""
        if self.layout.is_letta or self.manifest_problems():
            return None
        data = load_yaml((self.root / MANIFEST_FILE).read_text(encoding="utf-8"))
        return data.get(key) if isinstance(data, dict) else None

    def _letta_manifest(self) -> AgentManifest:
        from memfs.models import AgentManifest

        history = self.history
        name = history.config_value("memfs", "name") or letta_repo_name(self.root)
        created = history.config_value("memfs", "created") or "1970-01-01T00:00:00Z"
        return AgentManifest(
            name=name if is_valid_name(name) else "agent",
            id=history.config_value("memfs", "id") or f"letta-{name}",
            description=history.config_value("memfs", "description") or "",
            created_at=created,  # type: ignore[arg-type]
        )

    @property
    def name(self) -> str:
        """The agent's name; the folder's name if agent.yaml cannot be read."""
        if not self.layout.is_letta:  # read without pydantic, as _max_file_size is
            problems, name, _ = self._manifest_summary()
            return self.root.name if problems else str(name)
        try:
            return self.manifest.name
        except MemfsError:
            return self.root.name

    def _max_file_size(self) -> int:
        """agent.yaml's max_file_size, read without building the manifest (every snapshot asks,
        and the pydantic model costs more to import than a whole ``memfs status``)."""
        if self.layout.is_letta:
            return worktree.DEFAULT_MAX_FILE_SIZE
        problems, _, max_file_size = self._manifest_summary()
        if problems:
            return worktree.DEFAULT_MAX_FILE_SIZE
        return max_file_size or worktree.DEFAULT_MAX_FILE_SIZE

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

    def check(self) -> list[Problem]:
        """Validate agent.yaml and every memory file; errors and warnings, by path.

        Files memfs cannot version (too large, symlinks leaving the agent) are errors too.
        """
        head_tree = self.history.head_tree(self.history.head())
        snapshot = self._snapshot(head_tree)
        problems = self._problems(snapshot)
        problems.extend(
            Problem(skipped.shown, 1, f"not versioned: {skipped.reason}")
            for skipped in snapshot.scan.skipped
        )
        if self.layout.is_letta:
            problems.extend(self._hook_problems(head_tree, snapshot, problems))
        return problems

    def _hook_problems(
        self, head_tree: Files, snapshot: Snapshot, known: list[Problem]
    ) -> list[Problem]:
        """What Letta's pre-commit hook would say of the work tree as a commit, installed or
        not (its change rules, v2 folders, the tree constraints), beyond ``known``."""
        from memfs import lettahook

        rules = self.letta_rules().as_installed()
        changes = compare_trees(head_tree, snapshot.files)
        payload = {change.path: self._read_change(change, snapshot) for change in changes}
        verdict = lettahook.review(rules, head_tree, payload, self.history.blob, self._hook_cache)
        seen = {(p.path, p.message) for p in known}
        found = []
        for refusal in verdict.errors:
            if (refusal.path, refusal.message) not in seen:
                seen.add((refusal.path, refusal.message))
                found.append(refusal.problem())
        return found

    def letta_rules(self, allow_read_only: tuple[str, ...] = ()) -> lettahook.Rules:
        """The Letta rules this repo's commits keep (memfs.lettahook): read_only in a Letta
        repo, and everything Letta's pre-commit hook checks when it is installed."""
        from memfs import lettahook

        return lettahook.Rules.of_repo(self.history.control_dir, self.layout, allow_read_only)

    def _gate(
        self,
        head_tree: Files,
        payload: dict[str, tuple[int, bytes] | None],
        origin: str,
        allow_read_only: tuple[str, ...] = (),
        first_commit: bool = False,
    ) -> lettahook.Verdict:
        """Split a proposed commit into what Letta's rules let through and what stays in the
        work tree; only a person's command (origin ``cli``) may lift read_only."""
        if allow_read_only and origin != "cli":
            raise MemfsError(f"only a person's command may change a read-only file, not {origin}")
        from memfs import lettahook

        rules = self.letta_rules(allow_read_only)
        verdict = lettahook.review(
            rules, head_tree, payload, self.history.blob, self._hook_cache, first_commit
        )
        if has_secrets(self):  # a file holding a secret's value stays on disk (§6.2)
            from memfs.secrets.guard import guard_verdict

            guard_verdict(self, verdict)
        self.held = verdict.refusals
        self.overridden = [path for path in verdict.overridden if path in verdict.allowed]
        return verdict

    # -- status and commit --------------------------------------------------------------

    def _rules(self) -> IgnoreRules:
        return IgnoreRules(self.root)

    def snapshot(self, head_tree: Files | None = None) -> Snapshot:
        """The work tree as the next commit would record it, against ``head_tree`` (HEAD's
        tree by default): one walk, stat data taken once, hashing only what the index cannot
        vouch for. A command takes one and passes it to everything it does."""
        if head_tree is None:
            from memfs import statusrecord

            head = self.history.head()
            recorded = statusrecord.recorded_snapshot(self, statusrecord.key(self, head))
            if recorded is not None:  # the tree is as the last status saw it
                return recorded
            head_tree = self.history.head_tree(head)
        return self._snapshot(head_tree)

    def _snapshot(self, head_tree: Files) -> Snapshot:
        scan = worktree.scan(
            self.root, self._rules(), self._max_file_size(), tracked=frozenset(head_tree)
        )
        files, unreadable = self.history.hash_worktree(scan.files)
        stats = {path: st for path, st in scan.files.items() if path in files}
        # A file memfs cannot or will not read keeps its last committed version: skipping
        # it must never turn into deleting it from history.
        kept = [s.path for s in scan.skipped] + unreadable
        for path in kept:
            if path in head_tree and os.path.lexists(self.root / path):
                files[path] = head_tree[path]
        for path in unreadable:
            scan.skipped.append(worktree.Skipped(path, "could not be read"))
        return Snapshot(files, stats, scan)

    def _problems(self, snapshot: Snapshot) -> list[Problem]:
        """agent.yaml's and every memory file's problems; a file is parsed only when its
        stat data changed since it last was (memfs.parsecache)."""
        layout = self.layout
        problems = self.manifest_problems() + self._rules().problems
        for path, parsed in self.parsed_memory(snapshot, layout).items():
            if parsed.problems:
                problems.extend(parsed.problem_list(path))
        return problems

    def parsed_memory(
        self, snapshot: Snapshot, layout: Layout, kept: bool = False
    ) -> dict[str, Parsed]:
        """What every memory file in ``snapshot`` holds (problems, description, ...), by path,
        sorted; from ``.git/memfs/parsed.bin`` where the file's stat data is unchanged.

        ``kept`` adds the files the scan left out but history keeps (too large, say), read
        as they are on disk; a file that cannot be read is left out.
        """
        cache = ParseCache(self.history.state_dir)
        stats, files = snapshot.stats, snapshot.files
        wanted = [
            (path, stats.get(path))
            for path in sorted(files if kept else stats)
            if path in files and is_memory_path(path, layout)
        ]
        found = cache.parse_all(self.root, wanted, layout)
        cache.save()
        return found

    def status(self) -> Status:
        """Uncommitted changes, validation problems, files left out, and open conflicts;
        the last answer again while nothing it was made from has changed (statusrecord)."""
        from memfs import statusrecord

        head = self.history.head()
        made_for = statusrecord.key(self, head)
        found = statusrecord.recorded(self, made_for)
        if found is not None:
            return self._live(found)
        started = statusrecord.now_ns()
        found, snapshot, reviewed = self._status(head)
        if not reviewed:  # Letta's review reads the environment too: not recorded
            statusrecord.save(self, made_for, found, snapshot, started)
        return self._live(found)

    def _live(self, status: Status) -> Status:
        """``status`` with what is read afresh every time: branch, a merge's journal, a
        plain-git operation midway, a detached HEAD."""
        status.branch = self.history.branch()
        status.update_pending = (self.history.state_dir / JOURNAL).exists()
        status.git_operation = self.history.git_operation()
        status.detached = self.history.detached()
        return status

    def _status(self, head: str | None) -> tuple[Status, Snapshot, bool]:
        """The status worked out from the work tree, its snapshot, and whether Letta's
        rules reviewed the changes."""
        head_tree = self.history.head_tree(head)
        snapshot = self._snapshot(head_tree)
        changes = compare_trees(head_tree, snapshot.files)
        held: list[Problem] = []
        blocked = False
        # Letta's rules apply to a Letta repo, or where a pre-commit hook may be Letta's
        # (lettahook.hook_installed reads it): only then is memfs.lettahook loaded
        hook = self.history.control_dir / "hooks" / "pre-commit"
        reviewed = bool(changes) and (self.layout.is_letta or hook.exists())
        if reviewed:
            from memfs import lettahook

            rules = self.letta_rules()
            if rules.active:
                payload = {c.path: self._read_change(c, snapshot) for c in changes}
                verdict = lettahook.review(
                    rules, head_tree, payload, self.history.blob, self._hook_cache, head is None
                )
                held = [refusal.problem() for refusal in verdict.refusals]
                blocked = bool(verdict.blocked)
        if changes and has_secrets(self):
            from memfs.secrets.guard import review, values_of

            payload = {c.path: self._read_change(c, snapshot) for c in changes}
            held += [refusal.problem() for refusal in review(payload, values_of(self))[1]]
            reviewed = True  # the verdict depends on the secrets' values too: not recorded
        found = Status(
            branch="",
            head=head,
            changes=changes,
            held=held,
            blocked=blocked,
            problems=self._problems(snapshot),
            secrets=snapshot.scan.secrets,
            skipped=snapshot.scan.skipped,
            conflicts=_conflicts_in(
                self.root,
                {path: entry.sha for path, entry in snapshot.files.items()},
                self.history.state_dir / "markers.json",
            ),
        )
        return found, snapshot, reviewed

    def commit(
        self,
        message: str | None = None,
        origin: str = "cli",
        paths: tuple[str, ...] = (),
        allow_read_only: tuple[str, ...] = (),
    ) -> CommitInfo | None:
        """Commit every change in the work tree (or only under ``paths``); None if none.

        Broken memory files are committed like any other: nothing a user wrote is dropped.
        In a Letta repo a change Letta's rules refuse (a read-only file, or what its installed
        pre-commit hook rejects) is left in the work tree and listed in ``self.held``;
        ``allow_read_only`` (a person's command only) lets read-only files at those paths change.
        GitOperationInProgressError while plain git is midway through a rebase or merge here,
        DetachedHeadError while HEAD is not a branch.
        """
        self.held = []
        if message and has_secrets(self):
            from memfs.secrets.guard import check_message

            check_message(self, message)
        with self.history.locked():
            self.history.refuse_during_git_operation()
            self.recover()
            rules = self._rules()
            rules.sync_git_exclude(self.history.control_dir)
            from memfs import fastcommit  # stat-only commit while its record vouches

            if not paths:
                found = fastcommit.commit(self, message, origin, allow_read_only)
                if found is not fastcommit.FALLBACK:
                    return found  # type: ignore[no-any-return]
            head = self.history.head()
            made_for, started = fastcommit.context(self, head), time.time_ns()
            head_tree = self.history.head_tree(head)
            snapshot = self._snapshot(head_tree)
            self.skipped = snapshot.scan.skipped
            changes = compare_trees(head_tree, snapshot.files, paths)
            if not changes:
                if not self.history.index_describes(head_tree, commit=head):
                    # a commit killed before its index write, or index-free commits (the
                    # watcher's): git status must describe HEAD, not an older tree
                    self.history.write_index(
                        head_tree, snapshot.stats_matching(head_tree), commit=head
                    )
                if head is not None and not paths:
                    fastcommit.remember(self, made_for, head, head_tree, snapshot, started)
                return None
            payload: dict[str, tuple[int, bytes] | None] = {}
            for change in changes:
                payload[change.path] = self._read_change(change, snapshot)
            payload = self._gate(
                head_tree, payload, origin, allow_read_only, first_commit=head is None
            ).allowed
            if not payload:
                if not self.history.index_describes(head_tree):
                    self.history.write_index(
                        head_tree, snapshot.stats_matching(head_tree), commit=head
                    )
                return None
            effective = [
                c
                for c in changes
                if c.path in payload and (payload[c.path] is not None or c.new is None)
            ]
            text = message or generated_message(effective)
            trailers = {TRAILER_HOST: hostname(), TRAILER_ORIGIN: origin}
            sha = self.history.commit(head, payload, with_trailers(text, trailers), self.author())
            crash_point("commit.index")
            committed = dict(head_tree)
            for path, change in payload.items():
                if change is None:
                    committed.pop(path, None)
                else:
                    committed[path] = TreeEntry(change[0], blob_sha(change[1]))
            exact = _is_flat_tree(committed, payload)  # else build_tree dropped shadowed paths
            self.history.write_index(
                committed,
                snapshot.stats_matching(committed),
                commit=sha if exact else None,
                changed=payload.keys(),
            )
            if exact and not paths and len(effective) == len(changes):
                fastcommit.remember(self, made_for, sha, committed, snapshot, started)
            return self.history.commit_info(sha)

    def commit_paths(
        self,
        paths: list[str],
        message: str | None = None,
        origin: str = "watch",
        update_index: bool = True,
    ) -> CommitInfo | None:
        """Commit what is on disk now at ``paths`` (files or folders), and nothing else.

        The watcher's commit (DESIGN.md §4): no scan of the work tree, no flattening of HEAD's
        tree, no reading of the index; every named path is checked against disk and against
        the same rules as a full commit, so the cost is O(changed files). The index is brought
        in line afterwards: here, or later by ``refresh_index_paths`` (``update_index=False``).
        """
        wanted = sorted({p.strip("/") for p in paths if p.strip("/")})
        self.held = []
        with self.history.locked():
            self.history.refuse_during_git_operation()
            if self.recover():  # rolled back: files other than ``paths`` changed too
                return self.commit(message, origin)
            head = self.history.head()
            before: Files = {}
            for path in wanted:
                before.update(self.history.entries_at(head, path))
            scan = worktree.scan_paths(
                self.root, self._rules(), wanted, self._max_file_size(), frozenset(before)
            )
            files, unreadable = self.history.hash_worktree(scan.files, use_index=False)
            for path in [s.path for s in scan.skipped] + unreadable:
                if path in before and os.path.lexists(self.root / path):
                    files[path] = before[path]  # kept at its last version, never deleted
            changes = compare_trees(before, files)
            if not changes:
                return None
            snapshot = Snapshot(files, dict(scan.files), scan)
            payload = {change.path: self._read_change(change, snapshot) for change in changes}
            # Letta's hook looks at the whole tree: only then is HEAD's tree flattened
            rules_tree = self.history.tree_of(head) if self.letta_rules().tree_wide else before
            payload = self._gate(rules_tree, payload, origin).allowed
            if not payload:
                return None
            changes = [change for change in changes if change.path in payload]
            text = message or generated_message(changes)
            trailers = {TRAILER_HOST: hostname(), TRAILER_ORIGIN: origin}
            sha = self.history.commit(head, payload, with_trailers(text, trailers), self.author())
            if update_index:
                self.refresh_index_paths(list(payload))
            return self.history.commit_info(sha)

    def refresh_index_paths(self, paths: list[str]) -> None:
        """Bring the index in line with HEAD for ``paths`` (after index-free commits)."""
        with self.history.locked():
            head = self.history.head()
            updates: dict[str, TreeEntry | None] = dict.fromkeys(paths)
            stats: dict[str, os.stat_result] = {}
            for path in paths:
                for entry_path, entry in self.history.entries_at(head, path).items():
                    updates[entry_path] = entry
                    on_disk = self._on_disk_stat(entry_path)
                    if on_disk is not None and self._on_disk(entry_path) == entry:
                        stats[entry_path] = on_disk
            self.history.update_index_paths(updates, stats)

    def _on_disk_stat(self, path: str) -> os.stat_result | None:
        try:
            return (self.root / path).lstat()
        except OSError:
            return None

    def _read_change(self, change: FileChange, snapshot: Snapshot) -> tuple[int, bytes] | None:
        """The content to commit for one change; None if the file is (now) gone."""
        if change.new is None:
            return None
        try:
            data = read_worktree_data(self.root / change.path, change.new.mode)
        except FileNotFoundError:
            snapshot.stats.pop(change.path, None)
            return None
        return change.new.mode, data

    def author(self) -> str:
        """``Name <email>`` for commits: user config, then git config, then memfs@host."""
        from memfs.config import commit_identity

        return commit_identity() or self.history.git_identity() or f"memfs <memfs@{hostname()}>"

    # -- history ------------------------------------------------------------------------

    def log(self, path: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        """Commits, newest first; with ``path``, those that changed it (following renames).

        PathNotFoundError for a path that no commit touched and that is not on disk.
        """
        commits = self.history.log(path, limit)
        if path and not commits and not os.path.lexists(self.root / path.strip("/")):
            raise PathNotFoundError(path, "the history or the work tree")
        return commits

    def diff(
        self, rev: str | None = None, rev2: str | None = None, paths: tuple[str, ...] = ()
    ) -> bytes:
        """A unified diff: work tree against HEAD or ``rev``, or ``rev`` against ``rev2``."""
        old_sha = self.history.resolve(rev) if rev else self.history.head()
        old = self.history.tree_of(old_sha)
        if rev2 is not None:
            new = self.history.tree_of(self.history.resolve(rev2))
            on_disk = False
        else:
            new = self._snapshot(self.history.head_tree(self.history.head())).files
            on_disk = True
        out = io.BytesIO()
        for change in compare_trees(old, new, paths):
            old_data = self.history.blob(change.old.sha) if change.old else b""
            new_data = b""
            if change.new is not None:
                new_data = self._content(change.path, change.new, on_disk)
            write_diff(out, change, old_data, new_data)
        return out.getvalue()

    def _content(self, path: str, entry: TreeEntry, on_disk: bool) -> bytes:
        if on_disk:
            try:
                return read_worktree_data(self.root / path, entry.mode)
            except OSError:
                pass
        return self.history.blob(entry.sha)

    def split_revisions(self, args: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Split ``[REV [REV2]] [--] [PATH...]`` into revisions and paths, as git does."""
        if "--" in args:
            cut = args.index("--")
            revs, paths = args[:cut], args[cut + 1 :]
            for rev in revs:
                self.history.resolve(rev)
        else:
            revs, paths = (), ()
            head_tree = self.history.head_tree(self.history.head())
            for arg in args:
                if not paths and len(revs) < 2 and self._is_revision(arg):
                    revs += (arg,)
                elif os.path.lexists(self.root / arg) or any(
                    p == arg or p.startswith(arg.rstrip("/") + "/") for p in head_tree
                ):
                    paths += (arg,)
                else:
                    raise RevisionNotFoundError(arg)
        if len(revs) > 2:
            raise MemfsError("give at most two revisions to compare")
        return revs, tuple(p.strip("/") for p in paths)

    def _is_revision(self, text: str) -> bool:
        try:
            self.history.resolve(text)
        except RevisionNotFoundError:
            return False
        return True

    def show(self, spec: str) -> bytes:
        """``REV:PATH``: the file as it was; ``REV``: the commit and what it changed."""
        rev, sep, path = spec.partition(":")
        if sep:
            return self.history.read_file(rev or "HEAD", path)
        sha = self.history.resolve(rev)
        info = self.history.commit_info(sha)
        header = [f"commit {info.sha}"]
        if len(info.parents) > 1:
            header.append("Merge: " + " ".join(p[:7] for p in info.parents))
        header += [f"Author: {info.author}", f"Date:   {info.date.isoformat()}", ""]
        header += ["    " + line for line in info.message.split("\n")]
        for key, value in info.trailers.items():
            header.append(f"    {key}: {value}")
        out = io.BytesIO()
        out.write(("\n".join(header) + "\n\n").encode())
        for change in self.history.changed_paths(sha):
            old = self.history.blob(change.old.sha) if change.old else b""
            new = self.history.blob(change.new.sha) if change.new else b""
            write_diff(out, change, old, new)
        return out.getvalue()

    def restore(
        self, path: str, to: str, origin: str = "cli", allow_read_only: bool = False
    ) -> CommitInfo | None:
        """Bring ``path`` (a file or folder) back to how it was at ``to``, as a new commit.

        In a Letta repo a restore Letta's rules refuse (it would change a read-only file, or
        make a commit its installed hook rejects) raises CommitRefusedError before any file is
        touched; ``allow_read_only`` (a person's command) lets it change read-only files.
        """
        path = path.strip("/")
        with self.history.locked():
            sha = self.history.resolve(to)  # before committing: HEAD~1 means what the user saw
            self.commit(origin=origin)  # pending edits go into history before anything moves
            target = _under(self.history.tree_of(sha), path)
            head_tree = self.history.head_tree(self.history.head())
            current = _under(head_tree, path)
            if not target:
                raise PathNotFoundError(path, f"revision {to}")
            allowed = self._refuse_letta(
                f"restore {path}", head_tree, current, target, origin, allow_read_only
            )
            message = f"memfs: restore {path} to {sha[:7]}"
            with self.updating(current, target, index=False):
                return self.commit(
                    message=message, origin=origin, paths=(path,), allow_read_only=allowed
                )

    def revert(
        self, rev: str, origin: str = "cli", allow_read_only: bool = False
    ) -> CommitInfo | None:
        """Undo the changes of commit ``rev`` in a new commit on top of the current head.

        Refused as ``restore`` is when Letta's rules refuse the result (CommitRefusedError).
        """
        with self.history.locked():
            sha = self.history.resolve(rev)  # before committing: HEAD~1 means what the user saw
            self.commit(origin=origin)
            info = self.history.commit_info(sha)
            head = self.history.head()
            assert head is not None
            parent = info.parents[0] if info.parents else None
            merged, conflicts = self.history.merge_trees(sha, head, parent)
            if conflicts:
                raise RevertConflictError(rev, conflicts)
            current = self.history.tree_of(head)
            message = f'memfs: revert "{info.summary}"\n\nThis reverts commit {sha}.'
            merged_tree = self.history.tree_entries_by_sha(merged)
            allowed = self._refuse_letta(
                f"revert {rev}", current, current, merged_tree, origin, allow_read_only
            )
            with self.updating(current, merged_tree, index=False):
                return self.commit(message=message, origin=origin, allow_read_only=allowed)

    def _refuse_letta(
        self,
        action: str,
        head_tree: Files,
        current: Files,
        target: Files,
        origin: str,
        allow_read_only: bool,
    ) -> tuple[str, ...]:
        """Raise CommitRefusedError if Letta's rules would hold back any part of going from
        ``current`` to ``target`` (or an edit waiting there that memfs cannot commit), before
        anything is written; the paths read_only is lifted for."""
        changes = compare_trees(current, target)
        waiting = [r.render() for r in self.held if any(c.path == r.path for c in changes)]
        if waiting:
            raise CommitRefusedError(
                action,
                [f"{line} (an uncommitted edit there would be overwritten)" for line in waiting],
            )
        allowed = tuple(change.path for change in changes) if allow_read_only else ()
        if not self.letta_rules().active:
            return allowed
        blobs = self.history.read_blobs({c.new.sha for c in changes if c.new is not None})
        payload = {
            c.path: (c.new.mode, blobs[c.new.sha]) if c.new is not None else None for c in changes
        }
        verdict = self._gate(head_tree, payload, origin, allowed)
        self.held = []
        if verdict.refusals:
            read_only = any("read_only" in r.message for r in verdict.refusals)
            hint = "--allow-read-only changes read-only files on purpose" if read_only else ""
            raise CommitRefusedError(action, [r.render() for r in verdict.refusals], hint)
        return allowed

    @contextlib.contextmanager
    def updating(self, current: Files, target: Files, index: bool = True) -> Iterator[Any]:
        """Make the work tree go from ``current`` to ``target`` for a commit of ``target``
        made inside (the branch moved to a commit whose tree is ``target``).

        Journaled and edit-safe (memfs/apply.py): a file is replaced only while it holds its
        ``current`` version (else LocalEditError: the caller commits and goes round again),
        and a change stopped before its commit is rolled back, never committed half done.
        Once the branch has moved, the index is rewritten before the journal goes (``index``;
        off when the commit inside writes it), so a crash in between is finished by
        ``recover`` and never leaves ``git status`` describing the old tree.
        """
        from memfs import apply

        with self.history.locked():
            self.recover()
            with apply.updating(self.root, self.history, current, target) as update:
                self._active_update = update.token
                try:
                    yield update
                finally:
                    self._active_update = None
                if index and self.history.head() != update.head:
                    crash_point("update.index")
                    self._index_after_update(current, target)

    def _index_after_update(self, current: Files, target: Files) -> None:
        """Bring the index in line after an update from ``current`` to ``target``: memfs
        knows what it wrote, so if the index listed ``current`` only the changed paths are
        written (their stat data taken now, kept only where the file still holds ``target``'s
        version: an edit landing meanwhile is hashed, never vouched for); otherwise the whole
        index is rewritten from a snapshot."""
        changed = [change.path for change in compare_trees(current, target)]
        stats: dict[str, os.stat_result] = {}
        for path in changed:
            on_disk = self._on_disk_stat(path)
            if path in target and on_disk is not None and self._on_disk(path) == target[path]:
                stats[path] = on_disk
        head = self.history.head()
        # the commit made inside is of ``target`` (see ``updating``); its changed paths are
        # checked against HEAD before the index is said to list HEAD's tree
        exact = len(changed) <= 100 and all(
            self.history.entries_at(head, path).get(path) == target.get(path) for path in changed
        )
        if not self.history.splice_index(target, stats, changed, commit=head if exact else None):
            self.refresh_index()

    def left_out_reason(self, path: str) -> str | None:
        """Why the file at ``path`` is not committed as it is on disk, if it is not: left out
        of versioning, or held back by Letta's rules (read_only, its installed hook)."""
        head = self.history.head()
        tracked = frozenset(self.history.entries_at(head, path))
        scan = worktree.scan_paths(self.root, self._rules(), [path], self._max_file_size(), tracked)
        skipped = next((item.reason for item in scan.skipped if item.path == path), None)
        if skipped is None and has_secrets(self):
            held = self._secret_reason(path)
            if held is not None:
                return held
        if skipped is not None or not self.letta_rules().active:
            return skipped
        head_tree = self.history.head_tree(head)
        snapshot = self._snapshot(head_tree)
        changes = compare_trees(head_tree, snapshot.files, (path,))
        payload = {change.path: self._read_change(change, snapshot) for change in changes}
        from memfs import lettahook

        verdict = lettahook.review(
            self.letta_rules(), head_tree, payload, self.history.blob, self._hook_cache
        )
        refusals = [r for r in verdict.refusals if r.path == path] or verdict.blocked
        if not refusals:
            return None
        return "Letta's rules keep it out of commits: " + "; ".join(r.render() for r in refusals)

    def _secret_reason(self, path: str) -> str | None:
        """Why the file at ``path`` is kept out of commits by the secrets guard, if it is."""
        from memfs.secrets.guard import review, values_of

        entry = self._on_disk(path)
        if entry is None or not os.path.isfile(self.root / path):
            return None
        data = (self.root / path).read_bytes()
        refusals = review({path: (entry.mode, data)}, values_of(self))[1]
        return refusals[0].render() if refusals else None

    def recover(self) -> bool:
        """Finish or roll back a work-tree update that a crash left behind (memfs/apply.py);
        whether there was one."""
        from memfs import apply

        with self.history.locked():
            outcome = apply.recover(self.root, self.history, self._active_update)
            if outcome == "finished":
                self.refresh_index()
            return outcome is not None

    def check_out_fresh(self, sha: str, reason: str) -> None:
        """Fill an empty work tree with commit ``sha`` and point the unborn branch at it.

        Every path is checked before the first file is written (see worktree.populate).
        """
        tree = self.history.tree_of(sha)
        blobs = self.history.read_blobs({entry.sha for entry in tree.values()})
        entries = {path: (entry.mode, blobs[entry.sha]) for path, entry in tree.items()}
        stats = worktree.populate(self.root, entries)
        self.history.move_branch(None, sha, reason.encode())
        self.history.write_index(tree, stats, commit=sha)
        self.history.drop_unpacked()  # written out: the pack on disk serves from now on

    def _on_disk(self, path: str) -> TreeEntry | None:
        """The entry the file at ``path`` would have in a commit, None if there is none."""
        from memfs import apply

        return apply.entry_on_disk(self.root / path)

    def is_read_only_mount(self) -> bool:
        """Whether this folder is a read-only (or pinned) mount: nothing is pushed from it."""
        try:
            marker = json.loads((self.history.state_dir / "mount.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(isinstance(marker, dict) and marker.get("read_only"))

    def worktree_files(self) -> list[str]:
        """Every path a commit would hold now."""
        return sorted(self._snapshot(self.history.head_tree(self.history.head())).files)

    def file_mode(self, path: str) -> int:
        """The git mode of the file at ``path``."""
        return file_mode((self.root / path).lstat())

    def refresh_index(self) -> None:
        """Rewrite the index for HEAD, so ``git status`` and memfs's stat cache agree."""
        head = self.history.head()
        head_tree = self.history.head_tree(head)
        snapshot = self._snapshot(head_tree)
        self.history.write_index(head_tree, snapshot.stats_matching(head_tree), commit=head)


def generated_message(changes: list[FileChange]) -> str:
    """``memfs: update system/persona.md`` or ``memfs: 3 files changed: a, b, c``."""
    verbs = {"added": "add", "modified": "update", "deleted": "delete"}
    if len(changes) == 1:
        return f"memfs: {verbs[changes[0].status]} {changes[0].path}"
    names = [c.path for c in changes[:3]]
    more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
    return f"memfs: {len(changes)} files changed: {', '.join(names)}{more}"


def _is_flat_tree(tree: Files, changed: Mapping[str, object]) -> bool:
    """Whether no changed path of ``tree`` is also a folder of it (or under one of its files):
    only then does ``tree`` list exactly the tree a commit of those changes stored."""
    if len(changed) > 100:  # a first commit, an adoption: check every folder of the tree once
        folders: set[str] = set()
        for path in tree:
            cut = path.rfind("/")
            while cut > 0 and path[:cut] not in folders:
                folders.add(path[:cut])
                cut = path.rfind("/", 0, cut)
        return folders.isdisjoint(tree)
    for path in changed:
        if path in tree and any(p.startswith(path + "/") for p in tree):
            return False
        parts = path.split("/")
        if any("/".join(parts[:depth]) in tree for depth in range(1, len(parts))):
            return False
    return True


def _conflicts_in(root: Path, files: Mapping[str, str | None], cache: Path) -> list[OpenConflict]:
    from memfs.conflicts import find_in

    return find_in(root, files, cache)


def _under(tree: Files, path: str) -> Files:
    return {p: e for p, e in tree.items() if p == path or p.startswith(path + "/")}
