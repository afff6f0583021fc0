"""An object store this checkout has synced with that now holds no agent is unreachable, not
empty (memfs.incoming.refuse_vanished): only a first push creates a store.

Found from outside (review11 F10): with a folder cloud's disk not mounted (an empty
mountpoint), the next push wrote a whole new store under it and said "pushed", status "0
ahead"; no other machine ever saw those commits. Now the push fails (exit 7) naming the
remote, uploads no pack there, status keeps the commits ahead, and once the folder is back
the same push delivers them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .harness import setup_two_machines


def test_a_push_to_a_folder_cloud_that_is_not_mounted_fails_and_writes_no_store(
    tmp_path: Path,
) -> None:
    mount = tmp_path / "mnt" / "nas"
    a, b = setup_two_machines(tmp_path, f"memfs::file://{mount / 'cloud' / 'shared'}")
    away = tmp_path / "nas-unmounted"
    mount.rename(away)
    mount.mkdir()  # the mountpoint, empty
    with (b.root / "system" / "human.md").open("a") as note:
        note.write("written while the NAS was away\n")
    done = b.memfs("push")
    assert done.returncode == 7, done.stderr
    assert "is gone: this agent synced with it before and it holds no agent now" in done.stderr
    written = [p.relative_to(mount).as_posix() for p in mount.rglob("*") if p.is_file()]
    assert not [p for p in written if not p.startswith("cloud/shared/envs/")], written
    assert "1 ahead" in b.memfs("status").stdout
    shutil.rmtree(mount)
    away.rename(mount)  # mounted again
    done = b.memfs("push")
    assert done.returncode == 0, done.stderr
    assert a.memfs("pull").returncode == 0
    assert "while the NAS was away" in (a.root / "system" / "human.md").read_text()
