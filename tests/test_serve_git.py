"""Git smart HTTP through a whole ``memfs serve`` process, with the real git CLI, on moto S3.

Clone (by id and by name), fetch, push, a stale or forced push rejected as git rejects it,
other refs, tags and deletions refused, unsafe or malformed commits refused before they reach
the bucket, auth as git and Letta Code send it, and Letta Code's own sync sequence (its
memory-git.ts functions, run with node) against the server.
"""

from __future__ import annotations

import base64
import gzip
import http.server
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import memfs
from memfs.cloud import agent_url
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote
from memfs.sync import pull, push
from tests.conftest import S3Bucket
from tests.lettacode import LettaCode
from tests.serve import ServerHandle, running_server
from tests.servers import serving

PERSONA = "---\ndescription: Who I am\n---\nI am careful.\n"
LETTA_AGENT_ID = "agent-00000000-0000-4000-8000-000000000000"


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real git CLI, non-interactive (no prompt ever waits for a password)."""
    env = dict(
        os.environ,
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="",
        GIT_AUTHOR_NAME="Git User",
        GIT_AUTHOR_EMAIL="git@example.com",
        GIT_COMMITTER_NAME="Git User",
        GIT_COMMITTER_EMAIL="git@example.com",
    )
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=60, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def seed_agent(tmp_path: Path, cloud: str, name: str = "alpha") -> memfs.Agent:
    """An agent with a persona, pushed to ``cloud`` by memfs itself."""
    agent = memfs.init(tmp_path / f"seed-{name}", name=name)
    (agent.root / "system").mkdir(exist_ok=True)
    (agent.root / "system" / "persona.md").write_text(PERSONA, encoding="utf-8")
    agent.commit(message="persona")
    add_remote(agent.history, "origin", agent_url(cloud, name))
    assert push(agent, remote="origin").ok
    return agent


def bucket_head(cloud: str, name: str = "alpha") -> str | None:
    return BucketRemote(agent_url(cloud, name)).head("main")


def commit_file(repo: Path, path: str, text: str, message: str) -> str:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").stdout.strip()


@pytest.fixture
def cloud(s3: S3Bucket, tmp_path: Path) -> str:
    """A cloud of its own (parametrized tests share a bucket: their names are cut short)."""
    return s3.url(f"agents-{tmp_path.name}")


@pytest.fixture
def server(cloud: str, tmp_path: Path) -> ServerHandle:
    with running_server(cloud, tmp_path) as handle:
        yield handle  # type: ignore[misc]
        assert "Traceback" not in handle.output()


def test_clone_by_name_and_by_id_is_the_agent_and_fsck_strict_clean(
    cloud: str, server: ServerHandle, tmp_path: Path
) -> None:
    agent = seed_agent(tmp_path, cloud)
    head = agent.history.head()
    for ref, folder in (("alpha", "by-name"), (agent.manifest.id, "by-id")):
        git(tmp_path, "clone", "-q", server.git_url(ref), folder)
        clone = tmp_path / folder
        assert git(clone, "rev-parse", "HEAD").stdout.strip() == head
        assert git(clone, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/main"
        assert (clone / "system/persona.md").read_text() == PERSONA
        git(clone, "fsck", "--strict")
        # only the agent's branch is served: no remote-tracking refs, no tags from the cache
        refs = git(clone, "ls-remote", "origin").stdout.split()
        assert sorted(refs[1::2]) == ["HEAD", "refs/heads/main"]


def test_a_push_moves_the_bucket_and_memfs_pulls_it(
    cloud: str, server: ServerHandle, tmp_path: Path
) -> None:
    agent = seed_agent(tmp_path, cloud)
    git(tmp_path, "clone", "-q", server.git_url("alpha"), "clone")
    clone = tmp_path / "clone"
    new = commit_file(clone, "system/human.md", "---\ndescription: h\n---\nAda\n", "human")
    pushed = git(clone, "push", "origin", "main")
    assert f"..{new[:7]}  main -> main" in pushed.stderr
    assert bucket_head(cloud) == new
    report = pull(agent, remote="origin")
    assert report.ok and report.head == new
    assert (agent.root / "system/human.md").read_text() == "---\ndescription: h\n---\nAda\n"
    # the server's own cache went along: a second clone serves the new head
    git(tmp_path, "clone", "-q", server.git_url("alpha"), "again")
    assert (tmp_path / "again/system/human.md").exists()
    assert server.cache_dir is not None
    assert (server.cache_dir / "alpha/system/human.md").exists()


def test_fetch_sees_what_memfs_pushed_to_the_bucket(
    cloud: str, server: ServerHandle, tmp_path: Path
) -> None:
    agent = seed_agent(tmp_path, cloud)
    git(tmp_path, "clone", "-q", server.git_url("alpha"), "clone")
    (agent.root / "system/persona.md").write_text(PERSONA + "More.\n", encoding="utf-8")
    agent.commit(message="more")
    assert push(agent, remote="origin").ok
    clone = tmp_path / "clone"
    git(clone, "fetch", "-q", "origin")
    assert git(clone, "rev-parse", "origin/main").stdout.strip() == agent.history.head()
    git(clone, "merge", "-q", "--ff-only", "origin/main")
    assert (clone / "system/persona.md").read_text().endswith("More.\n")
    git(clone, "fsck", "--strict")


def test_a_stale_or_forced_push_is_rejected_and_the_bucket_keeps_its_head(
    cloud: str, server: ServerHandle, tmp_path: Path
) -> None:
    seed_agent(tmp_path, cloud)
    for folder in ("a", "b"):
        git(tmp_path, "clone", "-q", server.git_url("alpha"), folder)
    first = commit_file(tmp_path / "a", "system/a.md", "---\ndescription: a\n---\na\n", "a")
    git(tmp_path / "a", "push", "-q", "origin", "main")
    commit_file(tmp_path / "b", "system/b.md", "---\ndescription: b\n---\nb\n", "b")
    stale = git(tmp_path / "b", "push", "origin", "main", check=False)
    assert stale.returncode != 0
    assert "[rejected]        main -> main (fetch first)" in stale.stderr
    forced = git(tmp_path / "b", "push", "--force", "origin", "main", check=False)
    assert forced.returncode != 0
    assert "[remote rejected] main -> main (non-fast-forward)" in forced.stderr
    assert bucket_head(cloud) == first
    # the user's way out, as git's hint says: pull, push again; nothing is lost
    git(tmp_path / "b", "pull", "-q", "--rebase", "origin", "main")
    git(tmp_path / "b", "push", "-q", "origin", "main")
    git(tmp_path, "clone", "-q", server.git_url("alpha"), "fresh")
    assert {p.name for p in (tmp_path / "fresh/system").iterdir()} >= {"a.md", "b.md"}
    git(tmp_path / "fresh", "fsck", "--strict")


def test_a_push_from_an_old_advertisement_is_fetch_first(
    cloud: str, server: ServerHandle, tmp_path: Path
) -> None:
    """The bucket moved between the client's look (info/refs) and its push: the server's
    compare-and-swap sees it and answers ``fetch first``, never overwriting."""
    agent = seed_agent(tmp_path, cloud)
    git(tmp_path, "clone", "-q", server.git_url("alpha"), "clone")
    clone = tmp_path / "clone"
    commit_file(clone, "system/late.md", "---\ndescription: l\n---\nl\n", "late")
    (agent.root / "system/persona.md").write_text(PERSONA + "Moved.\n", encoding="utf-8")
    agent.commit(message="moved")
    assert push(agent, remote="origin").ok
    moved = agent.history.head()
    # git push --force-with-lease=main:<what it saw> sends the ref it saw as old, as a push
    # racing another would: the server's check against the bucket refuses it
    seen = git(clone, "rev-parse", "origin/main").stdout.strip()
    raced = git(clone, "push", f"--force-with-lease=main:{seen}", "origin", "main", check=False)
    assert raced.returncode != 0
    assert "stale info" in raced.stderr or "fetch first" in raced.stderr
    assert bucket_head(cloud) == moved


def test_shallow_and_partial_clones(cloud: str, server: ServerHandle, tmp_path: Path) -> None:
    """A shallow clone is served and deepened; a partial clone (``--filter``), which the
    server does not offer, is a whole clone with git's warning, never a broken checkout."""
    agent = seed_agent(tmp_path, cloud)
    (agent.root / "system/persona.md").write_text(PERSONA + "Second.\n", encoding="utf-8")
    agent.commit(message="second")
    assert push(agent, remote="origin").ok
    git(tmp_path, "clone", "-q", "--depth", "1", server.git_url("alpha"), "shallow")
    shallow = tmp_path / "shallow"
    assert git(shallow, "rev-list", "--count", "HEAD").stdout.strip() == "1"
    git(shallow, "fetch", "-q", "--unshallow")
    assert int(git(shallow, "rev-list", "--count", "HEAD").stdout) >= 3
    git(shallow, "fsck", "--strict")
    partial = git(tmp_path, "clone", "--filter=blob:none", server.git_url("alpha"), "partial")
    assert "filtering not recognized by server" in partial.stderr
    assert (tmp_path / "partial/system/persona.md").read_text().endswith("Second.\n")
    git(tmp_path / "partial", "fsck", "--strict")


@pytest.mark.parametrize(
    ("refspec", "reason"),
    [
        ("main:refs/heads/other", "memfs serves one branch, main: other refs cannot be pushed"),
        ("main:refs/tags/v1", "memfs serves one branch, main: tags cannot be pushed"),
        (":main", "memfs never deletes the agent's branch main"),
    ],
)
def test_other_refs_tags_and_deletion_are_refused_with_a_reason(
    cloud: str, server: ServerHandle, tmp_path: Path, refspec: str, reason: str
) -> None:
    agent = seed_agent(tmp_path, cloud)
    git(tmp_path, "clone", "-q", server.git_url("alpha"), "clone")
    done = git(tmp_path / "clone", "push", "origin", refspec, check=False)
    assert done.returncode != 0
    assert f"({reason})" in done.stderr
    assert bucket_head(cloud) == agent.history.head()
    manifest, _ = BucketRemote(agent_url(cloud, "alpha")).read_manifest()
    assert manifest is not None and list(manifest.refs) == ["main"]


def _unsafe_commit(clone: Path, kind: str) -> str:
    """A commit the git CLI makes without complaint but memfs must refuse."""
    if kind == "escaping symlink":
        os.symlink("../../../etc/passwd", clone / "system/leak.md")
    elif kind == "absolute symlink":
        os.symlink("/etc/passwd", clone / "system/leak.md")
    elif kind == "submodule":
        sha = git(clone, "rev-parse", "HEAD").stdout.strip()
        git(clone, "update-index", "--add", "--cacheinfo", f"160000,{sha},sub")
        git(clone, "commit", "-q", "-m", kind)
        return git(clone, "rev-parse", "HEAD").stdout.strip()
    else:  # a tree entry git's index refuses, made with mktree: ".GIT" (git's own dir on
        # case-insensitive disks), "..", or a name with a slash
        name = {"dotgit folder": ".GIT", "dotdot": ".."}[kind]
        blob = git(clone, "hash-object", "-w", "--stdin").stdout.strip()
        inner = subprocess.run(
            ["git", "mktree"], cwd=clone, input=f"100644 blob {blob}\tconfig\n",
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        head_tree = git(clone, "rev-parse", "HEAD^{tree}").stdout.strip()
        listing = git(clone, "ls-tree", head_tree).stdout
        made = subprocess.run(
            ["git", "mktree", "--missing"], cwd=clone,
            input=listing + f"040000 tree {inner}\t{name}\n", capture_output=True, text=True,
        )  # fmt: skip
        if made.returncode != 0:
            pytest.skip(f"this git's mktree refuses {name!r} itself")
        tree = made.stdout.strip()
        commit = git(clone, "commit-tree", tree, "-p", "HEAD", "-m", kind).stdout.strip()
        git(clone, "update-ref", "refs/heads/main", commit)
        return commit
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", kind)
    return git(clone, "rev-parse", "HEAD").stdout.strip()


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("escaping symlink", "lead outside the agent"),
        ("absolute symlink", "symlink to an absolute path"),
        ("submodule", "'sub' is a submodule"),
        ("dotgit folder", "it writes into the .git folder"),
        ("dotdot", ""),
    ],
)
def test_a_commit_that_would_write_outside_the_agent_is_refused(
    cloud: str, server: ServerHandle, tmp_path: Path, kind: str, said: str
) -> None:
    agent = seed_agent(tmp_path, cloud)
    git(tmp_path, "clone", "-q", server.git_url("alpha"), "clone")
    clone = tmp_path / "clone"
    _unsafe_commit(clone, kind)
    done = git(clone, "push", "origin", "main", check=False)
    assert done.returncode != 0, done.stderr
    assert "[remote rejected] main -> main (memfs: " in done.stderr
    assert said in done.stderr
    assert bucket_head(cloud) == agent.history.head()
    assert server.cache_dir is not None
    assert not (server.cache_dir / "alpha/system/leak.md").exists()


def test_a_push_that_drops_agent_yaml_is_refused(
    cloud: str, server: ServerHandle, tmp_path: Path
) -> None:
    agent = seed_agent(tmp_path, cloud)
    git(tmp_path, "clone", "-q", server.git_url("alpha"), "clone")
    git(tmp_path / "clone", "rm", "-q", "agent.yaml")
    git(tmp_path / "clone", "commit", "-q", "-m", "drop")
    done = git(tmp_path / "clone", "push", "origin", "main", check=False)
    assert done.returncode != 0
    assert "agent.yaml is deleted: a memfs agent keeps it" in done.stderr
    assert bucket_head(cloud) == agent.history.head()


def test_a_push_that_leaves_a_letta_repo_no_memory_layout_is_refused(
    cloud: str, server: ServerHandle, tmp_path: Path
) -> None:
    """A Letta Code repo without system/ (or a root MEMORY.md) is no agent to memfs: every
    memfs clone of it, another server's cache first of all, would refuse it."""
    repo = tmp_path / "letta"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    before = commit_file(repo, "system/persona.md", PERSONA, "persona")
    seed = memfs.open(repo)
    seed.history.set_config_values("memfs", {"id": LETTA_AGENT_ID, "name": "letta"})
    add_remote(seed.history, "origin", agent_url(cloud, "letta"))
    assert push(seed, remote="origin").ok
    git(tmp_path, "clone", "-q", server.git_url("letta"), "clone")
    git(tmp_path / "clone", "rm", "-q", "-r", "system")
    commit_file(tmp_path / "clone", "README.txt", "hello\n", "no memory left")
    done = git(tmp_path / "clone", "push", "origin", "main", check=False)
    assert done.returncode != 0
    assert "no system/ folder" in done.stderr
    assert bucket_head(cloud, "letta") == before
    with running_server(cloud, tmp_path) as other:  # a fresh cache clones it whole
        assert _request(f"{other.url}/v1/agents/letta/core-memory/blocks")[0] == 200


@pytest.mark.parametrize("point", ["push.pack", "push.manifest", "serve.git.pushed"])
def test_a_server_killed_mid_push_loses_nothing_and_serves_on(
    cloud: str, tmp_path: Path, point: str
) -> None:
    """kill -9 of the server at each step of a push (its pack uploaded, the manifest not yet
    swapped; the manifest swapped, its checkout not yet moved): the bucket holds the old head
    or the new one, never half; a server started again on the same cache serves the bucket's
    head, and the user's push goes through or is already there."""
    agent = seed_agent(tmp_path, cloud)
    cache = tmp_path / "cache"
    crashing = dict(os.environ, MEMFS_CRASH_AT=point)
    with running_server(cloud, tmp_path, cache_dir=cache, env=crashing) as server:
        git(tmp_path, "clone", "-q", server.git_url("alpha"), "clone")
        clone = tmp_path / "clone"
        new = commit_file(clone, "system/late.md", "---\ndescription: l\n---\nl\n", "late")
        assert git(clone, "push", "origin", "main", check=False).returncode != 0
        assert server.proc.wait(timeout=30) == -9  # killed at the point, as by kill -9
    expected = new if point == "serve.git.pushed" else agent.history.head()
    assert bucket_head(cloud) == expected
    with running_server(cloud, tmp_path, cache_dir=cache) as again:
        git(clone, "remote", "set-url", "origin", again.git_url("alpha"))
        git(clone, "push", "-q", "origin", "main")
        assert bucket_head(cloud) == new
        git(tmp_path, "clone", "-q", again.git_url("alpha"), "fresh")
        assert git(tmp_path / "fresh", "rev-parse", "HEAD").stdout.strip() == new
        git(tmp_path / "fresh", "fsck", "--strict")
        assert "Traceback" not in again.output()


def test_a_push_larger_than_the_limit_is_refused_whole(cloud: str, tmp_path: Path) -> None:
    agent = seed_agent(tmp_path, cloud)
    limited = dict(os.environ, MEMFS_SERVE_MAX_BODY="20000")
    with running_server(cloud, tmp_path, env=limited) as server:
        git(tmp_path, "clone", "-q", server.git_url("alpha"), "clone")
        clone = tmp_path / "clone"
        (clone / "reference").mkdir()
        (clone / "reference/big.bin").write_bytes(os.urandom(50_000))  # incompressible
        git(clone, "add", "-A")
        git(clone, "commit", "-q", "-m", "big")
        done = git(clone, "push", "origin", "main", check=False)
        assert done.returncode != 0 and "413" in done.stderr
        assert bucket_head(cloud) == agent.history.head()
        commit_file(clone, "reference/big.bin", "small now\n", "small")
        git(clone, "push", "-q", "origin", "main", check=False)  # still carries the big blob
        assert bucket_head(cloud) == agent.history.head()
        assert "Traceback" not in server.output()


def test_auth_as_git_and_letta_code_send_it(cloud: str, tmp_path: Path) -> None:
    seed_agent(tmp_path, cloud)
    with running_server(cloud, tmp_path, token=True) as server:
        bare_url = f"{server.url}/v1/git/alpha/state.git"
        refused = git(tmp_path, "clone", "-q", bare_url, "none", check=False)
        assert refused.returncode != 0
        assert "could not read Username" in refused.stderr  # a 401: git wanted credentials
        status, _, _ = _request(f"{bare_url}/info/refs?service=git-upload-pack")
        assert status == 401
        wrong = bare_url.replace("http://", "http://letta:not-the-token@")
        assert git(tmp_path, "clone", "-q", wrong, "wrong", check=False).returncode != 0
        # a credential in the URL (git answers the 401 with it)
        git(tmp_path, "clone", "-q", server.git_url("alpha"), "in-url")
        # Letta Code's buildGitAuthArgs (src/agent/memory-git.ts): no helper, no askpass,
        # the Basic header on every request
        basic = base64.b64encode(f"letta:{server.token}".encode()).decode()
        letta_args = ["-c", "credential.helper=", "-c", "core.askPass=",
                      "-c", f"http.extraHeader=Authorization: Basic {basic}"]  # fmt: skip
        git(tmp_path, *letta_args, "clone", "-q", bare_url, "letta")
        clone = tmp_path / "letta"
        commit_file(clone, "system/x.md", "---\ndescription: x\n---\nx\n", "x")
        git(clone, *letta_args, "push", "-q", "origin", "main")
        assert bucket_head(cloud) == git(clone, "rev-parse", "HEAD").stdout.strip()
        assert server.token is not None and server.token not in server.output()


def _request(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("content-type", ""), error.read()


def _pkt(line: str) -> bytes:
    return f"{len(line) + 5:04x}{line}\n".encode()


def test_the_protocol_edges_answer_in_plain_text(
    cloud: str, server: ServerHandle, tmp_path: Path
) -> None:
    agent = seed_agent(tmp_path, cloud)
    base = f"{server.url}/v1/git"
    status, kind, body = _request(f"{base}/nobody/state.git/info/refs?service=git-upload-pack")
    assert (status, kind.split(";")[0]) == (404, "text/plain")
    assert body.startswith(b"memfs: no agent 'nobody'")
    for sneaky in ("..%2F..%2Fagents%2Falpha", "%2E%2E", "alpha%2F..", "..%252Falpha"):
        status, _, _ = _request(f"{base}/{sneaky}/state.git/info/refs?service=git-upload-pack")
        assert status == 404, sneaky
    status, _, body = _request(f"{base}/alpha/state.git/info/refs")  # dumb HTTP
    assert status == 403 and b"smart HTTP" in body
    want = _pkt(f"want {agent.history.head()} side-band-64k thin-pack ofs-delta") + b"0000"
    request = want + _pkt("done")
    status, _, body = _request(
        f"{base}/alpha/state.git/git-upload-pack", request, {"Content-Type": "text/plain"}
    )
    assert status == 415
    # git gzips big upload-pack requests: the same request gzipped is served the same pack
    answers = []
    for data, extra in ((request, {}), (gzip.compress(request), {"Content-Encoding": "gzip"})):
        headers = {"Content-Type": "application/x-git-upload-pack-request", **extra}
        status, kind, body = _request(f"{base}/alpha/state.git/git-upload-pack", data, headers)
        assert (status, kind) == (200, "application/x-git-upload-pack-result")
        assert b"PACK" in body
        answers.append(body)
    assert answers[0] == answers[1]
    status, _, body = _request(
        f"{base}/alpha/state.git/git-upload-pack",
        b"not gzip",
        {"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip"},
    )
    assert status == 400 and b"not valid gzip" in body
    # Letta Code's older origin, /v1/git/<agent> without state.git, is served too
    git(tmp_path, "clone", "-q", f"{base}/alpha", "legacy")
    assert (tmp_path / "legacy/system/persona.md").exists()


def test_letta_codes_own_sync_sequence_through_the_server(
    letta_code: LettaCode, letta_v1_repo: Path, s3: S3Bucket, tmp_path: Path
) -> None:
    """Letta Code's memory-git.ts against the server: cloneMemoryRepo's clone with
    buildGitAuthArgs, its local credential helper (configureLocalCredentialHelper), then
    pullMemory (``pull --ff-only``, ``pull --rebase``) and syncPendingMemoryCommitsAfterTurn
    (``push -u origin main``; non-fast-forward -> ``pull --rebase``, push again), each run by
    Letta Code's own functions (tests/lettacode_server.mjs). What the oracle leaves out as
    network setup (the clone's auth arguments, the credential helper, the identity) is done
    here as memory-git.ts does it."""
    cloud = s3.url(f"agents-{tmp_path.name}")
    seed = memfs.open(letta_v1_repo)
    seed.history.set_config_values("memfs", {"id": LETTA_AGENT_ID, "name": "letta-v1"})
    add_remote(seed.history, "origin", agent_url(cloud, "letta-v1"))
    assert push(seed, remote="origin").ok
    with running_server(cloud, tmp_path, token=True) as server:
        assert server.token is not None
        url = f"{server.url}/v1/git/{LETTA_AGENT_ID}/state.git"
        basic = base64.b64encode(f"letta:{server.token}".encode()).decode()
        auth = ["-c", "credential.helper=", "-c", "core.askPass=",
                "-c", f"http.extraHeader=Authorization: Basic {basic}"]  # fmt: skip
        helper = f'!f() {{ echo "username=letta"; echo "password={server.token}"; }}; f'
        machines = []
        for name in ("laptop", "sandbox"):
            repo = tmp_path / name
            repo.mkdir()
            git(repo, *auth, "clone", "-q", url, ".")
            # prepareMemoryRepoForGitOps: configureLocalCredentialHelper, then
            # ensureLocalMemfsGitConfig's identity (the display name falls back to Letta Agent)
            git(repo, "config", "--local", f"credential.{server.url}.helper", helper)
            git(repo, "config", "--local", "letta.agentId", LETTA_AGENT_ID)
            git(repo, "config", "--local", "user.email", f"{LETTA_AGENT_ID}@letta.com")
            git(repo, "config", "--local", "user.name", "Letta Agent")
            letta_code.install_hooks(repo)
            machines.append(repo)
        laptop, sandbox = machines
        edit = {"file_path": "system/human.md", "old_string": "Ada", "new_string": "Ada L."}
        letta_code.agent_write(laptop, "str_replace", {**edit, "reason": "name"},
                               agent_id=LETTA_AGENT_ID)  # fmt: skip
        assert letta_code.push_after_turn(laptop)["status"] == "pushed"
        created = {"file_path": "system/new.md", "description": "a: b", "file_text": "x\n",
                   "reason": "r"}  # fmt: skip
        letta_code.agent_write(sandbox, "create", created, agent_id=LETTA_AGENT_ID)
        after = letta_code.push_after_turn(sandbox)
        assert after["status"] == "rebased_and_pushed", after
        assert letta_code.pull(laptop)["step"] == "ff-only"
        assert (laptop / "system/new.md").read_text() == "---\ndescription: a: b\n---\nx\n"
        assert "Ada L." in (sandbox / "system/human.md").read_text()
        head = git(laptop, "rev-parse", "HEAD").stdout.strip()
        assert bucket_head(cloud, "letta-v1") == head
        report = pull(seed, remote="origin")
        assert report.ok and report.head == head
        git(laptop, "fsck", "--strict")
        assert server.token not in server.output()


@pytest.mark.timeout(180)
def _split_balancer(get_to: str, post_to: str) -> http.server.ThreadingHTTPServer:
    """A load balancer at its most unlucky: every GET to one server, every POST to another."""

    class Split(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self, base: str) -> None:
            size = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(size) if size else None
            skip = ("host", "content-length", "connection")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            request = urllib.request.Request(base + self.path, body, headers, method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    status, data, got = answer.status, answer.read(), answer.headers
            except urllib.error.HTTPError as error:
                status, data, got = error.code, error.read(), error.headers
            self.send_response(status)
            for key, value in got.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._forward(get_to)

        def do_POST(self) -> None:
            self._forward(post_to)

        def log_message(self, *args: object) -> None:
            pass

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Split)


def test_two_servers_behind_a_balancer_serve_what_the_other_advertised(
    cloud: str, tmp_path: Path
) -> None:
    """info/refs from one server, the POST from another whose last look at the bucket is
    older than the push the first one advertised: a fetch must get the advertised head, and a
    push (a thin pack against it) must land. The second server's window is made long so the
    race a 0.5 s window leaves open happens every time."""
    agent = seed_agent(tmp_path, cloud)
    with (
        running_server(cloud, tmp_path) as first,
        running_server(cloud, tmp_path, args=("--fresh-ms", "600000")) as second,
        serving(_split_balancer(first.url, second.url)) as balancer,
    ):
        git(tmp_path, "clone", "-q", f"{balancer}/v1/git/alpha/state.git", "viabalancer")
        git(tmp_path, "clone", "-q", first.git_url("alpha"), "direct")
        direct, behind = tmp_path / "direct", tmp_path / "viabalancer"
        long = "".join(f"line {n}: I remember this.\n" for n in range(2000))  # deltas pay
        theirs = commit_file(direct, "system/persona.md", PERSONA + long, "theirs")
        git(direct, "push", "-q", "origin", "main")
        assert bucket_head(cloud) == theirs != agent.history.head()
        # a push: a thin pack against the head first advertised, received by second
        git(behind, "pull", "-q", "--ff-only", first.git_url("alpha"), "main")
        mine = commit_file(behind, "system/persona.md", PERSONA + long + "mine\n", "mine")
        git(behind, "push", "-q", "origin", "main")
        assert bucket_head(cloud) == mine
        # a fetch: second looks at the bucket, first is pushed to, second serves the pull
        assert _request(f"{second.url}/v1/agents/alpha/context")[0] == 200
        git(direct, "pull", "-q", "--ff-only")
        later = commit_file(direct, "system/later.md", "---\ndescription: l\n---\nl\n", "l")
        git(direct, "push", "-q", "origin", "main")
        git(behind, "pull", "-q", "--ff-only")  # advertised by first, served by second
        assert git(behind, "rev-parse", "HEAD").stdout.strip() == later == bucket_head(cloud)
        git(tmp_path, "clone", "-q", first.git_url("alpha"), "fresh")
        git(tmp_path / "fresh", "fsck", "--strict")
        for handle in (first, second):
            assert "Traceback" not in handle.output()


def test_the_clone_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    """benchmarks/bench_serve_git.py end to end (not timed), so it cannot rot unnoticed."""
    import json
    import sys

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_serve_git.py"
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(script), "--sizes", "10", "--repeat", "1", "--json", str(figures)],
        capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| clone (1) | 10 |" in done.stdout and "| 1-file push (1) | 10 |" in done.stdout
    clone, pushed = json.loads(figures.read_text())
    assert (clone["row"], pushed["row"]) == ("clone", "1-file push")
    assert all(row["serve_s"] > 0 and row["file_s"] > 0 for row in (clone, pushed))
    assert clone["verdict"] in ("PASS", "MISS") and pushed["verdict"] == "-"


def test_only_a_whole_clone_request_is_answered_from_the_clone_cache() -> None:
    from memfs.server.gitpack import CloneCache, whole_clone

    want = _pkt(f"want {'a' * 40} side-band-64k thin-pack ofs-delta") + b"0000"
    assert whole_clone(want + _pkt("done"))
    assert not whole_clone(want + _pkt(f"have {'b' * 40}") + b"0000" + _pkt("done"))
    assert not whole_clone(want[:-4] + _pkt("deepen 1") + b"0000" + _pkt("done"))
    assert not whole_clone(want)  # no done: a negotiation, not a clone
    assert not whole_clone(b"garbage")
    cache = CloneCache(max_bytes=100)
    cache.put("alpha", b"q1", b"x" * 40)
    cache.put("beta", b"q1", b"y" * 40)
    assert cache.get("alpha", b"q1") == b"x" * 40 and cache.get("beta", b"q1") == b"y" * 40
    cache.put("alpha", b"q2", b"z" * 40)  # past 100 bytes: the least recently used goes
    assert cache.get("alpha", b"q1") is None and cache.get("alpha", b"q2") == b"z" * 40
    cache.put("alpha", b"q3", b"w" * 200)  # larger than the whole cache: not kept
    assert cache.get("alpha", b"q3") is None
