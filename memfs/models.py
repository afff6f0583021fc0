"""Pydantic models of what memfs reads from files: agent.yaml, front matter, configs, manifests.

Importing pydantic and building these models costs ~0.1 s, more than a whole ``memfs status``
should take, so the hot path (``memfs.schema``'s ``*_error`` checks) validates well-formed input
without them; these models say precisely what is wrong when it is not, and type what memfs
writes (the user config, a bucket's manifest).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from memfs.schema import (
    FORMAT_VERSION,
    NAME_PATTERN,
    PACK_NAME_PATTERN,
    SHA_PATTERN,
    check_branch_name,
)


class AgentManifest(BaseModel):
    """``agent.yaml``: who the agent is. Unknown keys are kept."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[StrictStr, Field(pattern=NAME_PATTERN.pattern)]
    id: StrictStr
    description: StrictStr = ""
    created_at: datetime
    format: Literal[1] = FORMAT_VERSION
    max_file_size: Annotated[StrictInt, Field(gt=0)] | None = None


class FrontMatter(BaseModel):
    """The keys memfs knows in a Markdown memory file's front matter. Unknown keys are kept."""

    model_config = ConfigDict(extra="allow")

    description: StrictStr | None = None
    read_only: StrictBool | None = None
    limit: Annotated[StrictInt, Field(gt=0)] | None = None


class Identity(BaseModel):
    """Who commits: used for commit author and committer."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr
    email: StrictStr


class CloudConfig(BaseModel):
    """A cloud: a URL prefix holding many agents, and the fsspec options to reach it."""

    model_config = ConfigDict(extra="forbid")

    url: StrictStr
    options: dict[str, Any] = Field(default_factory=dict)
    encrypt: StrictBool = False  # every agent pushed to or checked out from it is encrypted


class UserConfig(BaseModel):
    """``~/.config/memfs/config.yaml``. Unknown keys are kept for newer versions."""

    model_config = ConfigDict(extra="allow")

    identity: Identity | None = None
    clouds: dict[str, CloudConfig] = Field(default_factory=dict)
    default_cloud: StrictStr | None = None


# What a bucket manifest may name. Everything in it comes from the remote: a pack name becomes
# an object key and a local file name, a branch a ref name, so each is held to its exact form.
PackName = Annotated[StrictStr, Field(pattern=PACK_NAME_PATTERN)]
CommitSha = Annotated[StrictStr, Field(pattern=SHA_PATTERN)]
BranchName = Annotated[StrictStr, Field(max_length=200), AfterValidator(check_branch_name)]


class RetiredPack(BaseModel):
    """A pack a compaction replaced; deleted once its grace period is over."""

    name: PackName
    retired_at: float


class BucketManifest(BaseModel):
    """``manifest.json`` of an agent in an object store: the one object that changes.

    Refs must be full hex shas and packs ``pack-<hex>``: a name like ``../x`` would make
    memfs read or delete outside the agent's prefix (DESIGN.md §5).
    """

    model_config = ConfigDict(extra="allow")

    format: Literal[1] = FORMAT_VERSION
    generation: Annotated[int, Field(ge=0)] = 0
    refs: dict[BranchName, CommitSha] = Field(default_factory=dict)
    packs: list[PackName] = Field(default_factory=list)
    retired: list[RetiredPack] = Field(default_factory=list)
    push_id: str | None = None
    pushed_at: str | None = None
    host: str | None = None
    name: str | None = None
    description: str = ""


class BucketIdentity(BaseModel):
    """``memfs.json``: which agent lives at this URL, written once."""

    model_config = ConfigDict(extra="allow")

    format: Literal[1] = FORMAT_VERSION
    name: str
    id: str
    created_at: str = ""
