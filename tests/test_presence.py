"""Presence: the Storage primitives it writes and lists with (``put``, ``list_stamped``) on
every adapter, the record and Heartbeat cadence (memfs/presence.py), and the hooks in sync,
watch, mount and serve (design-encryption.md §7)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from memfs.remotes.s3fsstorage import open_s3fs
from memfs.remotes.storage import Storage, open_storage

from .conftest import S3Bucket

# --- Storage primitives: put and list_stamped on every adapter ------------------------------

Opener = Callable[[], Storage]


@pytest.fixture(params=["file", "memory", "s3", "s3fs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """One agent folder on each kind of store memfs writes to."""
    if request.param == "file":
        return open_storage(f"file://{tmp_path}/agent")
    if request.param == "memory":
        return open_storage(f"memory://presence-{time.monotonic_ns()}/agent")
    bucket: S3Bucket = request.getfixturevalue("s3")
    if request.param == "s3":
        return open_storage(bucket.url("cloud/agent"))
    return open_s3fs(bucket.url("cloud/agent"), {})


def test_put_overwrites_and_list_stamped_gives_times_sizes_and_the_store_clock(
    store: Storage,
) -> None:
    store.put("envs/e-1.json", b"first")
    store.put("envs/e-1.json", b"second!")  # one writer: a plain overwrite, no condition
    store.put_if_absent("manifest.json", b"{}")
    store.put("envs-not/x.json", b"x")  # a sibling whose name starts like the prefix
    got = store.get("envs/e-1.json")
    assert got is not None and got[0] == b"second!"
    entries, store_now = store.list_stamped("envs")
    assert [(key, size) for key, _, size in entries] == [("envs/e-1.json", 7)]
    mtime = entries[0][1]
    # the store's clock and the object's time agree to within S3's one-second Date precision
    assert abs(store_now - mtime) < 5 and abs(store_now - time.time()) < 60
    assert store.list_stamped("nothing-here") == ([], pytest.approx(store_now, abs=60))
    everything, _ = store.list_stamped()
    assert {key for key, _, _ in everything} == {
        "envs/e-1.json", "manifest.json", "envs-not/x.json"
    }  # fmt: skip


def test_put_is_refused_where_memfs_cannot_write(tmp_path: Path) -> None:
    import fsspec

    from memfs.errors import UnsupportedURLError
    from memfs.remotes.storage import ReadOnlyStorage

    storage = ReadOnlyStorage(fsspec.filesystem("file"), str(tmp_path), "zip://x")
    with pytest.raises(UnsupportedURLError):
        storage.put("envs/e-1.json", b"{}")


def test_s3_dates_parse() -> None:
    from memfs.remotes.s3http import http_date, iso_date

    assert http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert http_date("garbage") is None
    assert iso_date("1994-11-06T08:49:37.000Z") == 784111777.0
    assert iso_date("") is None
