"""The stat-only commit (memfs/fastcommit.py): it commits exactly what is on disk, and gives
way to the full commit whenever its record cannot vouch for the tree.

Every test ends by comparing HEAD's tree with the files on disk as the real git CLI sees
them (``git ls-tree`` against ``git hash-object`` of each file, neither reading the index
memfs wrote), and counts the commits the record made, so a fast path that should have given
way, or a record that should have been trusted and was not, is caught.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import memfs
from memfs import commitrecord, fastcommit, faults, statusrecord

from .conftest import git, write
from .test_statusrecord import still_fresh, wait_past

EDITED = "reference/t1/n001.md"


def make_agent(tmp_path: Path, files: int = 12) -> memfs.Agent:
    """An agent whose last commit is on record, every entry older than the racy window."""
    agent = memfs.init(tmp_path / "agent", name="agent")
    for i in range(files):
        write(agent.root, f"reference/t{i % 3}/n{i:03d}.md", f"---\ndescription: n{i}\n---\nf\n")
    agent.commit()
    settle(agent.root)
    assert agent.commit() is None  # a clean tree walked: the record is written for HEAD
    assert (agent.history.state_dir / commitrecord.RECORD).exists()
    return agent


def settle(root: Path) -> None:
    """Wait until every entry is older than the racy window (both clocks, with a deadline)."""
    newest = max(
        max(st.st_ctime_ns, st.st_mtime_ns) + statusrecord.window(st.st_ctime_ns)
        for st in (os.lstat(p) for p in [root, *root.rglob("*")] if ".git" not in p.parts)
    )
    wait_past(newest, root)


def on_disk(root: Path) -> dict[str, str]:
    """Every file of the work tree (no .git) and its blob sha, by git hash-object."""
    paths = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if ".git" not in p.relative_to(root).parts and (p.is_symlink() or p.is_file())
    )
    shas = git(root, "hash-object", "--no-filters", "--", *paths).split() if paths else []
    found = dict(zip(paths, shas, strict=True))
    for path in paths:
        if (root / path).is_symlink():
            target = os.readlink(root / path).encode()
            found[path] = (
                subprocess.run(
                    ["git", "hash-object", "--stdin"], input=target, capture_output=True, check=True
                )
                .stdout.decode()
                .strip()
            )
    return found


def in_head(root: Path) -> dict[str, str]:
    lines = git(root, "ls-tree", "-r", "HEAD").splitlines()
    return {line.split("\t", 1)[1]: line.split()[2] for line in lines}


def assert_head_is_disk(agent: memfs.Agent) -> None:
    assert in_head(agent.root) == on_disk(agent.root)
    git(agent.root, "fsck", "--strict", "--no-progress")
    assert git(agent.root, "status", "--porcelain") == ""


def shown(agent: memfs.Agent, path: str) -> bytes:
    """The file at ``path`` in HEAD, by the real git CLI."""
    return subprocess.run(
        ["git", "show", f"HEAD:{path}"], cwd=agent.root, capture_output=True, check=True
    ).stdout


def committed_while_fresh(agent: memfs.Agent, letter: str) -> Path:
    """Edit ``EDITED`` (same size each time) and commit it fast, until the commit's record
    was written while the file was still within the racy window on the file system's clock
    (so it must have been left untrusted); on a busy machine a commit may come later than
    that, and proves nothing. The file."""
    deadline = time.monotonic() + 60
    for attempt in itertools.count():
        target = write(agent.root, EDITED, f"---\ndescription: n1\n---\n{letter}{attempt:03d}\n")
        assert fast_commit(agent)
        if still_fresh(target, agent.root.parent, mtime=True):
            return target
        assert time.monotonic() < deadline, "never within the racy window: the machine is busy"
    raise AssertionError("unreachable")


def fast_commit(agent: memfs.Agent) -> bool:
    """Commit; whether the record made the commit."""
    before = fastcommit.commits_fast
    assert agent.commit() is not None
    return fastcommit.commits_fast > before


def test_a_one_file_edit_is_committed_from_the_record(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    write(agent.root, EDITED, "---\ndescription: n1\n---\nchanged\n")
    assert fast_commit(agent)
    assert agent.history.commit_info(agent.history.head()).summary == f"memfs: update {EDITED}"
    assert_head_is_disk(agent)
    for n in range(3):  # and again, from the record that commit wrote
        write(agent.root, EDITED, f"---\ndescription: n1\n---\nagain {n}\n")
        assert fast_commit(agent)
        assert_head_is_disk(agent)
    assert git(agent.root, "log", "--format=%P", "-1").strip() != ""


def test_an_edit_of_the_same_size_in_the_same_tick_is_not_missed(tmp_path: Path) -> None:
    """The racy case: the record is made while the file is fresh, then the file changes again
    keeping its size and mtime. A fresh entry's stat is never trusted."""
    agent = make_agent(tmp_path)
    target = committed_while_fresh(agent, "A")  # the file is within the racy window
    record = commitrecord.load(agent)
    assert record is not None
    table = commitrecord.Table.loads(record["files"])
    assert table.changed([os.lstat(agent.root / p) for p in table.paths]) == [
        table.paths.index(EDITED)
    ]  # its stat is not trusted: read again, however it stats
    mtime = target.stat().st_mtime_ns
    target.write_text("---\ndescription: n1\n---\nBBBB\n")
    os.utime(target, ns=(mtime, mtime))
    assert fast_commit(agent)
    assert shown(agent, EDITED).endswith(b"BBBB\n")
    assert_head_is_disk(agent)


def test_an_mtime_set_back_does_not_hide_an_edit(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    target = agent.root / EDITED
    before = target.stat()
    target.write_text(target.read_text().replace("f\n", "g\n"))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_size == before.st_size
    assert fast_commit(agent)
    assert shown(agent, EDITED).endswith(b"g\n")
    assert_head_is_disk(agent)


def test_a_touched_file_commits_nothing_and_is_trusted_again(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    head = agent.history.head()
    os.utime(agent.root / EDITED)
    assert agent.commit() is None
    assert agent.history.head() == head
    assert_head_is_disk(agent)


@pytest.mark.parametrize("replacement", ["symlink", "folder", "executable", "too large"])
def test_a_file_changed_in_kind_takes_the_full_commit(tmp_path: Path, replacement: str) -> None:
    agent = make_agent(tmp_path)
    target = agent.root / EDITED
    if replacement == "symlink":
        target.unlink()
        target.symlink_to("n004.md")
    elif replacement == "folder":
        target.unlink()
        write(agent.root, EDITED + "/inside.md", "---\ndescription: x\n---\nnow a folder\n")
    elif replacement == "executable":
        target.chmod(0o755)
    else:
        target.write_bytes(b"x" * (11 * 1024 * 1024))
    before = fastcommit.commits_fast
    info = agent.commit()
    if replacement == "executable":  # a mode change: still a one-file edit
        assert info is not None and fastcommit.commits_fast == before + 1
        assert "100755 blob" in git(agent.root, "ls-tree", "HEAD", EDITED)
    elif replacement == "too large":  # skipped, kept at its last version, never deleted
        assert info is None and fastcommit.commits_fast == before
        assert [s.path for s in agent.skipped] == [EDITED]
        assert EDITED in in_head(agent.root)
        return
    else:
        assert info is not None and fastcommit.commits_fast == before
    assert_head_is_disk(agent)


def test_a_folder_deleted_and_made_again_is_committed_as_it_is_now(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    folder = agent.root / "reference/t1"
    names = sorted(p.name for p in folder.iterdir())
    for name in names:
        (folder / name).unlink()
    folder.rmdir()
    folder.mkdir()
    for name in names:  # the same names and sizes, other content
        (folder / name).write_text(f"---\ndescription: {name[1:4]}\n---\nF\n")
    assert agent.commit() is not None
    assert_head_is_disk(agent)


@pytest.mark.parametrize("change", ["added", "deleted", "renamed"])
def test_an_entry_coming_or_going_takes_the_full_commit(tmp_path: Path, change: str) -> None:
    agent = make_agent(tmp_path)
    if change in ("deleted", "renamed"):
        target = agent.root / EDITED
        if change == "renamed":
            target.rename(agent.root / "reference/t1/renamed.md")
        else:
            target.unlink()
    else:
        write(agent.root, "reference/t2/new.md", "---\ndescription: new\n---\nnew\n")
    before = fastcommit.commits_fast
    assert agent.commit() is not None
    assert fastcommit.commits_fast == before
    assert_head_is_disk(agent)


def test_an_edit_while_the_commit_runs_is_committed_next(tmp_path: Path) -> None:
    """A concurrent editor writes the committed file, and another, after the commit read them
    and before its branch moves: the next commit must see both (stat taken before the read)."""
    agent = make_agent(tmp_path)
    write(agent.root, EDITED, "---\ndescription: n1\n---\nfirst\n")
    other = "reference/t2/n002.md"

    def editor() -> None:
        done = threading.Event()

        def edit() -> None:
            (agent.root / EDITED).write_text("---\ndescription: n1\n---\nsecnd\n")
            (agent.root / other).write_text("---\ndescription: n2\n---\nedited\n")
            done.set()

        thread = threading.Thread(target=edit)
        thread.start()
        thread.join(timeout=10)
        assert done.is_set()

    with faults.at("commit.objects", editor):
        assert fast_commit(agent)
    assert shown(agent, EDITED).endswith(b"first\n")
    assert fast_commit(agent)  # both edits, seen by their stat
    assert shown(agent, EDITED).endswith(b"secnd\n")
    assert shown(agent, f"{other}").endswith(b"edited\n")
    assert_head_is_disk(agent)


def test_a_record_from_another_head_is_not_used(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    record = agent.history.state_dir / commitrecord.RECORD
    old = record.read_bytes()
    write(agent.root, EDITED, "---\ndescription: n1\n---\nby memfs\n")
    assert fast_commit(agent)
    record.write_bytes(old)  # the record of the commit before
    write(agent.root, "reference/t0/n000.md", "---\ndescription: n0\n---\nby memfs too\n")
    before = fastcommit.commits_fast
    assert agent.commit() is not None
    assert fastcommit.commits_fast == before
    assert_head_is_disk(agent)
    # HEAD moved by plain git: the record names the commit before it
    settle(agent.root)
    assert agent.commit() is None
    write(agent.root, EDITED, "---\ndescription: n1\n---\nby git\n")
    git(agent.root, "commit", "-qam", "by git")
    write(agent.root, EDITED, "---\ndescription: n1\n---\nby memfs again\n")
    assert agent.commit() is not None
    assert fastcommit.commits_fast == before
    assert_head_is_disk(agent)


def test_a_damaged_record_costs_a_full_commit(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    record = agent.history.state_dir / commitrecord.RECORD
    record.write_bytes(record.read_bytes()[:100])
    write(agent.root, EDITED, "---\ndescription: n1\n---\ndamaged record\n")
    before = fastcommit.commits_fast
    assert agent.commit() is not None
    assert fastcommit.commits_fast == before
    assert_head_is_disk(agent)


def test_an_index_rewritten_by_git_is_written_in_full(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    git(agent.root, "update-index", "--really-refresh")  # git rewrites the index
    os.utime(agent.root / ".git/index", ns=(1, 1))  # and it is not the one recorded
    write(agent.root, EDITED, "---\ndescription: n1\n---\nafter git\n")
    assert fast_commit(agent)
    assert_head_is_disk(agent)


@pytest.mark.parametrize("point", ["commit.objects", "commit.index"])
def test_a_commit_killed_midway_loses_nothing(tmp_path: Path, point: str) -> None:
    agent = make_agent(tmp_path)
    write(agent.root, EDITED, "---\ndescription: n1\n---\nkilled\n")
    head = agent.history.head()
    env = {**os.environ, faults.ENV: point}
    killed = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(agent.root), "commit"],
        env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    moved = agent.history.head() != head
    assert moved == (point == "commit.index")
    result = agent.commit()
    assert (result is None) == moved  # committed once, by the killed run or this one
    assert shown(agent, EDITED).endswith(b"killed\n")
    assert_head_is_disk(agent)


def test_the_secrets_guard_runs_on_the_fast_path(tmp_path: Path) -> None:
    from .secretsfix import agent_with_secrets

    root = agent_with_secrets(tmp_path, {"API_TOKEN": "tok-4f9a2c7e1b"})
    agent = memfs.open(root)
    write(root, "reference/a.md", "---\ndescription: a\n---\nplain\n")
    write(root, "reference/b.md", "---\ndescription: b\n---\nplain\n")
    agent.commit()
    settle(root)
    assert agent.commit() is None
    write(root, "reference/a.md", "---\ndescription: a\n---\ntok-4f9a2c7e1b\n")
    write(root, "reference/b.md", "---\ndescription: b\n---\nbeside it\n")
    before = fastcommit.commits_fast
    assert agent.commit() is not None  # b committed, a held
    assert [p.path for p in agent.held] == ["reference/a.md"]
    assert fastcommit.commits_fast == before + 1
    assert shown(agent, "reference/b.md").endswith(b"beside it\n")
    assert in_head(root)["reference/a.md"] != on_disk(root)["reference/a.md"]
    git(root, "fsck", "--strict", "--no-progress")
    assert b"tok-4f9a2c7e1b" not in shown(agent, "reference/a.md")
    assert not (agent.history.state_dir / commitrecord.RECORD).exists()  # it would hide the file
    write(root, "reference/a.md", "---\ndescription: a\n---\nclean again\n")
    assert agent.commit() is not None
    assert shown(agent, "reference/a.md").endswith(b"clean again\n")


@pytest.mark.parametrize(
    "text",
    [
        "[user]\n\tname = Ada L\n\temail = ada@example.org\n",
        '[user]\n\tname = "Ada ; L"\n\temail = ada@example.org\n',  # quoted: dulwich reads it
        "[user]\n\temail = only@example.org\n",  # the name from the global file
        "[extensions]\n\tworktreeConfig = true\n",
    ],
)
def test_the_git_identity_is_read_as_dulwich_reads_it(tmp_path: Path, text: str) -> None:
    from dulwich.repo import Repo

    agent = memfs.init(tmp_path / "agent", name="agent")
    config = agent.root / ".git/config"
    config.write_text(config.read_text() + text)
    expected = None
    stack = Repo(str(agent.root)).get_config_stack()
    try:
        name, email = stack.get((b"user",), b"name"), stack.get((b"user",), b"email")
        expected = f"{name.decode()} <{email.decode()}>"
    except KeyError:
        pass
    assert memfs.open(agent.root).history.git_identity() == expected


def test_a_native_agent_without_rules_commits_without_loading_letta_s_rules(
    tmp_path: Path,
) -> None:
    """No Letta layout, no pre-commit hook, no secrets: the gate lets everything through, so
    the fast path does not load memfs.lettahook (nor dulwich's lock file, for the index);
    Letta's hook installed, it holds as before."""
    from memfs import lettahook

    from .test_cli_startup import loaded_by

    agent = make_agent(tmp_path)
    write(agent.root, EDITED, "---\ndescription: n1\n---\nchanged\n")
    settle(agent.root)
    loaded = loaded_by(agent.root, ["commit", "-m", "plain"])
    assert "memfs.lettahook" not in loaded
    assert "memfs.fastcommit" in loaded
    assert "dulwich.file" not in loaded  # the index is written under index.lock by gitindex
    assert shown(agent, EDITED).endswith(b"changed\n")
    hook = agent.root / ".git/hooks/pre-commit"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\n{lettahook.HOOK_MARK}\nexit 0\n")
    write(agent.root, EDITED, "no front matter at all\n")
    agent.commit()
    assert [p.path for p in agent.held] == [EDITED]
    assert shown(agent, EDITED).endswith(b"changed\n")


@pytest.mark.parametrize("next_edit", [None, "reference/t2/n002.md"], ids=["clean", "other-file"])
def test_an_index_left_behind_by_git_holding_its_lock_is_written_again(
    tmp_path: Path, next_edit: str | None
) -> None:
    """A commit while git holds index.lock moves the branch but cannot write the index; once
    the lock is gone, the next commit (with nothing to commit, or an edit elsewhere) must
    bring the index to HEAD: else ``git status`` shows the commit undone (MM) and a user's
    ``git commit`` would revert it (found from outside)."""
    agent = make_agent(tmp_path)
    write(agent.root, EDITED, "---\ndescription: n1\n---\nwhile git works\n")
    lock = agent.history.control_dir / "index.lock"
    lock.touch()  # fresh: git is writing the index, memfs leaves it alone
    assert agent.commit() is not None
    assert git(agent.root, "status", "--porcelain") != ""  # behind, as git's lock demanded
    lock.unlink()
    settle(agent.root)
    if next_edit is not None:
        write(agent.root, next_edit, "---\ndescription: n2\n---\nlater\n")
        assert agent.commit() is not None
    else:
        assert agent.commit() is None
    # the index lists HEAD's tree (git diff-index reads it, never rewrites it, as status may)
    assert git(agent.root, "diff-index", "--cached", "--name-only", "HEAD") == ""
    settle(agent.root)
    write(agent.root, EDITED, "---\ndescription: n1\n---\nfast again\n")
    assert fast_commit(agent)  # the record is trusted again once the index is HEAD's
    assert git(agent.root, "status", "--porcelain") == ""
    assert_head_is_disk(agent)


def test_a_scan_that_trusts_a_file_writes_the_record_only_when_it_pays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file committed a moment ago is not trusted by the record; the next scan reads it and
    could trust it. At 10,000 files that rewrite costs more than reading one file again: it is
    not written, and a later edit of that file (same size, same mtime) is still committed."""
    agent = make_agent(tmp_path)
    target = committed_while_fresh(agent, "A")
    settle(agent.root)
    kept = commitrecord.read(agent)
    monkeypatch.setattr(fastcommit, "REWRITE_ROW_NS", 10**9)  # as if the record were large
    assert agent.commit() is None
    assert commitrecord.read(agent) == kept  # not rewritten: the file is read next time
    assert agent.status().clean
    mtime = target.stat().st_mtime_ns
    deadline = time.monotonic() + 60
    for attempt in itertools.count():  # an edit keeping size and mtime, committed while fresh
        content = f"---\ndescription: n1\n---\nB{attempt:03d}\n"
        target.write_text(content)
        os.utime(target, ns=(mtime, mtime))
        assert not agent.status().clean
        assert fast_commit(agent)
        assert shown(agent, EDITED) == content.encode()
        if still_fresh(target, tmp_path, mtime=True):
            break  # else the commit trusted it already: nothing left to show below
        assert time.monotonic() < deadline, "never within the racy window: the machine is busy"
    assert_head_is_disk(agent)
    settle(agent.root)
    monkeypatch.undo()  # a small record: trusting the file is worth its rewrite
    kept = commitrecord.read(agent)
    assert agent.commit() is None
    assert commitrecord.read(agent) != kept
    record = commitrecord.load(agent)
    assert record is not None
    table = commitrecord.Table.loads(record["files"])
    assert table.changed([os.lstat(agent.root / p) for p in table.paths]) == []
    assert_head_is_disk(agent)


def test_an_index_git_rewrote_is_written_whole_with_every_files_stat(tmp_path: Path) -> None:
    """git rewrote the index (here without stat data: ``git read-tree HEAD``), so it is not
    the one the record's layout was taken from: the commit writes it whole, and with the
    stat data of every file it did not read (taken by its scan, which kept them only
    because it would not splice), so git need not hash them again."""
    agent = make_agent(tmp_path)
    git(agent.root, "read-tree", "HEAD")
    write(agent.root, EDITED, "---\ndescription: n1\n---\nafter read-tree\n")
    assert fast_commit(agent)
    assert_head_is_disk(agent)
    debug = git(agent.root, "ls-files", "--debug")
    blocks = debug.split("\n  ctime: ")
    assert len(blocks) == len(in_head(agent.root)) + 1
    without = [b for b in blocks[1:] if "mtime: 0:0" in b]
    assert len(without) <= 1  # the edited file, if too fresh to vouch for


def test_a_loose_object_is_written_when_git_prunes_its_empty_folder_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found from outside (session 10): `git repack -d` (prune-packed) beside a commit removed
    the empty fan-out folder between memfs's mkdir and its temp file's open, and the commit
    failed (exit 1). The folder is made again, as git does. The removal is made to happen at
    that very moment: right after the mkdir."""
    import os as real_os

    from memfs.history import loose

    made = real_os.mkdir
    pruned: list[str] = []

    def mkdir_then_pruned(path: object, *args: object) -> None:
        made(path, *args)  # type: ignore[arg-type]
        if not pruned:
            real_os.rmdir(path)  # type: ignore[arg-type]
            pruned.append(str(path))

    control = tmp_path / ".git"
    (control / "objects").mkdir(parents=True)
    monkeypatch.setattr(loose.os, "mkdir", mkdir_then_pruned)
    sha = loose.write_object(control, b"blob", b"a memory\n")
    monkeypatch.undo()
    assert pruned
    assert (control / "objects" / sha[:2] / sha[2:]).exists()
