"""A one-file push and pull over S3 as whole processes: what they cost (requests, imports).

Issue 12's target for these two rows is time (benchmarks/bench_process.py measures it); what
can fail a test is what the time is made of: the requests each makes (4 for a push, 2 for a
pull), the modules each loads (no http.client, email, ssl for an http endpoint, git client),
and the work each does (the pushed pack is kept here, so no fetch downloads it again).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import memfs

from .conftest import assert_git_agrees, memfs_process, write
from .s3 import MotoServer
from .test_cli_startup import PROBE

# Neither a push nor a pull of an S3 agent over http needs these (each costs 3-15 ms); yaml
# neither while agent.yaml sets no ``sync`` policy and names the agent the remote names; the
# merge machinery neither when nothing is merged.
NOT_LOADED = (
    "http.client",
    "email",
    "ssl",
    "encodings.idna",
    "dulwich.client",
    "memfs.remotes.git",
    "concurrent.futures",
    "s3fs",
    "botocore",
    "pydantic",
    "yaml",
    "memfs.merge",
)


def loaded_by(cwd: Path, *args: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``memfs ARGS`` in ``cwd``."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["code"] in (0, None), done.stderr
    return set(outcome["modules"])


def heavy_in(loaded: set[str]) -> list[str]:
    return sorted(h for h in NOT_LOADED if any(m == h or m.startswith(h + ".") for m in loaded))


@pytest.fixture
def pair(tmp_path: Path, s3: object) -> tuple[Path, Path]:
    """An agent pushed to a fresh S3 prefix, and a clone of it."""
    url = s3.url("agent")  # type: ignore[attr-defined]
    with memfs.init(tmp_path / "a", name="pushed") as agent:
        for i in range(30):
            write(
                agent.root, f"reference/t-{i % 3}/n-{i}.md", f"---\ndescription: n{i}\n---\n{i}\n"
            )
        assert memfs_process("remote", "add", "origin", url, cwd=agent.root).returncode == 0
        assert memfs_process("push", "-q", cwd=agent.root).returncode == 0
    assert memfs_process("clone", "-q", url, str(tmp_path / "b")).returncode == 0
    return tmp_path / "a", tmp_path / "b"


def test_a_one_file_push_and_pull_cost_4_and_2_requests(
    pair: tuple[Path, Path], moto_server: MotoServer
) -> None:
    origin, clone = pair
    write(origin, "reference/t-1/n-1.md", "---\ndescription: n1\n---\nedited\n")
    moto_server.requests.clear()
    pushed = memfs_process("push", cwd=origin)
    assert pushed.returncode == 0, pushed.stderr
    presence = [(m, p) for m, p in moto_server.requests if "/envs/" in p]
    assert [m for m, _ in presence] == ["PUT"], "one presence record (issue 14), off the path"
    methods = [method for method, path in moto_server.requests if "/envs/" not in path]
    assert sorted(methods) == ["GET", "PUT", "PUT", "PUT"], moto_server.requests
    name = next(p for m, p in moto_server.requests if p.endswith(".pack")).rsplit("/", 1)[1]
    assert (origin / ".git/objects/pack" / name.replace(".pack", ".idx")).exists(), (
        "the pushed pack is kept here: no fetch downloads it again"
    )
    moto_server.requests.clear()
    pulled = memfs_process("pull", cwd=clone)
    assert pulled.returncode == 0, pulled.stderr
    assert [m for m, p in moto_server.requests if "/envs/" not in p] == ["GET", "GET"]
    assert [m for m, p in moto_server.requests if "/envs/" in p] == ["PUT"]
    assert (clone / "reference/t-1/n-1.md").read_text().endswith("edited\n")
    state = json.loads((clone / ".git/memfs/state.json").read_text())
    assert state["remotes"]["origin"]["last_error"] is None


def test_push_and_pull_load_no_module_they_do_not_use(pair: tuple[Path, Path]) -> None:
    origin, clone = pair
    write(origin, "reference/t-2/n-2.md", "---\ndescription: n2\n---\nedited\n")
    assert heavy_in(loaded_by(origin, "push", "-q")) == []
    assert heavy_in(loaded_by(clone, "pull", "-q")) == []
    assert (clone / "reference/t-2/n-2.md").read_text().endswith("edited\n")


def test_a_push_whose_remote_moved_meanwhile_merges_and_lands(
    pair: tuple[Path, Path], tmp_path: Path, s3: object
) -> None:
    """The pack uploaded while the manifest is read is built on the tracking ref; when
    another machine pushed since, it is left unlisted and the push fetches, merges, pushes."""
    origin, clone = pair
    write(clone, "reference/t-0/n-0.md", "---\ndescription: n0\n---\nfrom the clone\n")
    assert memfs_process("push", "-q", cwd=clone).returncode == 0
    write(origin, "reference/t-1/n-4.md", "---\ndescription: n4\n---\nfrom the origin\n")
    pushed = memfs_process("push", cwd=origin)
    assert pushed.returncode == 0, pushed.stderr
    assert "merged" in pushed.stdout
    third = tmp_path / "third"
    assert memfs_process("clone", "-q", s3.url("agent"), str(third)).returncode == 0  # type: ignore[attr-defined]
    assert (third / "reference/t-0/n-0.md").read_text().endswith("from the clone\n")
    assert (third / "reference/t-1/n-4.md").read_text().endswith("from the origin\n")
    assert_git_agrees(third)


def test_a_process_ends_at_once_but_a_profiler_still_writes_its_data(tmp_path: Path) -> None:
    """memfs ends its process without the interpreter's teardown (memfs.cli._exit_now), yet
    under cProfile (as issue 12's profiling is done) the profile is written, and what the
    command printed is all there."""
    out = tmp_path / "memfs.prof"
    done = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "memfs", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("memfs, version")
    assert out.stat().st_size > 0
    plain = subprocess.run(
        [sys.executable, "-m", "memfs", "--help"], capture_output=True, text=True, timeout=60
    )
    assert plain.returncode == 0, plain.stderr
    assert "Exit codes:" in plain.stdout and plain.stdout.splitlines()[-1].split()[0] == "watch"
