"""The bucket manifest and identity read without pydantic (memfs/remotes/manifest.py) accept
exactly what the pydantic models accept, with the same values: a hostile remote gains nothing
from the fast path, and memfs loses nothing a newer memfs wrote."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memfs.models import BucketIdentity as IdentityModel
from memfs.models import BucketManifest as ManifestModel
from memfs.remotes.manifest import ManifestInvalid, parse_identity, parse_manifest

SHA = "a" * 40
PACK = "pack-" + "b" * 40


def model_result(model: Any, raw: Any) -> dict[str, Any] | None:
    try:
        return model.model_validate(raw).model_dump(mode="json")
    except ValueError:
        return None


def ours(parse: Any, raw: Any) -> dict[str, Any] | None:
    try:
        return parse(raw).to_json()
    except ManifestInvalid:
        return None


def same(left: Any, right: Any) -> bool:
    """Equal, NaN equal to NaN (a retired_at of NaN is a float both accept)."""
    if isinstance(left, float) and isinstance(right, float):
        return left == right or (math.isnan(left) and math.isnan(right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


CASES: list[Any] = [
    {},
    {"format": 1, "generation": 3, "refs": {"main": SHA}, "packs": [PACK]},
    {"refs": {"main": SHA}, "packs": [PACK], "retired": [{"name": PACK, "retired_at": 5}]},
    {"refs": {"main": SHA}, "future": {"x": 1}, "description": "d"},  # a newer memfs's key
    {"packs": ["../escape"]},
    {"packs": ["pack-" + "b" * 40 + "\n"]},
    {"refs": {"../main": SHA}},
    {"refs": {"main": SHA + "\n"}},
    {"refs": {"main.lock": SHA}},
    {"refs": {"x" * 201: SHA}},
    {"generation": True},
    {"generation": -1},
    {"generation": "3"},  # lax int: the models take it, so do we (as 3)
    {"generation": 3.0},
    {"format": True},
    {"format": 2},
    {"retired": [{"name": PACK, "retired_at": "5"}]},
    {"retired": [{"name": PACK, "retired_at": 5, "by": "x"}]},
    {"retired": [{"name": "../x", "retired_at": 5}]},
    {"retired": [{"name": PACK, "retired_at": float("nan")}]},
    {"host": 5},
    {"description": None},
    [],
    "manifest",
    None,
]


@pytest.mark.parametrize("raw", CASES, ids=range(len(CASES)))
def test_a_manifest_is_read_as_the_model_reads_it(raw: Any) -> None:
    assert same(ours(parse_manifest, raw), model_result(ManifestModel, raw))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats()
    | st.sampled_from(["", "main", SHA, PACK, "../x", "x.lock", "a/b", "pack-zz"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["main", "name", "retired_at", "x", SHA]), inner, max_size=3
        )
    ),
    max_leaves=8,
)
manifests = st.dictionaries(
    st.sampled_from(
        ["format", "generation", "refs", "packs", "retired", "push_id", "host", "description", "z"]
    ),
    json_values,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(manifests)
def test_any_manifest_is_read_as_the_model_reads_it(raw: dict[str, Any]) -> None:
    assert same(ours(parse_manifest, raw), model_result(ManifestModel, raw))


@pytest.mark.parametrize(
    "raw",
    [
        {"name": "a", "id": "b"},
        {"format": 1, "name": "a", "id": "b", "created_at": "t", "extra": [1]},
        {"name": "a"},
        {"name": 1, "id": "b"},
        {"name": "a", "id": "b", "format": 2},
        {"name": "a", "id": "b", "created_at": None},
        [],
    ],
)
def test_an_identity_is_read_as_the_model_reads_it(raw: Any) -> None:
    assert same(ours(parse_identity, raw), model_result(IdentityModel, raw))


def test_a_plain_manifest_loads_no_pydantic() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, memfs.remotes.manifest as m\n"
        f"m.parse_manifest({{'refs': {{'main': '{SHA}'}}, 'packs': ['{PACK}']}})\n"
        "m.parse_identity({'name': 'a', 'id': 'b'})\n"
        "print('pydantic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
