"""An agent's refs: the branch HEAD names, its tip, revisions by name, remote-tracking refs.

Every ref update runs under the agent's lock and moves by compare-and-swap, so two writers
never both win; a ``.lock`` file a killed git left behind is cleared (``repolock.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from memfs.damage import reads_objects
from memfs.errors import (
    ConcurrentUpdateError,
    RepositoryDamagedError,
    RevisionNotFoundError,
)
from memfs.history.base import HistoryBase
from memfs.repolock import retry_past_stale_git_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    _T = TypeVar("_T")


class Refs(HistoryBase):
    """The ref half of ``History``."""

    @reads_objects
    def branch_ref(self) -> bytes:
        """The ref HEAD points to (``refs/heads/main``)."""
        target = self._light.head_target()
        if target is not None and (target == b"HEAD" or self._light.ref(target)[0]):
            return target  # HEAD names a sha, or a ref that is no symbolic ref itself
        names, _ = self.repo.refs.follow(b"HEAD")
        return names[-1]

    def branch(self) -> str:
        return self.branch_ref().decode().removeprefix("refs/heads/")

    @reads_objects
    def head(self) -> str | None:
        """The sha of the branch tip, or None before the first commit."""
        ref = self.branch_ref()
        answered, found = self._light.ref(ref) if ref != b"HEAD" else (False, None)
        try:
            sha = found if answered else self.repo.refs[ref]
        except KeyError:
            return None
        if sha is None:
            return None
        if len(sha) != 40 or any(c not in b"0123456789abcdef" for c in sha):
            raise RepositoryDamagedError(str(self.root), f"{ref.decode()} holds no commit sha")
        return sha.decode()

    def resolve(self, rev: str) -> str:
        """The sha of the commit ``rev`` names (sha prefix, HEAD~2, branch, tag)."""
        from dulwich.objectspec import parse_commit, parse_object

        spec = rev.encode()
        try:
            if any(op in spec for op in (b"~", b"^", b"@{")):
                spec = parse_object(self.repo, spec).id
            return parse_commit(self.repo, spec).id.decode()
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as error:
            raise RevisionNotFoundError(rev) from error

    def ref(self, name: str) -> str | None:
        """The sha a ref points to, or None."""
        answered, found = self._light.ref(name.encode())
        if answered:
            return found.decode() if found is not None else None
        try:
            return self.repo.refs[name.encode()].decode()
        except KeyError:
            return None

    def set_ref(self, name: str, sha: str, reason: str) -> None:
        """Point ``name`` (a remote-tracking ref) at ``sha`` unconditionally: written as a
        loose ref without dulwich where that is plain (``loose.set_ref``)."""
        if self._light.plain and len(sha) == 40:
            from memfs.history import loose

            with self.locked():
                if loose.set_ref(self._control, name, sha):
                    return
        self._update_refs(
            lambda: self.repo.refs.set_if_equals(
                name.encode(), None, sha.encode(), message=reason.encode()
            )
        )

    def delete_ref(self, name: str) -> None:
        """Delete ref ``name`` (a remote-tracking ref of a removed remote), if it exists."""
        self._update_refs(lambda: self.repo.refs.remove_if_equals(name.encode(), None))

    def point_head_at(self, branch: str) -> None:
        """Make HEAD a symbolic ref to ``refs/heads/<branch>`` (before the first commit)."""
        self._update_refs(
            lambda: self.repo.refs.set_symbolic_ref(b"HEAD", f"refs/heads/{branch}".encode())
        )

    def _update_refs(self, update: Callable[[], _T]) -> _T:
        """Run a dulwich ref update under the agent's lock, clearing a git lock a crash left."""
        with self.locked():
            return retry_past_stale_git_lock(update)

    def move_branch(self, old: str | None, new: str, reason: bytes = b"memfs") -> None:
        """Compare-and-swap the branch from ``old`` to ``new`` (a loose ref is moved without
        dulwich, as a commit moves it: ``loose.move_ref``; no reflog line, as there)."""
        ref = self.branch_ref()
        message = b"commit: " + reason
        if old is None:
            moved = self._update_refs(lambda: self.repo.refs.add_if_new(ref, new.encode(), message))
        else:
            moved = self._move_loose(ref, old, new)
            if moved is None:  # a case the light writer leaves to dulwich
                moved = self._update_refs(
                    lambda: self.repo.refs.set_if_equals(ref, old.encode(), new.encode(), message)
                )
        if not moved:
            raise ConcurrentUpdateError(
                f"{ref.decode()} moved while memfs was committing; nothing was lost, try again"
            )

    def _move_loose(self, ref: bytes, old: str, new: str) -> bool | None:
        """``loose.move_ref`` under the agent's lock; None where dulwich must move it."""
        if not self._light.plain or not ref.startswith(b"refs/"):
            return None
        from memfs.history import loose

        with self.locked():
            return loose.move_ref(self._control, ref.decode(), old, new)
