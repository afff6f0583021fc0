"""Letta Code's memory-tree constraints, ported: the config and the checks its hook runs.

Ports of Letta Code 0.32.18's ``parseMemoryConstraintsConfig`` and
``validateMemoryTreeConstraints`` (src/memory-constraints.ts), which its pre-commit hook runs
through ``.git/hooks/letta-memory-constraints.cjs``: a root ``MEMORY.md`` and one per folder
(MemFS v2), a maximum depth, characters per file (``maxFileCharacters``, per-glob
``fileCharacterLimits``) and in context (``maxCoreMemoryCharacters``), from
``.memfs.config.json`` or Letta's defaults. Pure functions over a tree's paths and modes and a
character counter, with the validator's own messages; ``memfs.lettahook`` turns them into
refusals of a proposed commit, the console shows the limits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

from memfs.jsonbound import loads as bounded_loads
from memfs.layout import V2_CONFIG, V2_MARKER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_CONFIG: dict[str, Any] = {
    "version": 1,
    "maxDepth": 2,
    "maxFileCharacters": 20000,
    "maxCoreMemoryCharacters": 65536,
}
V1_CHECKED = re.compile(r"(?:memory/)?(?:system|reference)/.*\.md\Z", re.DOTALL)
CORE = "core memory"
"""What the validator names the in-context total (a root file's characters), not a path."""
MAX_SAFE_INTEGER = 2**53 - 1


def indexes(path: str) -> list[str]:
    """The ``MEMORY.md`` of every folder above ``path``."""
    folders = path.split("/")[:-1]
    return ["/".join(folders[: depth + 1]) + "/" + V2_MARKER for depth in range(len(folders))]


def regular(mode: int) -> bool:
    return oct(mode)[2:].startswith("100")


def parse_config(content: str) -> tuple[dict[str, Any] | None, list[str]]:
    """``parseMemoryConstraintsConfig``: the config, or the validator's errors."""
    path = V2_CONFIG
    try:
        value = bounded_loads(content, parse_constant=_no_constant)
    except ValueError as error:
        return None, [f"{path}: invalid JSON ({error})"]
    if not isinstance(value, dict):
        return None, [f"{path}: expected a JSON object"]
    errors: list[str] = []
    keys = {"version", "maxDepth", "maxFileCharacters", "maxCoreMemoryCharacters"}
    keys.add("fileCharacterLimits")
    errors.extend(f"{path}: unknown field '{key}'" for key in value if key not in keys)
    if not (_is_int(value.get("version")) and value.get("version") == 1):
        errors.append(f"{path}: version must be 1")
    if "maxDepth" in value and not (_is_int(value["maxDepth"]) and value["maxDepth"] >= 0):
        errors.append(f"{path}: maxDepth must be a non-negative integer")
    for key in ("maxFileCharacters", "maxCoreMemoryCharacters"):
        if key in value and not (_is_int(value[key]) and value[key] > 0):
            errors.append(f"{path}: {key} must be a positive integer")
    overrides = value.get("fileCharacterLimits")
    if "fileCharacterLimits" in value and not isinstance(overrides, list):
        errors.append(f"{path}: fileCharacterLimits must be an array")
    if isinstance(overrides, list):
        for index, override in enumerate(overrides):
            errors.extend(_override_errors(f"{path}: fileCharacterLimits[{index}]", override))
    return (None, errors) if errors else (value, [])


def _no_constant(name: str) -> Any:
    """JSON.parse knows no NaN or Infinity."""
    raise ValueError(f"Unexpected token {name[0]}")


def _override_errors(label: str, override: Any) -> list[str]:
    if not isinstance(override, dict):
        return [f"{label} must be an object"]
    errors = [
        f"{label}: unknown field '{key}'"
        for key in override
        if key not in ("pattern", "maxCharacters")
    ]
    pattern = override.get("pattern")
    if (
        not isinstance(pattern, str)
        or not pattern
        or pattern.startswith("/")
        or "\\" in pattern
        or ".." in pattern.split("/")
    ):
        errors.append(f"{label}: pattern must be a non-empty repo-relative glob using '/'")
    elif any("**" in segment and segment != "**" for segment in pattern.split("/")):
        errors.append(f"{label}: '**' must be a complete path segment")
    maximum = override.get("maxCharacters", "absent")  # JavaScript: undefined is not null
    if maximum is not None and not (_is_int(maximum) and maximum > 0):
        errors.append(f"{label}: maxCharacters must be a positive integer or null")
    return errors


def _is_int(value: Any) -> bool:
    """``Number.isSafeInteger``: a whole number (JSON 2.0 is one too) within 2^53 - 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value == int(value) and abs(value) <= MAX_SAFE_INTEGER


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A ``fileCharacterLimits`` glob as the validator compiles it (``*``, ``**``, ``?``)."""
    source = "^"
    index = 0
    while index < len(pattern):
        character = pattern[index]
        if character == "*":
            if pattern[index + 1 : index + 2] == "*":
                if pattern[index + 2 : index + 3] == "/":
                    source += "(?:.*/)?"
                    index += 2
                else:
                    source += ".*"
                    index += 1
            else:
                source += "[^/]*"
        elif character == "?":
            source += "[^/]"
        else:
            source += re.escape(character)
        index += 1
    return re.compile(source + r"\Z", re.DOTALL)


def tree_constraint_errors(
    modes: Mapping[str, int],
    characters: Callable[[str], int],
    config: Mapping[str, Any],
    policy: str,
    require_root_marker: bool,
) -> list[str]:
    """``validateMemoryTreeConstraints`` over a tree (path -> git mode), its messages."""
    errors: list[str] = []
    paths = sorted(path for path in modes if path.endswith(".md"))
    present = set(paths)
    v2 = policy == "root-marker" and (require_root_marker or V2_MARKER in present)
    if v2 and V2_MARKER not in present:
        errors.append(f"{V2_MARKER}: root memory index is required for MemFS v2")
    memory = [
        path
        for path in paths
        if not path.startswith("skills/")
        and (v2 or policy == "shared-memory" or V1_CHECKED.match(path))
    ]
    if v2:
        for path in memory:
            missing = next((index for index in indexes(path) if index not in present), None)
            if missing is not None:
                errors.append(f"{path}: missing required index {missing}")
    overrides = [
        (_glob_regex(str(item["pattern"])), item)
        for item in config.get("fileCharacterLimits") or []
    ]
    core = 0
    max_depth = config.get("maxDepth")
    core_limit = config.get("maxCoreMemoryCharacters")
    for path in memory:
        if not regular(modes[path]):
            errors.append(f"{path}: memory Markdown must be a regular file")
            continue
        depth = path.count("/")
        if max_depth is not None and depth > max_depth:
            errors.append(f"{path}: depth {depth} exceeds maxDepth {_js_number(max_depth)}")
        override = next((item for regex, item in overrides if regex.match(path)), None)
        limit = override.get("maxCharacters") if override else config.get("maxFileCharacters")
        source = f"glob '{override['pattern']}'" if override else "maxFileCharacters"
        count_core = policy == "root-marker" and "/" not in path and core_limit is not None
        if limit is None and not count_core:
            continue
        count = characters(path)
        if count_core:
            core += count
        if limit is not None and count > limit:
            errors.append(f"{path}: {count} characters exceeds {_js_number(limit)} from {source}")
    if policy == "root-marker" and core_limit is not None and core > core_limit:
        limit_text = _js_number(core_limit)
        errors.append(
            f"{CORE}: {core} characters exceeds {limit_text} from maxCoreMemoryCharacters"
        )
    return errors


def _js_number(value: Any) -> str:
    """A number as JavaScript prints it in a template string (``2.0`` is ``2``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
