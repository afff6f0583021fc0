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


def test_members_seal_under_the_new_epoch_while_a_rotation_is_half_done(tmp_path: Path) -> None:
    """The rotation window: ``key rm c`` killed after keys.json moved to epoch 2, before the
    manifest was sealed again (crash point ``key.rotated``: the window an interrupted rotation
    leaves for good). Member b, whose key cache holds only epoch 1, pushes: it reads keys.json
    because the manifest names the rotation (``rotating``), and seals its pack and the manifest
    under epoch 2, so c, which holds epoch 1, opens nothing b wrote; c's own push uploads
    nothing (exit 10); a pulls b's edit; the mark is gone once the manifest is at epoch 2."""
    import json

    from .test_keys import cached_keys, opened_with, repo_id

    url = "memfs::" + (tmp_path / "cloud" / "agent").as_uri()
    a, b, c = encrypted_agent(tmp_path, url, "b", "c")
    killed = run(a, "key", "rm", "c", MEMFS_CRASH_AT="key.rotated")
    assert killed.returncode == -9, killed.stderr
    assert set(cached_keys(b)) == {1} and set(cached_keys(c)) == {1}
    before = store_objects(url)
    note(b.root, "from-b.md", "b in the window")
    ok(b, "push")
    assert set(cached_keys(b)) == {1, 2}
    after = store_objects(url)
    changed = {k for k in after if before.get(k) != after[k]}
    assert "manifest.json.enc" in changed and any(k.startswith("packs/") for k in changed)
    assert set(opened_with(cached_keys(c), repo_id(url), after)) & changed == set()
    manifest = opened_with(cached_keys(b), repo_id(url), after)["manifest.json.enc"]
    assert "rotating" not in json.loads(manifest)

    note(c.root, "from-c.md", "c after its removal")
    done = run(c, "push")
    assert done.returncode == KEY_EXIT and "holds no key for it" in done.stderr
    assert store_objects(url) == after
    ok(a, "pull")
    assert "b in the window" in (a.root / "reference/from-b.md").read_text()
