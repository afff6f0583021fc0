"""Where each remote stood at the last fetch or push, from local refs only (for ``status``).

Apart from sync so that ``memfs status`` reads it without importing the sync and transport
stack: it needs only the remote-tracking refs, the remotes' config and ``state.json``.
"""

from __future__ import annotations

import json

from memfs.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.agent import Agent
    from memfs.gitconfig import PlainConfig


def tracking_ref(remote: str, branch: str) -> str:
    """The remote-tracking ref of ``branch`` on ``remote``."""
    return f"refs/remotes/{remote}/{branch}"


class RemoteState(FrozenRecord):
    """Where a remote stood at the last fetch or push, as far as this machine knows."""

    __slots__ = _fields = ("name", "url", "mirror", "ahead", "behind", "last_ok", "last_error")
    name: str
    url: str
    mirror: bool
    ahead: int
    behind: int
    last_ok: str | None
    last_error: str | None

    def __init__(
        self,
        name: str,
        url: str,
        mirror: bool,
        ahead: int,
        behind: int,
        last_ok: str | None,
        last_error: str | None,
    ) -> None:
        self._set(name, url, mirror, ahead, behind, last_ok, last_error)

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


def remote_states(agent: Agent) -> list[RemoteState]:
    """Ahead/behind and last outcome per remote, from local refs only (no network)."""
    history = agent.history
    if not _may_name_a_remote(history.config()):
        return []  # memfs.remotes (URL rules, ~2 ms to import) is not needed to say so
    from memfs.remotes import letta_mirror, list_remotes

    head, branch = history.head(), history.branch()
    try:
        saved = json.loads((history.state_dir / "state.json").read_text()).get("remotes", {})
    except (OSError, ValueError):
        saved = {}
    states = []
    mirror = letta_mirror(history)
    for config in list_remotes(history) + ([mirror] if mirror else []):
        tracking = history.ref(tracking_ref(config.name, branch))
        entry = saved.get(config.name, {})
        states.append(
            RemoteState(
                name=config.name,
                url=config.display_url,
                mirror=config.mirror,
                ahead=history.count_between(head, tracking),
                behind=history.count_between(tracking, head),
                last_ok=entry.get("last_ok"),
                last_error=entry.get("last_error"),
            )
        )
    return states


def _may_name_a_remote(config: PlainConfig | Any) -> bool:
    """Whether ``.git/config`` has a section a remote is configured in: ``[remote "..."]``,
    or ``[letta "memoryRepository"]`` (Letta Code's mirror)."""
    return any(section[0].lower() in (b"remote", b"letta") for section in config.sections())
