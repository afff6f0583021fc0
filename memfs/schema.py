"""What memfs accepts in the files it reads, and the ``Problem`` a check reports.

Validation never blocks saving or syncing (DESIGN.md §2): the models only turn file content
into typed values and say precisely what is wrong, as ``path:line: message``.
"""

from __future__ import annotations

from memfs.record import FrozenRecord
from memfs.util import LazyPattern

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from pydantic import ValidationError

    # The pydantic models, for type checkers; at run time __getattr__ loads them on first use.
    from memfs.models import (  # noqa: F401
        AgentManifest,
        BucketIdentity,
        BucketManifest,
        CloudConfig,
        FrontMatter,
        Identity,
        RetiredPack,
        UserConfig,
    )

NAME_PATTERN = LazyPattern(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MANIFEST_FILE = "agent.yaml"
FORMAT_VERSION = 1


class Problem(FrozenRecord):
    """One thing wrong with one file, located to a line."""

    __slots__ = _fields = ("path", "line", "message", "severity")
    path: str
    line: int
    message: str
    severity: Literal["error", "warning"]

    def __init__(
        self, path: str, line: int, message: str, severity: Literal["error", "warning"] = "error"
    ) -> None:
        self._set(path, line, message, severity)

    def render(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.path}:{self.line}: {prefix}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "severity": self.severity,
        }


def is_valid_name(name: str) -> bool:
    """Whether ``name`` can be an agent's name (a folder and URL segment)."""
    return NAME_PATTERN.fullmatch(name) is not None and name not in {".", ".."}


KNOWN_FRONT_MATTER_KEYS = frozenset({"description", "read_only", "limit"})

# What a bucket manifest may name. Everything in it comes from the remote: a pack name becomes
# an object key and a local file name, a branch a ref name, so each is held to its exact form.
PACK_NAME_PATTERN = r"^pack-[0-9a-f]{40}(?:[0-9a-f]{24})?$"
SHA_PATTERN = r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$"
BRANCH_PART = LazyPattern(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
# The timestamps memfs writes (and most people type); anything else goes to pydantic's parser.
_PLAIN_TIMESTAMP = LazyPattern(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)?")
# The pydantic models live in memfs.models, imported on first use (they cost ~0.1 s to import).
_MODELS = frozenset(
    {
        "AgentManifest",
        "FrontMatter",
        "Identity",
        "CloudConfig",
        "UserConfig",
        "RetiredPack",
        "BucketManifest",
        "BucketIdentity",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MODELS:
        from memfs import models

        return getattr(models, name)
    raise AttributeError(f"module 'memfs.schema' has no attribute {name!r}")


def check_branch_name(value: str) -> str:
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
        check_branch_name(name)
    except ValueError:
        return False
    return len(name) <= 200


def front_matter_error(metadata: Any) -> ValidationError | None:
    """Why front matter's known keys are invalid (pydantic's error), or None if they are valid.

    Plainly valid metadata (the usual case) is checked here without pydantic, which is
    imported only to explain what is wrong: every file of ``memfs status`` goes through this.
    """
    if _plain_mapping(metadata) and (
        _is(metadata.get("description"), str)
        and _is(metadata.get("read_only"), bool)
        and _positive_int_or_none(metadata.get("limit"))
    ):
        return None
    from memfs.models import FrontMatter

    return _validation_error(FrontMatter, metadata)


def manifest_error(data: Any) -> ValidationError | None:
    """Why agent.yaml's keys are invalid (pydantic's error), or None if they are valid.

    Checked without pydantic when plainly valid, as ``front_matter_error`` is.
    """
    if (
        _plain_mapping(data)
        and type(data.get("name")) is str
        and is_valid_name(data["name"])
        and type(data.get("id")) is str
        and type(data.get("description", "")) is str
        and _plain_timestamp(data.get("created_at"))
        and _is_one(data.get("format", FORMAT_VERSION))
        and _positive_int_or_none(data.get("max_file_size"))
    ):
        return None
    from memfs.models import AgentManifest

    return _validation_error(AgentManifest, data)


def is_plain_user_config(data: Any) -> bool:
    """Whether the user config's keys are plainly valid, so it can be read without pydantic.

    False means "ask the model": it may still be valid.
    """
    if not _plain_mapping(data) or not _is(data.get("default_cloud"), str):
        return False
    identity = data.get("identity")
    if identity is not None and not (
        _plain_mapping(identity)
        and set(identity) == {"name", "email"}
        and all(type(value) is str for value in identity.values())
    ):
        return False
    clouds = data.get("clouds", {})
    return _plain_mapping(clouds) and all(
        _plain_mapping(cloud)
        and set(cloud) <= {"url", "options", "encrypt"}
        and type(cloud.get("url")) is str
        and type(cloud.get("encrypt", False)) is bool
        and _plain_mapping(cloud.get("options", {}))
        for cloud in clouds.values()
    )


def _validation_error(model: Any, data: Any) -> ValidationError | None:
    from pydantic import ValidationError

    try:
        model.model_validate(data)
    except ValidationError as error:
        return error
    return None


def _plain_mapping(data: Any) -> bool:
    return type(data) is dict and all(type(key) is str for key in data)


def _is(value: Any, kind: type) -> bool:
    """None, or exactly ``kind`` (pydantic's strict types refuse lookalikes such as 1 for True)."""
    return value is None or type(value) is kind


def _is_one(value: Any) -> bool:
    return type(value) is int and value == FORMAT_VERSION


def _positive_int_or_none(value: Any) -> bool:
    return value is None or (type(value) is int and value > 0)


def _plain_timestamp(value: Any) -> bool:
    from datetime import datetime  # ~1 ms: only an agent.yaml being checked needs it

    if type(value) is datetime:
        return True
    if type(value) is not str or not _PLAIN_TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def manifest_data(data: bytes | None) -> dict[str, Any]:
    """agent.yaml's keys from its bytes; {} if it is missing or cannot be read."""
    from memfs.frontmatter import load_yaml
    from memfs.yamllib import yaml

    if data is None:
        return {}
    try:
        loaded = load_yaml(data)
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def key_lines(yaml_text: str) -> dict[str, int]:
    """Map each top-level key of a YAML mapping to its 0-based line in ``yaml_text``."""
    from memfs.frontmatter import compose_yaml
    from memfs.yamllib import yaml

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
