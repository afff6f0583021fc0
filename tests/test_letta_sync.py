"""Syncing Letta Code memory repos: fetch, pull, sync, clone and checkout without agent.yaml,
and conflicts that never add a block, with plain git (as Letta Code and its server use it) on
the other side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

import memfs
from memfs import lettafm, sync
from memfs.cloud import checkout
from memfs.conflicts import find, resolve
from memfs.errors import NotAMemfsRemoteError, RemoteError, UnrelatedHistoriesError
from memfs.layout import Layout, in_context, is_memory_path
from memfs.merge import LETTA_CONFLICTS, Side, merge
from memfs.remotes.configure import add_remote
from memfs.trees import TreeEntry, blob_sha

from . import lettacode
from .conftest import assert_git_agrees, git, run_cli, write
from .lettacode import LettaCode
from .servers import bare_repo, wait_for

PERSONA = "---\ndescription: Who I am\n---\nI am a careful coding agent.\nI keep notes.\n"
HUMAN = "---\ndescription: What I know about the user\n---\nName: Ada\nPrefers: short answers\n"
NOTES = "---\ndescription: Loose ends\n---\n- check the hook\n"
V1_FILES = {"system/persona.md": PERSONA, "system/human.md": HUMAN, "reference/notes.md": NOTES}
V2_FILES = {
    "MEMORY.md": "# Memory\n\n- persona.md: who I am\n",
    "persona.md": '---\nname: "Persona"\ndescription: "Who I am"\n---\nI am careful.\n',
    "projects/MEMORY.md": "# Projects\n",
    "projects/letta.md": '---\nname: "Letta"\ndescription: "The project"\n---\nAgents.\n',
}


def plain_repo(path: Path, files: Mapping[str, str], message: str = "initial memory") -> Path:
    """A repo written and committed with plain git, as Letta's server or Letta Code does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    git(path.parent, "init", "-q", "-b", "main", str(path))
    commit_files(path, files, message)
    return path


def commit_files(repo: Path, files: Mapping[str, str], message: str) -> str:
    for relative, text in files.items():
        write(repo, relative, text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def published(tmp_path: Path, files: Mapping[str, str]) -> tuple[str, Path]:
    """A Letta repo pushed to a bare hub; returns the hub's URL and the pusher's clone."""
    hub = bare_repo(tmp_path / "hub" / "memory.git")
    letta = plain_repo(tmp_path / "letta-code", files)
    git(letta, "remote", "add", "origin", str(hub))
    git(letta, "push", "-q", "-u", "origin", "main")
    return str(hub), letta


def tree(agent: memfs.Agent) -> dict[str, bytes]:
    history = agent.history
    return {path: history.blob(e.sha) for path, e in history.tree_of(history.head()).items()}


# -- fetch, pull, sync, clone, checkout ----------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "layout"), [(V1_FILES, Layout.LETTA_V1), (V2_FILES, Layout.LETTA_V2)]
)
def test_a_cloned_letta_repo_opens_as_one_and_syncs_with_plain_git(
    tmp_path: Path, files: Mapping[str, str], layout: Layout
) -> None:
    url, letta = published(tmp_path, files)
    agent = sync.clone(url, tmp_path / "machine-a" / "memory")
    assert agent.layout is layout
    assert tree(agent) == {path: text.encode() for path, text in files.items()}  # nothing added
    assert git(agent.root, "config", "memfs.layout").strip() == layout.value
    assert memfs.open(agent.root).layout is layout  # opens again without agent.yaml
    assert_git_agrees(agent.root)
    # Letta Code commits and pushes; memfs pulls (fast-forward) and pushes an edit back.
    first = next(path for path in files if path.endswith(".md") and path != "MEMORY.md")
    commit_files(letta, {first: files[first] + "Letta's line.\n"}, "letta edit")
    git(letta, "push", "-q")
    fetched = sync.fetch(agent)
    assert fetched.ok and fetched.remotes[0].fetched == git(letta, "rev-parse", "HEAD").strip()
    assert (agent.root / first).read_text() == files[first]  # a fetch changes nothing else
    assert sync.pull(agent).remotes[0].integrated == "fast-forward"
    write(agent.root, first, files[first] + "Letta's line.\nmemfs's line.\n")
    assert sync.sync(agent).ok
    git(letta, "pull", "-q", "--ff-only")
    assert (letta / first).read_text() == files[first] + "Letta's line.\nmemfs's line.\n"
    assert_git_agrees(agent.root)


def test_checkout_of_a_letta_repo_from_a_cloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMFS_DATA_DIR", str(tmp_path / "data"))
    letta = plain_repo(tmp_path / "garden", V1_FILES)
    adopted = memfs.init(letta)
    assert sync.push(adopted).ok  # to the default cloud, as garden
    copy = checkout("garden", tmp_path / "machine-b" / "here")
    assert copy.layout is Layout.LETTA_V1 and copy.name == "garden"
    assert copy.manifest.id == adopted.manifest.id, "one agent, one id on every machine"
    listed = run_cli("agents", "--json")
    assert '"name": "garden"' in listed.output, "the cloud names the Letta repo it holds"
    assert tree(copy) == tree(adopted)
    assert not (copy.root / "agent.yaml").exists()
    write(copy.root, "system/human.md", HUMAN + "Likes tomatoes.\n")
    assert sync.sync(copy).ok and sync.sync(adopted).ok
    assert tree(copy) == tree(adopted)


def test_a_native_agent_still_refuses_a_letta_remote_and_the_reverse(tmp_path: Path) -> None:
    url, _ = published(tmp_path, V1_FILES)
    native = memfs.init(tmp_path / "native", name="native")
    add_remote(native.history, "origin", url)
    head = native.history.head()
    with pytest.raises(NotAMemfsRemoteError, match=r"has no agent\.yaml"):
        sync.fetch_remote(native, sync.get_remote(native.history, "origin"))
    result = run_cli("-C", str(native.root), "pull")
    assert result.exit_code == 7 and "is not a memfs agent" in result.stderr
    assert native.history.head() == head and native.layout is Layout.NATIVE

    hub = bare_repo(tmp_path / "native-hub.git")
    add_remote(native.history, "hub", str(hub))
    assert sync.push(native, "hub").ok
    letta = sync.clone(url, tmp_path / "letta")
    add_remote(letta.history, "hub", str(hub))
    before = letta.history.head()
    with pytest.raises(RemoteError, match="holds a memfs-native agent"):
        sync.fetch_remote(letta, sync.get_remote(letta.history, "hub"))
    assert letta.history.head() == before and not (letta.root / "agent.yaml").exists()


def test_a_repo_that_is_neither_is_not_cloned(tmp_path: Path) -> None:
    plain = plain_repo(tmp_path / "plain", {"README.md": "a project\n"})
    with pytest.raises(NotAMemfsRemoteError, match="not a Letta Code memory repo either"):
        sync.clone(str(plain), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_two_letta_repos_with_unrelated_histories_are_not_merged(tmp_path: Path) -> None:
    url, _ = published(tmp_path, V1_FILES)
    other = memfs.init(plain_repo(tmp_path / "other" / "memory", V1_FILES, "another agent"))
    add_remote(other.history, "origin", url)
    head = other.history.head()
    with pytest.raises(UnrelatedHistoriesError):
        sync.pull(other)
    with pytest.raises(UnrelatedHistoriesError):
        sync.push(other)
    assert other.history.head() == head


# -- conflicts never add a block ---------------------------------------------------------------


def diverge(
    tmp_path: Path, files: Mapping[str, str], ours: Mapping[str, str], theirs: Mapping[str, str]
) -> tuple[memfs.Agent, Path]:
    """memfs (machine A) and Letta Code (plain git) edit one repo; Letta Code pushes first."""
    url, letta = published(tmp_path, files)
    agent = sync.clone(url, tmp_path / "machine-a" / "memory")
    for path, text in ours.items():
        write(agent.root, path, text)
    agent.commit()
    commit_files(letta, theirs, "letta edit")
    git(letta, "push", "-q")
    return agent, letta


def assert_no_block_added(agent: memfs.Agent, before: set[str]) -> None:
    """No new path Letta reads as memory (any .md) and nothing new in context."""
    layout = agent.layout
    for path in set(tree(agent)) - before:
        assert not is_memory_path(path, layout) and not path.endswith(".md"), path
        assert not in_context(path, layout), path
        assert path.startswith(LETTA_CONFLICTS + "/"), path


def assert_hook_rules_hold(agent: memfs.Agent) -> None:
    """Each Markdown file of the merge commit passes Letta's hook rules against its first
    parent (lettafm ports them; test_letta_code_peer runs the real hook)."""
    history = agent.history
    head = history.head()
    parent = git(agent.root, "rev-parse", "HEAD^1").strip()
    for path, data in tree(agent).items():
        previous = history.file_at(parent, path)
        if path.endswith(".md") and previous != data:
            previous_text = previous.decode() if previous is not None else None
            errors = lettafm.validate(path, data.decode(), previous_text, agent.layout.v2)
            assert errors == [], (head, errors)


@pytest.mark.parametrize("policy", ["copy", "markers", "theirs"])
def test_a_conflict_in_a_pinned_block_goes_where_letta_never_reads(
    tmp_path: Path, policy: str
) -> None:
    agent, _ = diverge(
        tmp_path,
        V1_FILES,
        {"system/persona.md": PERSONA.replace("careful", "memfs-careful")},
        {"system/persona.md": PERSONA.replace("careful", "letta-careful")},
    )
    before = set(tree(agent))
    report = sync.sync(agent, policy=policy)
    assert report.ok
    assert_no_block_added(agent, before)
    assert_hook_rules_hold(agent)
    merged = tree(agent)
    assert b"<<<<<<<" not in merged["system/persona.md"]
    if policy == "theirs":
        assert merged["system/persona.md"] == PERSONA.replace("careful", "letta-careful").encode()
        return
    [conflict] = report.conflicts
    assert conflict.path == "system/persona.md" and conflict.resolution == "copy"
    assert conflict.copy_path is not None
    assert conflict.copy_path.startswith(f"{LETTA_CONFLICTS}/system/persona.md.conflict-")
    both = merged["system/persona.md"] + merged[conflict.copy_path]
    assert b"memfs-careful" in both and b"letta-careful" in both  # every edit kept
    assert [(c.path, c.copy_path) for c in find(agent)] == [
        ("system/persona.md", conflict.copy_path)
    ]
    assert (
        "other version at .memfs-conflicts/" in run_cli("-C", str(agent.root), "conflicts").output
    )
    info = resolve(agent, "system/persona.md", "both")
    assert info is not None
    settled = (agent.root / "system/persona.md").read_text()
    assert "memfs-careful" in settled and "letta-careful" in settled
    assert lettafm.validate("system/persona.md", settled, PERSONA, v2=False) == []
    assert not (agent.root / LETTA_CONFLICTS).exists() and find(agent) == []
    assert_git_agrees(agent.root)


def test_markers_still_go_into_a_file_letta_does_not_read(tmp_path: Path) -> None:
    files = {**V1_FILES, "reference/todo.txt": "one\ntwo\n"}
    agent, _ = diverge(
        tmp_path,
        files,
        {"reference/todo.txt": "one (memfs)\ntwo\n"},
        {"reference/todo.txt": "one (letta)\ntwo\n"},
    )
    report = sync.sync(agent, policy="markers")
    assert [c.resolution for c in report.conflicts] == ["markers"]
    assert b"<<<<<<<" in tree(agent)["reference/todo.txt"]


def test_a_v2_root_file_conflict_adds_nothing_in_context(tmp_path: Path) -> None:
    agent, _ = diverge(
        tmp_path,
        V2_FILES,
        {"persona.md": V2_FILES["persona.md"].replace("careful", "memfs-careful")},
        {"persona.md": V2_FILES["persona.md"].replace("careful", "letta-careful")},
    )
    before = set(tree(agent))
    report = sync.sync(agent)
    assert report.ok and len(report.conflicts) == 1
    assert agent.layout is Layout.LETTA_V2
    assert_no_block_added(agent, before)
    assert_hook_rules_hold(agent)


def test_front_matter_and_body_edits_merge_cleanly(tmp_path: Path) -> None:
    agent, _ = diverge(
        tmp_path,
        V1_FILES,
        {"system/human.md": HUMAN.replace("user\n", "user and her garden\n")},
        {"system/human.md": HUMAN + "Likes tomatoes.\n"},
    )
    report = sync.sync(agent)
    assert report.ok and report.conflicts == []
    merged = tree(agent)["system/human.md"].decode()
    assert merged == HUMAN.replace("user\n", "user and her garden\n") + "Likes tomatoes.\n"
    assert_hook_rules_hold(agent)


RULES = "---\ndescription: House rules\nread_only: true\n---\nNever force-push.\n"


def test_a_file_read_only_at_head_keeps_the_heads_version(tmp_path: Path) -> None:
    """Both sides changed a read-only block (the server may; a person may override): Letta's
    hook refuses any change to it in a commit whose parent has it read-only, so the local
    version stays at the path and the remote's is kept as a conflict copy."""
    files = {**V1_FILES, "system/rules.md": RULES}
    agent, _ = diverge(tmp_path, files, {}, {"system/rules.md": RULES + "Rebase often.\n"})
    write(agent.root, "system/rules.md", RULES.replace("Never", "Do not ever"))
    git(agent.root, "commit", "-q", "-am", "a person's override")  # no hook: a person
    ours = (agent.root / "system/rules.md").read_bytes()
    report = sync.sync(agent)
    assert report.ok
    [conflict] = report.conflicts
    assert conflict.kind == "read-only" and conflict.copy_path is not None
    merged = tree(agent)
    assert merged["system/rules.md"] == ours
    assert merged[conflict.copy_path] == (RULES + "Rebase often.\n").encode()
    assert_hook_rules_hold(agent)


def test_a_merge_never_changes_the_heads_read_only_flag(tmp_path: Path) -> None:
    """The server made a block read-only while memfs edited its body: the lines merge
    cleanly, but the merged file would change read_only against the local head, which
    Letta's hook refuses: the head's version stays, the server's is kept as a copy."""
    agent, _ = diverge(
        tmp_path,
        V1_FILES,
        {"system/human.md": HUMAN + "Likes tomatoes.\n"},
        {"system/human.md": HUMAN.replace("---\nName", "read_only: true\n---\nName")},
    )
    report = sync.sync(agent)
    [conflict] = report.conflicts
    assert conflict.copy_path is not None
    merged = tree(agent)
    assert merged["system/human.md"] == (HUMAN + "Likes tomatoes.\n").encode()
    assert b"read_only: true" in merged[conflict.copy_path]
    assert_hook_rules_hold(agent)


# -- a Letta Code peer: plain git with Letta's hooks, Letta Code's own sequence -----------------


def letta_turn(oracle: LettaCode, repo: Path, command: str, args: Mapping[str, object]) -> str:
    """One turn of "Letta Code" on machine B: the agent's memory tool writes and commits
    through Letta's hooks, then the push after the turn (``pull --rebase`` when rejected).
    A rebase that stops on a conflict is resolved as the harness asks the agent to: keep both
    sides' lines, ``git add``, ``rebase --continue`` (the hook runs), push again."""
    oracle.agent_write(repo, command, {"reason": f"memory {command}", **args})
    pushed = oracle.push_after_turn(repo)
    if pushed["status"] == "conflict":
        resolve_rebase_as_the_agent(repo)
        pushed = oracle.push_after_turn(repo)
    assert pushed["status"] in ("pushed", "rebased_and_pushed"), pushed
    return str(pushed["status"])


def resolve_rebase_as_the_agent(repo: Path) -> None:
    conflicted = git(repo, "diff", "--name-only", "--diff-filter=U").split()
    assert conflicted, "a rebase stopped without a conflicted file"
    for path in conflicted:
        text = (repo / path).read_text()
        kept = [line for line in text.splitlines(True) if not line.startswith(MARKER_LINES)]
        (repo / path).write_text("".join(kept))
        git(repo, "add", "--", path)
    environment = {**os.environ, "GIT_EDITOR": "true"}
    completed = subprocess.run(
        ["git", "rebase", "--continue"], cwd=repo, env=environment, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr  # the hook accepted it


MARKER_LINES = ("<<<<<<< ", "=======", ">>>>>>> ")


def memfs_commits(repo: Path) -> list[str]:
    """Every commit memfs made (its trailer) in ``repo``'s history, oldest first."""
    shas = git(repo, "rev-list", "--reverse", "--grep", "^Memfs-Origin:", "HEAD").split()
    assert shas
    return shas


def test_letta_code_peer_converges_with_memfs(letta_code: LettaCode, tmp_path: Path) -> None:
    """Machine A runs memfs sync, machine B is Letta Code (its memory tool, hooks, pull and
    push after each turn) on one bare remote: same file, other files, front matter and body,
    conflicts on both sides, B rebasing over memfs's merge commits. Both converge, every
    edit is kept, and Letta's hook accepts every commit memfs made."""
    hub = bare_repo(tmp_path / "hub" / "memory.git")
    b = lettacode.letta_v1_repo(letta_code, tmp_path / "machine-b" / "memory")
    git(b, "remote", "add", "origin", str(hub))
    git(b, "push", "-q", "-u", "origin", "main")
    a = sync.clone(str(hub), tmp_path / "machine-a" / "memory")
    assert a.layout is Layout.LETTA_V1
    initial = set(tree(a))

    def edit_a(path: str, change: Callable[[str], str]) -> None:
        write(a.root, path, change((a.root / path).read_text()))

    def body_line(path: str) -> str:
        return lettafm.parse((b / path).read_text()).body.splitlines()[0]

    # 1. other files: B pushes first, memfs merges.
    edit_a("system/human.md", lambda text: text + "A1 likes tomatoes\n")
    letta_code.pull(b)
    notes = body_line("reference/notes.md")
    letta_turn(letta_code, b, "str_replace", {
        "file_path": "reference/notes.md", "old_string": notes, "new_string": notes + "\nB1 note",
    })  # fmt: skip
    assert sync.sync(a).remotes[0].integrated == "merged"
    # 2. one file, front matter (memfs) and body (Letta Code): B pulls memfs's merge first.
    letta_code.pull(b)
    project = body_line("system/project/x.md")
    letta_turn(letta_code, b, "str_replace", {
        "file_path": "system/project/x.md", "old_string": project, "new_string": project + "\nB2",
    })  # fmt: skip
    edit_a("system/project/x.md", lambda t: lettafm.set_field(t, "description", "A2 project"))
    assert sync.sync(a).remotes[0].integrated == "merged"
    # 3. the same line on both: memfs merges, the other version goes where Letta never reads.
    letta_code.pull(b)
    persona = body_line("system/persona.md")
    letta_turn(letta_code, b, "str_replace", {
        "file_path": "system/persona.md", "old_string": persona, "new_string": persona + " B3",
    })  # fmt: skip
    edit_a("system/persona.md", lambda text: text.replace(persona, persona + " A3", 1))
    report = sync.sync(a)
    assert [c.path for c in report.conflicts] == ["system/persona.md"]
    # 4. memfs pushes first: B's push is rejected and it rebases over memfs's merge commits.
    edit_a("system/human.md", lambda text: text + "A4 grows basil\n")
    assert sync.sync(a).ok
    notes = body_line("reference/notes.md")
    status = letta_turn(letta_code, b, "str_replace", {
        "file_path": "reference/notes.md", "old_string": notes, "new_string": "B4 " + notes,
    })  # fmt: skip
    assert status == "rebased_and_pushed"
    # 5. the same line again, memfs first: B's rebase stops on a conflict the agent resolves.
    letta_code.pull(b)
    human = body_line("system/human.md")
    edit_a("system/human.md", lambda text: text.replace(human, human + " A5", 1))
    assert sync.sync(a).ok
    letta_turn(letta_code, b, "str_replace", {
        "file_path": "system/human.md", "old_string": human, "new_string": human + " B5",
    })  # fmt: skip
    # 6. both edit again and memfs merges; then both settle.
    edit_a("reference/notes.md", lambda text: text + "A6 note\n")
    letta_code.pull(b)
    letta_turn(letta_code, b, "update_description", {
        "file_path": "system/human.md", "description": "B6 what I know about Ada",
    })  # fmt: skip
    assert sync.sync(a).ok
    assert letta_code.pull(b)["step"] == "ff-only"

    head = git(b, "rev-parse", "HEAD").strip()
    assert a.history.head() == head == git(hub, "rev-parse", "main").strip()
    assert git(b, "status", "--porcelain") == "" and a.status().clean
    final = tree(a)
    assert {path: (b / path).read_bytes() for path in final} == final
    everything = b"".join(final.values()).decode()
    for token in ("A1", "B1", "A2", "B2", "A3", "B3", "A4", "B4", "A5", "B5", "A6", "B6"):
        assert token in everything, token
    assert_no_block_added(a, initial)
    verdicts = [lettacode.hook_verdict(letta_code, b, sha) for sha in memfs_commits(b)]
    assert [v for v in verdicts if not v.accepted] == []
    assert_git_agrees(a.root)


def write_whole(root: Path, path: str, text: str) -> None:
    """Write ``path`` the way an editor saves: a temp file beside it, renamed over it."""
    target = root / path
    temp = target.with_name(f".{target.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, target)


def test_letta_code_peer_and_the_memfs_watcher_converge(
    letta_code: LettaCode, tmp_path: Path
) -> None:
    """The same with memfs's watcher on machine A, editing at the same time as Letta Code:
    whichever push loses (memfs merges, or Letta Code rebases), both end on one commit.

    A's edits are written whole (temp file, rename): a plain write truncates first, and a
    watcher with a 50 ms quiet time on a loaded machine may commit the empty file between.
    A's checkout has no Letta hook installed, so nothing holds that commit back, and B's hook
    flags it afterwards: the test is about convergence, not torn writes."""
    from memfs.watcher import Watcher, WatchSettings

    hub = bare_repo(tmp_path / "hub" / "memory.git")
    b = lettacode.letta_v1_repo(letta_code, tmp_path / "machine-b" / "memory")
    git(b, "remote", "add", "origin", str(hub))
    git(b, "push", "-q", "-u", "origin", "main")
    a = sync.clone(str(hub), tmp_path / "machine-a" / "memory")
    initial = set(tree(a))
    fast = WatchSettings(quiet_ms=50, max_delay_ms=500, poll_s=0.1, rescan_s=3600)
    persona = lettafm.parse((b / "system/persona.md").read_text()).body.splitlines()[0]
    with Watcher(a, fast):
        for round_number in range(3):
            write_whole(
                a.root,
                "system/human.md",
                (a.root / "system/human.md").read_text() + f"memfs-human-{round_number}\n",
            )
            text = (a.root / "system/persona.md").read_text()
            write_whole(
                a.root,
                "system/persona.md",
                text.replace(persona, f"{persona} memfs-persona-{round_number}", 1),
            )
            letta_code.pull(b)
            current = lettafm.parse((b / "system/persona.md").read_text()).body.splitlines()[0]
            letta_turn(letta_code, b, "str_replace", {
                "file_path": "system/persona.md", "old_string": current,
                "new_string": f"{current} letta-persona-{round_number}",
            })  # fmt: skip

        def settled() -> bool:
            hub_head = git(hub, "rev-parse", "main").strip()
            return a.history.head() == hub_head and a.status().clean

        wait_for(settled, timeout=30, what="machine A to merge and push everything")
    assert letta_code.pull(b)["step"] == "ff-only"
    assert a.history.head() == git(b, "rev-parse", "HEAD").strip()
    final = tree(a)
    assert {path: (b / path).read_bytes() for path in final} == final
    everything = b"".join(final.values()).decode()
    for number in range(3):
        for token in ("memfs-human", "memfs-persona", "letta-persona"):
            assert f"{token}-{number}" in everything, (token, number)
    assert_no_block_added(a, initial)
    verdicts = [lettacode.hook_verdict(letta_code, b, sha) for sha in memfs_commits(b)]
    assert [v for v in verdicts if not v.accepted] == []


def test_a_v2_repo_conflict_with_a_letta_code_peer(letta_code: LettaCode, tmp_path: Path) -> None:
    """MemFS v2: Letta's hook checks every projected file and the tree on every commit; the
    other version of an in-context root file goes where v2 never projects, and memfs's merge
    passes the hook (root-marker policy, as Letta Code installs it)."""
    hub = bare_repo(tmp_path / "hub" / "memory.git")
    b = lettacode.letta_v2_repo(letta_code, tmp_path / "machine-b" / "memory")
    git(b, "remote", "add", "origin", str(hub))
    git(b, "push", "-q", "-u", "origin", "main")
    a = sync.clone(str(hub), tmp_path / "machine-a" / "memory")
    assert a.layout is Layout.LETTA_V2
    initial = set(tree(a))
    line = lettafm.parse((b / "persona.md").read_text()).body.splitlines()[0]
    write(a.root, "persona.md", (a.root / "persona.md").read_text().replace(line, line + " A"))
    letta_turn(letta_code, b, "str_replace", {
        "file_path": "persona.md", "old_string": line, "new_string": line + " B",
    })  # fmt: skip
    report = sync.sync(a)
    assert [c.path for c in report.conflicts] == ["persona.md"]
    assert letta_code.pull(b)["step"] == "ff-only"
    assert a.history.head() == git(b, "rev-parse", "HEAD").strip()
    assert_no_block_added(a, initial)
    everything = b"".join(tree(a).values()).decode()
    assert f"{line} A" in everything and f"{line} B" in everything
    verdicts = [lettacode.hook_verdict(letta_code, b, sha) for sha in memfs_commits(b)]
    assert [v for v in verdicts if not v.accepted] == []


def memfs_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The memfs CLI as a separate process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "memfs", *args], cwd=cwd, capture_output=True, text=True
    )


def test_the_cli_clones_syncs_and_resolves_a_letta_repo(tmp_path: Path) -> None:
    url, letta = published(tmp_path, V1_FILES)
    cloned = memfs_cli("clone", url, "garden", cwd=tmp_path)
    assert cloned.returncode == 0, cloned.stderr
    assert "Cloned garden into" in cloned.stdout and "(3 memory files)" in cloned.stdout
    root = tmp_path / "garden"
    write(root, "system/human.md", HUMAN.replace("Ada", "Ada Lovelace"))
    commit_files(letta, {"system/human.md": HUMAN.replace("Ada", "Ada King")}, "letta edit")
    git(letta, "push", "-q")
    synced = memfs_cli("sync", "--conflict", "markers", cwd=root)
    assert synced.returncode == 0, synced.stderr
    assert "other version at .memfs-conflicts/system/human.md.conflict-" in synced.stdout
    listed = memfs_cli("conflicts", "--json", cwd=root)
    [conflict] = json.loads(listed.stdout)
    assert conflict["path"] == "system/human.md"
    other = (root / conflict["copy_path"]).read_text()  # the older side's, whichever it is
    assert {other, (root / "system/human.md").read_text()} == {
        HUMAN.replace("Ada", "Ada King"),
        HUMAN.replace("Ada", "Ada Lovelace"),
    }
    settled = memfs_cli("resolve", conflict["copy_path"], "--keep", "theirs", cwd=root)
    assert settled.returncode == 0, settled.stderr
    assert (root / "system/human.md").read_text() == other
    assert not (root / LETTA_CONFLICTS).exists()
    assert_git_agrees(root)

    plain = plain_repo(tmp_path / "plain", {"README.md": "a project\n"})
    refused = memfs_cli("clone", str(plain), "elsewhere", cwd=tmp_path)
    assert refused.returncode == 7 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "not a Letta Code memory repo" in refused.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_a_merge_that_leaves_a_read_only_file_as_at_head_is_no_conflict() -> None:
    """Read-only at the head, changed on both sides, but the other side's change is already
    in the head's version: the merge keeps the head's bytes, which the hook accepts."""
    blobs: dict[str, bytes] = {}

    def store(data: bytes) -> str:
        blobs[blob_sha(data)] = data
        return blob_sha(data)

    def entry(text: str) -> TreeEntry:
        return TreeEntry(0o100644, store(text.encode()))

    base = RULES + "two\nthree\nfour\n"
    ours = RULES.replace("Never", "Do not ever") + "two\nthree\nfour (both)\n"
    theirs = RULES + "two\nthree\nfour (both)\n"
    result = merge(
        {"system/rules.md": entry(base)},
        Side({"system/rules.md": entry(ours)}, "a" * 40, "aaaaaaa"),
        Side({"system/rules.md": entry(theirs)}, "b" * 40, "bbbbbbb"),
        read=blobs.__getitem__,
        store=store,
        layout=Layout.LETTA_V1,
    )
    assert result.conflicts == [] and result.files == {"system/rules.md": entry(ours)}
    other = merge(
        {"system/rules.md": entry(base)},
        Side({"system/rules.md": entry(ours)}, "a" * 40, "aaaaaaa"),
        Side({"system/rules.md": entry(theirs.replace("two", "2"))}, "b" * 40, "bbbbbbb"),
        read=blobs.__getitem__,
        store=store,
        layout=Layout.LETTA_V1,
    )
    assert [(c.kind, c.copy_path) for c in other.conflicts] == [
        ("read-only", ".memfs-conflicts/system/rules.md.conflict-bbbbbbb")
    ]
    assert other.files["system/rules.md"] == entry(ours)


def test_the_servers_edit_of_a_read_only_block_comes_through_a_merge(tmp_path: Path) -> None:
    """Only the server (or a person) changes a read-only block; Letta Code takes such an edit
    with ``pull --rebase``, which runs no hook, and so does a memfs merge: it is never
    reverted to the local version, whatever else memfs committed meanwhile."""
    files = {**V1_FILES, "system/rules.md": RULES}
    agent, _ = diverge(
        tmp_path,
        files,
        {"reference/notes.md": NOTES + "- memfs's note\n"},
        {"system/rules.md": RULES + "Rebase often.\n"},
    )
    report = sync.sync(agent)
    assert report.ok and report.conflicts == []
    merged = tree(agent)
    assert merged["system/rules.md"] == (RULES + "Rebase often.\n").encode()
    assert merged["reference/notes.md"] == (NOTES + "- memfs's note\n").encode()


def test_a_letta_clone_killed_midway_is_refused_then_finished(tmp_path: Path) -> None:
    """A stopped clone of a Letta repo is marked unfinished like any (its [memfs] identity
    is written before its files): refused by other commands, finished by the same clone."""
    url, _ = published(tmp_path, V1_FILES)
    killed = subprocess.run(
        [sys.executable, "-m", "memfs", "clone", url, "garden"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "MEMFS_CRASH_AT": "checkout.finish"},
    )
    assert killed.returncode != 0
    status = memfs_cli("status", cwd=tmp_path / "garden")
    assert status.returncode == 3 and "unfinished checkout" in status.stderr
    finished = memfs_cli("clone", url, "garden", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    agent = memfs.open(tmp_path / "garden")
    assert agent.layout is Layout.LETTA_V1 and agent.status().clean
    assert tree(agent) == {path: text.encode() for path, text in V1_FILES.items()}


# -- a held read-only edit met by a merge ------------------------------------------------------

RULES_PATH = "system/rules.md"
READ_ONLY = "---\ndescription: House rules\nread_only: true\n---\nNever force-push.\n"
FROM_SERVER = READ_ONLY + "Ask before deleting.\n"
HELD = READ_ONLY.replace("Never force-push.", "my own rule")


def held_edit_met_by_the_server(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A memfs clone of a Letta repo with an uncommitted edit of a read-only block (held: Letta
    lets no commit change it) and a committed edit of another file, while the server changed
    that block and pushed it. Returns the clone's root, the hub and the server's repo."""
    url, server = published(tmp_path, {**V1_FILES, RULES_PATH: READ_ONLY})
    with sync.clone(url, tmp_path / "a" / "memory") as agent:
        root = agent.root
    commit_files(server, {RULES_PATH: FROM_SERVER}, "Update system/rules.md")
    git(server, "push", "-q")
    write(root, RULES_PATH, HELD)
    write(root, "reference/notes.md", NOTES + "- from memfs\n")
    return root, Path(url), server


def held_copies(agent: memfs.Agent) -> dict[str, bytes]:
    return {path: data for path, data in tree(agent).items() if path.startswith(LETTA_CONFLICTS)}


def assert_held_edit_set_aside(root: Path, hub: Path) -> str:
    """The held edit is committed as one copy where Letta never loads it, the server's
    version is at the path, every other edit is kept, and the hub has it all; the copy."""
    with memfs.open(root) as agent:
        copies = held_copies(agent)
        assert list(copies.values()) == [HELD.encode()], sorted(tree(agent))
        [copy] = copies
        assert copy.startswith(f"{LETTA_CONFLICTS}/{RULES_PATH}.conflict-")
        merged = tree(agent)
        assert merged[RULES_PATH] == FROM_SERVER.encode()
        assert (root / RULES_PATH).read_text() == FROM_SERVER
        assert merged["reference/notes.md"] == (NOTES + "- from memfs\n").encode()
        assert [(c.path, c.copy_path) for c in find(agent)] == [(RULES_PATH, copy)]
        assert agent.status().clean
        assert agent.history.head() == git(hub, "rev-parse", "main").strip()
        assert not [p for p in merged if p.endswith(".md") and p not in V1_FILES][1:], (
            "no block added but the server's"
        )
    return copy


def test_the_cli_sync_sets_a_held_read_only_edit_aside_and_converges(tmp_path: Path) -> None:
    """Before: exit 6 on every sync until a person moved the file. Now the edit is kept as a
    committed copy, the merge goes on, and the next sync has nothing to do."""
    root, hub, server = held_edit_met_by_the_server(tmp_path)
    synced = memfs_cli("sync", cwd=root)
    assert synced.returncode == 0, synced.stderr
    copy = assert_held_edit_set_aside(root, hub)
    assert f"conflict in {RULES_PATH} (held): other version at {copy}" in synced.stdout
    status = memfs_cli("status", cwd=root)
    assert f"  {RULES_PATH}: other version at {copy}\n" in status.stdout, status.stdout
    again = memfs_cli("sync", cwd=root)
    assert again.returncode == 0 and "conflict" not in again.stdout, again.stdout
    git(server, "pull", "-q", "--rebase")
    assert (server / copy).read_text() == HELD and (server / RULES_PATH).read_text() == FROM_SERVER
    assert_git_agrees(root)


def test_the_watcher_sets_a_held_read_only_edit_aside_and_converges(tmp_path: Path) -> None:
    """The watcher no longer logs the same error every cycle: it merges, pushes, and says
    where the held edit went."""
    from memfs.watcher import Watcher, WatchSettings

    root, hub, _ = held_edit_met_by_the_server(tmp_path)
    fast = WatchSettings(quiet_ms=50, max_delay_ms=500, poll_s=0.1, rescan_s=3600)
    logged: list[str] = []
    with memfs.open(root) as agent, Watcher(agent, fast, logged.append):

        def settled() -> bool:
            return agent.history.head() == git(hub, "rev-parse", "main").strip() and bool(
                held_copies(agent)
            )

        wait_for(settled, timeout=30, what="the watcher to merge and push")
    copy = assert_held_edit_set_aside(root, hub)
    assert f"conflict in {RULES_PATH} (held): other version at {copy}" in logged, logged
    assert not [line for line in logged if line.startswith("error:")], logged


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "point",
    [
        "commit.objects:2",  # the copy is written, its commit not yet made
        "apply.moved:2",  # the copy is committed, the merge has the held file moved aside
        "apply.commit",  # the merge's files are written, the merge not committed
        "update.index",  # the merge is committed, the index not yet rewritten
    ],
)
def test_a_held_edit_set_aside_survives_kill_9(tmp_path: Path, point: str) -> None:
    """kill -9 at each step of setting a held edit aside: the edit is on disk or committed
    after every kill, and the next sync finishes the job."""
    root, hub, _ = held_edit_met_by_the_server(tmp_path)
    killed = subprocess.run(
        [sys.executable, "-m", "memfs", "sync"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "MEMFS_CRASH_AT": point},
        check=False,
    )
    assert killed.returncode == -9, f"{point} not reached: {killed.returncode} {killed.stderr}"
    with memfs.open(root) as agent:
        kept = [data for data in held_copies(agent).values()]
        on_disk = [p.read_bytes() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts]
        assert HELD.encode() in kept + on_disk, f"the held edit is lost at {point}"
    synced = memfs_cli("sync", cwd=root)
    assert synced.returncode == 0, synced.stderr
    assert memfs_cli("sync", cwd=root).returncode == 0
    assert_held_edit_set_aside(root, hub)
    assert_git_agrees(root)


def test_pull_ff_only_still_stops_on_a_held_edit_and_commits_nothing(tmp_path: Path) -> None:
    """A copy's commit would make the histories diverge: --ff-only keeps the old answer."""
    root, _, _ = held_edit_met_by_the_server(tmp_path)
    write(root, "reference/notes.md", NOTES)  # only the held edit: a fast-forward
    before = git(root, "rev-parse", "HEAD")
    pulled = memfs_cli("pull", "--ff-only", cwd=root)
    assert pulled.returncode == 6, pulled.stderr
    assert RULES_PATH in pulled.stderr and "read_only" in pulled.stderr
    assert git(root, "rev-parse", "HEAD") == before and (root / RULES_PATH).read_text() == HELD
    assert not (root / LETTA_CONFLICTS).exists()


def test_a_held_deletion_of_a_read_only_block_gives_way_to_the_servers_edit(
    tmp_path: Path,
) -> None:
    """Deleting a read-only block is held too; met by the server's edit it comes back with that
    edit, as a delete-vs-modify merge keeps the modified file (nothing to copy)."""
    root, hub, _ = held_edit_met_by_the_server(tmp_path)
    (root / RULES_PATH).unlink()
    with memfs.open(root) as agent:
        report = sync.sync(agent)
        assert report.ok
        assert [(c.path, c.kind, c.copy_path) for c in report.conflicts] == [
            (RULES_PATH, "held", None)
        ]
        assert tree(agent)[RULES_PATH] == FROM_SERVER.encode()
        assert (root / RULES_PATH).read_text() == FROM_SERVER
        assert held_copies(agent) == {} and agent.status().clean
        assert agent.history.head() == git(hub, "rev-parse", "main").strip()
