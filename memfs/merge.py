"""Three-way merge of two flattened trees, and the conflict policies (DESIGN.md §6).

The merge works on data (``Files`` dicts and blob contents through two callbacks) and returns
data: the merged tree and the conflicts it resolved. It never raises for a conflict; what to
do about one is ``sync``'s and the CLI's business.

Both machines must converge on the same tree whichever runs the merge, so the merge is done in
one canonical order: the *newer* side (the head commit with the later time, ties broken by
sha) against the *older* one, never "local against remote". Only the ``ours``/``theirs``
policies, which the user picks to favour one machine, depend on who merges.

In a Letta Code memory repo (``layout`` given) a conflict never adds a block and never puts
markers into a file Letta reads: Letta Code, its server and its pre-commit hook read only
``.md`` files (letta-ai/letta path_mapping.py; Letta Code's prompt compiler lists
``*.md`` at HEAD), so the other version goes to ``.memfs-conflicts/<path>.conflict-<sha>``: not
``.md``, not under ``system/``, not a root file, committed and synced like any file so every
machine (and Letta's agent, with its file tools) can find it, and ``memfs conflicts`` lists it.
A merged Markdown file must pass Letta's hook against the local head (the merge commit's
first parent): a clean line merge that would break its front matter, change its
``read_only`` or touch a file read-only at HEAD is a conflict, and then the head's version
stays at the path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal

from memfs import lettafm
from memfs.jsonbound import loads as bounded_loads
from memfs.layout import V2_CONFIG, Layout
from memfs.markers import END_MARKER, LETTA_CONFLICTS, MID_MARKER, START_MARKER
from memfs.trees import Files, TreeEntry, blob_sha

Policy = Literal["copy", "markers", "ours", "theirs"]
POLICIES: tuple[Policy, ...] = ("copy", "markers", "ours", "theirs")


@dataclass(frozen=True)
class Side:
    """One side of a merge: its tree, and the commit it comes from."""

    files: Files
    commit: str
    label: str  # shown in markers and used in conflict copy names: the short sha


@dataclass(frozen=True)
class Conflict:
    """A path both sides changed incompatibly, and how the policy settled it."""

    path: str
    kind: str  # "content" | "add/add" | "binary" | "file/folder"
    resolution: str  # "copy" | "markers" | "ours" | "theirs"
    copy_path: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "path": self.path,
            "kind": self.kind,
            "resolution": self.resolution,
            "copy_path": self.copy_path,
        }


@dataclass
class MergeResult:
    """The merged tree, and the conflicts the policy resolved in it."""

    files: Files
    conflicts: list[Conflict] = field(default_factory=list)


def conflict_copy_path(path: str, label: str) -> str:
    """``notes/a.md`` -> ``notes/a.conflict-1a2b3c4.md``."""
    pure = PurePosixPath(path)
    suffix = pure.suffix if pure.stem else ""
    stem = pure.name[: len(pure.name) - len(suffix)] if suffix else pure.name
    return str(pure.with_name(f"{stem}.conflict-{label}{suffix}"))


def letta_conflict_copy_path(path: str, label: str) -> str:
    """``system/persona.md`` -> ``.memfs-conflicts/system/persona.md.conflict-1a2b3c4``.

    Where a Letta repo keeps the other version of a conflict: no ``.md`` ending, so Letta
    never reads it as a block, and outside ``system/`` and the root, so it is never in context.
    """
    return f"{LETTA_CONFLICTS}/{path}.conflict-{label}"


def merge(
    base: Files,
    newer: Side,
    older: Side,
    read: Callable[[str], bytes],
    store: Callable[[bytes], str],
    policy: Policy = "copy",
    ours_is_newer: bool = True,
    layout: Layout = Layout.NATIVE,
) -> MergeResult:
    """Merge ``newer`` and ``older`` (both descended from ``base``) under ``policy``.

    ``read`` returns a blob's content by sha; ``store`` stores content and returns its sha.
    ``layout`` is the agent's: a Letta repo's conflicts follow Letta's rules (see above).
    """
    merger = _Merger(newer, older, read, store, policy, ours_is_newer, layout)
    for path in sorted(base.keys() | newer.files.keys() | older.files.keys()):
        merger.merge_path(path, base.get(path), newer.files.get(path), older.files.get(path))
    merger.settle_file_folder_clashes()
    return merger.result


class _Merger:
    def __init__(
        self,
        newer: Side,
        older: Side,
        read: Callable[[str], bytes],
        store: Callable[[bytes], str],
        policy: Policy,
        ours_is_newer: bool,
        layout: Layout = Layout.NATIVE,
    ) -> None:
        self.newer, self.older = newer, older
        self.read, self.store = read, store
        self.policy = policy
        self.ours_is_newer = ours_is_newer
        self.letta = _LettaRules(layout, read) if layout.is_letta else None
        self.result = MergeResult(files={})

    def merge_path(
        self, path: str, base: TreeEntry | None, new: TreeEntry | None, old: TreeEntry | None
    ) -> None:
        files = self.result.files
        if new == old or old == base:
            chosen = new
        elif new == base:
            chosen = old
        elif new is None or old is None:
            chosen = new or old  # delete vs modify: the modified file is kept
        elif new.sha == old.sha:
            chosen = new  # only the mode differs: the newer side's mode
        else:
            self._both_changed(path, base, new, old)
            return
        if chosen is not None:
            files[path] = chosen

    def _both_changed(
        self, path: str, base: TreeEntry | None, new: TreeEntry, old: TreeEntry
    ) -> None:
        texts = _texts(self.read, base, new, old)
        ours = new if self.ours_is_newer else old
        merged = _merge_text(*texts) if texts is not None and base is not None else None
        letta = self.letta
        changes_head = merged is None or blob_sha(merged) != ours.sha
        if letta is not None and changes_head and letta.head_protected(path, ours):
            # Read-only at the local head: Letta's hook refuses any change to it there.
            self._keep_head(path, "read-only", ours, old if ours is new else new)
            return
        if merged is not None and texts is not None:
            sound = letta is None or letta.accepts(path, merged, (texts[1], texts[2]), ours)
            if sound:
                self.result.files[path] = TreeEntry(new.mode, self.store(merged))
                return
        kind = "content" if base is not None else "add/add"
        if texts is None:
            kind = "binary"
        if letta is not None and letta.flag_differs(path, new, old):
            self._keep_head(path, kind, ours, old if ours is new else new)
            return
        self._resolve(path, kind, new, old, texts)

    def _keep_head(self, path: str, kind: str, ours: TreeEntry, other: TreeEntry) -> None:
        """The local head's version stays at the path, the other is kept as a copy."""
        self.result.files[path] = ours
        theirs = self.older if self.ours_is_newer else self.newer
        copy = self._free_copy_path(path, theirs.label)
        self.result.files[copy] = other
        self.result.conflicts.append(Conflict(path, kind, "copy", copy))

    def _resolve(
        self,
        path: str,
        kind: str,
        new: TreeEntry,
        old: TreeEntry,
        texts: tuple[bytes, bytes, bytes] | None,
    ) -> None:
        files = self.result.files
        policy = self.policy
        if policy == "markers" and texts is None:
            policy = "copy"  # markers cannot go into a binary file or a symlink
        if policy == "markers" and self.letta is not None and self.letta.reads(path):
            policy = "copy"  # markers would reach Letta's prompt, its server and its hook
        if policy in ("ours", "theirs"):
            take_newer = (policy == "ours") == self.ours_is_newer
            files[path] = new if take_newer else old
            self.result.conflicts.append(Conflict(path, kind, policy))
        elif policy == "markers":
            assert texts is not None
            _, new_text, old_text = texts
            merged = _merge_with_markers(
                texts[0], new_text, old_text, self.newer.label, self.older.label
            )
            files[path] = TreeEntry(new.mode, self.store(merged))
            self.result.conflicts.append(Conflict(path, kind, "markers"))
        else:
            files[path] = new
            copy = self._free_copy_path(path)
            files[copy] = old
            self.result.conflicts.append(Conflict(path, kind, "copy", copy))

    def _free_copy_path(self, path: str, label: str = "") -> str:
        label = label or self.older.label
        name = letta_conflict_copy_path if self.letta is not None else conflict_copy_path
        candidate = name(path, label)
        number = 2
        while candidate in self.result.files or _exists_in(candidate, self.newer, self.older):
            candidate = name(path, f"{label}-{number}")
            number += 1
        return candidate

    def settle_file_folder_clashes(self) -> None:
        """A path that is a file on one side and a folder on the other: the file moves aside."""
        files = self.result.files
        folders = {str(parent) for path in files for parent in PurePosixPath(path).parents}
        for path in sorted(p for p in files if p in folders):
            entry = files.pop(path)
            copy = self._free_copy_path(path)
            files[copy] = entry
            self.result.conflicts.append(Conflict(path, "file/folder", "copy", copy))


class _LettaRules:
    """What a merge in a Letta Code memory repo must respect: its pre-commit hook, run on the
    merge commit against the local head (its first parent), and the files Letta reads."""

    def __init__(self, layout: Layout, read: Callable[[str], bytes]) -> None:
        self.layout = layout
        self.read = read

    def reads(self, path: str) -> bool:
        """Whether Letta reads ``path``: Markdown (a block, or a file its hook checks) and
        the v2 limits file."""
        return path.endswith(".md") or path == V2_CONFIG

    def _text(self, entry: TreeEntry | None) -> str | None:
        if entry is None or entry.mode not in (0o100644, 0o100755):
            return None
        try:
            return self.read(entry.sha).decode("utf-8")
        except UnicodeDecodeError:
            return None

    def head_protected(self, path: str, ours: TreeEntry) -> bool:
        """A v1 Markdown file read-only at the local head: no merge commit may change it."""
        if self.layout.v2 or not path.endswith(".md"):
            return False
        return lettafm.read_only_at(self._text(ours))

    def flag_differs(self, path: str, new: TreeEntry, old: TreeEntry) -> bool:
        """Whether the two versions of a v1 Markdown file disagree on ``read_only``, which
        Letta's hook lets no commit change: the head's version then stays."""
        if self.layout.v2 or not path.endswith(".md"):
            return False
        return _read_only_value(self._text(new)) != _read_only_value(self._text(old))

    def accepts(
        self, path: str, merged: bytes, sides: tuple[bytes, bytes], ours: TreeEntry
    ) -> bool:
        """Whether a clean line merge keeps the file as sound as either side was: it passes
        Letta's hook against the head (no error neither side has), keeps the head's
        ``read_only``, and a v2 limits file stays a JSON object."""
        if path == V2_CONFIG:
            return _json_object(merged)
        if not path.endswith(".md"):
            return True
        try:
            text = merged.decode("utf-8")
            versions = [side.decode("utf-8") for side in sides]
        except UnicodeDecodeError:
            return True  # not text Letta can read either way: a line merge is all there is
        head = self._text(ours)
        v2 = self.layout.v2
        if not v2 and _read_only_value(text) != _read_only_value(head):
            return False
        allowed = {e for version in versions for e in lettafm.validate(path, version, head, v2)}
        return set(lettafm.validate(path, text, head, v2)) <= allowed


def _read_only_value(text: str | None) -> str:
    """The ``read_only`` lines of a file as Letta's hook reads them ('' when absent)."""
    return lettafm.hook_value(text, "read_only") if text is not None else ""


def _json_object(data: bytes) -> bool:
    try:
        return isinstance(bounded_loads(data), dict)
    except ValueError:
        return False


def _exists_in(path: str, *sides: Side) -> bool:
    return any(path in side.files for side in sides)


def _texts(
    read: Callable[[str], bytes], base: TreeEntry | None, new: TreeEntry, old: TreeEntry
) -> tuple[bytes, bytes, bytes] | None:
    """The three versions as bytes, or None if any is not a regular text file."""
    entries = [e for e in (base, new, old) if e is not None]
    if any(e.mode not in (0o100644, 0o100755) for e in entries):
        return None
    contents = [read(e.sha) if e is not None else b"" for e in (base, new, old)]
    if any(b"\0" in content[:8000] for content in contents):
        return None
    return contents[0], contents[1], contents[2]


def _merge_text(base: bytes, new: bytes, old: bytes) -> bytes | None:
    """A clean line merge of the two edits, or None if they touch the same lines."""
    from merge3 import Merge3  # imported on use: status and context reach this module, not it

    merged: list[bytes] = []
    for group in Merge3(
        base.splitlines(True), new.splitlines(True), old.splitlines(True)
    ).merge_groups():
        if group[0] != "conflict":
            merged.extend(group[1])
            continue
        _, base_lines, new_lines, old_lines = group
        resolved = _trivial(base_lines, new_lines, old_lines)
        if resolved is None:
            return None
        merged.extend(resolved)
    return b"".join(merged)


def _trivial(
    base: Sequence[bytes], new: Sequence[bytes], old: Sequence[bytes]
) -> Sequence[bytes] | None:
    if new == old or old == base:
        return new
    if new == base:
        return old
    return None


def _merge_with_markers(
    base: bytes, new: bytes, old: bytes, new_label: str, old_label: str
) -> bytes:
    """git-style conflict markers around each hunk both sides changed."""
    from merge3 import Merge3

    out: list[bytes] = []
    groups = Merge3(
        base.splitlines(True), new.splitlines(True), old.splitlines(True)
    ).merge_groups()
    for group in groups:
        if group[0] != "conflict":
            out.extend(group[1])
            continue
        _, base_lines, new_lines, old_lines = group
        resolved = _trivial(base_lines, new_lines, old_lines)
        if resolved is not None:
            out.extend(resolved)
            continue
        out.append(START_MARKER + new_label.encode() + b"\n")
        out.extend(_terminated(new_lines))
        out.append(MID_MARKER)
        out.extend(_terminated(old_lines))
        out.append(END_MARKER + old_label.encode() + b"\n")
    return b"".join(out)


def _terminated(lines: Sequence[bytes]) -> list[bytes]:
    result = list(lines)
    if result and not result[-1].endswith(b"\n"):
        result[-1] += b"\n"
    return result
