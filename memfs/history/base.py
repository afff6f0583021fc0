"""What every part of ``History`` shares: the state ``History.__init__`` sets, declared once
so each mixin (refs, commits, objects, writing, packing) can name it."""

from __future__ import annotations

from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dulwich.objects import Commit
    from dulwich.repo import Repo

    from memfs.history.light import LightRepo
    from memfs.history.lightobjects import LightCommit, LightObjects
    from memfs.packs import RawObject
    from memfs.repolock import RepoLock


class HistoryBase:
    """The repository, its work tree, the agent's lock, and the caches of read objects."""

    root: Path
    repo: Repo
    _repo: Repo | None  # dulwich's repository once opened (``History.repo``)
    _control: Path  # the .git folder
    _lock: RepoLock
    _light: LightRepo  # refs and loose objects read without dulwich
    _objects: LightObjects  # loose and packed objects read without dulwich
    _commits: dict[bytes, Commit | LightCommit]
    _unpacked: dict[bytes, RawObject]

    def _light_raw(self, sha: bytes) -> tuple[int, bytes] | None: ...  # objects.py
