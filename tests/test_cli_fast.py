"""The click-free fast path (memfs/cli/fast.py) says and does what click's path says and does.

Each case builds the same situation twice (two folders, each with its own bare git hub at a
path relative to the agent), runs ``memfs ARGS`` as a whole process through the fast path
(``python -m memfs``) in one and through click (``memfs.cli.app.cli``) in the other, and
compares stdout, stderr and the exit code; commit ids, times and the folders' own paths, which
differ between the two builds, are masked. The shapes the fast path refuses still work, through
click, with click's help and usage errors.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import memfs
from memfs import sync
from memfs.cli.fast import parse
from memfs.cloning import clone
from memfs.remotes.configure import add_remote
from tests.conftest import git, write
from tests.servers import bare_repo

CLICK = "from memfs.cli.app import cli; cli(prog_name='memfs')"
PERSONA = "system/persona.md"


def run(args: list[str], cwd: Path, fast: bool, merged: bool = False) -> tuple[str, str, int]:
    """``memfs ARGS`` in a fresh process, by the fast path or by click: stdout, stderr, code."""
    entry = ["-m", "memfs"] if fast else ["-c", CLICK]
    result = subprocess.run(
        [sys.executable, *entry, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout, result.stderr or "", result.returncode


def masked(text: str, base: Path) -> str:
    """``text`` without what differs between two builds of one situation."""
    text = text.replace(str(base), "<base>")
    text = re.sub(r"\d{4}-\d\d-\d\d[T ][\d:.]+(?:[+-]\d\d:?\d\d|Z)?", "<time>", text)
    return re.sub(r"\b[0-9a-f]{7,40}\b", "<sha>", text)


def clean(base: Path) -> Path:
    """An agent with two files, committed and pushed to ../hub.git."""
    bare_repo(base / "hub.git")
    root = base / "agent"
    with memfs.init(root, name="twin") as agent:
        write(root, PERSONA, "---\ndescription: who I am\nlimit: 500\n---\nCurious.\n")
        write(root, "reference/notes.md", "---\ndescription: notes\n---\nSome notes.\n")
        agent.commit(message="memory")
        add_remote(agent.history, "origin", "../hub.git")
        assert sync.push(agent).ok
    return root


def dirty(base: Path) -> Path:
    root = clean(base)
    write(root, PERSONA, "---\ndescription: who I am\nlimit: 500\n---\nCurious, kind.\n")
    write(root, "reference/new.md", "---\ndescription: new\n---\nNew.\n")
    write(root, "reference/broken.md", "---\ndescription: [unclosed\n---\nBroken.\n")
    return root


def held(base: Path) -> Path:
    """A change and a symlink leaving the agent: commit leaves it out (exit 1)."""
    root = dirty(base)
    os.symlink("/", root / "escape")
    return root


def behind(base: Path) -> Path:
    """Another clone pushed an edit the agent has not pulled."""
    root = clean(base)
    with clone(str(base / "hub.git"), base / "other") as other:
        write(other.root, "reference/notes.md", "---\ndescription: notes\n---\nMore notes.\n")
        assert sync.push(other).ok
    return root


def diverged(base: Path) -> Path:
    """Both sides changed the same file: a pull settles a conflict."""
    root = behind(base)
    write(root, "reference/notes.md", "---\ndescription: notes\n---\nOther notes.\n")
    return root


def bad_remote(base: Path) -> Path:
    root = dirty(base)
    with memfs.open(root) as agent:
        add_remote(agent.history, "broken", "../missing.git")
    return root


def not_an_agent(base: Path) -> Path:
    (base / "plain").mkdir(parents=True)
    return base / "plain"


# a situation -> how to build it, and the folder the command runs in
SITUATIONS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "clean": (clean, "agent"),
    "dirty": (dirty, "agent"),
    "held": (held, "agent"),
    "behind": (behind, "agent"),
    "diverged": (diverged, "agent"),
    "bad remote": (bad_remote, "agent"),
    "not an agent": (not_an_agent, "plain"),
}


def twins(tmp_path: Path, situation: str) -> tuple[Path, Path]:
    """The situation built once and copied (every remote is a path relative to its agent, so
    the copy is a whole second world): one for each path."""
    first, second = tmp_path / "fast", tmp_path / "click"
    SITUATIONS[situation][0](first)
    shutil.copytree(first, second, symlinks=True)
    return first, second


# (situation, argv); "{agent}" is the agent's folder, "{base}" the situation's folder. Run in
# the agent's folder unless the argv names it.
CASES = [
    ("clean", ["status"]),
    ("clean", ["context", "--format", "letta", "--from-head"]),
    ("clean", ["context", "--rev", "nosuch"]),
    ("clean", ["commit"]),
    ("clean", ["push", "-q"]),
    ("dirty", ["status"]),
    ("dirty", ["-C", "{agent}", "status", "--json"]),
    ("dirty", ["--agent={agent}", "ls", "--json"]),
    ("dirty", ["context"]),
    ("dirty", ["context", "{agent}", "--format=json", "--strict"]),
    ("dirty", ["context", "--format", "letta", "--agent-id", "a-1", "--messages", "3",
               "--conversation-id", "c"]),
    ("dirty", ["--agent", "{agent}", "commit", "-m", "by hand"]),
    ("dirty", ["commit", "--message=two words"]),
    ("dirty", ["push", "--json"]),
    ("dirty", ["sync", "--env-name", "box", "--quiet"]),
    ("held", ["status"]),
    ("held", ["commit"]),
    ("behind", ["fetch", "origin", "--json"]),
    ("behind", ["pull", "--ff-only"]),
    ("behind", ["pull", "origin", "--json"]),
    ("diverged", ["pull", "--conflict", "copy"]),
    ("diverged", ["pull", "--ff-only"]),
    ("diverged", ["sync", "--conflict=markers"]),
    ("bad remote", ["push"]),
    ("bad remote", ["push", "nosuch"]),
    ("not an agent", ["status"]),
    ("not an agent", ["-C", "{base}/missing", "ls"]),
    ("not an agent", ["context", "{base}/missing"]),
    ("not an agent", ["commit", "-m", "x"]),
]  # fmt: skip


@pytest.mark.parametrize(("situation", "args"), CASES, ids=[" ".join(c[1]) for c in CASES])
def test_the_fast_path_says_what_click_says(
    tmp_path: Path, situation: str, args: list[str]
) -> None:
    bases = twins(tmp_path, situation)
    outcomes = []
    for fast, base in zip((True, False), bases, strict=True):
        cwd = base / SITUATIONS[situation][1]
        argv = [a.format(agent=cwd, base=base) for a in args]
        if fast:
            assert parse(argv) is not None, "a shape the fast path runs"
        out, err, code = run(argv, cwd, fast)
        outcomes.append((masked(out, base), masked(err, base), code, left_behind(cwd)))
    assert outcomes[0] == outcomes[1]


def left_behind(root: Path) -> tuple[str, str]:
    """What a command leaves in the agent: the files of its last commit and the work tree's
    state (not their ids: conflict markers name commits, and those differ by their times)."""
    if not (root / ".git").exists():
        return "", ""
    committed = git(root, "ls-tree", "-r", "--name-only", "HEAD")
    state = git(root, "status", "--porcelain", "--untracked-files=all")
    # a conflict copy's name holds a commit's id too: the twins' differ when their merges
    # fall in different seconds (flaky: seen as conflict-4d6ab44 against conflict-b29f88b)
    copy = re.compile(r"\.conflict-[0-9a-f]{7}")
    return copy.sub(".conflict-<id>", committed), copy.sub(".conflict-<id>", state)


@pytest.mark.parametrize(
    ("situation", "args"), [("held", ["commit"]), ("diverged", ["pull"]), ("dirty", ["ls"])]
)
def test_stdout_and_stderr_keep_their_order_on_one_pipe(
    tmp_path: Path, situation: str, args: list[str]
) -> None:
    outcomes = []
    for fast, base in zip((True, False), twins(tmp_path, situation), strict=True):
        out, _, code = run(args, base / SITUATIONS[situation][1], fast, merged=True)
        outcomes.append((masked(out, base), code))
    assert outcomes[0] == outcomes[1]
    assert "memfs: " in outcomes[0][0], "both streams were written"


def test_changes_letta_holds_back_are_told_alike(letta_v1_repo: Path, tmp_path: Path) -> None:
    """A Letta Code repo with an edit of a read-only file (held: exit 1) and of another file."""
    for path, old, new in (
        ("system/rules.md", "Never force-push.", "Force-push whenever."),
        ("system/human.md", "Name: Ada", "Name: Ada Lovelace"),
    ):
        target = letta_v1_repo / path
        target.write_text(target.read_text(encoding="utf-8").replace(old, new, 1), "utf-8")
    cases = (["status"], ["commit"], ["commit", "--allow-read-only", "system/rules.md"])
    for number, args in enumerate(cases):
        outcomes = []
        for fast in (True, False):
            root = tmp_path / f"{number}-{fast}" / "repo"
            shutil.copytree(letta_v1_repo, root, symlinks=True)
            out, err, code = run(args, root, fast)
            outcomes.append((masked(out, root), masked(err, root), code))
        assert outcomes[0] == outcomes[1], args
        assert outcomes[0][2] == (1 if args == ["commit"] else 0), outcomes[0]


def test_memfs_agent_in_the_environment_names_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = dirty(tmp_path)
    monkeypatch.setenv("MEMFS_AGENT", str(root))
    assert (fast := run(["status"], tmp_path, fast=True))[2] == 0
    assert fast == run(["status"], tmp_path, fast=False)
    assert "modified:  system/persona.md" in fast[0]
    monkeypatch.setenv("MEMFS_AGENT", "")  # click: an empty variable is no variable
    assert run(["status"], tmp_path, fast=True) == run(["status"], tmp_path, fast=False)


# Shapes the fast path leaves to click: help, unknown, repeated or misplaced options, missing
# values, values click checks, and "--".
REFUSED = [
    (["status", "--help"], 0, "Usage: memfs status [OPTIONS]"),
    (["status", "-h"], 0, "Usage: memfs status [OPTIONS]"),
    (["--help"], 0, "Usage: memfs [OPTIONS] COMMAND [ARGS]..."),
    (["--version"], 0, "memfs, version"),
    (["status", "--bogus"], 2, "Error: No such option '--bogus'."),
    (["status", "--json=yes"], 2, "Error: Option '--json' does not take a value."),
    (["status", "extra"], 2, "Error: Got unexpected extra argument (extra)"),
    (["commit", "-m"], 2, "Error: Option '-m' requires an argument."),
    (["push", "--conflict", "nope"], 2, "Error: Invalid value for '--conflict'"),
    (["context", "--from-head", "--rev", "HEAD"], 2, "Error: --from-head and --rev are the same"),
    (["context", "--metadata"], 2, "Error: --metadata goes with --format letta"),
    (["context", "--format", "yaml"], 2, "Error: Invalid value for '--format'"),
    (["context", "--messages", "-1"], 2, "Error: Invalid value for '--messages'"),
    (["context", "agent.yaml"], 2, "is a file."),
    (["-C"], 2, "Error: Option '-C' requires an argument."),
    (["status", "-C", "."], 2, "Error: No such option '-C'."),
    (["pull", "a", "b"], 2, "Error: Got unexpected extra argument (b)"),
]


def test_every_shape_the_fast_path_refuses_still_runs_through_click(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each refused shape gives click's answer (in-process: the shapes are many); a few run
    as whole processes too, through ``main``'s hand-over to click."""
    from click.testing import CliRunner

    from memfs.cli.app import cli

    root = clean(tmp_path)
    monkeypatch.chdir(root)  # "context agent.yaml" names a file there
    for args, code, says in REFUSED:
        assert parse(args) is None, args
        result = CliRunner().invoke(cli, args, prog_name="memfs")
        assert (result.exit_code, says in result.output) == (code, True), (args, result.output)
    for args, code, says in (REFUSED[0], REFUSED[4], REFUSED[9]):
        out, err, got = run(args, root, fast=True)
        assert (got, says in out + err) == (code, True), (args, out, err)
    refused_too = (
        ["status", "--json", "--json"],
        ["commit", "-m", "a", "-m", "b"],
        ["push", "--", "origin"],
        ["commit", "-mX"],
        ["-C", "a", "-C", "b", "status"],
        ["--agent=", "status"],
        ["log"],
        [],
    )
    assert [args for args in refused_too if parse(args) is not None] == []


def test_the_fast_path_reads_what_it_runs() -> None:
    parsed = parse(
        ["--agent=/a", "commit", "--allow-read-only", "x", "-m", "m", "--allow-read-only=y"]
    )
    assert parsed is not None
    assert (parsed.command, parsed.agent_dir) == ("commit", "/a")
    assert parsed.options == {"allow_read_only": ("x", "y"), "message": "m"}
    parsed = parse(["pull", "-q", "origin", "--conflict=ours", "--ff-only"])
    assert parsed is not None and parsed.arguments == ["origin"]
    assert parsed.options == {"quiet": True, "policy": "ours", "ff_only": True}


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "click"])
@pytest.mark.parametrize("closed", [1, 2], ids=["stdout", "stderr"])
def test_a_command_started_with_a_closed_descriptor_succeeds_quietly(
    tmp_path: Path, fast: bool, closed: int
) -> None:
    """``memfs ls >&-``: Python has no sys.stdout then; the command still ends with its own
    exit code, no traceback (found from outside: ``_exit_now`` flushed ``None``)."""
    root = clean(tmp_path)
    entry = ["-m", "memfs"] if fast else ["-c", CLICK]
    keep = 2 if closed == 1 else 1
    result = subprocess.run(
        ["sh", "-c", f'"$@" {closed}>&- {keep}>"{tmp_path}/out"', "sh", sys.executable, *entry,
         "-C", str(root), "ls"],
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0
    assert "Traceback" not in (tmp_path / "out").read_text()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "click"])
def test_a_commit_message_that_is_not_utf8_is_a_usage_error(tmp_path: Path, fast: bool) -> None:
    """A Latin-1 byte from the shell reaches Python as a lone surrogate: one line, exit 2,
    nothing committed, the edit kept (was an internal error, exit 70)."""
    root = dirty(tmp_path)
    head = git(root, "rev-parse", "HEAD")
    entry = ["-m", "memfs"] if fast else ["-c", CLICK]
    result = subprocess.run(
        [sys.executable.encode(), *(a.encode() for a in entry), b"commit", b"-m", b"caf\xe9"],
        cwd=root,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        b"memfs: the commit message is not valid UTF-8 (a byte of another encoding?): "
        b"nothing was committed\n"
    )
    assert git(root, "rev-parse", "HEAD") == head
    assert "Curious, kind." in (root / PERSONA).read_text()


def test_ctrl_c_while_starting_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """An interrupt that lands before a command's own handler (here: raised in the process
    at the first step of ``main``) prints ``memfs: interrupted``, exit 130, no traceback."""
    root = clean(tmp_path)
    probe = (
        "import os, signal, sys\n"
        "import memfs.cli as cli\n"
        "cli._collect_later = lambda: os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.argv = ['memfs', 'status']\n"
        "cli.main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stderr) == (130, "memfs: interrupted\n")
