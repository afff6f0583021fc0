"""Pydantic models of what memfs reads from files, and the ``Problem`` a check reports.

Validation never blocks saving or syncing (DESIGN.md §2): the models only turn file content
into typed values and say precisely what is wrong, as ``path:line: message``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

from memfs.frontmatter import compose_yaml, load_yaml

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MANIFEST_FILE = "agent.yaml"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file, located to a line."""

    path: str
    line: int
    message: str
    severity: Literal["error", "warning"] = "error"

    def render(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.path}:{self.line}: {prefix}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_valid_name(name: str) -> bool:
    """Whether ``name`` can be an agent's name (a folder and URL segment)."""
    return NAME_PATTERN.fullmatch(name) is not None and name not in {".", ".."}


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


KNOWN_FRONT_MATTER_KEYS = frozenset(FrontMatter.model_fields)


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


class UserConfig(BaseModel):
    """``~/.config/memfs/config.yaml``. Unknown keys are kept for newer versions."""

    model_config = ConfigDict(extra="allow")

    identity: Identity | None = None
    clouds: dict[str, CloudConfig] = Field(default_factory=dict)
    default_cloud: StrictStr | None = None


# What a bucket manifest may name. Everything in it comes from the remote: a pack name becomes
# an object key and a local file name, a branch a ref name, so each is held to its exact form.
PACK_NAME_PATTERN = r"^pack-[0-9a-f]{40}(?:[0-9a-f]{24})?$"
SHA_PATTERN = r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$"
BRANCH_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def _branch_name(value: str) -> str:
    """A branch name as git accepts one, in the few characters memfs uses (no '..', no .lock)."""
    parts = value.split("/")
    if ".." in value or not all(
        BRANCH_PART.fullmatch(part) and not part.endswith(".lock") for part in parts
    ):
        raise ValueError(f"{value!r} is not a branch name")
    return value


def is_valid_branch(name: str) -> bool:
    """Whether a branch name a remote announced is safe to use as a ref name."""
    try:
        _branch_name(name)
    except ValueError:
        return False
    return len(name) <= 200


PackName = Annotated[StrictStr, Field(pattern=PACK_NAME_PATTERN)]
CommitSha = Annotated[StrictStr, Field(pattern=SHA_PATTERN)]
BranchName = Annotated[StrictStr, Field(max_length=200), AfterValidator(_branch_name)]


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


def manifest_data(data: bytes | None) -> dict[str, Any]:
    """agent.yaml's keys from its bytes; {} if it is missing or cannot be read."""
    if data is None:
        return {}
    try:
        loaded = load_yaml(data)
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def key_lines(yaml_text: str) -> dict[str, int]:
    """Map each top-level key of a YAML mapping to its 0-based line in ``yaml_text``."""
    try:
        node = compose_yaml(yaml_text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {
        str(key.value): key.start_mark.line
        for key, _ in node.value
        if isinstance(key, yaml.ScalarNode)
    }


def validation_problems(
    path: str, error: ValidationError, lines: dict[str, int], first_line: int
) -> list[Problem]:
    """Turn a pydantic error into problems, each at the line of the key it is about."""
    problems = []
    for issue in error.errors():
        key = str(issue["loc"][0]) if issue["loc"] else ""
        line = first_line + lines[key] if key in lines else first_line
        where = f"{key}: " if key else ""
        problems.append(Problem(path, line, f"{where}{_describe(issue)}"))
    return problems


def _describe(issue: Any) -> str:
    kind = issue["type"]
    if kind == "missing":
        return "required key is missing"
    if kind in {"string_type", "int_type", "bool_type"}:
        wanted = {"string_type": "text", "int_type": "a whole number", "bool_type": "true or false"}
        return f"must be {wanted[kind]}, got {issue['input']!r}"
    if kind == "string_pattern_mismatch":
        return f"{issue['input']!r} is not a valid name (letters, digits, '.', '_', '-')"
    return str(issue["msg"]).replace("Input should be", "must be")
