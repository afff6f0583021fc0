"""A bucket's two JSON objects, ``manifest.json`` and ``memfs.json``, read without pydantic.

Every push, pull and poll reads the manifest, and loading pydantic with its models costs
~0.1 s of each such process. A manifest that is plainly valid (what memfs writes) is checked
here by hand, by rules at least as strict as the models in ``memfs.models``; anything else
goes to those models, which either accept it (their result is used) or say why not. So
what is accepted, and the values read, are the models' own: a hostile remote gains nothing.
Names that would leave the agent's prefix (``../x`` as a pack) fail both (DESIGN.md §5).
"""

from __future__ import annotations

from memfs.record import FrozenRecord
from memfs.schema import FORMAT_VERSION, PACK_NAME_PATTERN, SHA_PATTERN, is_valid_branch
from memfs.util import LazyPattern

TYPE_CHECKING = False  # typing and dataclasses cost every push, pull and poll ~7 ms
if TYPE_CHECKING:
    from typing import Any

_PACK_NAME = LazyPattern(PACK_NAME_PATTERN.removeprefix("^").removesuffix("$"))
_SHA = LazyPattern(SHA_PATTERN.removeprefix("^").removesuffix("$"))
_MANIFEST_FIELDS = (
    "format", "generation", "refs", "packs", "retired", "push_id", "pushed_at", "host", "name",
    "description",
)  # fmt: skip
_IDENTITY_FIELDS = ("format", "name", "id", "created_at")


class ManifestInvalid(ValueError):
    """The object does not have the expected fields (the models' message as the cause)."""


class RetiredPack(FrozenRecord):
    """A pack a compaction replaced; deleted once its grace period is over."""

    __slots__ = _fields = ("name", "retired_at")
    name: str
    retired_at: float

    def __init__(self, name: str, retired_at: float) -> None:
        self._set(name, retired_at)


class BucketManifest(FrozenRecord):
    """``manifest.json`` of an agent in an object store: the one object that changes."""

    __slots__ = _fields = (
        "format", "generation", "refs", "packs", "retired", "push_id", "pushed_at", "host",
        "name", "description", "extra",
    )  # fmt: skip
    format: int
    generation: int
    refs: dict[str, str]
    packs: list[str]
    retired: list[RetiredPack]
    push_id: str | None
    pushed_at: str | None
    host: str | None
    name: str | None
    description: str
    extra: dict[str, Any]  # keys a newer memfs wrote: kept

    def __init__(
        self,
        format: int = FORMAT_VERSION,
        generation: int = 0,
        refs: dict[str, str] | None = None,
        packs: list[str] | None = None,
        retired: list[RetiredPack] | None = None,
        push_id: str | None = None,
        pushed_at: str | None = None,
        host: str | None = None,
        name: str | None = None,
        description: str = "",
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._set(
            format,
            generation,
            {} if refs is None else refs,
            [] if packs is None else packs,
            [] if retired is None else retired,
            push_id,
            pushed_at,
            host,
            name,
            description,
            {} if extra is None else extra,
        )

    def to_json(self) -> dict[str, Any]:
        data = {**self.extra, **{name: getattr(self, name) for name in _MANIFEST_FIELDS}}
        data["retired"] = [{"name": r.name, "retired_at": r.retired_at} for r in self.retired]
        return data


class BucketIdentity(FrozenRecord):
    """``memfs.json``: which agent lives at this URL, written once."""

    __slots__ = _fields = ("name", "id", "created_at", "format", "extra")
    name: str
    id: str
    created_at: str
    format: int
    extra: dict[str, Any]

    def __init__(
        self,
        name: str,
        id: str,
        created_at: str = "",
        format: int = FORMAT_VERSION,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._set(name, id, created_at, format, {} if extra is None else extra)

    def to_json(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in _IDENTITY_FIELDS},
            **{k: v for k, v in self.extra.items() if k not in _IDENTITY_FIELDS},
        }


def parse_manifest(raw: Any) -> BucketManifest:
    """A manifest from its decoded JSON; ManifestInvalid if the models refuse it."""
    if _plain_manifest(raw):
        return _manifest_from(raw)
    from memfs.models import BucketManifest as Model

    try:
        model = Model.model_validate(raw)
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise ManifestInvalid(str(error)) from error
    return _manifest_from(model.model_dump(mode="json"))


def parse_identity(raw: Any) -> BucketIdentity:
    """An identity from its decoded JSON; ManifestInvalid if the models refuse it."""
    if not _plain_identity(raw):
        from memfs.models import BucketIdentity as Model

        try:
            raw = Model.model_validate(raw).model_dump(mode="json")
        except ValueError as error:
            raise ManifestInvalid(str(error)) from error
    extra = {k: v for k, v in raw.items() if k not in _IDENTITY_FIELDS}
    return BucketIdentity(
        name=raw["name"], id=raw["id"], created_at=raw.get("created_at", ""), extra=extra
    )


def _manifest_from(raw: dict[str, Any]) -> BucketManifest:
    return BucketManifest(
        generation=raw.get("generation", 0),
        refs=dict(raw.get("refs", {})),
        packs=list(raw.get("packs", [])),
        retired=[
            RetiredPack(entry["name"], float(entry["retired_at"]))
            for entry in raw.get("retired", [])
        ],
        push_id=raw.get("push_id"),
        pushed_at=raw.get("pushed_at"),
        host=raw.get("host"),
        name=raw.get("name"),
        description=raw.get("description", ""),
        extra={k: v for k, v in raw.items() if k not in _MANIFEST_FIELDS},
    )


def _plain_manifest(raw: Any) -> bool:
    """Whether ``raw`` is a manifest as memfs writes it, by rules the models also hold."""
    return (
        type(raw) is dict
        and _is_one(raw.get("format", FORMAT_VERSION))
        and _whole(raw.get("generation", 0))
        and _refs(raw.get("refs", {}))
        and _names(raw.get("packs", []))
        and _retired(raw.get("retired", []))
        and all(_text_or_none(raw.get(k)) for k in ("push_id", "pushed_at", "host", "name"))
        and type(raw.get("description", "")) is str
    )


def _plain_identity(raw: Any) -> bool:
    return (
        type(raw) is dict
        and _is_one(raw.get("format", FORMAT_VERSION))
        and type(raw.get("name")) is str
        and type(raw.get("id")) is str
        and type(raw.get("created_at", "")) is str
    )


def _is_one(value: Any) -> bool:
    return type(value) is int and value == FORMAT_VERSION


def _whole(value: Any) -> bool:
    return type(value) is int and value >= 0


def _text_or_none(value: Any) -> bool:
    return value is None or type(value) is str


def _refs(value: Any) -> bool:
    return type(value) is dict and all(
        type(branch) is str
        and len(branch) <= 200
        and is_valid_branch(branch)
        and type(sha) is str
        and _SHA.fullmatch(sha) is not None
        for branch, sha in value.items()
    )


def _names(value: Any) -> bool:
    return type(value) is list and all(
        type(name) is str and _PACK_NAME.fullmatch(name) is not None for name in value
    )


def _retired(value: Any) -> bool:
    return type(value) is list and all(
        type(entry) is dict
        and set(entry) == {"name", "retired_at"}
        and _names([entry["name"]])
        and type(entry["retired_at"]) in (int, float)
        for entry in value
    )
