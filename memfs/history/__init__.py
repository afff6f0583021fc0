"""The git layer's facade: ``History``, an agent's repository, the one object callers use.

``History`` itself opens and creates the repository and answers about its state (a plain-git
operation midway, a detached HEAD, the write lock, ``.git/config``). Everything else is one
concept per module, mixed in:

- ``refs.py``: the branch, its tip, revisions by name, compare-and-swap of refs;
- ``commits.py``: the commit graph: ancestry, merge bases, the log, what a commit changed;
- ``objects.py``: reading trees and blobs;
- ``writing.py``: index-free commits (DESIGN.md §4), tree building, merges, the index as a
  stat cache (``gitindex.py``);
- ``packing.py``: packs for object-store remotes and dulwich's pack data for git.

Trees are plain data (``trees.py``): a ``dict`` of posix paths to ``TreeEntry`` (mode, hex
sha). Mutating callers hold ``History.locked()`` (``repolock.py``) for the whole operation.
Each read that a damaged repository can break is wrapped by ``damage.reads_objects``.
"""

from __future__ import annotations

import atexit
import contextlib
import weakref
from pathlib import Path

from memfs.config import seconds_from_env
from memfs.damage import control_dir_of, damage_of
from memfs.errors import (
    DetachedHeadError,
    GitOperationInProgressError,
    NotAnAgentError,
    RepositoryDamagedError,
)
from memfs.gitconfig import PlainConfig, read_config, save_config
from memfs.history.commits import Commits
from memfs.history.light import LightRepo
from memfs.history.lightobjects import LightCommit, LightObjects
from memfs.history.objects import Objects
from memfs.history.packing import PackFiles, Packing
from memfs.history.refs import Refs
from memfs.history.writing import Writing
from memfs.repolock import RepoLock, git_running_in, survive_stale_object_locks
from memfs.trees import Files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dulwich.config import ConfigFile
    from dulwich.objects import Commit
    from dulwich.repo import Repo

    from memfs.packs import RawObject

BRANCH = "main"
LOCK_TIMEOUT_ENV = "MEMFS_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 60.0

_open_histories: weakref.WeakSet[History] = weakref.WeakSet()


@atexit.register
def _close_open_histories() -> None:
    """Close repositories still open at exit: dulwich's finalizers fail noisily at shutdown."""
    for history in list(_open_histories):
        with contextlib.suppress(Exception):
            history.close()


class History(Refs, Commits, Objects, Writing, Packing):
    """An agent's git repository."""

    def __init__(self, root: Path, repo: Repo | None = None) -> None:
        """``repo`` None: dulwich's ``Repo`` is opened on first use (``repo``), so a command
        that reads only refs and loose objects (``LightRepo``) never imports it."""
        self.root = root
        self._repo = repo
        if repo is not None:
            survive_stale_object_locks(repo.object_store)
        self._control = Path(repo.controldir()) if repo is not None else control_dir_of(root)
        self._light = LightRepo(self._control)
        self._objects = LightObjects(self._control, self._light.plain)
        self._lock = RepoLock(self._control / "memfs" / "lock")
        # The objects of the packs imported last (one fetch's), by hex sha: a fresh checkout
        # reads its trees and blobs from here instead of inflating them from the packs again.
        self._unpacked: dict[bytes, RawObject] = {}
        self._unpacked_bytes = 0  # the size of their contents, bounded by packing's cache size
        self._keep_files: list[Path] = []  # .keep files of imported packs no ref reaches yet
        self._commits: dict[bytes, Commit | LightCommit] = {}
        self._flat_trees: dict[bytes, Files] = {}  # the last trees tree_of flattened, by sha
        _open_histories.add(self)

    @classmethod
    def open(cls, root: Path) -> History:
        """Open the repository whose work tree is ``root``."""
        if not (root / ".git").exists():
            raise NotAnAgentError(str(root), "no .git folder")
        damage = damage_of(control_dir_of(root))
        if damage is not None:
            raise RepositoryDamagedError(str(root), damage)
        history = cls(root)
        if not history._light.plain:  # a linked work tree: dulwich finds its common folder
            history._open_repo()
        return history

    @property
    def repo(self) -> Repo:
        """dulwich's repository, opened on first use."""
        if self._repo is None:
            self._open_repo()
        assert self._repo is not None
        return self._repo

    def _open_repo(self) -> None:
        from dulwich.errors import NotGitRepository
        from dulwich.repo import Repo

        try:
            self._repo = Repo(str(self.root))
        except NotGitRepository as error:
            raise NotAnAgentError(
                str(self.root), "its .git folder is not a git repository"
            ) from error
        survive_stale_object_locks(self._repo.object_store)

    @classmethod
    def create(cls, root: Path) -> History:
        """Open ``root``'s repository, creating it on branch ``main`` if there is none."""
        if (root / ".git").exists():
            history = cls.open(root)
        else:
            from dulwich.repo import Repo

            repo = Repo.init(str(root), default_branch=BRANCH.encode())
            history = cls(root, repo)
        config = history.repo.get_config()
        config.set((b"gc",), b"auto", b"0")
        save_config(config)
        return history

    def drop_unpacked(self) -> None:
        """Let go of the objects kept from the packs imported last."""
        self._unpacked = {}
        self._unpacked_bytes = 0

    def close(self) -> None:
        self.release_kept()
        self.drop_unpacked()
        self._objects.close()
        if self._repo is not None:
            # BufferError: a damaged pack's read failed while a view of its map was exported
            # (the traceback holds it); raising here would hide that error. The map goes
            # with the process.
            with contextlib.suppress(BufferError):
                self._repo.close()

    @property
    def control_dir(self) -> Path:
        return self._control

    @property
    def state_dir(self) -> Path:
        """``.git/memfs``: memfs's own state, never versioned.

        Created on first use; on an agent the user cannot write it may stay missing, and
        what reads it (``status``) finds no state rather than failing.
        """
        path = self.control_dir / "memfs"
        with contextlib.suppress(OSError):
            path.mkdir(exist_ok=True)
        return path

    def git_operation(self) -> str | None:
        """The plain-git operation stopped midway here (``rebase``, ``merge``, ``cherry-pick``,
        ``revert``, ``am``), or None: what git leaves in ``.git`` until --continue/--abort."""
        control = self.control_dir
        if (control / "rebase-merge").is_dir():
            return "rebase"
        if (control / "rebase-apply").is_dir():
            return "am" if (control / "rebase-apply" / "applying").exists() else "rebase"
        for marker, operation in (
            ("MERGE_HEAD", "merge"),
            ("CHERRY_PICK_HEAD", "cherry-pick"),
            ("REVERT_HEAD", "revert"),
        ):
            if (control / marker).exists():
                return operation
        return None

    def git_busy(self) -> bool:
        """Whether a git command is writing this repository's index now: a live ``index.lock``
        (another tool's ``git add`` or ``git commit``, e.g. Letta Code committing its memory
        write through its hooks). A lock no git process holds is not busy."""
        lock = self.control_dir / "index.lock"
        return lock.exists() and git_running_in(lock.parent)

    def detached(self) -> bool:
        """Whether HEAD names a commit instead of a branch (a plain ``git checkout <sha>``)."""
        return self.branch_ref() == b"HEAD"

    def refuse_during_git_operation(self) -> None:
        """Refuse to commit or update the work tree unless HEAD is a branch and no plain-git
        operation is midway: GitOperationInProgressError, DetachedHeadError."""
        operation = self.git_operation()
        if operation is not None:
            raise GitOperationInProgressError(str(self.root), operation)
        if self.detached():
            raise DetachedHeadError(str(self.root), self.repo.refs[b"HEAD"].decode())

    def config(self) -> ConfigFile | PlainConfig:
        """This repository's own ``.git/config`` (what ``repo.get_config()`` returns, read
        without opening dulwich's repository: ``status`` lists the remotes from it; a file in
        git's plain form without dulwich.config either, ``memfs.gitconfig.read_config``)."""
        if self._repo is not None:
            return self._repo.get_config()
        path = self.control_dir / "config"
        with contextlib.suppress(OSError):
            plain = read_config(str(path))
            if plain is not None:
                return plain
        from dulwich.config import ConfigFile

        try:
            return ConfigFile.from_path(str(path))
        except FileNotFoundError:
            config = ConfigFile()
            config.path = str(path)
            return config

    def locked(self, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the agent's write lock (reentrant within one process)."""
        if timeout is None:
            timeout = seconds_from_env(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)
        return self._lock.hold(timeout)

    def config_value(self, section: str, key: str) -> str | None:
        """A value of this repository's own ``.git/config`` (``[section] key``), if set."""
        try:
            return self.config().get((section.encode(),), key.encode()).decode()
        except (KeyError, UnicodeDecodeError):
            return None

    def set_config_values(self, section: str, values: dict[str, str]) -> None:
        """Set ``[section]`` keys in ``.git/config`` (memfs's metadata for a Letta repo)."""
        config = self.repo.get_config()
        for key, value in values.items():
            config.set((section.encode(),), key.encode(), value.encode())
        save_config(config)

    def git_identity(self) -> str | None:
        """``Name <email>`` from git's config (repo, then global), if it names one."""
        if self._repo is None:  # read as dulwich's stack reads it, without importing it
            found = _plain_identity([str(self.control_dir / "config"), *_global_configs()])
            if found is not _UNANSWERED:
                return found  # type: ignore[return-value]
        config = self.repo.get_config_stack()
        try:
            name = config.get((b"user",), b"name").decode()
            email = config.get((b"user",), b"email").decode()
        except KeyError:
            return None
        return f"{name} <{email}>"


_UNANSWERED = object()


def _global_configs() -> list[str]:
    """The config files after the repository's, in the order of dulwich's
    ``StackedConfig.default_backends`` (git-config(1)'s global and system files)."""
    import os

    env = os.environ
    if "GIT_CONFIG_GLOBAL" in env:
        paths = [env["GIT_CONFIG_GLOBAL"]]
    else:
        xdg = env.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config/"))
        paths = [os.path.expanduser("~/.gitconfig"), os.path.join(xdg, "git", "config")]
    if "GIT_CONFIG_SYSTEM" in env:
        paths.append(env["GIT_CONFIG_SYSTEM"])
    elif "GIT_CONFIG_NOSYSTEM" not in env:
        paths.append("/etc/gitconfig")
    return paths


def _plain_identity(paths: list[str]) -> str | object | None:
    """``user.name`` and ``user.email``, each from the first of ``paths`` that sets it, when
    every file there is in git's plain form (``gitconfig.read_config``); ``_UNANSWERED`` for
    anything else (dulwich reads those: quoting, includes)."""
    found: dict[bytes, bytes] = {}
    for path in paths:
        try:
            config = read_config(path)
        except FileNotFoundError:
            continue
        except OSError:
            return _UNANSWERED
        if config is None or any(
            section[0].lower() == b"extensions" for section in config.sections()
        ):
            return _UNANSWERED  # not plain, or a worktree config dulwich would stack too
        for key in (b"name", b"email"):
            if key not in found:
                with contextlib.suppress(KeyError):
                    found[key] = config.get((b"user",), key)
    if len(found) < 2:
        return None
    try:
        return f"{found[b'name'].decode()} <{found[b'email'].decode()}>"
    except UnicodeDecodeError:
        return _UNANSWERED


__all__ = ["BRANCH", "History", "PackFiles"]
