"""Errors a user can cause. The CLI prints ``str(error)`` and exits with ``exit_code``.

MemfsError
├── NotAnAgentError        the directory holds no agent (no agent.yaml / no .git)
│   ├── UnfinishedCheckoutError  a clone or checkout stopped midway there
│   └── ManifestMissingError  a memfs-native agent's agent.yaml is gone from the work tree
├── AgentExistsError       init on a directory that already is an agent
├── InvalidNameError       an agent name that cannot be a folder or URL segment
├── RevisionNotFoundError  a REV that does not resolve to a commit
├── PathNotFoundError      a path absent from the work tree or from a revision
├── UnsafePathError        a path that would write outside the agent or into .git
├── LockTimeoutError       another process kept the agent's lock too long
├── GitOperationInProgressError  plain git is midway through a rebase, merge, cherry-pick, ...
├── DetachedHeadError      HEAD names a commit, not a branch (after a plain `git checkout SHA`)
├── SchemaError            memory files whose content cannot be used (carries problems)
├── RevertConflictError    a revert that does not apply cleanly to the current head
├── CommitRefusedError     a restore or revert Letta's rules refuse (read_only, its hook)
├── ConcurrentUpdateError  the branch moved while an operation was writing
├── ConfigError            the user config file cannot be read
├── UnrelatedHistoriesError  local and remote share no commit (merge refused unless asked)
├── RepositoryDamagedError the agent's .git cannot be read (garbled HEAD, corrupt object, ...)
└── RemoteError            a remote could not be used (exit 7), among them
    └── EncryptionError    a key or integrity problem with an encrypted remote (exit 10)
        ├── NoKeyError         this machine holds no key for it (or not for that epoch)
        ├── TamperError        a sealed object failed authentication or is malformed
        ├── RollbackError      the store shows an older state than this machine has seen
        ├── ForkError          a keyring or manifest history that does not follow what was seen
        ├── DowngradeError     an encrypted remote now looks unencrypted
        └── KeyringError       a keyring operation refused (last slot, limits, unknown slot)
"""

from __future__ import annotations

from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs.schema import Problem


class MemfsError(Exception):
    """Base of every error memfs raises for something the user can fix."""

    exit_code = 1


class NotAnAgentError(MemfsError):
    """The directory is not a memfs agent."""

    exit_code = 3

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path} is not a memfs agent ({reason}); run 'memfs init' there first")


class AgentExistsError(MemfsError):
    """``init`` was asked to create an agent where one already is."""

    def __init__(self, path: str, why: str = "it has agent.yaml") -> None:
        self.path = path
        super().__init__(f"{path} is already a memfs agent ({why})")


class InvalidNameError(MemfsError):
    """An agent name that cannot be used as a folder or URL segment."""

    exit_code = 2

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"invalid agent name {name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 100 characters"
        )


class InvalidMessageError(MemfsError):
    """A commit message git cannot hold as UTF-8 text (a byte that is not UTF-8, a NUL)."""

    exit_code = 2

    def __init__(self, why: str) -> None:
        super().__init__(f"the commit message {why}: nothing was committed")


class RevisionNotFoundError(MemfsError):
    """A revision that names no commit."""

    exit_code = 4

    def __init__(self, rev: str) -> None:
        self.rev = rev
        super().__init__(f"unknown revision {rev!r}: see 'memfs log' for valid ones")


class PathNotFoundError(MemfsError):
    """A path that is not in the work tree or not in a revision."""

    exit_code = 4

    def __init__(self, path: str, where: str) -> None:
        self.path = path
        self.where = where
        super().__init__(f"{path} does not exist in {where}")


class UnsafePathError(MemfsError):
    """A path that would be written outside the agent or inside .git."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(f"refusing unsafe path {path!r}: {why}")


class LockTimeoutError(MemfsError):
    """Another process held the agent's lock for longer than the timeout."""

    exit_code = 5

    def __init__(self, lock_path: str, timeout: float, holder: str) -> None:
        self.lock_path = lock_path
        self.holder = holder
        super().__init__(
            f"the agent is busy: {holder} held {lock_path} for more than {timeout:g}s; "
            "try again when it is done"
        )


class GitOperationInProgressError(MemfsError):
    """Plain git is midway through an operation in the agent's repo (Letta Code's
    ``pull --rebase`` stops so on a conflict): its detached HEAD, conflict stages and marked
    files belong to that operation, so memfs commits and merges nothing until it is done."""

    exit_code = 5

    def __init__(self, root: str, operation: str) -> None:
        self.root = root
        self.operation = operation
        super().__init__(
            f"{root}: a git {operation} is in progress; nothing was changed: finish it with "
            f"'git {operation} --continue' (or --abort), then run memfs again"
        )


class DetachedHeadError(MemfsError):
    """HEAD names a commit, not a branch (a plain ``git checkout <sha>``): a commit there
    would be on no branch, and a push would create a branch named HEAD on the remote."""

    def __init__(self, root: str, sha: str) -> None:
        self.root = root
        super().__init__(
            f"{root}: HEAD is detached at {sha[:7]} (not on a branch); nothing was changed: "
            "'git switch main' (or another branch) first, your edits stay in the work tree"
        )


class SchemaError(MemfsError):
    """Memory files whose content a command needs but cannot use."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        first = self.problems[0].render() if self.problems else "invalid memory"
        more = f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
        super().__init__(first + more)


class RevertConflictError(MemfsError):
    """A revert whose changes collide with later edits of the same lines."""

    exit_code = 6

    def __init__(self, rev: str, paths: Sequence[str]) -> None:
        self.rev = rev
        self.paths = list(paths)
        super().__init__(
            f"cannot revert {rev}: later commits changed the same lines in "
            f"{', '.join(self.paths)}; nothing was changed (restore those files instead)"
        )


class CommitRefusedError(MemfsError):
    """A restore or revert whose commit Letta's rules refuse in a Letta repo: it would change a
    read-only file, or make a commit Letta's installed pre-commit hook rejects. Nothing was
    changed."""

    def __init__(self, action: str, refusals: Sequence[str], override: str = "") -> None:
        self.refusals = list(refusals)
        more = f" (and {len(self.refusals) - 1} more)" if len(self.refusals) > 1 else ""
        hint = f"; {override}" if override else ""
        super().__init__(f"cannot {action}: {self.refusals[0]}{more}; nothing was changed{hint}")


class ConcurrentUpdateError(MemfsError):
    """The branch or a file moved under an operation; nothing was lost, try again."""

    exit_code = 5


class ConfigError(MemfsError):
    """The user config file cannot be read."""

    exit_code = 2

    def __init__(self, path: str, line: int, what: str) -> None:
        self.path = path
        super().__init__(f"{path}:{line}: {what}")


class RepositoryDamagedError(MemfsError):
    """The agent's git repository cannot be read: a garbled HEAD, a corrupt or missing object,
    a ``.git`` file pointing nowhere. Nothing was written."""

    exit_code = 9

    def __init__(self, root: str, what: str) -> None:
        self.root = root
        self.what = what
        super().__init__(
            f"the git repository of {root} is damaged ({what}): "
            "'git fsck' there says what is wrong, and a clone from a remote is whole"
        )


class LocalEditError(ConcurrentUpdateError):
    """A file changed on disk after it was committed, while a merge was about to rewrite it."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} was edited while memfs was merging; it was kept, run sync again")


class UncommittableEditError(MemfsError):
    """A merge must rewrite a file whose local version memfs cannot commit (over the size
    cap, unreadable, beneath a symlink, ...): it is never overwritten, so the merge waits."""

    exit_code = 6

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(
            f"{path} changed on the remote, and its local version cannot be committed "
            f"({reason}); nothing was changed: move it away or fix it, then sync again"
        )


class RemoteError(MemfsError):
    """A remote could not be used."""

    exit_code = 7

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(message)


class UnknownRemoteError(RemoteError):
    """No remote has that name."""

    exit_code = 2

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__("", f"no remote named {name!r}: see 'memfs remote list'")


class UnsupportedURLError(RemoteError):
    """A URL that is neither a git URL nor an object store memfs can use."""

    exit_code = 2

    def __init__(self, url: str, why: str) -> None:
        super().__init__(url, f"cannot use {url!r} as a remote: {why}")


class RemoteUnreachableError(RemoteError):
    """The host did not answer."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(url, f"cannot reach {url}: {why}")


class RemoteAuthError(RemoteError):
    """The remote refused our credentials (or asked for some)."""

    def __init__(self, url: str) -> None:
        super().__init__(
            url,
            f"{url} refused the credentials (check the URL's user, ssh agent, or GIT_* settings)",
        )


class RemoteNotFoundError(RemoteError):
    """Nothing is at that URL."""

    def __init__(self, url: str, why: str = "") -> None:
        detail = f" ({why})" if why else ""
        super().__init__(url, f"no repository at {url}{detail}")


class NotAMemfsRemoteError(RemoteError):
    """The remote holds a repository without agent.yaml."""

    def __init__(self, url: str, branch: str, why: str = "") -> None:
        super().__init__(
            url, f"{url} is not a memfs agent: {why or f'branch {branch} has no agent.yaml'}"
        )


class PushRejectedError(RemoteError):
    """The remote branch is not where we last saw it: someone pushed meanwhile."""

    def __init__(self, url: str, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(url, f"{url} has new commits{extra}: run 'memfs sync' to merge them first")


class DivergedError(MemfsError):
    """Local and remote both have commits the other lacks, and only a fast-forward was allowed."""

    exit_code = 6

    def __init__(self, remote: str, local: str, theirs: str) -> None:
        self.local, self.theirs = local, theirs
        super().__init__(
            f"local {local[:7]} and {remote} {theirs[:7]} have diverged; nothing was changed "
            "(run without --ff-only to merge)"
        )


class PackCorruptError(MemfsError):
    """A pack (or its index) whose checksums do not match its content."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        super().__init__(f"{name} is corrupt ({why})")


class RemoteCorruptError(RemoteError):
    """Something on the remote fails its checksums; nothing local was changed."""

    def __init__(self, url: str, what: str) -> None:
        super().__init__(url, f"{url}: {what}; it was refused and nothing local was changed")


class WatcherError(MemfsError):
    """A watcher already runs for the agent, none does, or one would not start."""

    exit_code = 8


class UnrelatedHistoriesError(MemfsError):
    """Local and remote histories share no commit: merging them would graft one onto the other."""

    exit_code = 6

    def __init__(self, remote: str, local: str, theirs: str) -> None:
        self.local, self.theirs = local, theirs
        super().__init__(
            f"local {local[:7]} and {remote} {theirs[:7]} share no history; nothing was merged "
            "(run again with --allow-unrelated-histories only if they really are one agent)"
        )


class UnfinishedCheckoutError(NotAnAgentError):
    """The folder holds a clone or checkout that stopped midway: it is not an agent yet."""

    def __init__(self, path: str, url: str) -> None:
        self.path = path
        MemfsError.__init__(
            self,
            f"{path} is an unfinished checkout of {url}: run 'memfs clone {url} {path}' again "
            "to finish it (its files are not committed, nothing else changes it)",
        )


class ManifestMissingError(NotAnAgentError):
    """agent.yaml is in the last commit but gone from the work tree: the folder is a
    memfs-native agent missing its manifest, not a Letta repo (which never had one)."""

    def __init__(self, path: str) -> None:
        self.path = path
        MemfsError.__init__(
            self,
            f"{path} is a memfs agent whose agent.yaml was deleted (it is in the last commit); "
            "nothing was changed: 'git checkout -- agent.yaml' brings it back",
        )


class EncryptionError(RemoteError):
    """A key or integrity problem with an encrypted remote (exit 10). Messages name objects
    and remotes, never keys or values."""

    exit_code = 10


class NoKeyError(EncryptionError):
    """The remote is encrypted and this machine holds no key for it (or for that epoch)."""

    def __init__(self, url: str, recipient: str = "", epoch: int | None = None) -> None:
        from memfs.util import hostname

        self.recipient = recipient
        self.epoch = epoch
        which = f" (epoch {epoch})" if epoch is not None else ""
        super().__init__(
            url,
            f"{url} is encrypted and this machine holds no key for it{which}. On a machine "
            f"that has it run: memfs key add {recipient or '<memfs key id of this machine>'} "
            f"--name {hostname()}",
        )


def _where(url: str, what: str) -> str:
    return f"{url}: {what}" if url else what


class TamperError(EncryptionError):
    """A sealed object (or keys.json) failed authentication or is malformed: it was changed,
    corrupted or swapped in the store. Nothing was imported."""

    AUTH = "failed authentication (changed, corrupted or swapped in the store)"

    def __init__(self, url: str, name: str, why: str = AUTH) -> None:
        self.name = name
        self.why = why
        super().__init__(
            url,
            _where(
                url,
                f"{name or 'a sealed object'} {why}; nothing was imported, "
                "the local repository is untouched",
            ),
        )

    def at(self, url: str) -> TamperError:
        """The same error naming the remote ``url`` (the envelope knows no URLs)."""
        return type(self)(url, self.name, self.why)


class RollbackError(EncryptionError):
    """The store shows an older state (manifest, keyring) than this machine has seen."""

    def __init__(self, url: str, what: str) -> None:
        super().__init__(
            url,
            _where(
                url,
                f"{what}: an older copy was put back in the store; nothing was "
                "imported, the local repository is untouched",
            ),
        )


class ForkError(EncryptionError):
    """keys.json holds a rotation that does not follow from the keys this machine holds: it
    was rewritten by someone without the agent's key (age has no sender authentication).
    With ``manifest``: the store shows this machine a manifest history other than the one it
    followed (a fork: another state was shown to another machine, or to this one before)."""

    def __init__(self, url: str, what: str, manifest: bool = False) -> None:
        if manifest:
            said = (
                f"{what}: the store forked the agent's history (it shows this machine "
                "another history than the one it followed); it was refused, nothing was "
                "imported, the local repository is untouched. If the store was restored on "
                "purpose: 'memfs key trust-rollback REMOTE'"
            )
        else:
            said = (
                f"{what}: keys.json was rewritten by someone who does not hold the "
                "agent's key; it was refused, nothing was imported"
            )
        super().__init__(url, _where(url, said))


class DowngradeError(EncryptionError):
    """A remote this machine knows as encrypted now looks unencrypted (or weaker)."""

    def __init__(self, url: str, what: str) -> None:
        super().__init__(
            url,
            _where(
                url,
                f"{what}: the remote was encrypted and now is not; it was refused, "
                "nothing was imported",
            ),
        )


class KeyringError(EncryptionError):
    """A keyring operation that cannot be done: the last slot, a full keyring, no such slot."""

    def __init__(self, url: str, what: str) -> None:
        super().__init__(url, _where(url, what))
