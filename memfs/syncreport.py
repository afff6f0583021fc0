"""What a sync, pull, push or fetch did, remote by remote: the result the library returns and
the CLI renders (``--json`` included); ``status`` shows its last one from ``state.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memfs.errors import RemoteError
    from memfs.merge import Conflict
    from memfs.remotes import RemoteConfig
    from memfs.trees import CommitInfo


@dataclass
class RemoteOutcome:
    """What one sync step did with one remote."""

    remote: str
    fetched: str | None = None
    integrated: str = ""  # "up to date" | "fast-forward" | "merged" | ""
    pushed: str = ""  # "pushed" | "up to date" | ""
    conflicts: list[Conflict] = field(default_factory=list)
    error: str | None = None
    exit_code: int = 7  # of the error: 10 for a key or integrity problem (issue 14)

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


@dataclass
class SyncReport:
    """What a sync, pull, push or fetch did."""

    committed: CommitInfo | None = None
    remotes: list[RemoteOutcome] = field(default_factory=list)
    head: str | None = None
    created_remote: RemoteConfig | None = None
    # push-only mirrors pushed on the side (letta.memoryRepository.url): an error is a warning
    mirrors: list[RemoteOutcome] = field(default_factory=list)

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
