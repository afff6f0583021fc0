"""A push from a repository whose packed objects are damaged on disk: refused, exit 9.

Found from outside (session 10): a blob whose entry in a local pack had its type bits flipped
was read as a commit, packed and uploaded with exit 0, and every later clone of the cloud was
refused; a truncated pack or a flipped byte in an entry's deflate data ended in an internal
error (exit 70: dulwich's assertions, and a BufferError at close that hid the real one). The
cloud must never receive what the local repository cannot vouch for, and damage is one clear
line with exit 9 (issue 10). Whole ``memfs push`` processes, the real git CLI to pack.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import git, write
from .harness import memfs_command


def _cloud_files(cloud: Path) -> set[str]:
    return {str(p.relative_to(cloud)) for p in cloud.rglob("*") if p.is_file()}


def _packed_after_an_edit(tmp_path: Path) -> tuple[Path, Path, Path, int, str]:
    """An agent pushed once to a folder cloud, then an edit committed and every object
    packed by git (no deltas): (agent, cloud, the pack, the edited blob's offset, its sha)."""
    root, cloud = tmp_path / "agent", tmp_path / "cloud"
    env = _env(tmp_path)
    run = lambda *args: subprocess.run(  # noqa: E731
        memfs_command(*args), cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    root.mkdir()
    assert run("init", ".", "--name", "damaged").returncode == 0
    for i in range(20):
        write(root, f"reference/f{i}.md", f"---\ndescription: file {i}\n---\nfile {i}\n")
    assert run("commit", "-m", "c1").returncode == 0
    assert run("remote", "add", "origin", "memfs::" + cloud.as_uri()).returncode == 0
    assert run("push").returncode == 0
    write(root, "reference/f1.md", "---\ndescription: file 1\n---\nfile 1, edited\n")
    assert run("commit", "-m", "c2").returncode == 0
    git(root, "repack", "-a", "-d", "-q", "--window=0")
    git(root, "prune-packed")
    blob = git(root, "rev-parse", "HEAD:reference/f1.md").strip()
    (pack,) = (root / ".git/objects/pack").glob("*.pack")
    listing = git(root, "verify-pack", "-v", str(pack.with_suffix(".idx")))
    offset = next(int(line.split()[4]) for line in listing.splitlines() if line.startswith(blob))
    pack.chmod(0o644)
    return root, cloud, pack, offset, blob


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    home = tmp_path / "home"
    return {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "MEMFS_CONFIG": str(home / ".config/memfs/config.yaml"),
        "MEMFS_DATA_DIR": str(home / ".local/share/memfs"),
    }


def _flip(bit: int, at: Callable[[int], int]) -> Callable[[Path, int], None]:
    def damage(pack: Path, offset: int) -> None:
        data = bytearray(pack.read_bytes())
        data[at(offset)] ^= bit
        pack.write_bytes(bytes(data))

    return damage


def _truncate(pack: Path, offset: int) -> None:
    with open(pack, "r+b") as file:
        file.truncate(offset + 8)


def _empty(pack: Path, offset: int) -> None:
    pack.write_bytes(b"")


DAMAGE = {
    "type bits of the blob's entry (blob read as a commit)": _flip(0x20, lambda o: o),
    "a byte of the blob's deflate data": _flip(0x01, lambda o: o + 14),
    "the pack cut short inside the blob": _truncate,
    "the pack emptied": _empty,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_push_of_a_damaged_pack_is_refused_and_uploads_nothing(
    tmp_path: Path, damage: str
) -> None:
    root, cloud, pack, offset, _ = _packed_after_an_edit(tmp_path)
    before = _cloud_files(cloud)
    DAMAGE[damage](pack, offset)
    pushed = subprocess.run(
        memfs_command("push"),
        cwd=root,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pushed.returncode == 9, (pushed.stdout, pushed.stderr)
    lines = [line for line in pushed.stderr.splitlines() if line.strip()]
    assert "Traceback" not in pushed.stderr and "internal error" not in pushed.stderr, lines
    assert any("damaged" in line for line in lines), lines
    assert _cloud_files(cloud) == before  # nothing reached the cloud
