"""What a sync, pull, push or fetch did, remote by remote: the result the library returns and
the CLI renders (``--json`` included); ``status`` shows its last one from ``state.json``."""

from __future__ import annotations

from memfs.record import Record

TYPE_CHECKING = False  # typing and dataclasses cost a push or pull ~8 ms to import
if TYPE_CHECKING:
    from typing import Any

    from memfs.errors import RemoteError
    from memfs.merge import Conflict
    from memfs.remotes import RemoteConfig
    from memfs.trees import CommitInfo


class RemoteOutcome(Record):
    """What one sync step did with one remote."""

    __slots__ = _fields = (
        "remote", "fetched", "integrated", "pushed", "conflicts", "error", "exit_code"
    )  # fmt: skip
    remote: str
    fetched: str | None
    integrated: str  # "up to date" | "fast-forward" | "merged" | ""
    pushed: str  # "pushed" | "up to date" | ""
    conflicts: list[Conflict]
    error: str | None
    exit_code: int  # of the error: 10 for a key or integrity problem (issue 14)

    def __init__(
        self,
        remote: str,
        fetched: str | None = None,
        integrated: str = "",
        pushed: str = "",
        conflicts: list[Conflict] | None = None,
        error: str | None = None,
        exit_code: int = 7,
    ) -> None:
        self.remote = remote
        self.fetched = fetched
        self.integrated = integrated
        self.pushed = pushed
        self.conflicts = [] if conflicts is None else conflicts
        self.error = error
        self.exit_code = exit_code

    def fail(self, error: RemoteError) -> RemoteOutcome:
        """Record ``error``; the outcome itself, for one-line use."""
        self.error = str(error)
        self.exit_code = 10 if error.exit_code == 10 else 7
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "fetched": self.fetched,
            "integrated": self.integrated or None,
            "pushed": self.pushed or None,
            "conflicts": [c.to_dict() for c in self.conflicts],
            "error": self.error,
        }


class SyncReport(Record):
    """What a sync, pull, push or fetch did."""

    __slots__ = _fields = ("committed", "remotes", "head", "created_remote", "mirrors")
    committed: CommitInfo | None
    remotes: list[RemoteOutcome]
    head: str | None
    created_remote: RemoteConfig | None
    # push-only mirrors pushed on the side (letta.memoryRepository.url): an error is a warning
    mirrors: list[RemoteOutcome]

    def __init__(
        self,
        committed: CommitInfo | None = None,
        remotes: list[RemoteOutcome] | None = None,
        head: str | None = None,
        created_remote: RemoteConfig | None = None,
        mirrors: list[RemoteOutcome] | None = None,
    ) -> None:
        self.committed = committed
        self.remotes = [] if remotes is None else remotes
        self.head = head
        self.created_remote = created_remote
        self.mirrors = [] if mirrors is None else mirrors

    @property
    def ok(self) -> bool:
        return all(outcome.error is None for outcome in self.remotes)

    @property
    def conflicts(self) -> list[Conflict]:
        return [c for outcome in self.remotes for c in outcome.conflicts]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "committed": self.committed.to_dict() if self.committed else None,
            "head": self.head,
            "remotes": [outcome.to_dict() for outcome in self.remotes],
            "mirrors": [outcome.to_dict() for outcome in self.mirrors],
        }
