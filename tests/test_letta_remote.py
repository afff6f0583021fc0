"""The Letta remote (issue 11): ``letta://AGENT_ID``, the API key, the push-only mirror.

A real smart-HTTP git server on 127.0.0.1 serves ``/v1/git/<agent-id>/state.git`` behind
HTTP Basic auth, as a Letta server does; ``LETTA_MEMFS_BASE_URL`` points memfs at it. The
CLI paths run as whole processes (``python -m memfs``).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.errors import UnsupportedURLError
from memfs.remotes import letta, list_remotes, url_kind
from memfs.remotes.configure import add_remote

from .conftest import git, memfs_process, write
from .lettacode import LettaCode, hook_rejections
from .servers import bare_repo, free_port, http_git_server, wait_for

AGENT_ID = "agent-3f2a1c9e-1111-4222-8333-444455556666"
KEY = "sk-let-right-key-0123456789"
WRONG_KEY = "sk-let-wrong-key-9876543210"


@pytest.fixture(autouse=True)
def no_letta_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's Letta server or key."""
    monkeypatch.delenv(letta.API_KEY_ENV, raising=False)
    monkeypatch.delenv(letta.BASE_URL_ENV, raising=False)


@contextmanager
def letta_server(tmp_path: Path, agent_id: str = AGENT_ID) -> Iterator[tuple[str, Path]]:
    """A Letta-like git server: (base URL, the bare repository behind the agent's URL)."""
    hub = bare_repo(tmp_path / "server" / f"{agent_id}.git")
    with http_git_server({f"v1/git/{agent_id}/state.git": hub}, auth=("letta", KEY)) as base:
        yield base, hub


def memfs_cli(
    *args: str, base: str | None = None, key: str | None = KEY, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m memfs`` as a user would, with the Letta environment given."""
    env = dict(os.environ)
    if base is not None:
        env[letta.BASE_URL_ENV] = base
    if key is not None:
        env[letta.API_KEY_ENV] = key
    return memfs_process(*args, cwd=cwd, env=env)


def bare_head(hub: Path, branch: str = "main") -> str | None:
    out = subprocess.run(
        ["git", "--git-dir", str(hub), "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or None


def _assert_key_hidden(*texts: str) -> None:
    for text in texts:
        assert KEY not in text and WRONG_KEY not in text


# -- the URL ---------------------------------------------------------------------------------


def test_letta_url_resolves_as_letta_code_builds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"letta://{AGENT_ID}"
    assert url_kind(url) == "letta"
    assert letta.resolve(url) == f"https://api.letta.com/v1/git/{AGENT_ID}/state.git"
    monkeypatch.setenv(letta.BASE_URL_ENV, " http://127.0.0.1:8283/letta// ")
    assert letta.resolve(url) == f"http://127.0.0.1:8283/letta/v1/git/{AGENT_ID}/state.git"
    monkeypatch.setenv(letta.BASE_URL_ENV, "ftp://example.com")
    with pytest.raises(UnsupportedURLError, match="LETTA_MEMFS_BASE_URL"):
        letta.resolve(url)


@pytest.mark.parametrize(
    "bad",
    [
        "letta://",
        "letta://agent-1/state.git",
        "letta://..",
        "letta://agent..1",
        "letta://agent 1",
        "letta://-agent",
        f"letta://letta:{KEY}@{AGENT_ID}",
    ],
)
def test_a_malformed_letta_url_is_refused_with_one_line(tmp_path: Path, bad: str) -> None:
    agent = memfs.init(tmp_path / "garden", name="garden")
    result = memfs_cli("-C", str(agent.root), "remote", "add", "origin", bad)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "letta://AGENT_ID" in result.stderr
    _assert_key_hidden(result.stdout, result.stderr)
    assert list_remotes(agent.history) == []


# -- push, clone, pull through letta:// ------------------------------------------------------


def test_push_clone_and_pull_through_a_letta_remote(tmp_path: Path) -> None:
    with letta_server(tmp_path) as (base, hub):
        laptop = memfs.init(tmp_path / "laptop" / "garden", name="garden")
        write(laptop.root, "system/human.md", "---\ndescription: the human\n---\nName: Ada\n")
        root = str(laptop.root)
        added = memfs_cli("-C", root, "remote", "add", "origin", f"letta://{AGENT_ID}")
        assert added.returncode == 0, added.stderr
        pushed = memfs_cli("-C", root, "push", base=base)
        assert pushed.returncode == 0, pushed.stderr
        assert bare_head(hub) == laptop.history.head()

        config = (laptop.root / ".git" / "config").read_text()
        assert f"url = letta://{AGENT_ID}" in config
        _assert_key_hidden(config, added.stdout, pushed.stdout, pushed.stderr)

        sandbox = tmp_path / "sandbox"
        sandbox.mkdir()
        cloned = memfs_cli("clone", f"letta://{AGENT_ID}", cwd=sandbox, base=base)
        assert cloned.returncode == 0, cloned.stderr
        copy = sandbox / AGENT_ID
        assert (copy / "system/human.md").read_text().endswith("Name: Ada\n")
        write(copy, "system/human.md", "---\ndescription: the human\n---\nName: Ada Lovelace\n")
        assert memfs_cli("-C", str(copy), "sync", base=base).returncode == 0
        _assert_key_hidden((copy / ".git" / "config").read_text())

        pulled = memfs_cli("-C", root, "pull", base=base)
        assert pulled.returncode == 0, pulled.stderr
        assert (laptop.root / "system/human.md").read_text().endswith("Ada Lovelace\n")
        assert bare_head(hub) == memfs.open(laptop.root).history.head()


def test_a_wrong_key_is_one_line_and_exit_7(tmp_path: Path) -> None:
    with letta_server(tmp_path) as (base, hub):
        agent = memfs.init(tmp_path / "garden", name="garden")
        add_remote(agent.history, "origin", f"letta://{AGENT_ID}")
        for command in ("push", "pull", "fetch", "sync"):
            result = memfs_cli("-C", str(agent.root), command, base=base, key=WRONG_KEY)
            assert result.returncode == 7, (command, result.stderr)
            error = result.stderr.strip().splitlines()
            assert error == [
                f"memfs: {base}/v1/git/{AGENT_ID}/state.git refused the Letta API key in "
                "LETTA_API_KEY (check the key and LETTA_MEMFS_BASE_URL)"
            ], command
            _assert_key_hidden(result.stdout, result.stderr)
        assert bare_head(hub) is None
        _assert_key_hidden((agent.root / ".git" / "config").read_text())


def test_a_missing_key_says_so_before_any_request(tmp_path: Path) -> None:
    agent = memfs.init(tmp_path / "garden", name="garden")
    add_remote(agent.history, "origin", f"letta://{AGENT_ID}")
    # a base nobody listens on: the error must come from the missing key, not the network
    base = f"http://127.0.0.1:{free_port()}"
    result = memfs_cli("-C", str(agent.root), "push", base=base, key=None)
    assert result.returncode == 7
    assert result.stderr.strip().splitlines() == [
        f"memfs: {base}/v1/git/{AGENT_ID}/state.git: LETTA_API_KEY is not set; export your "
        "Letta API key as LETTA_API_KEY (memfs sends it as Letta Code does, HTTP Basic auth, "
        "and never stores it)"
    ]
    cloned = memfs_cli("clone", f"letta://{AGENT_ID}", str(tmp_path / "b"), base=base, key=None)
    assert cloned.returncode == 7 and "LETTA_API_KEY is not set" in cloned.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("bad_key", ["sk-let-caf\u00e9", "sk-let one", "sk-let-\x1b[2J"])
def test_a_key_http_cannot_carry_is_one_line_never_echoed(tmp_path: Path, bad_key: str) -> None:
    agent = memfs.init(tmp_path / "garden", name="garden")
    add_remote(agent.history, "origin", f"letta://{AGENT_ID}")
    base = f"http://127.0.0.1:{free_port()}"
    result = memfs_cli("-C", str(agent.root), "push", base=base, key=bad_key)
    assert result.returncode == 7
    assert result.stderr.strip().splitlines() == [
        f"memfs: {base}/v1/git/{AGENT_ID}/state.git: LETTA_API_KEY holds spaces or characters "
        "that are not printable ASCII; it is not a Letta API key (they look like sk-let-...)"
    ]
    assert bad_key not in result.stdout + result.stderr


def test_an_https_state_git_url_gets_the_key_unless_it_has_its_own(tmp_path: Path) -> None:
    with letta_server(tmp_path) as (base, hub):
        agent = memfs.init(tmp_path / "garden", name="garden")
        url = f"{base}/v1/git/{AGENT_ID}/state.git"
        add_remote(agent.history, "origin", url)
        refused = memfs_cli("-C", str(agent.root), "push", key=None)
        assert refused.returncode == 7
        assert refused.stderr.strip().splitlines() == [
            f"memfs: {url} asked for credentials: set LETTA_API_KEY to your Letta API key"
        ]
        assert memfs_cli("-C", str(agent.root), "push").returncode == 0
        assert bare_head(hub) == agent.history.head()
        cloned = memfs_cli("clone", url, cwd=tmp_path)  # named after the agent, not 'state'
        assert cloned.returncode == 0, cloned.stderr
        assert (tmp_path / AGENT_ID / "agent.yaml").is_file()

        other = memfs.init(tmp_path / "other", name="garden")
        own = url.replace("http://", "http://letta:nope@")
        add_remote(other.history, "origin", own)
        result = memfs_cli("-C", str(other.root), "fetch")  # its own (wrong) password wins
        assert result.returncode == 7 and "nope" not in result.stderr
        _assert_key_hidden(result.stderr)


def test_remote_list_shows_the_url_and_where_it_goes_never_the_key(tmp_path: Path) -> None:
    agent = memfs.init(tmp_path / "garden", name="garden")
    add_remote(agent.history, "origin", f"letta://{AGENT_ID}")
    base = "http://127.0.0.1:8283"
    text = memfs_cli("-C", str(agent.root), "remote", "list", base=base)
    assert text.stdout == (f"origin\tletta://{AGENT_ID} -> {base}/v1/git/{AGENT_ID}/state.git\n")
    listed = json.loads(memfs_cli("-C", str(agent.root), "remote", "list", "--json").stdout)
    assert listed == [
        {
            "name": "origin",
            "url": f"letta://{AGENT_ID}",
            "kind": "letta",
            "mirror": False,
            "resolved_url": f"https://api.letta.com/v1/git/{AGENT_ID}/state.git",
            "config_key": "remote.origin.url",
            "encrypt": False,
        }
    ]
    _assert_key_hidden(text.stdout, text.stderr)


def test_a_letta_remote_for_another_agent_is_refused(tmp_path: Path) -> None:
    agent = memfs.init(tmp_path / "garden", name="garden")
    git(agent.root, "config", "letta.agentId", "agent-other")
    result = memfs_cli("-C", str(agent.root), "remote", "add", "origin", f"letta://{AGENT_ID}")
    assert result.returncode == 1
    assert "letta.agentId" in result.stderr and result.stderr.count("\n") == 1
    assert list_remotes(agent.history) == []


# -- letta.memoryRepository.url: the push-only mirror ----------------------------------------


def test_the_mirror_receives_every_push_and_is_never_merged_from(tmp_path: Path) -> None:
    with letta_server(tmp_path) as (base, hub):
        agent = memfs.init(tmp_path / "garden", name="garden")
        root = str(agent.root)
        add_remote(agent.history, "origin", f"letta://{AGENT_ID}")
        mirror = bare_repo(tmp_path / "mirror.git")
        git(agent.root, "config", "letta.memoryRepository.url", str(mirror))

        listed = memfs_cli("-C", root, "remote", "list").stdout.splitlines()
        assert listed[-1] == (
            f"letta.memoryRepository\t{mirror}  (push-only mirror, from letta.memoryRepository.url)"
        )
        for i in range(2):
            write(agent.root, f"reference/note-{i}.md", f"note {i}\n")
            result = memfs_cli("-C", root, "sync", base=base)
            assert result.returncode == 0, result.stderr
            head = memfs.open(agent.root).history.head()
            assert bare_head(hub) == head and bare_head(mirror) == head
            assert "letta.memoryRepository: pushed (mirror)" in result.stdout

        # someone else pushed to the mirror: memfs neither merges it nor forces over it
        other = tmp_path / "other"
        subprocess.run(["git", "clone", "-q", str(mirror), str(other)], check=True)
        write(other, "reference/stray.md", "stray\n")
        git(other, "add", "-A")
        git(other, "commit", "-qm", "stray")
        git(other, "push", "-q", "origin", "main")
        stray = bare_head(mirror)
        write(agent.root, "reference/note-2.md", "note 2\n")
        result = memfs_cli("-C", root, "sync", base=base)
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("\n") == 1
        assert "warning: mirror letta.memoryRepository not updated" in result.stderr
        reopened = memfs.open(agent.root)
        assert bare_head(hub) == reopened.history.head()
        assert bare_head(mirror) == stray
        assert not (agent.root / "reference/stray.md").exists()
        assert not reopened.history.has_commit(stray)


def test_a_dead_mirror_only_warns(tmp_path: Path) -> None:
    with letta_server(tmp_path) as (base, hub):
        agent = memfs.init(tmp_path / "garden", name="garden")
        add_remote(agent.history, "origin", f"letta://{AGENT_ID}")
        dead = f"http://127.0.0.1:{free_port()}/mirror.git"
        git(agent.root, "config", "letta.memoryRepository.url", dead)
        write(agent.root, "reference/note.md", "note\n")
        for command in ("push", "sync"):
            result = memfs_cli("-C", str(agent.root), command, "--json", base=base)
            assert result.returncode == 0, result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(
                f"memfs: warning: mirror letta.memoryRepository not updated (nothing lost): "
                f"cannot reach {dead}"
            )
            report = json.loads(result.stdout)
            assert report["ok"] is True and report["mirrors"][0]["error"]
        assert bare_head(hub) == memfs.open(agent.root).history.head()
        status = memfs_cli("-C", str(agent.root), "status").stdout
        assert "Remote letta.memoryRepository:" in status and "cannot reach" in status


def test_the_mirror_is_pushed_by_the_library_and_can_be_removed(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    mirror = bare_repo(tmp_path / "mirror.git")
    agent = memfs.init(tmp_path / "garden", name="garden")
    add_remote(agent.history, "origin", str(hub))
    git(agent.root, "config", "letta.memoryRepository.url", "../mirror.git")  # from the root
    report = sync.push(agent)
    assert report.ok and [m.pushed for m in report.mirrors] == ["pushed"]
    assert bare_head(mirror) == agent.history.head()
    assert sync.fetch(agent).remotes[0].remote == "origin" and len(sync.fetch(agent).remotes) == 1
    removed = memfs_cli("-C", str(agent.root), "remote", "remove", "letta.memoryRepository")
    assert removed.returncode == 0, removed.stderr
    assert "letta.memoryRepository.url" not in git(agent.root, "config", "--list")
    assert sync.push(memfs.open(agent.root)).mirrors == []


# -- Letta Code repositories (no agent.yaml) -------------------------------------------------

LETTA_V1 = {
    "system/persona.md": "---\ndescription: Who I am: my voice\n---\nI am Ezra.\n",
    "system/human.md": "---\ndescription: The human\nread_only: true\n---\nName: Ada\n",
    "reference/notes.md": "---\ndescription: notes\n---\nTomatoes.\n",
}
LETTA_V2 = {
    "MEMORY.md": "---\nname: memory\ndescription: the root\n---\n",
    "persona.md": "---\nname: persona\ndescription: Who I am\n---\nI am Ezra.\n",
    "projects/MEMORY.md": "---\nname: projects\ndescription: projects\n---\n",
}


def publish_letta_repo(tmp_path: Path, hub: Path, files: dict[str, str]) -> Path:
    """A memory repo as Letta Code writes it (plain git, no agent.yaml), pushed to ``hub``."""
    repo = tmp_path / "letta-code"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    for path, text in files.items():
        write(repo, path, text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "chore: initialize memory")
    git(repo, "push", "-q", str(hub), "main")
    return repo


@pytest.mark.parametrize("files", [LETTA_V1, LETTA_V2], ids=["v1", "v2"])
def test_a_letta_code_repo_clones_and_syncs_without_agent_yaml(
    tmp_path: Path, files: dict[str, str]
) -> None:
    with letta_server(tmp_path) as (base, hub):
        letta_code = publish_letta_repo(tmp_path, hub, files)
        cloned = memfs_cli("clone", f"letta://{AGENT_ID}", str(tmp_path / "copy"), base=base)
        assert cloned.returncode == 0, cloned.stderr
        copy = tmp_path / "copy"
        for path, text in files.items():
            assert (copy / path).read_text() == text
        assert not (copy / "agent.yaml").exists()
        agent = memfs.open(copy)
        assert agent.layout.is_letta and agent.manifest.id == AGENT_ID

        first = next(iter(files))
        write(copy, "notes.md" if "MEMORY.md" in files else "reference/more.md", "more\n")
        synced = memfs_cli("-C", str(copy), "sync", base=base)
        assert synced.returncode == 0, synced.stderr
        git(letta_code, "pull", "-q", str(hub), "main")  # Letta Code's side, plain git
        tree = git(letta_code, "ls-tree", "-r", "--name-only", "HEAD").split()
        assert "agent.yaml" not in tree and first in tree
        assert bare_head(hub) == git(letta_code, "rev-parse", "HEAD").strip()


def test_a_repo_letta_code_cloned_syncs_through_its_own_origin(tmp_path: Path) -> None:
    """Letta Code's clone keeps origin = <base>/v1/git/<id>/state.git: adopted as it is,
    memfs syncs through it with LETTA_API_KEY."""
    with letta_server(tmp_path) as (base, hub):
        publish_letta_repo(tmp_path, hub, LETTA_V1)
        memory = tmp_path / ".letta" / "agents" / AGENT_ID / "memory"
        url = f"{base}/v1/git/{AGENT_ID}/state.git"
        subprocess.run(["git", "clone", "-q", str(hub), str(memory)], check=True)
        git(memory, "remote", "set-url", "origin", url)
        git(memory, "config", "letta.agentId", AGENT_ID)
        assert memfs_cli("init", str(memory)).returncode == 0
        write(memory, "reference/more.md", "---\ndescription: more\n---\nmore\n")
        synced = memfs_cli("-C", str(memory), "sync", base=base)
        assert synced.returncode == 0, synced.stderr
        assert bare_head(hub) == memfs.open(memory).history.head()
        assert not (memory / "agent.yaml").exists()
        _assert_key_hidden((memory / ".git" / "config").read_text(), synced.stdout)


# -- with Letta Code's own code (tests/lettacode.py) -----------------------------------------

LETTA_CODE_AGENT = "agent-00000000-0000-4000-8000-000000000000"  # lettacode.letta_repo's id


def test_letta_code_and_memfs_share_the_server_and_the_mirror(
    letta_code: LettaCode, letta_v1_repo: Path, tmp_path: Path
) -> None:
    """Letta Code's machine (its memory tool, post-commit hook, push after a turn, pull) and
    a memfs machine on letta:// keep one repository and one mirror, neither undoing the
    other, and Letta's pre-commit hook accepts every commit memfs adds."""
    repo, mirror = letta_v1_repo, bare_repo(tmp_path / "mirror.git")
    with letta_server(tmp_path, LETTA_CODE_AGENT) as (base, hub):
        git(repo, "push", "-q", str(hub), "main")
        git(repo, "remote", "add", "origin", str(hub))  # the same repository, reached directly
        git(repo, "fetch", "-q", "origin")
        git(repo, "config", "letta.memoryRepository.url", str(mirror))
        copy = tmp_path / "memfs-machine"
        cloned = memfs_cli("clone", f"letta://{LETTA_CODE_AGENT}", str(copy), base=base)
        assert cloned.returncode == 0, cloned.stderr
        git(copy, "config", "letta.memoryRepository.url", str(mirror))

        letta_code.agent_write(
            repo,
            "create",
            {
                "file_path": "system/new.md",
                "description": "a: b",
                "file_text": "x\n",
                "reason": "r",
            },
        )
        letta_head = git(repo, "rev-parse", "HEAD").strip()
        wait_for(lambda: bare_head(mirror) == letta_head, what="Letta's post-commit mirror push")
        assert letta_code.push_after_turn(repo)["status"] == "pushed"

        write(copy, "reference/from-memfs.md", "---\ndescription: from memfs\n---\nhello\n")
        synced = memfs_cli("-C", str(copy), "sync", base=base)
        assert synced.returncode == 0 and synced.stderr == "", synced.stderr
        head = memfs.open(copy).history.head()
        assert bare_head(hub) == head and bare_head(mirror) == head
        assert (copy / "system/new.md").read_text() == (repo / "system/new.md").read_text()

        assert letta_code.pull(repo)["step"] == "ff-only"
        assert git(repo, "rev-parse", "HEAD").strip() == head
        assert hook_rejections(letta_code, repo, f"{letta_head}..HEAD") == []
