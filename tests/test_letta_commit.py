"""Commits in Letta Code repos: read_only means what it means in Letta, and with Letta's hooks
installed every commit memfs makes is one they accept (each is replayed through the real hook).

The repos are made by Letta Code's own code (tests/lettacode.py); refused changes stay in the
work tree, reported as ``path:line: what is wrong``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import memfs
from memfs import lettahook, lettahookscript
from memfs.errors import CommitRefusedError, MemfsError
from memfs.layout import Layout
from memfs.watcher import Watcher, WatchSettings

from .conftest import git, write
from .lettacode import (
    READ_ONLY_RULES,
    LettaCode,
    hook_verdict,
    letta_repo,
    remove_hooks,
    server_commit,
)
from .lettahook_check import (
    assert_letta_hook_accepts,
    assert_letta_hook_refuses,
    commits_since,
    hook_messages,
)

RULES = "system/rules.md"
HUMAN = "system/human.md"


def memfs_cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The memfs CLI as a user runs it: a whole process."""
    return subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def committed(repo: Path, path: str) -> str:
    return git(repo, "show", f"HEAD:{path}")


def edit(repo: Path, path: str, old: str, new: str) -> None:
    target = repo / path
    text = target.read_text(encoding="utf-8")
    assert old in text, (path, old, text)
    target.write_text(text.replace(old, new, 1), encoding="utf-8")


# -- read_only ---------------------------------------------------------------------------------


def test_commit_keeps_an_edit_of_a_read_only_file_in_the_work_tree(
    letta_code: LettaCode, letta_v1_repo: Path
) -> None:
    repo = letta_v1_repo
    base = head(repo)
    edit(repo, RULES, "Never force-push.", "Force-push whenever.")
    edit(repo, HUMAN, "Name: Ada", "Name: Ada Lovelace")
    result = memfs_cli(repo, "commit")
    assert result.returncode == 1, result.stderr
    assert (
        "memfs: not committed, kept in the work tree: "
        "system/rules.md:1: file is read_only and cannot be modified\n"
    ) in result.stderr
    assert "Force-push whenever." in (repo / RULES).read_text(), "the edit is never lost"
    assert "Never force-push." in committed(repo, RULES)
    assert "Name: Ada Lovelace" in committed(repo, HUMAN), "the rest is committed"
    assert_letta_hook_accepts(letta_code, repo, commits_since(repo, base))
    assert git(repo, "status", "--porcelain") == f" M {RULES}\n"

    status = json.loads(memfs_cli(repo, "status", "--json").stdout)
    assert status["changes"] == [{"path": RULES, "status": "modified"}]
    assert status["held"] == [
        {
            "path": RULES,
            "line": 1,
            "message": "file is read_only and cannot be modified",
            "severity": "error",
        }
    ]
    text = memfs_cli(repo, "status").stdout
    assert f"  modified:  {RULES}  (kept out of commits, see below)" in text
    assert f"  {RULES}:1: file is read_only and cannot be modified" in text
    check = memfs_cli(repo, "check")
    assert check.returncode == 1
    assert f"{RULES}:1: file is read_only and cannot be modified" in check.stdout.splitlines()


def test_a_person_may_change_a_read_only_file_on_purpose(
    letta_code: LettaCode, letta_v1_repo: Path
) -> None:
    repo = letta_v1_repo
    edit(repo, RULES, "Never force-push.", "Force-push on Fridays.")
    result = memfs_cli(repo, "commit", "--allow-read-only", RULES, "-m", "owner's edit")
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"memfs: {RULES} is read-only in Letta: changed on purpose (Letta's hook would refuse it)\n"
    )
    assert "Force-push on Fridays." in committed(repo, RULES)
    # what the person chose is what git commit --no-verify does: Letta's hook refuses it
    assert_letta_hook_refuses(letta_code, repo, "HEAD", "file is read_only and cannot be modified")


def test_an_agent_or_the_watcher_never_lifts_read_only(letta_v1_repo: Path) -> None:
    edit(letta_v1_repo, RULES, "Never force-push.", "Anything goes.")
    with memfs.open(letta_v1_repo) as agent:
        for origin in ("watch", "mount", "merge"):
            with pytest.raises(MemfsError, match="only a person's command"):
                agent.commit(origin=origin, allow_read_only=(RULES,))
        assert agent.commit(origin="watch") is None
        assert [r.render() for r in agent.held] == [
            f"{RULES}:1: file is read_only and cannot be modified"
        ]


def test_the_watcher_commits_around_a_read_only_edit_and_logs_it(
    letta_code: LettaCode, letta_v1_repo: Path
) -> None:
    repo = letta_v1_repo
    base = head(repo)
    messages: list[str] = []
    with memfs.open(repo) as agent:
        watcher = Watcher(
            agent, WatchSettings(push=False, poll_s=3600, rescan_s=3600), messages.append
        )
        edit(repo, RULES, "Never force-push.", "Rewrite history freely.")
        edit(repo, HUMAN, "Name: Ada", "Name: Ada, the countess")
        watcher.step([RULES, HUMAN])
        (repo / RULES).unlink()  # deleting it is no better
        watcher.step([RULES])
        watcher._next_rescan = 0.0
        watcher.step([])
    assert "Name: Ada, the countess" in committed(repo, HUMAN)
    assert "Never force-push." in committed(repo, RULES)
    assert_letta_hook_accepts(letta_code, repo, commits_since(repo, base))
    held = [m for m in messages if m.startswith("not committed")]
    assert held == [
        f"not committed (kept in the work tree): {RULES}:1: file is read_only and cannot be modified",
        f"not committed (kept in the work tree): {RULES}:1: file is read_only and cannot be deleted",
    ]


@pytest.mark.parametrize("hooks", [True, False], ids=["hooks", "no-hooks"])
@pytest.mark.parametrize(
    ("path", "old", "new", "message", "line"),
    [
        (
            HUMAN,
            "---\n",
            "---\nread_only: true\n",
            "'read_only' is a protected field and cannot be changed by the agent",
            2,
        ),
        (
            RULES,
            "read_only: true",
            "read_only: false",
            "file is read_only and cannot be modified",
            1,
        ),
        (RULES, "read_only: true\n", "", "file is read_only and cannot be modified", 1),
        (
            "system/new.md",
            None,
            "---\ndescription: mine now\nread_only: true\n---\nx\n",
            "'read_only' is a protected field and cannot be set by the agent",
            3,
        ),
    ],
    ids=["added", "flipped", "removed", "new-file"],
)
def test_read_only_is_never_added_flipped_or_removed(
    letta_code: LettaCode,
    letta_v1_repo: Path,
    hooks: bool,
    path: str,
    old: str | None,
    new: str,
    message: str,
    line: int,
) -> None:
    repo = letta_v1_repo
    if not hooks:
        remove_hooks(repo)
    base = head(repo)
    if old is None:
        write(repo, path, new)
    else:
        edit(repo, path, old, new)
    with memfs.open(repo) as agent:
        assert agent.commit() is None
        assert [r.render() for r in agent.held] == [f"{path}:{line}: {message}"]
    assert head(repo) == base
    if hooks:  # the real hook says the same of that commit
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--no-verify", "-m", "as git would")
        assert_letta_hook_refuses(letta_code, repo, "HEAD", f"{path}: {message}")


def test_restore_and_revert_across_a_read_only_change_are_refused(letta_v1_repo: Path) -> None:
    repo = letta_v1_repo
    before = committed(repo, HUMAN)
    # the server makes human.md read-only (a person set the block read-only in the ADE)
    protected = before.replace("---\n", "---\nread_only: true\n", 1).replace("Ada", "Ada L.")
    server_commit(repo, {HUMAN: protected}, "Update system/human.md")
    locked = head(repo)
    restore = memfs_cli(repo, "restore", HUMAN, "--to", "HEAD~1")
    assert restore.returncode == 1
    assert restore.stderr.startswith(
        f"memfs: cannot restore {HUMAN}: {HUMAN}:1: file is read_only and cannot be modified"
    )
    assert "nothing was changed; --allow-read-only changes read-only files on purpose" in (
        restore.stderr
    )
    revert = memfs_cli(repo, "revert", "HEAD")
    assert revert.returncode == 1 and "file is read_only and cannot be modified" in revert.stderr
    # and restoring a read-only version over a writable one would add the flag
    assert memfs_cli(repo, "revert", "--allow-read-only", "HEAD").returncode == 0
    assert committed(repo, HUMAN) == before
    added = memfs_cli(repo, "restore", HUMAN, "--to", locked)
    assert added.returncode == 1
    assert "'read_only' is a protected field and cannot be changed by the agent" in added.stderr
    assert committed(repo, HUMAN) == before and (repo / HUMAN).read_text() == before
    assert git(repo, "status", "--porcelain") == ""


def test_a_held_edit_stops_a_restore_that_would_overwrite_it(letta_v1_repo: Path) -> None:
    repo = letta_v1_repo
    edit(repo, RULES, "Never force-push.", "my local note")
    result = memfs_cli(repo, "restore", "system", "--to", "HEAD~1", "--allow-read-only")
    assert result.returncode == 1
    assert "an uncommitted edit there would be overwritten" in result.stderr
    assert "my local note" in (repo / RULES).read_text()


# -- Letta's hook installed: never a commit it rejects -----------------------------------------

BROKEN_V1 = {
    "system/no_description.md": "---\nlimit: 100\n---\nforgot the description\n",
    "reference/tagged.md": "---\ndescription: tagged note\ntags: a, b\n---\nbody\n",
    "skills/flat.md": "---\nname: flat\ndescription: a flat skill\n---\nnot a folder\n",
    "system/no_front_matter.md": "just text\n",
}
GOOD_V1 = {"reference/fine.md": "---\ndescription: a fine note\n---\nall good\n"}


def _hook_messages(oracle: LettaCode, repo: Path) -> set[str]:
    """What Letta's real hook prints for the whole work tree as one commit (not kept)."""
    base = head(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", "everything, as plain git would")
    messages = hook_messages(oracle, repo, "HEAD")
    git(repo, "reset", "-q", "--mixed", base)
    assert messages
    return messages


def test_with_hooks_files_the_hook_refuses_stay_out_and_the_rest_goes_in(
    letta_code: LettaCode, letta_v1_repo: Path
) -> None:
    repo = letta_v1_repo
    base = head(repo)
    for path, text in {**BROKEN_V1, **GOOD_V1}.items():
        write(repo, path, text)
    real = _hook_messages(letta_code, repo)
    check = memfs_cli(repo, "check")
    assert check.returncode == 1
    # every message the real hook prints, memfs check prints (located to a line)
    assert real <= {_unlocated(line) for line in check.stdout.splitlines()}, check.stdout
    result = memfs_cli(repo, "commit")
    assert result.returncode == 1
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["reference/fine.md"]
    for path in BROKEN_V1:
        assert path in result.stderr and (repo / path).exists()
    assert "system/no_description.md:1: missing required field 'description'" in result.stderr
    assert "reference/tagged.md:3: unknown frontmatter key 'tags'" in result.stderr
    assert_letta_hook_accepts(letta_code, repo, commits_since(repo, base))


def _unlocated(line: str) -> str:
    """``path:3: message`` -> ``path: message`` (the hook's own form)."""
    path, _, rest = line.partition(":")
    _, _, message = rest.partition(": ")
    return f"{path}: {message}"


def test_without_hooks_a_broken_file_is_committed_and_reported(letta_v1_repo: Path) -> None:
    repo = letta_v1_repo
    remove_hooks(repo)
    for path, text in BROKEN_V1.items():
        write(repo, path, text)
    result = memfs_cli(repo, "commit")
    assert result.returncode == 0, result.stderr
    for path, text in BROKEN_V1.items():
        assert committed(repo, path) == text
    check = memfs_cli(repo, "check")
    assert check.returncode == 1
    assert "system/no_description.md:1: missing required field 'description'" in check.stdout


# -- MemFS v2 ----------------------------------------------------------------------------------


def test_v2_rules_and_tree_constraints_hold_what_the_hook_refuses(
    letta_code: LettaCode, letta_v2_repo: Path
) -> None:
    repo = letta_v2_repo
    base = head(repo)
    write(repo, "nameless.md", '---\ndescription: "no name"\n---\nbody\n')
    write(repo, "notes/loose.md", '---\nname: "Loose"\ndescription: "x"\n---\nno index\n')
    write(repo, "big.md", '---\nname: "Big"\ndescription: "big"\n---\n' + "x" * 20001)
    write(repo, "skills/flat.md", "---\nname: flat\ndescription: flat\n---\n")
    write(repo, "fine.md", '---\nname: "Fine"\ndescription: "fine"\n---\nok\n')
    edit(repo, "projects/letta.md", "agents with memory", "agents that remember")
    (repo / "projects/MEMORY.md").unlink()
    with memfs.open(repo) as agent:
        assert agent.layout is Layout.LETTA_V2
        info = agent.commit()
        assert info is not None
        held = sorted(r.render() for r in agent.held)
    assert held == [
        "big.md:1: 20040 characters exceeds 20000 from maxFileCharacters",
        "nameless.md:1: missing required field 'name'",
        "notes/loose.md:1: missing required index notes/MEMORY.md",
        "projects/MEMORY.md:1: projects/letta.md: missing required index projects/MEMORY.md",
        "skills/flat.md:1: invalid skill path (skills must be folders). Use skills/<name>/SKILL.md",
    ]
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        "fine.md",
        "projects/letta.md",
    ]
    assert (repo / "big.md").exists() and not (repo / "projects/MEMORY.md").exists()
    assert_letta_hook_accepts(letta_code, repo, commits_since(repo, base))


def test_v2_a_tree_the_hook_refuses_at_head_blocks_every_commit(
    letta_code: LettaCode, letta_v2_repo: Path
) -> None:
    repo = letta_v2_repo
    # the server writes a block over the limit (its commits run no client hook)
    server_commit(
        repo, {"huge.md": '---\nname: "Huge"\ndescription: "h"\n---\n' + "y" * 30000}, "x"
    )
    base = head(repo)
    edit(repo, "persona.md", "I am careful.", "I am very careful.")
    result = memfs_cli(repo, "commit")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "memfs: Letta's hook refuses every commit until this is fixed: "
        "huge.md:1: 30038 characters exceeds 20000 from maxFileCharacters",
        "memfs: not committed, kept in the work tree: persona.md:1: waits: Letta's hook refuses"
        " every commit until the error above is fixed",
    ]
    assert head(repo) == base, "Letta's hook would refuse any commit: memfs makes none"
    status = json.loads(memfs_cli(repo, "status", "--json").stdout)
    assert status["blocked"] is True
    # the person fixes it: the fix and the waiting edit go in together
    (repo / "huge.md").write_text('---\nname: "Huge"\ndescription: "h"\n---\nsmall now\n')
    assert memfs_cli(repo, "commit").returncode == 0
    assert_letta_hook_accepts(letta_code, repo, commits_since(repo, base))


def test_v2_config_changes_need_the_human_approval_the_hook_asks_for(
    letta_v2_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = letta_v2_repo
    config = json.loads((repo / ".memfs.config.json").read_text())
    (repo / ".memfs.config.json").write_text(json.dumps({**config, "maxDepth": 5}))
    with memfs.open(repo) as agent:
        assert agent.commit() is None
        assert [r.render() for r in agent.held] == [
            ".memfs.config.json:1: is protected and requires human approval to change"
        ]
        monkeypatch.setenv(lettahookscript.CONFIG_UPDATE_ENV, "1")
        assert agent.commit() is not None


# -- memfs-native agents are unchanged ---------------------------------------------------------


def test_native_agents_commit_read_only_files_and_limits_as_before(agent: memfs.Agent) -> None:
    write(agent.root, "system/rules.md", "---\ndescription: rules\nread_only: true\n---\nx\n")
    agent.commit()
    write(agent.root, "system/rules.md", "---\ndescription: rules\nread_only: false\n---\ny\n")
    write(agent.root, "system/human.md", "---\ndescription: me\nlimit: 3\n---\ntoo long\n")
    info = agent.commit()
    assert info is not None and agent.held == []
    assert agent.history.file_at(agent.history.head(), "system/rules.md").endswith(b"y\n")
    assert agent.status().held == []


def test_hook_detection_reads_letta_code_s_marker(tmp_path: Path, letta_code: LettaCode) -> None:
    repo = letta_repo(letta_code, tmp_path / "r", "v1", {HUMAN: "---\ndescription: h\n---\n"})
    control = repo / ".git"
    assert lettahook.hook_installed(control)
    assert lettahook.layout_policy(control) == "legacy-only"
    (control / "hooks" / "pre-commit").write_text("#!/bin/sh\n# my own hook\nexit 0\n")
    assert not lettahook.hook_installed(control)
    with memfs.open(repo) as opened:
        assert not opened.letta_rules().hook_installed


def test_commit_refused_error_is_one_line() -> None:
    error = CommitRefusedError("restore x", ["x:1: a", "y:1: b"], "hint")
    assert str(error) == "cannot restore x: x:1: a (and 1 more); nothing was changed; hint"


# -- memfs holds exactly what the real hook refuses --------------------------------------------

CHANGES = {
    "v1": {
        "system/ok.md": "---\ndescription: fine\n---\nok\n",
        "system/bad.md": "---\ndescription:\n---\nempty description\n",
        "reference/keys.md": "---\ndescription: d\nlimit: 10\nmood: calm\n---\nx\n",
        "notes/anything.md": "not checked by the v1 hook\n",
        "skills/flat.md": "flat\n",
        "system/human.md": None,  # a deletion
    },
    "v2": {
        "ok.md": '---\nname: "Ok"\ndescription: "fine"\n---\nok\n',
        "twice.md": '---\nname: "A"\nname: "B"\ndescription: "d"\n---\n',
        "MEMORY.md": "---\nname: x\n---\nan index with front matter\n",
        "deep/MEMORY.md": "# Deep\n",
        "deep/er/MEMORY.md": "# Deeper\n",
        "deep/er/est.md": '---\nname: "E"\ndescription: "three levels"\n---\n',
        "projects/letta.md": '---\nname: "Letta"\n---\nlost its description\n',
    },
}


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_memfs_holds_exactly_what_the_real_hook_refuses(
    letta_code: LettaCode, request: pytest.FixtureRequest, layout: str
) -> None:
    """Committed alone, the allowed changes pass the real hook; each held change added to
    them makes it refuse: memfs holds nothing the hook would accept, and lets nothing in that
    it would refuse."""
    repo: Path = request.getfixturevalue(f"letta_{layout}_repo")
    base = head(repo)
    for path, text in CHANGES[layout].items():
        if text is None:
            (repo / path).unlink()
        else:
            write(repo, path, text)
    with memfs.open(repo) as agent:
        status = agent.status()
    held = sorted({problem.path for problem in status.held})
    changed = sorted(change.path for change in status.changes)
    allowed = [path for path in changed if path not in held]
    assert held and allowed and not status.blocked

    def verdict_with(paths: list[str]) -> bool:
        git(repo, "add", "-A", "--", *paths)
        git(repo, "commit", "-q", "--no-verify", "--allow-empty", "-m", "probe")
        accepted = hook_verdict(letta_code, repo, "HEAD").accepted
        git(repo, "reset", "-q", "--mixed", base)
        return accepted

    assert verdict_with(allowed), "the changes memfs lets through pass the hook"
    for path in held:
        assert not verdict_with([*allowed, path]), f"memfs held {path}, the hook accepts it"
    with memfs.open(repo) as agent:
        agent.commit()
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == allowed
    assert_letta_hook_accepts(letta_code, repo, commits_since(repo, base))


def test_init_adopts_a_repo_whose_files_the_hook_refuses_without_committing_them(
    letta_code: LettaCode, tmp_path: Path
) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    letta_code.install_hooks(repo, "legacy-only")
    write(repo, "system/persona.md", "no front matter yet\n")
    result = memfs_cli(repo, "init", str(repo))
    assert result.returncode == 1, result.stderr
    assert result.stdout.endswith("1 memory files, nothing committed yet\n")
    assert result.stderr == (
        "memfs: not committed, kept in the work tree: "
        "system/persona.md:1: missing frontmatter (must start with ---)\n"
    )
    assert git(repo, "rev-list", "--all") == ""


def test_a_pull_that_must_rewrite_a_held_read_only_edit_sets_it_aside_and_goes_on(
    letta_code: LettaCode, letta_v1_repo: Path, tmp_path: Path
) -> None:
    """The held edit is committed as a copy in .memfs-conflicts/ (no .md: Letta never loads
    it, its hook accepts the commit), then the pull takes the server's version."""
    repo = letta_v1_repo
    hub = tmp_path / "hub.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(hub))
    assert memfs_cli(repo, "remote", "add", "origin", str(hub)).returncode == 0
    assert memfs_cli(repo, "fetch").returncode == 0
    base = head(repo)
    server = tmp_path / "server"
    git(tmp_path, "clone", "-q", str(hub), str(server))
    server_text = READ_ONLY_RULES + "Ask before deleting.\n"
    server_commit(server, {RULES: server_text}, "Update rules")
    git(server, "push", "-q", "origin", "HEAD")
    from_server = head(server)  # the server's own commit: Letta's hook never ran on it
    edit(repo, RULES, "Never force-push.", "my own rule")
    held_text = (repo / RULES).read_text(encoding="utf-8")
    result = memfs_cli(repo, "pull")
    assert result.returncode == 0, result.stderr
    copies = git(repo, "ls-tree", "-r", "--name-only", "HEAD", ".memfs-conflicts").split()
    assert len(copies) == 1 and copies[0].startswith(".memfs-conflicts/system/rules.md.conflict-")
    assert f"conflict in {RULES} (held): other version at {copies[0]}" in result.stdout
    assert committed(repo, copies[0]) == held_text, "the held edit is committed, whole"
    assert committed(repo, RULES) == server_text and (repo / RULES).read_text() == server_text
    assert git(repo, "status", "--porcelain") == ""
    made = [c for c in commits_since(repo, base) if c != from_server]
    assert len(made) == 2, "the copy's commit and the merge"
    # the copy's commit passes Letta's hook; the merge takes the server's edit of a read-only
    # block, as Letta Code's pull --rebase does (no hook runs: test_letta_sync.py)
    assert_letta_hook_accepts(letta_code, repo, made[:1])
    listed = memfs_cli(repo, "conflicts")
    assert listed.stdout == f"{RULES}\tother version at {copies[0]}\n", listed.stdout
    assert memfs_cli(repo, "resolve", copies[0], "--keep", "ours").returncode == 0
    assert not (repo / copies[0]).exists() and memfs_cli(repo, "conflicts").returncode == 0
    assert_letta_hook_accepts(letta_code, repo, ["HEAD"])
    assert git(repo, "show", f"{made[0]}:{copies[0]}") == held_text, "kept in history"


def test_check_reports_the_hook_s_tree_rules_without_the_hook_and_a_limit_as_a_warning(
    letta_code: LettaCode, letta_v2_repo: Path, letta_v1_repo: Path
) -> None:
    repo = letta_v2_repo
    remove_hooks(repo)
    write(repo, "notes/loose.md", '---\nname: "Loose"\ndescription: "x"\n---\nno index\n')
    write(repo, "big.md", '---\nname: "Big"\ndescription: "big"\n---\n' + "x" * 20001)
    check = memfs_cli(repo, "check")
    assert check.returncode == 1
    assert check.stdout.splitlines() == [
        "big.md:1: 20040 characters exceeds 20000 from maxFileCharacters",
        "notes/loose.md:1: missing required index notes/MEMORY.md",
    ]
    assert memfs_cli(repo, "commit").returncode == 0, "no hook: committed, nothing lost"
    assert memfs_cli(repo, "check").returncode == 1, "and still reported"

    write(
        letta_v1_repo, "system/long.md", "---\ndescription: long\nlimit: 5\n---\nlonger than five\n"
    )
    v1 = memfs_cli(letta_v1_repo, "check")
    assert v1.returncode == 0, v1.stdout
    assert v1.stdout == (
        "system/long.md:3: warning: body is 17 characters, over its limit of 5 (advisory)\n"
    )
    assert memfs_cli(letta_v1_repo, "commit").returncode == 0


def test_a_first_commit_creates_read_only_blocks_as_letta_s_server_does(tmp_path: Path) -> None:
    """An import or adoption writes blocks read-only as the server would: no HEAD, nothing to
    protect; once committed, the flag is protected."""
    root = tmp_path / "memory"
    write(root, RULES, READ_ONLY_RULES)
    result = memfs_cli(tmp_path, "init", str(root))
    assert result.returncode == 0, result.stderr
    assert committed(root, RULES) == READ_ONLY_RULES
    edit(root, RULES, "Never force-push.", "changed")
    assert memfs_cli(root, "commit").returncode == 1
    assert committed(root, RULES) == READ_ONLY_RULES


def test_read_only_guards_blocks_only_not_other_files(tmp_path: Path) -> None:
    """``read_only`` is a block's flag: a non-memory file (notes, a conflict copy of a read-only
    block in .memfs-conflicts/) that happens to say ``read_only: true`` is committed freely."""
    root = tmp_path / "memory"
    write(root, "system/persona.md", "---\ndescription: me\n---\nhi\n")
    write(root, "notes.txt", "---\ndescription: x\nread_only: true\n---\nnot a block\n")
    write(root, ".memfs-conflicts/system/rules.md.conflict-1234567", READ_ONLY_RULES)
    agent = memfs.init(root)
    (root / "notes.txt").unlink()
    (root / ".memfs-conflicts/system/rules.md.conflict-1234567").write_text("edited\n")
    assert agent.commit() is not None
    assert agent.held == [] and agent.status().clean
