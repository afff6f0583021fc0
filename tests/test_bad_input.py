"""Bad input through the real CLI: one clear line, the documented exit code, nothing lost.

Each row of ``CASES`` is a ``Case``: an id, a setup that writes files (and returns environment
variables) in the test's own folder, the memfs arguments, the exit code and a piece of what
stderr must say. Every row runs ``python -m memfs`` in a subprocess, under a memory limit and a
timeout, and must: exit with its code, print exactly ``stderr_lines`` lines on stderr (one for
an error), never a traceback or an internal error (exit 70), and create nothing outside its
folder. The format is plain data so other tables (damaged repositories, remote URLs) can be
folded in as more rows.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import memfs

from .conftest import git, write
from .test_frontmatter import billion_laughs

Setup = Callable[[Path], dict[str, str]]
MEMORY_LIMIT = 1024 * 1024 * 1024  # bytes of address space each memfs run may use
RUN_TIMEOUT = 30.0


@dataclass(frozen=True)
class Case:
    """One bad input: set up in ``tmp``, run ``memfs *args`` in ``tmp/cwd``, expect this."""

    id: str
    setup: Setup
    args: tuple[str, ...]
    exit_code: int
    stderr: str = ""  # a piece of stderr ("" when stderr must be empty)
    stdout: str = ""  # a piece of stdout, for inputs reported as problems
    stderr_lines: int | None = None  # default: 1 if ``stderr`` else 0
    cwd: str = "agent"
    max_seconds: float | None = None  # a bound on the run's wall time, for hostile files


def agent(files: dict[str, str | bytes] | None = None, env: dict[str, str] | None = None) -> Setup:
    """A setup: an agent at tmp/agent holding ``files`` (uncommitted), and ``env``."""

    def setup(tmp: Path) -> dict[str, str]:
        memfs.init(tmp / "agent", name="agent").close()
        for path, content in (files or {}).items():
            write(tmp / "agent", path, content)
        return dict(env or {})

    return setup


def agent_committed(files: dict[str, str | bytes]) -> Setup:
    """A setup: an agent whose history holds ``files``."""

    def setup(tmp: Path) -> dict[str, str]:
        with memfs.init(tmp / "agent", name="agent") as created:
            for path, content in files.items():
                write(created.root, path, content)
            created.commit()
        return {}

    return setup


def nothing(tmp: Path) -> dict[str, str]:
    """A setup: an empty folder (no agent)."""
    (tmp / "agent").mkdir()
    return {}


def config(text: str | bytes) -> Setup:
    """A setup: an agent and the user config file holding ``text``."""

    def setup(tmp: Path) -> dict[str, str]:
        agent()(tmp)
        write(tmp / "home", ".config/memfs/config.yaml", text)
        return {}

    return setup


def manifest(text: str) -> Setup:
    """A setup: an agent whose agent.yaml holds ``text``."""

    def setup(tmp: Path) -> dict[str, str]:
        agent()(tmp)
        write(tmp / "agent", "agent.yaml", text)
        return {}

    return setup


def agent_file(blocks: list[tuple[str, str]]) -> Setup:
    """A setup: an empty folder and tmp/agent/in.af, a one-agent .af holding ``blocks``."""

    def setup(tmp: Path) -> dict[str, str]:
        document = {
            "agents": [{"name": "imported", "block_ids": [f"b{i}" for i in range(len(blocks))]}],
            "blocks": [
                {"id": f"b{i}", "label": label, "value": value}
                for i, (label, value) in enumerate(blocks)
            ],
        }
        write(tmp / "agent", "in.af", json.dumps(document))
        return {}

    return setup


def with_bare_remote(tmp: Path) -> dict[str, str]:
    """A setup: an agent with a remote 'origin' (a bare repo) it has pushed to."""
    agent()(tmp)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(tmp / "hub.git")], check=True)
    with memfs.open(tmp / "agent") as opened:
        from memfs import sync
        from memfs.remotes.configure import add_remote

        add_remote(opened.history, "origin", str(tmp / "hub.git"))
        assert sync.push(opened).ok
    return {}


def symlink_outside(tmp: Path) -> dict[str, str]:
    agent()(tmp)
    write(tmp, "secret.txt", "outside")
    os.symlink("../../secret.txt", tmp / "agent/system/leak.md")
    return {}


def non_utf8_name(tmp: Path) -> dict[str, str]:
    agent()(tmp)
    (tmp / "agent" / os.fsdecode(b"reference-\xff.md")).parent.mkdir(exist_ok=True)
    (tmp / "agent" / os.fsdecode(b"reference-\xff.md")).write_text("kept")
    return {}


def small_cap(tmp: Path) -> dict[str, str]:
    agent()(tmp)
    text = (tmp / "agent/agent.yaml").read_text() + "max_file_size: 500\n"
    write(tmp / "agent", "agent.yaml", text)
    write(tmp / "agent", "reference/big.md", "x" * 1000)
    return {}


LAUGHS = billion_laughs(9)
LAUGHS_IN_FRONT_MATTER = "---\n" + LAUGHS + "---\nbody\n"
LAUGHS_REPORTED = "invalid YAML: aliases expand"
DEEP = "---\nx: " + "[" * 50_000 + "]" * 50_000 + "\n---\nbody\n"
OVER_CAP = 10 * 1024 * 1024 + 1

CASES: list[Case] = [
    # -- hostile YAML: bounded, reported as a problem, still committed ----------------------
    Case("laughs-yaml-status", agent({"reference/l.yaml": LAUGHS}), ("status",), 0,
         stdout=LAUGHS_REPORTED, max_seconds=10),
    Case("laughs-yaml-commit", agent({"reference/l.yaml": LAUGHS}), ("commit",), 0,
         stdout="reference/l.yaml", max_seconds=10),
    Case("laughs-yaml-check", agent({"reference/l.yaml": LAUGHS}), ("check",), 1,
         stdout=LAUGHS_REPORTED, max_seconds=10),
    # context reports a file it cannot read and shows the rest (exit 0, as Letta Code does)
    Case("laughs-yaml-context", agent({"reference/l.yaml": LAUGHS}), ("context",), 0,
         stderr=LAUGHS_REPORTED, stdout="<system/persona>", max_seconds=10),
    Case("laughs-front-matter-status", agent({"system/l.md": LAUGHS_IN_FRONT_MATTER}),
         ("status",), 0, stdout=LAUGHS_REPORTED, max_seconds=10),
    Case("laughs-front-matter-commit", agent({"system/l.md": LAUGHS_IN_FRONT_MATTER}),
         ("commit",), 0, stdout="system/l.md", max_seconds=10),
    Case("laughs-front-matter-check", agent({"system/l.md": LAUGHS_IN_FRONT_MATTER}),
         ("check",), 1, stdout=LAUGHS_REPORTED, max_seconds=10),
    Case("laughs-front-matter-context", agent({"system/l.md": LAUGHS_IN_FRONT_MATTER}),
         ("context",), 0, stderr=LAUGHS_REPORTED, stdout="<system/persona>", max_seconds=10),
    Case("laughs-agent-yaml", manifest(LAUGHS), ("check",), 1, stdout=LAUGHS_REPORTED,
         max_seconds=10),
    Case("laughs-user-config", config(LAUGHS), ("cloud", "list"), 2, stderr=LAUGHS_REPORTED,
         max_seconds=10),
    Case("deep-front-matter", agent({"system/deep.md": DEEP}), ("check",), 1,
         stdout="system/deep.md:2: invalid YAML", max_seconds=10),
    # -- names memfs never commits ------------------------------------------------------
    Case("backslash-name", agent({"reference/back\\slash.md": "x"}), ("commit",), 1,
         stderr="reference/back\\slash.md: memfs would refuse to check this name out"),
    Case("dot-git-variant", agent({"Git~1/config": "x"}), ("commit",), 1,
         stderr="not versioned: Git~1/config"),
    Case("non-utf8-name-status", non_utf8_name, ("status",), 0,
         stdout="Not versioned: reference-\\xff.md: its name is not valid UTF-8"),
    Case("non-utf8-name-commit", non_utf8_name, ("commit",), 1,
         stderr="reference-\\xff.md: its name is not valid UTF-8"),
    Case("memfsignore-backslash", agent({".memfsignore": "\\\n"}), ("status",), 0,
         stdout=".memfsignore:1: not a valid ignore pattern"),
    Case("memfsignore-backslash-check", agent({".memfsignore": "\\\n"}), ("check",), 1,
         stdout=".memfsignore:1: not a valid ignore pattern"),
    Case("lock-timeout-text", agent(env={"MEMFS_LOCK_TIMEOUT": "abc"}), ("commit",), 2,
         stderr="MEMFS_LOCK_TIMEOUT='abc' is not a number of seconds"),
    Case("lock-timeout-negative", agent(env={"MEMFS_LOCK_TIMEOUT": "-1"}), ("commit",), 2,
         stderr="MEMFS_LOCK_TIMEOUT='-1'"),
    # -- files a commit keeps but reports (issue 2) ---------------------------------------
    Case("broken-front-matter", agent({"system/b.md": "---\ndescription: [\n---\nx\n"}),
         ("check",), 1, stdout="system/b.md:3: invalid YAML"),
    Case("non-utf8-content", agent({"system/b.md": b"caf\xe9\n"}), ("check",), 1,
         stdout="system/b.md:1: not valid UTF-8"),
    Case("binary-memory-file", agent({"system/b.md": b"\x00\x01\xff"}), ("check",), 1,
         stdout="system/b.md:1: binary content"),
    Case("over-the-size-cap", small_cap, ("commit",), 1,
         stderr="not versioned: reference/big.md: 1000 B is over the 500 B size cap"),
    Case("symlink-outside", symlink_outside, ("commit",), 1,
         stderr="not versioned: system/leak.md: symlink points outside the agent"),
    # -- agent.yaml and the user config ---------------------------------------------------
    Case("agent-yaml-broken", manifest("name: [\n"), ("check",), 1,
         stdout="agent.yaml:2: invalid YAML"),
    Case("agent-yaml-broken-export", manifest("name: [\n"), ("export-af", "-o", "../x.af"), 1,
         stderr="agent.yaml:2: invalid YAML"),
    Case("agent-yaml-missing-keys", manifest("name: x\n"), ("check",), 1,
         stdout="agent.yaml:1: id: required key is missing"),
    Case("config-broken-yaml", config("a: [\n"), ("cloud", "list"), 2,
         stderr="config.yaml:2: invalid YAML"),
    Case("config-wrong-shape", config("clouds: 3\n"), ("cloud", "list"), 2,
         stderr="config.yaml:1: clouds:"),
    Case("config-not-utf8", config(b"\xff\xfe"), ("cloud", "list"), 2,
         stderr="config.yaml:1: cannot read"),
    Case("config-broken-checkout", config("a: [\n"), ("checkout", "x"), 2,
         stderr="config.yaml:2: invalid YAML"),
    # -- not an agent, unknown revision or path (issue 2) ---------------------------------
    Case("not-an-agent", nothing, ("status",), 3, stderr="is not a memfs agent"),
    Case("not-an-agent-C", nothing, ("-C", "../nowhere", "log"), 3,
         stderr="../nowhere is not a memfs agent (no such directory)"),
    Case("init-existing", agent(), ("init", "."), 1, stderr="is already a memfs agent"),
    Case("init-bad-name", nothing, ("init", "x", "--name", "bad name"), 2,
         stderr="invalid agent name 'bad name'"),
    Case("show-unknown-rev", agent(), ("show", "nope"), 4, stderr="unknown revision 'nope'"),
    Case("diff-unknown-rev", agent(), ("diff", "nope"), 4, stderr="unknown revision 'nope'"),
    Case("revert-unknown-rev", agent(), ("revert", "nope"), 4, stderr="unknown revision"),
    Case("restore-unknown-rev", agent(), ("restore", "system/human.md", "--to", "nope"), 4,
         stderr="unknown revision 'nope'"),
    Case("context-unknown-rev", agent(), ("context", "--rev", "nope"), 4,
         stderr="unknown revision 'nope'"),
    Case("show-unknown-path", agent(), ("show", "HEAD:nosuch.md"), 4,
         stderr="nosuch.md does not exist in revision HEAD"),
    Case("restore-unknown-path", agent(), ("restore", "nosuch.md", "--to", "HEAD"), 4,
         stderr="nosuch.md does not exist in revision HEAD"),
    Case("log-unknown-path", agent(), ("log", "nosuch.md"), 4,
         stderr="nosuch.md does not exist in the history or the work tree"),
    Case("log-zero", agent(), ("log", "-n", "0"), 2, stderr="Error: Invalid value for '-n'",
         stderr_lines=4),
    # -- remotes, merges, conflicts (issue 3) ---------------------------------------------
    Case("push-unknown-remote", agent(), ("push", "nosuch"), 2,
         stderr="no remote named 'nosuch'"),
    Case("fetch-unknown-remote", agent(), ("fetch", "nosuch"), 2,
         stderr="no remote named 'nosuch'"),
    Case("remove-unknown-remote", agent(), ("remote", "remove", "nosuch"), 2,
         stderr="no remote named 'nosuch'"),
    Case("gc-unknown-remote", agent(), ("gc", "--remote", "nosuch"), 2,
         stderr="no remote named 'nosuch'"),
    Case("remote-unknown-scheme", agent(), ("remote", "add", "x", "ftp://host/x"), 2,
         stderr="unknown scheme 'ftp'"),
    Case("push-bad-conflict", with_bare_remote, ("push", "--conflict", "nope"), 2,
         stderr="Invalid value for '--conflict'", stderr_lines=4),
    Case("sync-bad-conflict", with_bare_remote, ("sync", "--conflict", "nope"), 2,
         stderr="Invalid value for '--conflict'", stderr_lines=4),
    Case("clone-missing", nothing, ("clone", "/nonexistent/agent", "c"), 7,
         stderr="no repository at /nonexistent/agent"),
    Case("resolve-no-conflict", agent(), ("resolve", "system/human.md", "--keep", "ours"), 1,
         stderr="no open conflict at system/human.md"),
    # -- clouds, watchers, mounts (issues 4-6) --------------------------------------------
    Case("checkout-unknown-cloud", agent(), ("checkout", "x", "--cloud", "nocloud"), 2,
         stderr="no cloud named 'nocloud'"),
    Case("agents-unknown-cloud", agent(), ("agents", "--cloud", "nocloud"), 2,
         stderr="no cloud named 'nocloud'"),
    Case("cloud-default-unknown", agent(), ("cloud", "default", "nocloud"), 2,
         stderr="no cloud named 'nocloud'"),
    Case("checkout-unknown-agent", agent(), ("checkout", "nosuch", "../c"), 7,
         stderr="cloud local has no agent 'nosuch'"),
    Case("watch-stop-none", agent(), ("watch", "--stop", "."), 8, stderr="no watcher runs"),
    Case("unmount-not-mounted", nothing, ("unmount", "../nowhere"), 1, stderr="is not mounted"),
    # -- Letta Agent Files (issue 6, issue 10 item 10) -------------------------------------
    Case("import-af-missing", nothing, ("import-af", "none.af", "x"), 1, stderr="no such file"),
    Case("import-af-not-json", agent({"bad.af": "{"}), ("import-af", "bad.af", "../x"), 1,
         stderr="not valid JSON"),
    Case("import-af-same-label", agent_file([("human", "a"), ("human", "b")]),
         ("import-af", "in.af", "x"), 1, stderr="would both be the memory file system/human.md"),
    Case("import-af-label-and-system-label",
         agent_file([("human", "a"), ("system/human", "b")]), ("import-af", "in.af", "x"), 1,
         stderr="blocks 'human' and 'system/human' would both be"),
    Case("import-af-file-and-folder", agent_file([("notes/a", "a"), ("notes/a.md/b", "b")]),
         ("import-af", "in.af", "x"), 1, stderr="would be a file and a folder of the same name"),
    Case("import-af-over-cap", agent_file([("human", "x" * OVER_CAP)]),
         ("import-af", "in.af", "x"), 1, stderr="block 'human' is 10485"),
    Case("import-af-backslash-label", agent_file([("notes\\draft", "a"), ("notes/draft", "b")]),
         ("import-af", "in.af", "x"), 1, stderr="would both be the memory file system/notes/draft.md"),
    Case("import-af-escaping-label", agent_file([("../../outside", "a")]),
         ("import-af", "in.af", "x"), 1, stderr="block '../../outside' cannot be the memory file"),
]  # fmt: skip


def _isolated_env(tmp: Path) -> dict[str, str]:
    """The environment of every run: home, config, data and temp files all under ``tmp``."""
    env = {key: value for key, value in os.environ.items() if key != "MEMFS_DEBUG"}
    home = tmp / "home"
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        MEMFS_CONFIG=str(home / ".config/memfs/config.yaml"),
        MEMFS_DATA_DIR=str(home / ".local/share/memfs"),
        TMPDIR=str(tmp / "tmpdir"),
    )
    (tmp / "tmpdir").mkdir(parents=True, exist_ok=True)
    return env


def _limit_memory() -> None:
    """In the child: a hostile input must fail, not take the machine's memory."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _listing(folder: Path) -> set[str]:
    return {entry.name for entry in folder.iterdir()} if folder.is_dir() else set()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input(case: Case, tmp_path: Path) -> None:
    tmp = tmp_path / "case"
    tmp.mkdir()
    env = _isolated_env(tmp)
    env.update(case.setup(tmp))
    outside = {tmp_path.parent: _listing(tmp_path.parent), tmp_path: _listing(tmp_path)}
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "memfs", *case.args],
        cwd=tmp / case.cwd,
        env=env,
        capture_output=True,
        timeout=RUN_TIMEOUT,
        preexec_fn=_limit_memory,
        check=False,
    )
    elapsed = time.monotonic() - started
    stdout = completed.stdout.decode("utf-8", "replace")
    stderr = completed.stderr.decode("utf-8", "replace")
    where = f"exit {completed.returncode}\nstdout: {stdout}\nstderr: {stderr}"
    assert "Traceback" not in stderr and "internal error" not in stderr, where
    assert completed.returncode == case.exit_code, where
    expected_lines = case.stderr_lines if case.stderr_lines is not None else int(bool(case.stderr))
    assert len(stderr.splitlines()) == expected_lines, where
    assert case.stderr in stderr, where
    assert case.stdout in stdout, where
    if case.max_seconds is not None:
        assert elapsed < case.max_seconds, f"{case.id} took {elapsed:.1f} s"
    for folder, before in outside.items():
        assert _listing(folder) == before, f"{case.id} created something in {folder}"


def test_the_hostile_files_are_committed_not_lost(tmp_path: Path) -> None:
    """A file reported as a problem is still committed: validation never blocks saving."""
    env = _isolated_env(tmp_path)
    files = {"reference/l.yaml": LAUGHS, "system/l.md": LAUGHS_IN_FRONT_MATTER, "system/d.md": DEEP}
    agent(files)(tmp_path)
    completed = subprocess.run(
        [sys.executable, "-m", "memfs", "commit"],
        cwd=tmp_path / "agent",
        env=env,
        capture_output=True,
        timeout=RUN_TIMEOUT,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    for path, content in files.items():
        assert git(tmp_path / "agent", "show", f"HEAD:{path}") == content
    assert yaml.safe_load(git(tmp_path / "agent", "show", "HEAD:agent.yaml"))["name"] == "agent"


def test_a_refused_import_writes_nothing(tmp_path: Path) -> None:
    agent_file([("human", "a"), ("system/human", "b")])(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "memfs", "import-af", "in.af", "x"],
        cwd=tmp_path / "agent",
        env=_isolated_env(tmp_path),
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert sorted(_listing(tmp_path / "agent")) == ["in.af"]
