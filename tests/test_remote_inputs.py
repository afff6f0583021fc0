"""Bad input from and about remotes: one clear line on stderr, its exit code, nothing touched.

Each row of ``CASES`` is self-contained (name, setup, expected exit code, expected stderr
text): the setup builds what it needs under ``tmp_path`` and returns the command line. Every
command runs from an empty folder of its own, which must still be empty afterwards (a bucket
URL without a scheme used to write its manifest and packs there).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dulwich.objects import Commit, Tree
from dulwich.repo import Repo

import memfs
from memfs import sync
from memfs.remotes.configure import add_remote

from .conftest import git, run_cli
from .faultproxy import fault_proxy
from .s3 import MotoServer
from .servers import bare_repo, free_port

Setup = Callable[[Path, pytest.FixtureRequest], list[str]]


@dataclass(frozen=True)
class Case:
    """One bad input: how to build it, and the exit code and stderr text it must give."""

    name: str
    setup: Setup
    exit_code: int
    stderr: str


# -- setups --------------------------------------------------------------------------------


def _agent(tmp_path: Path, name: str = "agent") -> memfs.Agent:
    return memfs.init(tmp_path / name, name=name)


def _bucket_agent(tmp_path: Path) -> tuple[str, Path]:
    """An agent pushed into a local bucket: (its URL, its folder in the bucket)."""
    cloud = tmp_path / "cloud"
    url = f"memfs::{cloud.as_uri()}/agent"
    with _agent(tmp_path) as agent:
        add_remote(agent.history, "origin", url)
        assert sync.push(agent).ok
    return url, cloud / "agent"


def _manifest(tmp_path: Path, edit: Callable[[dict], object]) -> list[str]:
    """A bucket agent whose manifest.json is replaced by ``edit(manifest)`` (bytes or JSON)."""
    url, folder = _bucket_agent(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    replaced = edit(manifest)
    data = replaced if isinstance(replaced, bytes) else json.dumps(replaced).encode()
    (folder / "manifest.json").write_bytes(data)
    # what a pack name climbing out of the bucket would reach: a valid pack, outside
    pack = next((folder / "packs").glob("*.pack"))
    (tmp_path / "outside.pack").write_bytes(pack.read_bytes())
    return ["clone", url, str(tmp_path / "clone")]


def _with_pack(name: str) -> Callable[[dict], object]:
    def edit(manifest: dict) -> object:
        return {**manifest, "packs": [name]}

    return edit


def _with_ref(sha: str) -> Callable[[dict], object]:
    def edit(manifest: dict) -> object:
        return {**manifest, "refs": {"main": sha}}

    return edit


def _remote_add(url: str) -> Setup:
    def setup(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
        with _agent(tmp_path) as agent:
            return ["-C", str(agent.root), "remote", "add", "origin", url]

    return setup


def _clone(url: str) -> Setup:
    def setup(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
        return ["clone", url, str(tmp_path / "clone")]

    return setup


def _bucket_inside_agent(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    with _agent(tmp_path) as agent:
        return ["-C", str(agent.root), "remote", "add", "origin", (agent.root / "cloud").as_uri()]


def _gitlink_remote(tmp_path: Path) -> Path:
    """A git hub whose main holds a submodule (gitlink) entry besides the agent's files."""
    hub = bare_repo(tmp_path / "hub.git")
    with _agent(tmp_path, "source") as agent:
        add_remote(agent.history, "origin", str(hub))
        assert sync.push(agent).ok
    repo = Repo(str(hub))
    head = repo[repo.refs[b"refs/heads/main"]]
    assert isinstance(head, Commit)
    tree = repo[head.tree]
    assert isinstance(tree, Tree)
    tree.add(b"vendor", 0o160000, b"1" * 40)
    repo.object_store.add_object(tree)
    commit = Commit()
    commit.tree, commit.parents = tree.id, [head.id]
    commit.author = commit.committer = b"someone <someone@example.com>"
    commit.author_time = commit.commit_time = head.commit_time + 1
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"add a submodule"
    repo.object_store.add_object(commit)
    repo.refs[b"refs/heads/main"] = commit.id
    repo.close()
    return hub


def _gitlink_clone(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    return ["clone", str(_gitlink_remote(tmp_path)), str(tmp_path / "clone")]


def _gitlink_pull(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    hub = _gitlink_remote(tmp_path)
    # a clone made before the submodule commit: bring it back to the first commit's state
    clone = tmp_path / "laptop"
    git(tmp_path, "clone", "-q", str(hub), str(clone))
    git(clone, "reset", "-q", "--hard", "HEAD~1")
    git(clone, "remote", "remove", "origin")
    with memfs.open(clone) as agent:
        add_remote(agent.history, "origin", str(hub))
    return ["-C", str(clone), "pull"]


def _push_into_plain_checkout(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    """A non-bare git repository (not an agent) with main checked out, as a remote."""
    plain = tmp_path / "plain"
    git(tmp_path, "init", "-q", "-b", "main", str(plain))
    with _agent(tmp_path) as agent:
        add_remote(agent.history, "backup", str(plain))
        return ["-C", str(agent.root), "push", "backup"]


def _bucket_under_a_file(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    """A local bucket whose folder cannot be made: a file is in the way."""
    (tmp_path / "blocked").write_text("a file, not a folder\n")
    with _agent(tmp_path) as agent:
        add_remote(agent.history, "origin", f"memfs::{(tmp_path / 'blocked').as_uri()}/agent")
        return ["-C", str(agent.root), "push"]


def _s3_agent(tmp_path: Path, request: pytest.FixtureRequest, endpoint: str) -> list[str]:
    """An agent with an S3 remote, its client then pointed at ``endpoint``."""
    s3 = request.getfixturevalue("s3")
    monkeypatch = request.getfixturevalue("monkeypatch")
    with _agent(tmp_path) as agent:
        add_remote(agent.history, "origin", s3.url("agents/agent"))
        (agent.root / "system/human.md").write_text("an edit to push\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return ["-C", str(tmp_path / "agent"), "sync"]


def _s3_500(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    server = request.getfixturevalue("failing_endpoint")
    return _s3_agent(tmp_path, request, server(answered=0))


def _s3_goes_away(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    server = request.getfixturevalue("failing_endpoint")
    return _s3_agent(tmp_path, request, server(answered=1, hang_up=True))


def _s3_closed_port(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    return _s3_agent(tmp_path, request, f"http://127.0.0.1:{free_port()}")


SHA = "0123456789abcdef0123456789abcdef01234567"
CASES = [
    Case("manifest ref not a sha", lambda t, r: _manifest(t, _with_ref("../../../etc")), 7,
         "manifest.json does not have the expected fields"),
    Case("manifest ref short", lambda t, r: _manifest(t, _with_ref("abc123")), 7,
         "manifest.json does not have the expected fields"),
    Case("manifest branch climbs", lambda t, r: _manifest(t, lambda m: {**m, "refs": {"../x": SHA}}),
         7, "manifest.json does not have the expected fields"),
    Case("manifest pack climbs out", lambda t, r: _manifest(t, _with_pack("../../../outside")), 7,
         "manifest.json does not have the expected fields"),
    Case("manifest pack holds a slash", lambda t, r: _manifest(t, _with_pack(f"pack-{SHA}/x")), 7,
         "manifest.json does not have the expected fields"),
    Case("manifest pack not pack-hex", lambda t, r: _manifest(t, _with_pack("evil")), 7,
         "manifest.json does not have the expected fields"),
    Case("manifest not JSON", lambda t, r: _manifest(t, lambda m: b"{not json"), 7,
         "manifest.json is not valid JSON"),
    Case("manifest a JSON list", lambda t, r: _manifest(t, lambda m: []), 7,
         "manifest.json does not have the expected fields"),
    Case("manifest wrong types", lambda t, r: _manifest(t, lambda m: {**m, "refs": [], "packs": 1}),
         7, "manifest.json does not have the expected fields"),
    Case("url unclosed ipv6 (remote add)", _remote_add("http://[::1"), 2, "it is not a valid URL"),
    Case("url unclosed ipv6 (clone)", _clone("http://[::1"), 2, "it is not a valid URL"),
    Case("url :: is no ssh host", _remote_add("::"), 2, "neither a local path nor [user@]host:path"),
    Case("url :: is no ssh host (clone)", _clone("::"), 2, "neither a local path nor"),
    Case("url http without host", _remote_add("http:///repo.git"), 2, "it names no host"),
    Case("bucket without scheme", _remote_add("memfs::relcloud"), 2,
         "an object store needs a full URL with a scheme"),
    Case("bucket empty", _remote_add("memfs::"), 2, "an object store needs a full URL"),
    Case("bucket without scheme (clone)", _clone("memfs::relcloud"), 2,
         "an object store needs a full URL"),
    Case("bucket file url relative", _remote_add("memfs::file://relcloud/x"), 2,
         "a file:// URL takes an absolute path"),
    Case("bucket with no bucket", _remote_add("s3://"), 2, "it names no bucket"),
    Case("bucket inside the agent", _bucket_inside_agent, 2, "inside the agent's own folder"),
    Case("cloud url relative (agents)", lambda t, r: ["agents", "--cloud", "file://relcloud"], 2,
         "a file:// URL takes an absolute path"),
    Case("cloud url relative (checkout)",
         lambda t, r: ["checkout", "x", str(t / "clone"), "--cloud", "file://relcloud"], 2,
         "a file:// URL takes an absolute path"),
    Case("remote tree holds a submodule (clone)", _gitlink_clone, 7, "holds a submodule at 'vendor'"),
    Case("remote tree holds a submodule (pull)", _gitlink_pull, 7, "holds a submodule at 'vendor'"),
    Case("push into a checked-out plain repository", _push_into_plain_checkout, 7,
         "has its files checked out and is not a memfs agent"),
    Case("local bucket cannot be written", _bucket_under_a_file, 7, "blocked/agent failed: "),
    Case("s3 answers 500 to every request", _s3_500, 7, "failed: InternalError"),
    Case("s3 endpoint goes away mid-sync", _s3_goes_away, 7, "nothing was lost, try again"),
    Case("s3 endpoint closed", _s3_closed_port, 7, "Could not connect; nothing was lost"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_remote_input(tmp_path: Path, request: pytest.FixtureRequest, case: Case) -> None:
    args = case.setup(tmp_path, request)
    caller = tmp_path / "caller"
    caller.mkdir()
    result = run_cli(*args, cwd=caller)
    assert result.exit_code == case.exit_code, result.stderr
    assert result.stderr.startswith("memfs: ") and result.stderr.count("\n") == 1, result.stderr
    assert case.stderr in result.stderr
    assert "Traceback" not in result.stderr and "memfs: internal error" not in result.stderr
    assert result.exit_code != 70
    assert list(caller.iterdir()) == [], "nothing is written in the caller's folder"
    assert not (tmp_path / "clone").exists(), "a refused clone leaves nothing behind"


# -- a failing S3 endpoint ------------------------------------------------------------------


@pytest.fixture
def failing_endpoint(moto_server: MotoServer) -> Iterator[Callable[..., str]]:
    """The fault proxy in front of moto, passing ``answered`` requests, then failing every
    one: a 500 InternalError, or (``hang_up``) a connection reset without an answer."""
    with contextlib.ExitStack() as stack:

        def start(answered: int, hang_up: bool = False) -> str:
            proxy = stack.enter_context(fault_proxy(moto_server.endpoint, 1.0, 0, answered))
            proxy.kinds = ("reset-before",) if hang_up else ("500-before",)
            return proxy.endpoint

        yield start
