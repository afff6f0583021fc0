"""A machine removed from an encrypted agent writes nothing to its store (review10 F3), and
what a machine seals while a rotation is half done (keys.json at epoch n+1, the manifest still
at n).

Found from outside in session 10: a machine removed with ``memfs key rm`` still uploaded its
push's pack and its presence record, sealed under the epoch it still held, before the push
failed with exit 10: garbage in the store (no leak: the removed machine could read those
epochs anyway). Whole ``memfs`` processes; file:// and moto S3.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .machines import KEY_EXIT
from .test_keys import encrypted_agent, ok, run, store_objects


def cloud_url(tmp_path: Path, request: pytest.FixtureRequest, kind: str) -> str:
    if kind == "file":
        return "memfs::" + (tmp_path / "cloud" / "agent").as_uri()
    return str(request.getfixturevalue("s3").url("agents/agent"))


def note(machine_root: Path, name: str, text: str) -> None:
    (machine_root / "reference" / name).write_text(f"---\ndescription: n\n---\n{text}\n")


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_removed_machines_push_uploads_nothing(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """a removes b (a rotation, manifest re-sealed); b, which still holds epoch 1 in its key
    cache, pushes a commit made before it heard of it (the upload ahead of the commit) and an
    edit (the upload beside the manifest's read): exit 10 naming b's recipient, and the
    store holds exactly what it held before, byte for byte: no pack, no presence record."""
    url = cloud_url(tmp_path, request, kind)
    a, b = encrypted_agent(tmp_path, url, "b")
    ok(a, "key", "rm", "b")
    before = store_objects(url)
    note(b.root, "committed.md", "committed by b after its removal")
    ok(b, "commit", "-m", "b, removed")
    note(b.root, "edited.md", "edited by b after its removal")
    done = run(b, "push")
    assert done.returncode == KEY_EXIT, done.stderr
    assert "holds no key for it" in done.stderr
    after = store_objects(url)
    assert sorted(set(after) - set(before)) == []
    assert {k for k in before if after.get(k) != before[k]} == set()
