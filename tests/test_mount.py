"""Mounting agents into sandbox folders, and getting every edit back out."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import memfs
from memfs import sync
from memfs.mount import mount, unmount
from memfs.remotes.configure import add_remote
from memfs.watcher import is_running, read_state

from .conftest import run_cli, write
from .servers import bare_repo, wait_for
from .test_sync import contents


def published(tmp_path: Path, url: str) -> memfs.Agent:
    agent = memfs.init(tmp_path / "laptop" / "garden", name="garden")
    add_remote(agent.history, "origin", url)
    assert sync.push(agent).ok
    return agent


def test_mount_by_cloud_name_edit_and_unmount(tmp_path: Path) -> None:
    laptop = memfs.init(tmp_path / "laptop" / "garden", name="garden")
    assert run_cli("-C", str(laptop.root), "push").exit_code == 0  # into the default cloud
    sandbox = tmp_path / "sandbox" / "memory"
    result = run_cli("mount", "garden", str(sandbox))
    assert result.exit_code == 0, result.stderr
    assert result.output.startswith(f"Mounted garden at {sandbox} (synced)")
    assert (sandbox / "system/human.md").exists(), "files are in place when mount returns"
    listing = json.loads(run_cli("mounts", "--json").output)
    assert [m["path"] for m in listing] == [str(sandbox)]
    write(sandbox, "system/human.md", "edited inside the sandbox\n")
    unmounted = run_cli("unmount", str(sandbox), "--remove")
    assert unmounted.exit_code == 0, unmounted.stderr
    assert not sandbox.exists()
    assert sync.sync(laptop).ok
    assert (laptop.root / "system/human.md").read_text() == "edited inside the sandbox\n"
    assert run_cli("mounts").output == "No mounts.\n"


def test_unmount_flushes_even_if_the_watcher_was_killed(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    laptop = published(tmp_path, str(hub))
    sandbox = tmp_path / "sandbox"
    mount(str(hub), sandbox)
    agent = memfs.open(sandbox)
    pid = read_state(agent)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not is_running(agent), what="the killed watcher's lock to go")
    write(sandbox, "notes/late.md", "written after the watcher died\n")
    result = unmount(sandbox)
    assert result.synced and result.error is None
    assert sync.sync(laptop).ok
    assert (laptop.root / "notes/late.md").read_text() == "written after the watcher died\n"


def test_mount_a_local_agent_folder_with_the_context_manager(tmp_path: Path) -> None:
    source = memfs.init(tmp_path / "source")
    with memfs.mounted(str(source.root), tmp_path / "sandbox") as agent:
        write(agent.root, "from-sandbox.md", "hello\n")
    clone = sync.clone(str(source.root), tmp_path / "check")
    assert (clone.root / "from-sandbox.md").read_text() == "hello\n"


def test_read_only_mounts_never_push(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    laptop = published(tmp_path, str(hub))
    sandbox = tmp_path / "sandbox"
    assert run_cli("mount", str(hub), str(sandbox), "--read-only").exit_code == 0
    human = sandbox / "system/human.md"
    assert not human.stat().st_mode & 0o222, "files are read-only"
    human.chmod(0o644)  # made writable again by hand
    human.write_text("sneaky edit\n")
    result = run_cli("-C", str(sandbox), "push")
    assert result.exit_code == 7 and "is a read-only mount" in result.stderr
    assert run_cli("unmount", str(sandbox)).exit_code == 0
    clone = sync.clone(str(hub), tmp_path / "check")
    assert contents(clone) == contents(laptop), "nothing was published from the read-only mount"


def test_a_pinned_mount_shows_the_revision_and_runs_no_watcher(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    laptop = published(tmp_path, str(hub))
    first = laptop.history.head()
    write(laptop.root, "system/human.md", "later\n")
    assert sync.sync(laptop).ok
    sandbox = tmp_path / "pinned"
    result = run_cli("mount", str(hub), str(sandbox), "--rev", first[:7])  # type: ignore[index]
    assert result.exit_code == 0, result.stderr
    assert "pinned to" in result.output
    agent = memfs.open(sandbox)
    assert agent.history.head() == first and not is_running(agent)
    assert "later" not in (sandbox / "system/human.md").read_text()


def test_unmount_errors(tmp_path: Path) -> None:
    result = run_cli("unmount", str(tmp_path / "nothing-here"))
    assert result.exit_code == 1 and "is not mounted" in result.stderr
    agent = memfs.init(tmp_path / "plain")
    result = run_cli("unmount", str(agent.root))
    assert (result.exit_code, result.stderr) == (
        1,
        f"memfs: {agent.root} is not mounted: see 'memfs mounts'\n",
    )


def test_remove_keeps_the_folder_when_the_remote_did_not_get_everything(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    published(tmp_path, str(hub))
    sandbox = tmp_path / "sandbox"
    assert run_cli("mount", str(hub), str(sandbox)).exit_code == 0
    hub.rename(tmp_path / "gone.git")
    write(sandbox, "unsaved.md", "must not be lost\n")
    result = run_cli("unmount", str(sandbox), "--remove")
    assert result.exit_code == 7 and "the folder was kept" in result.stderr
    assert (sandbox / "unsaved.md").read_text() == "must not be lost\n"


def test_foreground_mount_watches_until_sigterm_then_unmounts(tmp_path: Path) -> None:
    import subprocess
    import sys

    hub = bare_repo(tmp_path / "hub.git")
    laptop = published(tmp_path, str(hub))
    sandbox = tmp_path / "sandbox"
    process = subprocess.Popen(
        [sys.executable, "-m", "memfs", "mount", str(hub), str(sandbox), "--foreground"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"Mounted {hub} at {sandbox}")
        watched = memfs.open(sandbox)
        wait_for(lambda: is_running(watched), what="the foreground watcher")
        write(sandbox, "notes/foreground.md", "made while mounted in the foreground\n")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert f"Unmounted {sandbox}" in out
    assert sync.sync(laptop).ok
    assert (
        laptop.root / "notes/foreground.md"
    ).read_text() == "made while mounted in the foreground\n"
