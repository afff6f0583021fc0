"""The pydantic models of ``keys.json`` (its format: memfs.crypto.keyfile), apart so that
only a command that parses or writes a keyring loads pydantic."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from memfs.crypto.keyfile import MAX_SLOTS, MAX_WRAPPED

SlotKind = Literal["x25519", "passphrase"]


class Slot(BaseModel):
    """One holder of the agent's key: a machine (x25519) or a passphrase (recovery identity)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=r"^s-[0-9a-z-]{1,32}$")
    kind: SlotKind
    recipient: str = Field(max_length=200)
    name: str = Field(max_length=200)
    host: str = Field(default="", max_length=200)
    added_at: str = Field(default="", max_length=40)
    added_by: str = Field(default="", max_length=40)
    wrapped: str = Field(max_length=MAX_WRAPPED * 4 // 3 + 4)
    identity: str | None = Field(default=None, max_length=MAX_WRAPPED * 4 // 3 + 4)


class Keyring(BaseModel):
    """The content of keys.json."""

    model_config = ConfigDict(extra="allow")

    format: Literal[1]
    repo_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    epoch: int = Field(ge=1, le=2**32 - 2)
    kid: str = Field(pattern=r"^[0-9a-f]{16}$")
    slots: list[Slot] = Field(min_length=1, max_length=MAX_SLOTS)
    history: str | None = None
    link: str | None = None

    def slot_of(self, recipient: str) -> Slot | None:
        """The slot wrapped to ``recipient``, if any."""
        return next((s for s in self.slots if s.recipient == recipient), None)

    def dump(self) -> bytes:
        """keys.json's bytes."""
        return json.dumps(self.model_dump(exclude_none=True), indent=1).encode() + b"\n"
