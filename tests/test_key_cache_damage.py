"""A damaged key cache is this machine's problem, never the store's (review10 F6).

Found from outside in session 10: machine b's cached key of the current epoch replaced by
random bytes (its kid left as it was: a disk error, a bad restore of HOME) made every push and
pull of b exit 10 blaming the store ("manifest.json failed authentication"), for good, and the
push had already uploaded its pack and presence record sealed under the wrong key (objects no
other machine can open; the pack, named by its content, could later be listed as it was). Whole
``memfs`` processes on two machines, file:// and moto S3.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from .test_keys import (
    cached_keys,
    encrypted_agent,
    ok,
    opened_with,
    repo_id,
    run,
    store_objects,
)


def key_cache_file(machine_home: Path) -> Path:
    """The key cache of the one encrypted agent of a machine (named by its repo id)."""
    found = [p for p in (machine_home / ".config/memfs/keys").glob("*.json") if len(p.stem) == 32]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(("kind", "damage"), [("file", "key"), ("s3", "kid")], ids=str)
def test_a_damaged_cached_key_is_fetched_again_and_seals_nothing(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str, damage: str
) -> None:
    """b's cached key (or its kid) is damaged: b's push works (the keyring is opened for the
    epoch, as without a cache, and the keyring's key written over the damaged one), a pulls
    b's edit, and every sealed object in the store opens with a's keys: nothing was sealed
    under the damaged key."""
    if kind == "file":
        url = "memfs::" + (tmp_path / "cloud" / "agent").as_uri()
    else:
        url = request.getfixturevalue("s3").url("agents/agent")
    a, b = encrypted_agent(tmp_path, url, "b")
    right = cached_keys(b)
    assert right == cached_keys(a) and set(right) == {1}
    path = key_cache_file(b.home)
    data = json.loads(path.read_text())
    if damage == "key":
        data["epochs"]["1"] = base64.b64encode(os.urandom(32)).decode()
    else:
        data["kids"]["1"] = "0" * 16
    path.write_text(json.dumps(data))

    (b.root / "reference/from-b.md").write_text("---\ndescription: b\n---\nb after damage\n")
    ok(b, "push")
    assert cached_keys(b) == right  # the keyring's key, written over the damaged one
    assert (
        json.loads(path.read_text())["kids"]
        == json.loads(key_cache_file(a.home).read_text())["kids"]
    )
    ok(a, "pull")
    assert "b after damage" in (a.root / "reference/from-b.md").read_text()
    objects = store_objects(url)
    sealed = {key for key in objects if key.endswith(".enc")}
    assert set(opened_with(cached_keys(a), repo_id(url), objects)) == sealed
    ok(b, "pull")


def test_a_cached_key_its_kid_names_is_not_replaced_but_the_disagreement_is_said(
    tmp_path: Path,
) -> None:
    """b's cache holds another key for epoch 1 with that key's own kid (no damage a kid
    check finds). The keyring is opened once before the store is blamed: it holds another key
    for an epoch b holds, so b says they disagree (a fork, exit 10) rather than that the
    manifest was tampered with; the cache is not overwritten by keys.json (else a store could
    wrap a key of its own to any machine), and nothing is uploaded."""
    from memfs.crypto.keyfile import kid

    url = "memfs::" + (tmp_path / "cloud" / "agent").as_uri()
    _, b = encrypted_agent(tmp_path, url, "b")
    path = key_cache_file(b.home)
    data = json.loads(path.read_text())
    other = os.urandom(32)
    data["epochs"]["1"] = base64.b64encode(other).decode()
    data["kids"]["1"] = kid(other, bytes.fromhex(path.stem))
    path.write_text(json.dumps(data))
    before = store_objects(url)
    (b.root / "reference/from-b.md").write_text("---\ndescription: b\n---\nb\n")
    done = run(b, "push")
    assert done.returncode == 10, done.stderr
    assert "key is not the one this machine holds" in done.stderr, done.stderr
    assert "failed authentication" not in done.stderr
    assert cached_keys(b) == {1: other}
    assert store_objects(url) == before
