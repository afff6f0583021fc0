"""Nested .gitignore files and the user's lines of .git/info/exclude (review finding G1):
memfs leaves out exactly what the real git leaves out.

The oracle is the git CLI: in each case the files git lists as untracked (``??``, with
``--untracked-files=all``) are what memfs's status adds and what its commit versions, and
every path the case means to be ignored is one git ignores (so a case tests something).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import memfs
from memfs import commitrecord

from .conftest import git, memfs_process, write

# name: (files, lines of .git/info/exclude before memfs's block, after it, paths git ignores)
Case = tuple[dict[str, str], list[str], list[str], list[str]]
CASES: dict[str, Case] = {
    "nested-star": (
        {"notes/.gitignore": "*.log\n", "notes/a.log": "", "notes/sub/b.log": "", "a.log": ""},
        [], [], ["notes/a.log", "notes/sub/b.log"],
    ),
    "nested-anchored": (
        {"notes/.gitignore": "/x.md\n", "notes/x.md": "", "notes/sub/x.md": "", "x.md": ""},
        [], [], ["notes/x.md"],
    ),
    "nested-folder-only": (
        {"notes/.gitignore": "cache/\n", "notes/cache/a.md": "", "notes/sub/cache": "",
         "cache/b.md": ""},
        [], [], ["notes/cache/a.md"],
    ),
    "nested-double-star": (
        {"notes/.gitignore": "a/**/b.md\n", "notes/a/x/y/b.md": "", "notes/a/b.md": "",
         "notes/c/a/x/b.md": ""},
        [], [], ["notes/a/x/y/b.md", "notes/a/b.md"],
    ),
    "nested-leading-double-star": (
        {"notes/.gitignore": "**/tmp\n", "notes/tmp/a.md": "", "notes/x/tmp/b.md": "",
         "tmp/c.md": ""},
        [], [], ["notes/tmp/a.md", "notes/x/tmp/b.md"],
    ),
    "nested-middle-slash": (
        {"notes/.gitignore": "sub/x.md\n", "notes/sub/x.md": "", "notes/o/sub/x.md": ""},
        [], [], ["notes/sub/x.md"],
    ),
    "nested-negation-same-file": (
        {"notes/.gitignore": "*.md\n!keep.md\n", "notes/a.md": "", "notes/keep.md": "",
         "notes/s/keep.md": "", "notes/s/b.md": ""},
        [], [], ["notes/a.md", "notes/s/b.md"],
    ),
    "nested-reincludes-root-rule": (
        {".gitignore": "*.log\n", "notes/.gitignore": "!keep.log\n", "notes/keep.log": "",
         "notes/other.log": "", "keep.log": ""},
        [], [], ["notes/other.log", "keep.log"],
    ),
    "deeper-wins": (
        {"notes/.gitignore": "*.md\n", "notes/sub/.gitignore": "!*.md\n", "notes/a.md": "",
         "notes/sub/b.md": "", "notes/sub/deep/c.md": ""},
        [], [], ["notes/a.md"],
    ),
    "parent-excluded-folder-cannot-be-reincluded": (
        {"notes/.gitignore": "sub/\n", "notes/sub/.gitignore": "!*\n", "notes/sub/a.md": ""},
        [], [], ["notes/sub/a.md", "notes/sub/.gitignore"],
    ),
    "nested-gitignore-in-root-ignored-folder": (
        {".gitignore": "build/\n", "build/.gitignore": "!keep.md\n", "build/keep.md": ""},
        [], [], ["build/keep.md", "build/.gitignore"],
    ),
    "nested-gitignore-ignores-itself": (
        {"notes/.gitignore": ".gitignore\n*.bak\n", "notes/a.bak": "", "notes/a.md": ""},
        [], [], ["notes/.gitignore", "notes/a.bak"],
    ),
    "nested-gitignore-ignored-by-root": (
        {".gitignore": "notes/.gitignore\n", "notes/.gitignore": "*.bak\n", "notes/a.bak": "",
         "notes/a.md": ""},
        [], [], ["notes/.gitignore", "notes/a.bak"],
    ),
    "nested-whitelist": (
        {"notes/.gitignore": "*\n!*/\n!*.md\n", "notes/a.md": "", "notes/a.txt": "",
         "notes/s/b.md": "", "notes/s/b.txt": ""},
        [], [], ["notes/a.txt", "notes/s/b.txt", "notes/.gitignore"],
    ),
    "nested-comment-and-escape": (
        {"notes/.gitignore": "# a comment\n\\#hash.md\n\n", "notes/#hash.md": "",
         "notes/a.md": ""},
        [], [], ["notes/#hash.md"],
    ),
    "nested-reincludes-a-secret": (
        {"notes/.gitignore": "!.env\n", "notes/.env": "", "other/.env": ""},
        [], [], ["other/.env"],
    ),
    "exclude-after-block": (
        {"a.log": "", "notes/b.log": "", "notes/c.md": ""},
        [], ["*.log"], ["a.log", "notes/b.log"],
    ),
    "exclude-before-block": (
        {"drafts/a.md": "", "notes/drafts/b.md": "", "notes/c.md": ""},
        ["drafts/"], [], ["drafts/a.md", "notes/drafts/b.md"],
    ),
    "exclude-anchored-folder": (
        {"private/a.md": "", "notes/private/b.md": ""},
        [], ["/private/"], ["private/a.md"],
    ),
    "exclude-reincludes-litter": (
        {"keep.tmp": "", "other.tmp": ""},
        [], ["!keep.tmp"], ["other.tmp"],
    ),
    "exclude-loses-to-nested": (
        {"notes/.gitignore": "!a.md\n", "notes/a.md": "", "notes/b.md": ""},
        [], ["*.md"], ["notes/b.md"],
    ),
    "exclude-loses-to-root-gitignore": (
        {".gitignore": "!*.txt\n", "a.txt": "", "notes/b.txt": "", "c.log": ""},
        [], ["*.txt", "*.log"], ["c.log"],
    ),
}  # fmt: skip


def _porcelain(root: Path) -> tuple[set[str], set[str]]:
    """What the real git lists as untracked and as ignored (``--untracked-files=all``)."""
    out = git(root, "status", "--porcelain", "--untracked-files=all", "--ignored", "-z")
    untracked, ignored = set(), set()
    for entry in filter(None, out.split("\0")):
        code, path = entry[:2], entry[3:]
        (untracked if code == "??" else ignored if code == "!!" else set()).add(path)
    return untracked, ignored


def _git_ignores(path: str, ignored: set[str]) -> bool:
    return path in ignored or any(
        entry.endswith("/") and path.startswith(entry) for entry in ignored
    )


def _add_excludes(agent: memfs.Agent, before: list[str], after: list[str]) -> None:
    exclude = agent.history.control_dir / "info" / "exclude"
    text = exclude.read_text() if exclude.exists() else ""
    exclude.write_text(
        "".join(f"{line}\n" for line in before) + text + "".join(f"{line}\n" for line in after)
    )


@pytest.mark.parametrize("name", list(CASES))
def test_memfs_leaves_out_what_git_leaves_out(tmp_path: Path, name: str) -> None:
    files, before, after, meant = CASES[name]
    agent = memfs.init(tmp_path / "agent", name="agent")
    _add_excludes(agent, before, after)
    for path, text in files.items():
        write(agent.root, path, text)
    untracked, ignored = _porcelain(agent.root)
    assert all(_git_ignores(path, ignored) for path in meant), (meant, ignored)
    assert not untracked & set(meant)
    added = {change.path for change in agent.status().changes if change.status == "added"}
    assert added == untracked
    agent.commit()
    committed = set(git(agent.root, "ls-files", "-z").split("\0")) - {""}
    assert untracked <= committed and not committed & set(meant)
    assert _porcelain(agent.root)[0] == set()  # git sees nothing left to add
    assert agent.status().clean
    # the managed block is rewritten around the user's exclude lines, which stay
    exclude = (agent.history.control_dir / "info" / "exclude").read_text()
    assert all(line in exclude.splitlines() for line in before + after)


def test_exclude_is_read_through_a_gitdir_file(tmp_path: Path) -> None:
    """An agent whose .git is a ``gitdir:`` file: its exclude lines are the control dir's."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    control = tmp_path / "control.git"
    os.rename(agent.root / ".git", control)
    (agent.root / ".git").write_text(f"gitdir: {control}\n")
    agent = memfs.open(agent.root)
    assert agent.history.control_dir == control
    _add_excludes(agent, [], ["*.log"])
    write(agent.root, "a.log", "")
    write(agent.root, "a.md", "")
    untracked, ignored = _porcelain(agent.root)
    assert untracked == {"a.md"} and "a.log" in ignored
    assert {change.path for change in agent.status().changes} == {"a.md"}


def test_the_watchers_path_commit_reads_the_nested_rules_above_its_paths(tmp_path: Path) -> None:
    """``commit_paths`` (the watcher's commit, no walk of the tree) leaves out what a
    .gitignore of a folder above a path ignores, and what the exclude lines ignore."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    _add_excludes(agent, [], ["*.secret"])
    write(agent.root, "notes/.gitignore", "sub/*.log\n")
    paths = ["notes/sub/a.log", "notes/sub/a.md", "notes/x.secret", "notes/sub/deep/b.log"]
    for path in paths:
        write(agent.root, path, "x")
    agent.commit_paths([*paths, "notes/.gitignore"])
    committed = set(git(agent.root, "ls-files").split())
    assert committed & set(paths) == {"notes/sub/a.md", "notes/sub/deep/b.log"}
    assert _porcelain(agent.root)[0] == set()


def test_a_symlinked_nested_gitignore_is_not_read(tmp_path: Path) -> None:
    """git does not follow a .gitignore that is a symlink; nor does memfs (it could lead
    outside the agent)."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    (tmp_path / "rules").write_text("*.md\n")
    write(agent.root, "notes/a.md", "x")
    os.symlink(tmp_path / "rules", agent.root / "notes/.gitignore")
    untracked, _ = _porcelain(agent.root)
    assert "notes/a.md" in untracked
    assert "notes/a.md" in {change.path for change in agent.status().changes}


def test_no_record_is_kept_while_nested_rules_apply(tmp_path: Path) -> None:
    """A nested .gitignore added after a status was recorded changes its folder's stat: the
    record gives way; while one is there, status and commit records are not kept."""
    from .test_statusrecord import served, settle

    agent = memfs.init(tmp_path / "agent", name="agent")
    write(agent.root, "notes/a.md", "x")
    agent.commit()
    settle(agent.root)
    served(agent)
    assert served(agent)[1]  # on record
    write(agent.root, "notes/.gitignore", "*.log\n")
    write(agent.root, "notes/run.log", "x")
    answer, used = served(agent)
    assert not used
    assert [c["path"] for c in answer["changes"]] == ["notes/.gitignore"]  # type: ignore[index]
    agent.commit()
    assert not (agent.history.state_dir / commitrecord.RECORD).exists()
    settle(agent.root)
    assert not served(agent)[1] and not served(agent)[1]  # walked each time
    write(agent.root, "notes/more.log", "x")  # an ignored file: nothing to commit, no record
    assert agent.commit() is None
    assert "notes/run.log" not in git(agent.root, "ls-files")


def test_exclude_lines_keep_the_tree_unrecorded(tmp_path: Path) -> None:
    from .test_statusrecord import RECORD, served, settle

    agent = memfs.init(tmp_path / "agent", name="agent")
    _add_excludes(agent, [], ["*.log"])
    write(agent.root, "a.log", "x")
    agent.commit()
    settle(agent.root)
    assert not served(agent)[1] and not served(agent)[1]  # walked each time
    assert not (agent.root / RECORD).exists()
    assert "a.log" not in git(agent.root, "ls-files")


def test_commit_and_sync_processes_never_version_an_ignored_file(tmp_path: Path) -> None:
    """``memfs commit`` and a watcher-free ``memfs sync`` to a file:// cloud: no commit, here
    or in a checkout from the cloud, holds a file a nested .gitignore or exclude line ignores."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    root = str(agent.root)
    _add_excludes(agent, [], ["private.md"])
    write(agent.root, "notes/.gitignore", "*.log\n")
    write(agent.root, "notes/run.log", "local only")
    write(agent.root, "private.md", "local only")
    write(agent.root, "notes/a.md", "shared")
    cloud = f"memfs::file://{tmp_path}/cloud/agent"
    for args in (("remote", "add", "origin", cloud), ("commit", "-m", "notes"), ("sync",)):
        done = memfs_process("-C", root, *args)
        assert done.returncode == 0, done.stderr
    write(agent.root, "notes/sub/deep.log", "local only")
    write(agent.root, "notes/sub/b.md", "shared")
    done = memfs_process("-C", root, "sync")
    assert done.returncode == 0, done.stderr
    leaked = {"notes/run.log", "private.md", "notes/sub/deep.log"}
    for commit in git(agent.root, "rev-list", "--all").split():
        paths = set(git(agent.root, "ls-tree", "-r", "--name-only", commit).split())
        assert not paths & leaked, commit
    assert "notes/sub/b.md" in git(agent.root, "ls-tree", "-r", "--name-only", "HEAD")
    copy = tmp_path / "copy"
    done = memfs_process("clone", cloud, str(copy))
    assert done.returncode == 0, done.stderr
    assert (copy / "notes/sub/b.md").exists()
    assert not any((copy / path).exists() for path in leaked)
    subprocess.run(["git", "fsck", "--strict"], cwd=copy, check=True, capture_output=True)


def test_a_walk_without_nested_rules_loads_no_pathspec(tmp_path: Path) -> None:
    """The usual agent (no nested .gitignore; an exclude file with git's comments and
    memfs's block only) is walked by memfs's own rules alone: pathspec is not imported."""
    from .harness import fresh_python

    agent = memfs.init(tmp_path / "agent", name="agent")
    _add_excludes(agent, ["# git ls-files --others --exclude-from=.git/info/exclude", "#"], [])
    write(agent.root, "notes/sub/a.md", "x")
    write(agent.root, "notes/.env", "x")
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from memfs import worktree\n"
        "from memfs.ignore import IgnoreRules\n"
        f"root = Path({str(agent.root)!r})\n"
        "found = worktree.scan(root, IgnoreRules(root))\n"
        "assert 'notes/sub/a.md' in found.files and found.secrets == ['notes/.env']\n"
        "assert not found.custom_ignores\n"
        "print('pathspec' in sys.modules)\n"
    )
    assert fresh_python(probe) == "False"
