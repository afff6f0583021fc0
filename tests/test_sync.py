"""Git-host remotes: push/fetch/pull/sync/clone over real servers, and two machines merging."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

import memfs
from memfs import sync
from memfs.conflicts import find, resolve
from memfs.errors import (
    DivergedError,
    LocalEditError,
    NotAMemfsRemoteError,
    RemoteAuthError,
    RemoteNotFoundError,
    RemoteUnreachableError,
    UnknownRemoteError,
    UnsafePathError,
    UnsupportedURLError,
)
from memfs.remotes import list_remotes
from memfs.remotes.configure import add_remote, remove_remote

from .conftest import assert_git_agrees, git, run_cli, write
from .servers import bare_repo, git_daemon, http_git_server


def contents(agent: memfs.Agent) -> dict[str, bytes]:
    """The committed tree of an agent: path -> bytes."""
    history = agent.history
    return {
        path: history.blob(entry.sha) for path, entry in history.tree_of(history.head()).items()
    }


def on_disk(agent: memfs.Agent) -> dict[str, bytes]:
    return {path: (agent.root / path).read_bytes() for path in agent.worktree_files()}


def two_machines(tmp_path: Path, url: str) -> tuple[memfs.Agent, memfs.Agent]:
    """Machine A creates the agent and pushes it; machine B clones it."""
    a = memfs.init(tmp_path / "machine-a" / "agent", name="shared")
    add_remote(a.history, "origin", url)
    assert sync.push(a).ok
    b = sync.clone(url, tmp_path / "machine-b" / "agent")
    return a, b


def assert_converged(a: memfs.Agent, b: memfs.Agent) -> None:
    assert a.history.head() == b.history.head()
    assert contents(a) == contents(b)
    assert on_disk(a) == contents(a) and on_disk(b) == contents(b)
    assert a.status().clean and b.status().clean
    assert_git_agrees(a.root)
    assert_git_agrees(b.root)


# -- transports ----------------------------------------------------------------------------


STAND_IN_SSH = """#!/bin/sh
# Stands in for ssh: drops the options and host, runs the remote git command here.
while [ $# -gt 1 ]; do shift; done
exec sh -c "$1"
"""


@pytest.fixture(params=["path", "file", "git", "http", "ssh"])
def remote_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The URL of an empty bare repo, served over each transport."""
    hub = bare_repo(tmp_path / "hub" / "agent.git")
    if request.param == "ssh":
        ssh = write(tmp_path, "bin/fake-ssh", STAND_IN_SSH)
        ssh.chmod(0o755)
        monkeypatch.setenv("GIT_SSH_COMMAND", str(ssh))
        yield f"ssh://agent-host{hub}"
    elif request.param == "path":
        yield str(hub)
    elif request.param == "file":
        yield hub.as_uri()
    elif request.param == "git":
        with git_daemon(tmp_path / "hub") as base:
            yield f"{base}/agent.git"
    else:
        with http_git_server({"agent.git": hub}) as base:
            yield f"{base}/agent.git"


def test_push_clone_and_sync_over_every_transport(tmp_path: Path, remote_url: str) -> None:
    a, b = two_machines(tmp_path, remote_url)
    assert contents(b) == contents(a)
    assert_git_agrees(b.root)
    # real git clones what memfs pushed
    git(tmp_path, "clone", "-q", remote_url, str(tmp_path / "by-git"))
    by_git = tmp_path / "by-git"
    assert git(by_git, "ls-tree", "-r", "HEAD") == git(a.root, "ls-tree", "-r", "HEAD")
    assert git(by_git, "rev-parse", "HEAD") == git(a.root, "rev-parse", "HEAD")
    git(by_git, "fsck", "--strict")
    # an edit on A reaches B
    write(a.root, "system/human.md", "Name: Ada\n")
    assert sync.sync(a).ok
    report = sync.sync(b)
    assert report.ok and report.remotes[0].integrated == "fast-forward"
    assert (b.root / "system/human.md").read_text() == "Name: Ada\n"
    assert_converged(a, b)


def test_memfs_clones_what_real_git_pushed(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    source = memfs.init(tmp_path / "made-by-memfs")
    write(source.root, "reference/by-git.md", "pushed with git\n")
    git(source.root, "add", "-A")
    git(source.root, "commit", "-qm", "a commit made with git")
    git(source.root, "push", "-q", str(hub), "main")
    with git_daemon(tmp_path) as base:
        clone = sync.clone(f"{base}/hub.git", tmp_path / "clone")
    assert (clone.root / "reference/by-git.md").read_text() == "pushed with git\n"
    assert clone.log()[0].summary == "a commit made with git"
    assert_git_agrees(clone.root)


# -- two machines --------------------------------------------------------------------------

PERSONA = "---\ndescription: me\n---\nline one\nline two\nline three\nline four\n"
Edit = Callable[[Path], None]


def setup_file(path: str, text: str) -> Edit:
    return lambda root: write(root, path, text)


SCENARIOS: dict[str, tuple[Edit, Edit, Edit, Callable[[dict[str, bytes]], None]]] = {}


def scenario(
    name: str, base: Edit, on_a: Edit, on_b: Edit
) -> Callable[[Callable[[dict[str, bytes]], None]], None]:
    def register(check: Callable[[dict[str, bytes]], None]) -> None:
        SCENARIOS[name] = (base, on_a, on_b, check)

    return register


def _copies(tree: dict[str, bytes], path: str) -> list[str]:
    stem = path.rsplit(".", 1)[0]
    return [
        p for p in tree if re.fullmatch(re.escape(stem) + r"\.conflict-[0-9a-f]{7}(-\d+)?\.md", p)
    ]


@scenario(
    "same file, different lines",
    setup_file("notes/p.md", PERSONA),
    setup_file("notes/p.md", PERSONA.replace("line one", "line one by A")),
    setup_file("notes/p.md", PERSONA.replace("line four", "line four by B")),
)
def _clean_merge(tree: dict[str, bytes]) -> None:
    text = tree["notes/p.md"].decode()
    assert "line one by A" in text and "line four by B" in text
    assert not _copies(tree, "notes/p.md")


@scenario(
    "same file, same lines",
    setup_file("notes/p.md", PERSONA),
    setup_file("notes/p.md", PERSONA.replace("line two", "A's line two")),
    setup_file("notes/p.md", PERSONA.replace("line two", "B's line two")),
)
def _conflict(tree: dict[str, bytes]) -> None:
    copies = _copies(tree, "notes/p.md")
    assert len(copies) == 1
    versions = {tree["notes/p.md"].decode(), tree[copies[0]].decode()}
    assert versions == {
        PERSONA.replace("line two", "A's line two"),
        PERSONA.replace("line two", "B's line two"),
    }


@scenario(
    "different files",
    setup_file("notes/p.md", PERSONA),
    setup_file("notes/a.md", "from A\n"),
    setup_file("notes/b.md", "from B\n"),
)
def _different_files(tree: dict[str, bytes]) -> None:
    assert tree["notes/a.md"] == b"from A\n" and tree["notes/b.md"] == b"from B\n"


@scenario(
    "delete vs modify",
    setup_file("notes/p.md", PERSONA),
    lambda root: (root / "notes/p.md").unlink(),
    setup_file("notes/p.md", PERSONA + "added by B\n"),
)
def _delete_modify(tree: dict[str, bytes]) -> None:
    assert tree["notes/p.md"] == (PERSONA + "added by B\n").encode()


@scenario(
    "add/add of the same path",
    setup_file("notes/p.md", PERSONA),
    setup_file("notes/new.md", "A's new note\n"),
    setup_file("notes/new.md", "B's new note\n"),
)
def _add_add(tree: dict[str, bytes]) -> None:
    copies = _copies(tree, "notes/new.md")
    assert len(copies) == 1
    assert {tree["notes/new.md"], tree[copies[0]]} == {b"A's new note\n", b"B's new note\n"}


@scenario(
    "rename vs edit",
    setup_file("notes/p.md", PERSONA),
    lambda root: (root / "notes/p.md").rename(root / "notes/renamed.md"),
    setup_file("notes/p.md", PERSONA.replace("line three", "line three edited by B")),
)
def _rename(tree: dict[str, bytes]) -> None:
    assert tree["notes/renamed.md"] == PERSONA.encode()  # A's rename is there
    assert b"line three edited by B" in tree["notes/p.md"]  # and B's edit is kept


@pytest.mark.parametrize("first", ["a", "b"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_two_machines_converge_without_losing_an_edit(
    tmp_path: Path, name: str, first: str
) -> None:
    base, on_a, on_b, check = SCENARIOS[name]
    a, b = two_machines(tmp_path, str(bare_repo(tmp_path / "hub.git")))
    base(a.root)
    sync.sync(a)
    sync.sync(b)
    on_a(a.root)
    on_b(b.root)
    a.commit()
    b.commit()
    order = [a, b, a] if first == "a" else [b, a, b]
    for machine in order:
        assert sync.sync(machine).ok
    assert_converged(a, b)
    tree = contents(a)
    check(tree)
    merges = [entry for entry in a.log() if len(entry.parents) == 2]
    assert len(merges) == 1 and merges[0].origin == "merge"


def test_conflict_policy_markers_from_agent_yaml(tmp_path: Path) -> None:
    a, b = two_machines(tmp_path, str(bare_repo(tmp_path / "hub.git")))
    (a.root / "agent.yaml").write_text(
        (a.root / "agent.yaml").read_text() + "sync:\n  conflict: markers\n"
    )
    write(a.root, "notes/p.md", PERSONA)
    sync.sync(a)
    sync.sync(b)
    write(a.root, "notes/p.md", PERSONA.replace("line two", "A two"))
    write(b.root, "notes/p.md", PERSONA.replace("line two", "B two"))
    sync.sync(a)
    report = sync.sync(b)
    assert [c.resolution for c in report.conflicts] == ["markers"]
    text = (b.root / "notes/p.md").read_text()
    assert "<<<<<<< " in text and "A two" in text and "B two" in text and ">>>>>>> " in text
    assert [c.kind for c in find(b)] == ["markers"]
    resolve(b, "notes/p.md", "both")
    text = (b.root / "notes/p.md").read_text()
    assert "<<<<<<<" not in text and "A two" in text and "B two" in text
    assert find(b) == []
    sync.sync(b)
    sync.sync(a)
    assert_converged(a, b)


def test_conflict_copies_are_listed_and_resolved(tmp_path: Path) -> None:
    a, b = two_machines(tmp_path, str(bare_repo(tmp_path / "hub.git")))
    write(a.root, "system/human.md", "A's human\n")
    write(b.root, "system/human.md", "B's human\n")
    sync.sync(a)
    sync.sync(b, policy="copy")
    [conflict] = find(b)
    assert conflict.kind == "copy" and conflict.path == "system/human.md"
    assert conflict.copy_path is not None and conflict.copy_path.startswith(
        "system/human.conflict-"
    )
    kept = (b.root / conflict.copy_path).read_bytes()
    result = run_cli("-C", str(b.root), "resolve", "system/human.md", "--keep", "theirs")
    assert result.exit_code == 0, result.output
    assert (b.root / "system/human.md").read_bytes() == kept
    assert not (b.root / conflict.copy_path).exists()
    assert run_cli("-C", str(b.root), "conflicts").output == "No open conflicts.\n"


def test_ours_and_theirs_policies(tmp_path: Path) -> None:
    a, b = two_machines(tmp_path, str(bare_repo(tmp_path / "hub.git")))
    write(a.root, "system/human.md", "A\n")
    write(b.root, "system/human.md", "B\n")
    sync.sync(a)
    sync.pull(b, policy="ours")
    assert (b.root / "system/human.md").read_text() == "B\n"
    both = [e for e in b.log() if len(e.parents) == 2]
    assert len(both) == 1, "the other version stays in history as a parent"
    sync.sync(b)
    sync.sync(a)
    assert_converged(a, b)
    write(a.root, "system/human.md", "A again\n")
    write(b.root, "system/human.md", "B again\n")
    sync.sync(a)
    sync.pull(b, policy="theirs")
    assert (b.root / "system/human.md").read_text() == "A again\n"


# -- never overwrite an uncommitted edit ---------------------------------------------------


def test_a_merge_never_overwrites_a_file_edited_meanwhile(tmp_path: Path) -> None:
    a, b = two_machines(tmp_path, str(bare_repo(tmp_path / "hub.git")))
    write(a.root, "system/human.md", "from A\n")
    sync.sync(a)
    theirs = sync.fetch_remote(b, list_remotes(b.history)[0])
    assert theirs is not None
    # the user edits the file after B's last commit, while the update is about to run
    write(b.root, "system/human.md", "typed on B just now\n")
    current = b.history.tree_of(b.history.head())
    with pytest.raises(LocalEditError), b.updating(current, b.history.tree_of(theirs)):
        pass
    assert (b.root / "system/human.md").read_text() == "typed on B just now\n"
    # the full cycle commits the edit first, then merges: both versions survive
    report = sync.sync(b)
    assert report.ok
    tree = contents(b)
    texts = {tree["system/human.md"]} | {tree[p] for p in _copies(tree, "system/human.md")}
    assert texts == {b"from A\n", b"typed on B just now\n"}


# -- errors --------------------------------------------------------------------------------


def _unchanged(agent: memfs.Agent) -> Callable[[], None]:
    head, files = agent.history.head(), on_disk(agent)

    def check() -> None:
        assert agent.history.head() == head
        assert on_disk(agent) == files

    return check


def test_unreachable_host_is_a_clear_error(agent: memfs.Agent) -> None:
    add_remote(agent.history, "origin", "git://127.0.0.1:1/agent.git")
    unchanged = _unchanged(agent)
    report = sync.sync(agent)
    assert not report.ok
    assert report.remotes[0].error is not None and report.remotes[0].error.startswith(
        "cannot reach git://127.0.0.1:1/agent.git: "
    )
    unchanged()
    result = run_cli("-C", str(agent.root), "push")
    assert result.exit_code == 7
    assert result.stderr.startswith("memfs: cannot reach git://127.0.0.1:1/agent.git")
    assert result.stderr.count("\n") == 1
    with pytest.raises(RemoteUnreachableError):
        sync.clone("http://127.0.0.1:1/agent.git", agent.root.parent / "never")
    assert not (agent.root.parent / "never").exists()


def test_unknown_remote_and_unsupported_urls(agent: memfs.Agent) -> None:
    with pytest.raises(UnknownRemoteError):
        sync.push(agent, "nope")
    result = run_cli("-C", str(agent.root), "pull", "nope")
    assert (result.exit_code, result.stderr) == (
        2,
        "memfs: no remote named 'nope': see 'memfs remote list'\n",
    )
    with pytest.raises(UnsupportedURLError, match="unknown scheme 'ftp'"):
        add_remote(agent.history, "origin", "ftp://example.com/agent")
    assert list_remotes(agent.history) == []
    result = run_cli("-C", str(agent.root), "remote", "add", "x", "gopher://h/x")
    assert result.exit_code == 2 and result.stderr.startswith(
        "memfs: cannot use 'gopher://h/x' as a remote"
    )


def test_auth_failure_is_a_clear_error(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    agent = memfs.init(tmp_path / "agent")
    with http_git_server({"hub.git": hub}, auth=("ada", "right")) as base:
        add_remote(
            agent.history, "origin", base.replace("http://", "http://ada:wrong@") + "/hub.git"
        )
        unchanged = _unchanged(agent)
        result = run_cli("-C", str(agent.root), "push")
        assert result.exit_code == 7
        assert "refused the credentials" in result.stderr
        assert "wrong" not in result.stderr + result.output, "credentials must never be printed"
        unchanged()
        listing = run_cli("-C", str(agent.root), "remote", "list").output
        assert "wrong" not in listing and "***@127.0.0.1" in listing
        remove_remote(agent.history, "origin")
        add_remote(
            agent.history, "origin", base.replace("http://", "http://ada:right@") + "/hub.git"
        )
        assert sync.push(agent).ok
        with pytest.raises(RemoteAuthError):
            sync.clone(base + "/hub.git", tmp_path / "no-credentials")


def test_missing_repository_and_non_agent_remote(tmp_path: Path) -> None:
    with pytest.raises(RemoteNotFoundError):
        sync.clone(str(tmp_path / "no-such.git"), tmp_path / "x")
    plain = tmp_path / "plain"
    write(plain, "README.md", "not an agent\n")
    git(tmp_path, "init", "-q", "-b", "main", str(plain))
    git(plain, "add", "-A")
    git(plain, "commit", "-qm", "plain repo")
    with pytest.raises(NotAMemfsRemoteError, match=r"has no agent\.yaml"):
        sync.clone(str(plain), tmp_path / "y")
    assert not (tmp_path / "y").exists()
    agent = memfs.init(tmp_path / "agent")
    add_remote(agent.history, "origin", str(plain))
    unchanged = _unchanged(agent)
    result = run_cli("-C", str(agent.root), "pull")
    assert result.exit_code == 7 and "is not a memfs agent" in result.stderr
    unchanged()


def test_ff_only_refuses_diverged_history(tmp_path: Path) -> None:
    a, b = two_machines(tmp_path, str(bare_repo(tmp_path / "hub.git")))
    write(a.root, "a.md", "a\n")
    sync.sync(a)
    write(b.root, "b.md", "b\n")
    b.commit()
    unchanged = _unchanged(b)
    with pytest.raises(DivergedError):
        sync.pull(b, ff_only=True)
    unchanged()
    result = run_cli("-C", str(b.root), "pull", "--ff-only")
    assert result.exit_code == 6 and "have diverged; nothing was changed" in result.stderr
    unchanged()


# -- pushes --------------------------------------------------------------------------------


def test_a_rejected_push_is_merged_and_retried_never_forced(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    a, b = two_machines(tmp_path, str(hub))
    write(a.root, "a.md", "a\n")
    assert sync.push(a).ok
    a_head = a.history.head()
    write(b.root, "b.md", "b\n")
    report = sync.push(b)  # B has not fetched: its first push attempt would not fast-forward
    assert report.ok and report.remotes[0].pushed == "pushed"
    assert report.remotes[0].integrated == "merged"
    remote_head = git(hub, "rev-parse", "main").strip()
    assert git(hub, "merge-base", "--is-ancestor", a_head, remote_head, check=False) == ""
    assert a_head in git(hub, "rev-list", "main").split()


def test_mirror_is_pushed_but_never_merged_from(tmp_path: Path) -> None:
    hub = bare_repo(tmp_path / "hub.git")
    mirror = bare_repo(tmp_path / "mirror.git")
    a, b = two_machines(tmp_path, str(hub))
    add_remote(a.history, "backup", str(mirror), mirror=True)
    write(a.root, "a.md", "a\n")
    assert sync.sync(a).ok
    assert git(mirror, "rev-parse", "main").strip() == a.history.head()
    # someone else pushes to the mirror: memfs never merges from it, and says so
    add_remote(b.history, "backup", str(mirror))
    write(b.root, "b.md", "b\n")
    b.commit()
    sync.push(b, "backup")
    write(a.root, "a2.md", "a2\n")
    report = sync.sync(a)
    errors = {o.remote: o.error for o in report.remotes}
    assert errors["origin"] is None
    assert errors["backup"] is not None and "mirrors are never merged from" in errors["backup"]
    assert not (a.root / "b.md").exists()
    assert [r.to_dict()["mirror"] for r in list_remotes(a.history)] == [False, True]
    assert "backup" in git(a.root, "remote", "-v")


# -- malicious remote trees ----------------------------------------------------------------


def _malicious_remote(tmp_path: Path, entry: str) -> Path:
    """A bare repo whose main commit holds agent.yaml plus one dangerous entry."""
    hub = bare_repo(tmp_path / f"evil-{abs(hash(entry))}.git")
    repo = Repo(str(hub))
    store = repo.object_store
    payload = Blob.from_string(b"#!/bin/sh\necho pwned\n")
    manifest = Blob.from_string(b"name: evil\nformat: 1\n")  # no id: it passes the same-agent check
    store.add_object(payload)
    store.add_object(manifest)
    root = Tree()
    root.add(b"agent.yaml", 0o100644, manifest.id)
    if entry == "dotdot":
        inner = Tree()
        inner.add(b"pwned", 0o100644, payload.id)
        store.add_object(inner)
        root.add(b"..", 0o040000, inner.id)
    elif entry == "dotgit":
        hooks = Tree()
        hooks.add(b"post-checkout", 0o100755, payload.id)
        store.add_object(hooks)
        dotgit = Tree()
        dotgit.add(b"hooks", 0o040000, hooks.id)
        store.add_object(dotgit)
        root.add(b".git", 0o040000, dotgit.id)
    else:
        target = Blob.from_string(b"../../../../etc/passwd")
        store.add_object(target)
        root.add(b"escape", 0o120000, target.id)
    store.add_object(root)
    commit = Commit()
    commit.tree = root.id
    commit.author = commit.committer = b"evil <evil@example.com>"
    commit.author_time = commit.commit_time = 1_700_000_000
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"evil"
    store.add_object(commit)
    repo.refs[b"refs/heads/main"] = commit.id
    repo.close()
    return hub


@pytest.mark.parametrize("entry", ["dotdot", "dotgit", "symlink"])
def test_dangerous_paths_from_a_remote_are_refused(tmp_path: Path, entry: str) -> None:
    hub = _malicious_remote(tmp_path, entry)
    target = tmp_path / "clone"
    with pytest.raises(UnsafePathError, match="refusing unsafe path"):
        sync.clone(str(hub), target)
    assert not target.exists()
    assert not (tmp_path / "pwned").exists()
    agent = memfs.init(tmp_path / "victim")
    add_remote(agent.history, "origin", str(hub))
    unchanged = _unchanged(agent)
    result = run_cli("-C", str(agent.root), "pull", "--allow-unrelated-histories")
    assert result.exit_code == 1
    assert result.stderr.startswith("memfs: refusing unsafe path")
    unchanged()
    assert not (agent.root / ".git/hooks/post-checkout").exists()


# -- remote config and the CLI -------------------------------------------------------------


def test_remote_commands(agent: memfs.Agent, tmp_path: Path) -> None:
    root = str(agent.root)
    hub = bare_repo(tmp_path / "hub.git")
    assert (
        run_cli("-C", root, "remote", "add", "origin", str(hub)).output
        == f"Added remote origin: {hub}\n"
    )
    assert run_cli("-C", root, "remote", "add", "origin", str(hub)).exit_code == 1
    assert f"origin\t{hub} (fetch)" in git(agent.root, "remote", "-v")
    listing = run_cli("-C", root, "remote", "list", "--json").output
    assert '"kind": "git"' in listing
    push = run_cli("-C", root, "push")
    assert push.exit_code == 0 and push.output == "origin: pushed\n"
    assert run_cli("-C", root, "sync").output == "origin: up to date, up to date\n"
    assert run_cli("-C", root, "fetch").output.startswith("origin: ")
    clone = run_cli("clone", str(hub), str(tmp_path / "copy"))
    assert clone.exit_code == 0 and "Cloned test-agent into" in clone.output
    assert run_cli("-C", root, "remote", "remove", "origin").output == "Removed remote origin\n"
    assert "origin" not in git(agent.root, "remote", "-v")
    assert (
        run_cli("-C", root, "sync").output
        == "No remotes: add one with 'memfs remote add NAME URL'.\n"
    )


def test_status_shows_ahead_behind_and_last_error(tmp_path: Path) -> None:
    a, b = two_machines(tmp_path, str(bare_repo(tmp_path / "hub.git")))
    write(a.root, "a.md", "a\n")
    sync.sync(a)
    write(b.root, "b.md", "b\n")
    b.commit()
    sync.fetch(b)
    [state] = sync.remote_states(b)
    assert (state.ahead, state.behind) == (1, 1)
    add_remote(b.history, "down", "git://127.0.0.1:1/x.git")
    sync.sync(b)
    output = run_cli("-C", str(b.root), "status").output
    assert "Remote origin: 0 ahead, 0 behind; last sync 20" in output
    assert (
        "Remote down: " in output
        and "last sync failed: cannot reach git://127.0.0.1:1/x.git" in output
    )


@pytest.mark.parametrize("keep", ["ours", "both"])
def test_resolve_a_conflict_copy_keeping_ours_or_both(tmp_path: Path, keep: str) -> None:
    a, b = two_machines(tmp_path, str(bare_repo(tmp_path / "hub.git")))
    write(a.root, "notes/n.md", "---\ndescription: n\n---\nfrom A\n")
    write(b.root, "notes/n.md", "---\ndescription: n\n---\nfrom B\n")
    sync.sync(a)
    sync.sync(b)
    [conflict] = find(b)
    assert conflict.copy_path is not None
    at_path = (b.root / "notes/n.md").read_text()
    resolve(b, conflict.copy_path, keep)  # naming the copy works too
    text = (b.root / "notes/n.md").read_text()
    if keep == "ours":
        assert text == at_path
    else:
        assert "from A" in text and "from B" in text and text.count("description:") == 1
    assert find(b) == []
    assert b.status().clean


def test_resolve_without_a_conflict_is_a_clear_error(agent: memfs.Agent) -> None:
    result = run_cli("-C", str(agent.root), "resolve", "system/human.md", "--keep", "ours")
    assert result.exit_code == 1
    assert result.stderr == "memfs: no open conflict at system/human.md: see 'memfs conflicts'\n"


def test_concurrent_writers_on_a_git_remote_lose_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    from .test_bucket import WRITER

    hub = bare_repo(tmp_path / "hub.git")
    seed = memfs.init(tmp_path / "seed", name="busy")
    add_remote(seed.history, "origin", str(hub))
    assert sync.push(seed).ok
    script = write(tmp_path, "writer.py", WRITER)
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(hub),
                str(tmp_path / f"w{n}"),
                str(n),
                "5",
                str(tmp_path / f"out{n}"),
            ]
        )
        for n in range(4)
    ]
    assert [proc.wait(timeout=300) for proc in writers] == [0] * 4
    committed = [sha for n in range(4) for sha in (tmp_path / f"out{n}").read_text().split()]
    assert len(committed) == 20
    assert set(committed) <= set(git(hub, "rev-list", "main").split())
    git(hub, "fsck", "--strict")


def test_criss_cross_merges_use_a_virtual_base(agent: memfs.Agent) -> None:
    """After criss-cross merges two commits have two best common ancestors; picking either
    alone makes a file changed on one side look changed on both (and an old version can win).
    """
    from dulwich.objects import Commit

    from memfs.sync import merge_base_tree
    from memfs.trees import TreeEntry

    history = agent.history

    def commit(parents: tuple[str, ...], files: dict[str, str]) -> str:
        tree = dict(history.tree_of(parents[0]))
        for path, text in files.items():
            tree[path] = TreeEntry(0o100644, history.store_blob(text.encode()))
        made = Commit()
        made.tree = history.tree_from_entries(tree).encode()
        made.parents = [p.encode() for p in parents]
        made.author = made.committer = b"t <t@example.com>"
        made.author_time = made.commit_time = 1_700_000_000 + len(history.log()) + len(parents)
        made.author_timezone = made.commit_timezone = 0
        made.message = b"c"
        history.repo.object_store.add_object(made)
        return made.id.decode()

    start = history.head()
    assert start is not None
    base = commit((start,), {"f.md": "v1\n"})
    a1 = commit((base,), {"f.md": "v2\n"})  # only this line of work ever edits f.md
    x = commit((base,), {"g.md": "x\n"})
    m1 = commit((a1, x), {"g.md": "x\n"})  # the criss-cross: both merges hold both changes
    m2 = commit((x, a1), {"f.md": "v2\n"})
    a2 = commit((m1,), {"f.md": "v3\n"})
    y = commit((m2,), {"h.md": "y\n"})
    assert len(history.merge_bases(a2, y)) == 2
    virtual = merge_base_tree(history, a2, y)
    assert history.blob(virtual["f.md"].sha) == b"v2\n", "the virtual base has the shared v2"
    with agent.updating(history.tree_of(start), history.tree_of(a2)):
        history.move_branch(start, a2)
    agent.refresh_index()
    integrated, conflicts = sync.integrate(agent, y, "test")
    assert (integrated, conflicts) == ("merged", [])
    assert (agent.root / "f.md").read_text() == "v3\n", "the later edit wins, as it must"
    assert (agent.root / "h.md").read_text() == "y\n"
