"""Reading trees and blobs: a commit's files, one path, many blobs in one pass over a pack.

Objects of the packs the last fetch imported are kept in memory (``_unpacked``): a fresh
checkout reads its trees and blobs from there instead of inflating them from the packs again.
The last few trees flattened are kept too (``_flat_trees``).
"""

from __future__ import annotations

import stat

from memfs.damage import reads_objects
from memfs.errors import PathNotFoundError, UnsafePathError
from memfs.history.base import HistoryBase
from memfs.trees import Files, TreeEntry

SHA_BYTES = 20
Changes = dict[str, tuple[TreeEntry | None, TreeEntry | None]]
"""What differs between two commits' files: path -> (entry before, entry after)."""
FLAT_TREES_KEPT = 4  # a pull's trees: before, remote, base, after
# git's object type numbers (dulwich's ``type_num``), for the objects kept from a fetch
COMMIT_TYPE, TREE_TYPE, BLOB_TYPE = 1, 2, 3
# dulwich is imported inside the methods: a clean ``status`` reads no object through it
# (memfs/history/light.py), and its object store costs ~15 ms to import.


class Objects(HistoryBase):
    """The tree and blob reads of ``History``."""

    _flat_trees: dict[bytes, Files]

    @reads_objects
    def tree_of(self, commit_sha: str | None) -> Files:
        """Every file of the commit's tree (an empty tree for None).

        The last few trees flattened are kept (a tree never changes): one command asks for
        the same commit's files several times (a pull: before, during and after its merge).
        The caller gets its own copy.
        """
        if commit_sha is None:
            return {}
        tree_sha = self._commit(commit_sha.encode()).tree
        files = self._flat_trees.pop(tree_sha, None)
        if files is None:
            files = self._flatten(tree_sha)
        self._flat_trees[tree_sha] = files  # most recent last
        while len(self._flat_trees) > FLAT_TREES_KEPT:
            del self._flat_trees[next(iter(self._flat_trees))]
        return dict(files)

    def _flatten(self, tree_sha: bytes) -> Files:
        """Every file under tree ``tree_sha``, by posix path."""
        files: Files = {}
        # Depth first with a stack of iterators: git's order, and no recursion limit for a
        # (hostile) tree nested thousands deep.
        stack = [("", iter(self._tree_items(tree_sha)))]
        while stack:
            prefix, items = stack[-1]
            for name, mode, sha in items:
                path = prefix + name.decode("utf-8", "surrogateescape")
                if stat.S_ISDIR(mode):
                    stack.append((path + "/", iter(self._tree_items(sha))))
                    break
                files[path] = TreeEntry(mode, sha.decode())
            else:
                stack.pop()
        return files

    def _kept(self, sha: bytes, type_num: int) -> bytes | None:
        """The content of object ``sha`` from the packs imported last, if kept and of that type."""
        unpacked = self._unpacked.get(sha)
        return unpacked[1] if unpacked is not None and unpacked[0] == type_num else None

    def _raw(self, sha: bytes) -> tuple[int, bytes]:
        """(type number, content) of object ``sha`` (binary hex): kept from the last fetch,
        or read by ``LightObjects`` where it answers, else by dulwich's store; KeyError if it
        is nowhere."""
        found = self._light_raw(sha)
        if found is not None:
            return found
        return self.repo.object_store.get_raw(sha)  # type: ignore[no-any-return]

    def _light_raw(self, sha: bytes) -> tuple[int, bytes] | None:
        """``_raw`` without dulwich: kept from the last fetch, or ``LightObjects``' answer."""
        kept = self._unpacked.get(sha)
        if kept is not None:
            return kept
        return self._objects.raw(sha.decode("ascii", "replace"))

    def _tree_entries(self, sha: bytes) -> dict[bytes, tuple[int, bytes]] | None:
        """Tree ``sha``'s entries by name, (mode, hex sha); None if ``sha`` is no tree.
        What the push's walk reads (``walks.objects_of``)."""
        type_num, content = self._raw(sha)
        if type_num != TREE_TYPE:
            return None
        from memfs.history.lightobjects import parse_tree

        entries = parse_tree(content)
        if entries is None:  # unusual (a name twice, a mode that is not octal): dulwich's read
            from dulwich.objects import Tree

            tree = self.repo.object_store[sha]
            assert isinstance(tree, Tree)
            entries = {entry.path: (entry.mode, entry.sha) for entry in tree.iteritems()}
        return entries

    def _tree_items(self, sha: bytes) -> list[tuple[bytes, int, bytes]]:
        """(name, mode, hex sha) of each entry of tree ``sha``."""
        items = self._light_tree_items(sha)
        if items is not None:
            return items
        from dulwich.errors import NotTreeError
        from dulwich.objects import Tree, parse_tree

        kept = self._kept(sha, TREE_TYPE)
        if kept is not None:
            items = list(parse_tree(kept, SHA_BYTES))
        else:
            tree = self.repo.object_store[sha]
            if not isinstance(tree, Tree):
                raise NotTreeError(sha)
            items = [(entry.path, entry.mode, entry.sha) for entry in tree.iteritems()]
        for name, _, _ in items:
            if not name or b"/" in name or b"\0" in name:
                _refuse_name(sha, name)
        return items

    def _light_tree_items(self, sha: bytes) -> list[tuple[bytes, int, bytes]] | None:
        """``_tree_items`` of a tree kept from the last fetch or read by ``LightObjects``,
        when ``parse_tree`` finds it plain; None for dulwich to read."""
        found = self._light_raw(sha)
        if found is None or found[0] != TREE_TYPE:
            return None
        from memfs.history.lightobjects import parse_tree

        entries = parse_tree(found[1])
        if entries is None:
            return None
        return [(name, mode, entry) for name, (mode, entry) in entries.items()]

    @reads_objects
    def entries_at(self, commit_sha: str | None, path: str) -> Files:
        """The files at ``path`` in a commit (one file, or all under a folder), without
        flattening the whole tree: O(depth + files under path)."""
        if commit_sha is None:
            return {}
        light = self._light_entry_at(commit_sha, path)
        if light is not None:
            return light
        from dulwich.errors import NotTreeError
        from dulwich.object_store import iter_tree_contents, tree_lookup_path
        from dulwich.objects import Commit

        commit = self.repo[commit_sha.encode()]
        assert isinstance(commit, Commit)
        try:
            mode, sha = tree_lookup_path(
                self.repo.__getitem__, commit.tree, path.encode("utf-8", "surrogateescape")
            )
        except (KeyError, NotTreeError):
            return {}
        if stat.S_ISDIR(mode):
            return {
                f"{path}/{entry.path.decode('utf-8', 'surrogateescape')}": TreeEntry(
                    entry.mode, entry.sha.decode()
                )
                for entry in iter_tree_contents(self.repo.object_store, sha)
            }
        return {path: TreeEntry(mode, sha.decode())}

    def _light_entry_at(self, commit_sha: str, path: str) -> Files | None:
        """``entries_at`` of one file (or of nothing) looked up through trees
        ``_light_tree_items`` reads; None for dulwich to answer (a folder, a path that is not
        plain, a tree it does not read)."""
        parts = path.encode("utf-8", "surrogateescape").split(b"/")
        if not all(parts):
            return None
        sha = self._commit(commit_sha.encode()).tree
        mode = stat.S_IFDIR
        for part in parts:
            if not stat.S_ISDIR(mode):
                return None  # a file or a submodule on the way: dulwich says which
            items = self._light_tree_items(sha)
            if items is None:
                return None
            found = next(((m, s) for name, m, s in items if name == part), None)
            if found is None:
                return {}
            mode, sha = found
        if stat.S_ISDIR(mode):
            return None
        return {path: TreeEntry(mode, sha.decode())}

    @reads_objects
    def blob(self, sha: str) -> bytes:
        kept = self._kept(sha.encode(), BLOB_TYPE)
        if kept is not None:
            return kept
        found = self._objects.raw(sha)
        if found is not None and found[0] == BLOB_TYPE:
            return found[1]
        from dulwich.objects import Blob

        blob = self.repo.object_store[sha.encode()]
        assert isinstance(blob, Blob)
        return blob.as_raw_string()

    @reads_objects
    def read_blobs(self, shas: set[str]) -> dict[str, bytes]:
        """The contents of many blobs, by sha: one sequential pass over each pack.

        A fresh checkout reads every blob of a pack; walking it in order decompresses each
        object once, where looking each up by sha seeks and re-reads the pack per object.
        """
        found: dict[str, bytes] = {}
        wanted: set[bytes] = set()
        for sha in shas:
            kept = self._kept(sha.encode(), BLOB_TYPE)
            if kept is not None:
                found[sha] = kept
            else:
                wanted.add(bytes.fromhex(sha))
        for pack in self.repo.object_store.packs:
            if not wanted:
                break
            for unpacked in pack.data.iter_unpacked():
                if unpacked.pack_type_num != BLOB_TYPE:
                    continue  # trees, commits and deltas are left to the lookups below
                raw = unpacked.sha()
                if raw in wanted:
                    found[raw.hex()] = b"".join(unpacked.decomp_chunks)
                    wanted.discard(raw)
        for raw in wanted:
            found[raw.hex()] = self.blob(raw.hex())
        return found

    def store_blob(self, data: bytes) -> str:
        """Store ``data`` as a blob; its sha."""
        from dulwich.objects import Blob

        blob = Blob.from_string(data)
        self.repo.object_store.add_object(blob)
        return blob.id.decode()

    @reads_objects
    def file_at(self, sha: str | None, path: str) -> bytes | None:
        """The content of ``path`` in commit ``sha``, or None if it has none."""
        entry = self.entries_at(sha, path).get(path)
        return self.blob(entry.sha) if entry else None

    @reads_objects
    def read_file(self, rev: str, path: str) -> bytes:
        """The content of ``path`` at ``rev``."""
        entry = self.entries_at(self.resolve(rev), path).get(path)
        if entry is None:
            raise PathNotFoundError(path, f"revision {rev}")
        return self.blob(entry.sha)

    @reads_objects
    def tree_entries_by_sha(self, tree_sha: str) -> Files:
        from dulwich.object_store import iter_tree_contents

        return {
            entry.path.decode("utf-8", "surrogateescape"): TreeEntry(entry.mode, entry.sha.decode())
            for entry in iter_tree_contents(self.repo.object_store, tree_sha.encode())
        }

    @reads_objects
    def tree_changes(self, a: str | None, b: str) -> Changes | None:
        """The files that differ between commits ``a`` and ``b``, path -> (entry at ``a``,
        entry at ``b``), from their tree objects: a subtree whose sha is the same on both
        sides is skipped whole, so a one-file change costs the folders on its path, not a
        flattening of every tree. None where a tree lists a name twice (only a hand-made
        tree does: ``tree_of`` decides how that reads)."""
        tree_a = self._commit(a.encode()).tree if a is not None else None
        changes: Changes = {}
        stack = [("", tree_a, self._commit(b.encode()).tree)]
        while stack:
            prefix, sha_a, sha_b = stack.pop()
            items_a = self._named(sha_a) if sha_a is not None else {}
            items_b = self._named(sha_b) if sha_b is not None else {}
            if items_a is None or items_b is None:
                return None
            for name in items_a.keys() | items_b.keys():
                old, new = items_a.get(name), items_b.get(name)
                if old == new:
                    continue
                path = prefix + name.decode("utf-8", "surrogateescape")
                old_dir = old is not None and stat.S_ISDIR(old[0])
                new_dir = new is not None and stat.S_ISDIR(new[0])
                if old_dir or new_dir:
                    stack.append(
                        (path + "/", old[1] if old_dir else None, new[1] if new_dir else None)
                    )  # type: ignore[index]
                before = TreeEntry(old[0], old[1].decode()) if old and not old_dir else None
                after = TreeEntry(new[0], new[1].decode()) if new and not new_dir else None
                if before != after:
                    changes[path] = (before, after)
        return changes

    def _named(self, sha: bytes) -> dict[bytes, tuple[int, bytes]] | None:
        """Tree ``sha``'s entries by name; None if a name is there twice."""
        items = self._tree_items(sha)
        named = {name: (mode, entry) for name, mode, entry in items}
        return named if len(named) == len(items) else None

    def tree_after(self, base: Files, a: str | None, b: str) -> Files:
        """``tree_of(b)``, made from ``base`` (the files of commit ``a``) and what changed
        from ``a`` to ``b`` (``tree_changes``): a pull of one file flattens no tree."""
        changes = self.tree_changes(a, b)
        if changes is None:
            return self.tree_of(b)
        files = dict(base)
        for path, (_, after) in changes.items():
            if after is None:
                files.pop(path, None)
            else:
                files[path] = after
        return files


def _refuse_name(tree_sha: bytes, name: bytes) -> None:
    """A tree entry named with a '/' (or nothing) is no git path: git fsck --strict calls it
    ``fullPathname``; checked out, ``a/b.md`` inside ``notes`` would land as notes/a/b.md
    and the repository would carry an invalid tree on. Refused like any unsafe path."""
    shown = name.decode("utf-8", "surrogateescape")
    raise UnsafePathError(
        shown, f"tree {tree_sha.decode()[:7]} names an entry with '/' or nothing, not a git path"
    )
