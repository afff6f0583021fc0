"""The push guard (review11 F12): no push carries a blob holding a secret's value.

The commit guard (memfs.secrets.guard) covers the commits memfs makes; Letta Code, git and
other tools commit in the same repository, and a push uploads whatever the branch holds. So
every blob a push packs is searched for the secrets' forms as it is read for the pack
(``memfs.packwrite.build_pack`` reads and hashes each one already): a hit stops the push
before anything is uploaded, naming the secret, the commit and the path, never the value.

Plain agents pay a stat (``hooks.has_secrets``): no guard is armed and nothing is imported.
There is no flag to let such a blob through: a value that belongs in memory is no secret
(``memfs secret rm``), and one that does not has to leave the commit (rewrite it).
"""

from __future__ import annotations

from collections.abc import Callable

from memfs.errors import MemfsError
from memfs.secrets.hooks import has_secrets

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.history import History

BLOB = 3  # git's object type number of a blob
WHERE_COMMITS = 2000  # how many commits back the commit and path of a refused blob are sought

BlobCheck = Callable[[bytes, int, bytes], None]
"""Called with (binary sha, type number, content) of each object a push packs; raises
``SecretInPushError`` for a blob holding a secret's value."""


class SecretInPushError(MemfsError):
    """A commit the push would upload holds a secret's value (exit 1): nothing was uploaded,
    the local repository is untouched."""

    def __init__(self, name: str, blob: str, where: str = "") -> None:
        self.name = name
        self.blob = blob
        self.where = where
        super().__init__(self._text())

    def _text(self) -> str:
        place = self.where or f"blob {self.blob[:12]}"
        return (
            f"{place} holds the value of secret {self.name}: nothing was pushed; take it out "
            f"of that commit (git commit --amend / git rebase -i) or, if the value may leave "
            f"this machine, 'memfs secret rm {self.name}'"
        )

    def locate(self, history: History, tip: str | None) -> None:
        """Name the newest commit (from ``tip`` back) adding the blob, and its path."""
        found = _where(history, tip, self.blob)
        if found is not None:
            self.where = f"commit {found[0][:12]} ({found[1]})"
            self.args = (self._text(),)


def arm(agent: Agent) -> None:
    """Set the agent's history to check what its pushes pack (``History.outgoing_check``);
    cleared for an agent without secrets. A stat for a plain agent."""
    agent.history.outgoing_check = blob_check(agent) if has_secrets(agent) else None


def blob_check(agent: Agent) -> BlobCheck | None:
    """The check of one packed object against the agent's secrets; None if none is guarded
    (every value under ``forms.MIN_MASKED``)."""
    from memfs.secrets.guard import _finder, _joined, _search, values_of

    values = values_of(agent)
    plain = _finder(values)
    if plain[0] is None:
        return None
    joined = _joined(values)

    def check(sha: bytes, type_num: int, data: bytes) -> None:
        if type_num != BLOB:
            return
        found = _search(data, plain, joined)
        if found is not None:
            raise SecretInPushError(found[0], sha.hex())

    return check


def _where(history: History, tip: str | None, blob: str) -> tuple[str, str] | None:
    """(commit, path) of the commit adding ``blob``: walking first parents back from ``tip``
    (``WHERE_COMMITS`` at most), the oldest of the newest run of commits holding it."""
    found: tuple[str, str] | None = None
    sha = tip
    for _ in range(WHERE_COMMITS):
        if sha is None:
            break
        try:
            paths = [path for path, entry in history.tree_of(sha).items() if entry.sha == blob]
            parents = history.commit_info(sha).parents
        except MemfsError:
            break
        if paths:
            found = (sha, paths[0])
        elif found is not None:
            break  # this commit lacks it: the one after added it
        sha = parents[0] if parents else None
    return found
