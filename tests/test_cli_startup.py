"""``memfs --help`` starts fast: heavy libraries load only in the commands that use them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("dulwich", "pydantic", "s3fs", "fsspec", "watchdog", "yaml", "botocore")


def test_help_imports_no_heavy_library() -> None:
    probe = (
        "import sys\n"
        "from memfs.cli import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='memfs')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip().endswith("[]"), result.stdout


def test_python_dash_m_memfs_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "memfs", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.strip() == "memfs, version 0.1.0"


def test_status_does_not_import_object_store_libraries(tmp_path: object) -> None:
    import memfs

    agent = memfs.init(f"{tmp_path}/agent")
    probe = (
        "import sys\n"
        "from memfs.cli import cli\n"
        "try:\n"
        f"    cli(['-C', {str(agent.root)!r}, 'status'], prog_name='memfs')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('s3fs', 'fsspec', 'botocore', 'aiohttp', 'watchdog', 'dulwich.client')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip().endswith("[]"), result.stdout


def test_cli_defaults_are_the_librarys() -> None:
    """The CLI spells its defaults out (importing the library would slow --help); they must
    stay the library's."""
    from memfs.cli.sync import gc
    from memfs.cli.watch import watch
    from memfs.remotes.bucket import DEFAULT_GRACE_S
    from memfs.watcher import WatchSettings

    defaults = {param.name: param.default for param in watch.params}
    assert defaults["quiet_ms"] == WatchSettings.quiet_ms
    assert defaults["max_delay_ms"] == WatchSettings.max_delay_ms
    assert {param.name: param.default for param in gc.params}["grace"] == DEFAULT_GRACE_S
