"""Helpers for the fault, crash and two-machine harness (tests/test_faults.py, test_crash.py,
test_two_machines.py and the full-size scripts in stress/).

A ``Machine`` is one computer: its own HOME, config, data dir and host name, and one agent
folder. memfs runs on it as a user runs it, ``python -m memfs ...`` in a child process, so an
exit code, a traceback or a kill -9 is seen exactly as a user would see it. A ``Ledger``
records every unique token a random editor writes and every file the test deletes, and says
which tokens the final tree lost.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from memfs.remotes import open_remote

from .s3 import CREDENTIALS
from .servers import wait_for

if TYPE_CHECKING:
    from .faultproxy import FaultProxy

INTERNAL_ERROR_EXIT = 70
REMOTE_EXIT = 7
TOKEN = re.compile(rb"<tok-[a-z]+-\d{6}>")
SHARED_FILES = ("shared/log", "shared/plan.md", "shared/data.c")


# -- machines --------------------------------------------------------------------------------


@dataclass
class Machine:
    """One computer: its own home, config and state, and the agent folder it works in."""

    name: str
    home: Path
    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, base: Path, name: str, extra_env: dict[str, str] | None = None) -> Machine:
        home = base / f"machine-{name}" / "home"
        home.mkdir(parents=True, exist_ok=True)
        return cls(name, home, base / f"machine-{name}" / "agent", dict(extra_env or {}))

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment memfs runs in on this machine (nothing of the developer's)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("MEMFS_", "GIT_", "XDG_"))
        }
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_DATA_HOME=str(self.home / ".local/share"),
            MEMFS_CONFIG=str(self.home / ".config/memfs/config.yaml"),
            MEMFS_DATA_DIR=str(self.home / ".local/share/memfs"),
            MEMFS_HOST=f"machine-{self.name}",
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=str(self.home / ".gitconfig"),
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def memfs(
        self, *args: str, crash_at: str = "", timeout: float = 120.0, agent: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``memfs [-C root] args`` here; with ``crash_at``, under MEMFS_CRASH_AT."""
        command = memfs_command(*((("-C", str(self.root)) if agent else ()) + args))
        env = self.env(**({"MEMFS_CRASH_AT": crash_at} if crash_at else {}))
        return subprocess.run(
            command,
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def memfs_killed_after(
        self, delay_s: float, *args: str, agent: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run memfs here and SIGKILL it after ``delay_s`` (if it is still running by then)."""
        command = memfs_command(*((("-C", str(self.root)) if agent else ()) + args))
        process = subprocess.Popen(
            command,
            env=self.env(),
            cwd=self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            process.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        out, err = process.communicate(timeout=timeout)
        return subprocess.CompletedProcess(command, process.returncode, out, err)

    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD").strip()

    def clean(self) -> bool:
        return git(self.root, "status", "--porcelain") == ""


def memfs_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "memfs", *args]


def fresh_python(code: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``code`` in a new interpreter (what a command's process loads, free of this test
    process's imports); its stdout, stripped. Fails the test if it fails."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def git(root: Path, *args: str, check: bool = True) -> str:
    """The real git CLI in ``root``; its stdout."""
    env = dict(os.environ)
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com")
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, errors="replace", env=env
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {root} failed: {done.stderr.strip()}")
    return done.stdout


def fsck(root: Path) -> str:
    """``git fsck --strict`` on ``root``: '' when clean, else what git said."""
    done = subprocess.run(
        ["git", "fsck", "--strict", "--no-progress"], cwd=root, capture_output=True, text=True
    )
    if done.returncode == 0:
        return ""
    return (done.stdout + done.stderr).strip() or f"exit {done.returncode}"


def assert_exit_is_documented(result: subprocess.CompletedProcess[str], what: str = "") -> None:
    """A failure is one clear line and a documented code: no internal error, no traceback."""
    label = what or " ".join(str(a) for a in result.args[3:])
    assert result.returncode != INTERNAL_ERROR_EXIT, f"{label}: internal error: {result.stderr}"
    assert "Traceback" not in result.stderr, f"{label}: traceback:\n{result.stderr}"
    if result.returncode not in (0, -signal.SIGKILL):
        assert result.stderr.strip(), f"{label}: exit {result.returncode} and nothing on stderr"


def setup_two_machines(
    base: Path, url: str, extra_env: dict[str, str] | None = None, encrypt: bool = False
) -> tuple[Machine, Machine]:
    """Machine a creates agent 'shared' and pushes it to ``url``; machine b clones it.
    ``encrypt``: the remote is encrypted (``remote add --encrypt``, an object store only),
    and a adds b's recipient (``memfs key add``) before b clones."""
    a = Machine.create(base, "a", extra_env)
    b = Machine.create(base, "b", extra_env)
    for machine in (a, b):
        for setting in (("user.name", machine.name), ("user.email", f"{machine.name}@x.org")):
            subprocess.run(
                ["git", "config", "--file", str(machine.home / ".gitconfig"), *setting], check=True
            )
    sealed = ("--encrypt",) if encrypt else ()
    for args in (
        ("init", str(a.root), "--name", "shared"),
        ("-C", str(a.root), "remote", "add", "origin", url, *sealed),
        ("-C", str(a.root), "push"),
    ):
        done = a.memfs(*args, agent=False)
        assert done.returncode == 0, f"machine a: memfs {' '.join(args)}: {done.stderr}"
    if encrypt:
        done = b.memfs("key", "id", agent=False)
        assert done.returncode == 0, f"machine b: key id: {done.stderr}"
        recipient = re.findall(r"age1[0-9a-z]{20,}", done.stdout)
        assert len(recipient) == 1, f"machine b: key id printed {done.stdout!r}"
        done = a.memfs("key", "add", recipient[0], "--name", "b")
        assert done.returncode == 0, f"machine a: key add: {done.stderr}"
    done = b.memfs("clone", url, str(b.root), agent=False)
    assert done.returncode == 0, f"machine b: clone: {done.stderr}"
    return a, b


def sync_until_converged(
    machines: list[Machine], rounds: int = 6, remote_head: Callable[[], str | None] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Sync every machine in turn until all hold one head (and the remote's), trees clean."""
    results = []
    for _ in range(rounds):
        for machine in machines:
            results.append(machine.memfs("sync"))
            assert_exit_is_documented(results[-1], f"{machine.name}: sync")
        heads = {machine.head() for machine in machines}
        if remote_head is not None:
            heads.add(remote_head() or "")
        if len(heads) == 1 and all(machine.clean() for machine in machines):
            return results
    last = "\n".join(f"{r.returncode}: {r.stderr.strip()}" for r in results[-len(machines) :])
    state = "\n".join(
        f"{m.name}: head {m.head()[:7]}, git status {git(m.root, 'status', '--porcelain')!r}"
        for m in machines
    )
    raise AssertionError(
        f"machines did not converge in {rounds} rounds; last syncs:\n{last}\n{state}"
    )


# -- trees and tokens ------------------------------------------------------------------------


def committed_files(root: Path, rev: str = "HEAD") -> dict[str, bytes]:
    """Every file of commit ``rev``, read with the real git: path -> bytes.

    Two git processes whatever the number of files (``ls-tree``, then one ``cat-file
    --batch`` for every blob), not one per file: the crash tests call this after every kill.
    """
    listed = [line for line in git(root, "ls-tree", "-r", "-z", rev).split("\0") if line]
    entries = [(line.split("\t", 1)[1], line.split()[1], line.split()[2]) for line in listed]
    assert all(kind == "blob" for _, kind, _ in entries), f"not only files at {rev}: {entries}"
    batch = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=root,
        input="".join(f"{sha}\n" for _, _, sha in entries).encode(),
        capture_output=True,
        check=True,
    ).stdout
    files, at = {}, 0
    for path, _, sha in entries:
        end = batch.index(b"\n", at)
        name, kind, size = batch[at:end].split()
        assert name.decode() == sha and kind == b"blob", batch[at:end]
        files[path] = batch[end + 1 : end + 1 + int(size)]
        at = end + 1 + int(size) + 1  # the content, then a newline
    return files


def worktree_files(root: Path) -> dict[str, bytes]:
    """Every file of the work tree outside .git: path -> bytes (symlinks as their target)."""
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if relative == ".git" or relative.startswith(".git/"):
            continue
        if path.is_symlink():
            files[relative] = os.readlink(path).encode()
        elif path.is_file():
            files[relative] = path.read_bytes()
    return files


@dataclass
class Ledger:
    """Every token written (where and when) and every deletion the test made."""

    written: dict[str, tuple[str, float]] = field(default_factory=dict)
    deleted: dict[str, list[float]] = field(default_factory=dict)
    edits: Counter[str] = field(default_factory=Counter)
    sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_token(self, machine: str) -> str:
        return (
            f"<tok-{machine}-{next(self.sequence):06d}>"  # next() is atomic: editors may be threads
        )

    def wrote(self, token: str, path: str) -> None:
        self.written[token] = (path, time.monotonic())

    def removed(self, path: str) -> None:
        self.deleted.setdefault(path, []).append(time.monotonic())

    def expected(self) -> dict[str, str]:
        """Tokens that must survive: token -> path (not in a file the test deleted later)."""
        return {
            token: path
            for token, (path, when) in self.written.items()
            if not any(gone > when for gone in self.deleted.get(path, []))
        }

    def lost(self, files: dict[str, bytes]) -> dict[str, str]:
        """Expected tokens found in no file (at their path or a conflict copy): token -> path."""
        present = set()
        for data in files.values():
            present.update(match.decode() for match in TOKEN.findall(data))
        return {token: path for token, path in self.expected().items() if token not in present}


class RandomEditor:
    """Random edits on one machine's work tree, as a person, an agent or an editor makes them.

    Each machine owns its files (``notes/<machine>-N.md`` and extension-less
    ``notes/<machine>-N``): it appends to them, saves them atomically (write a temp file,
    rename it over), creates and deletes them. Both machines append to ``SHARED_FILES``
    (same-file edits, so conflicts, with conflict copies that sort after the file). Only
    appends touch shared files: an editor that rewrites a file from a stale read loses the
    other machine's edit by itself, whatever memfs does.
    """

    KINDS = ("append", "atomic-save", "new-file", "delete", "shared-append")
    WEIGHTS = (3, 2, 2, 1, 3)

    def __init__(self, machine: str, root: Path, ledger: Ledger, rng: random.Random) -> None:
        self.machine = machine
        self.root = root
        self.ledger = ledger
        self.random = rng
        self.created = 0
        self.own: list[str] = []

    def _line(self, path: str) -> bytes:
        token = self.ledger.new_token(self.machine)
        self.ledger.wrote(token, path)
        return f"{token} from {self.machine}\n".encode()

    def edit(self) -> str:
        """Make one random edit; returns its kind."""
        kind = self.random.choices(self.KINDS, self.WEIGHTS)[0]
        if kind in ("append", "atomic-save", "delete") and not self.own:
            kind = "new-file"
        if kind == "new-file":
            self.created += 1
            suffix = self.random.choice((".md", "", ".c"))
            path = f"notes/{self.machine}-{self.created}{suffix}"
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            self._atomic_write(target, b"# notes\n" + self._line(path))
            self.own.append(path)
        elif kind == "append":
            path = self.random.choice(self.own)
            self._append(path)
        elif kind == "shared-append":
            path = self.random.choice(SHARED_FILES)
            (self.root / path).parent.mkdir(parents=True, exist_ok=True)
            self._append(path)
        elif kind == "atomic-save":
            path = self.random.choice(self.own)
            target = self.root / path
            old = target.read_bytes() if target.exists() else b""
            self._atomic_write(target, old + self._line(path))
        else:
            path = self.own.pop(self.random.randrange(len(self.own)))
            self.ledger.removed(path)
            (self.root / path).unlink(missing_ok=True)
        self.ledger.edits[kind] += 1
        return kind

    def _append(self, path: str) -> None:
        fd = os.open(self.root / path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, self._line(path))
        finally:
            os.close(fd)

    def _atomic_write(self, target: Path, data: bytes) -> None:
        temp = target.with_name(f".{target.name}.{self.random.randrange(10**6)}.tmp")
        temp.write_bytes(data)
        os.replace(temp, target)


def random_edits(editors: Iterable[RandomEditor], count: int) -> None:
    """``count`` edits, each by a random one of ``editors``."""
    pool = list(editors)
    for _ in range(count):
        pool[pool[0].random.randrange(len(pool))].edit()


# -- tables ----------------------------------------------------------------------------------


def table(rows: list[dict[str, object]]) -> str:
    """A plain text table of ``rows`` (same keys in each), for the stress scripts."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    lines = ["  ".join(k.ljust(widths[k]) for k in keys)]
    lines.append("  ".join("-" * widths[k] for k in keys))
    lines += ["  ".join(str(r.get(k, "")).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join(lines)


# -- crash trials ----------------------------------------------------------------------------

KILLED = -signal.SIGKILL


def write_tokens(machine: Machine, ledger: Ledger, paths: Iterable[str]) -> None:
    """Append one new token to each of ``paths`` on ``machine`` (creating files)."""
    for path in paths:
        target = machine.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        token = ledger.new_token(machine.name)
        ledger.wrote(token, path)
        with open(target, "ab") as handle:
            handle.write(f"{token} from {machine.name}\n".encode())


def prepare_merge(
    a: Machine, b: Machine, ledger: Ledger, tag: str, local_edits: bool = True
) -> None:
    """Leave ``a`` one pull away from a merge that writes several files, some conflicting.

    Both start from the same four files under ``tag/``. a changes ``log`` and commits; then,
    a second later (so the remote side is the newer and its version goes to the path), b
    changes ``log`` too (a conflict whose copy ``log.conflict-*`` sorts after the file:
    the merge writes the path first), changes another file, adds two and pushes. Last, a
    edits one file and deletes another without committing: the pull commits them first.
    """
    write_tokens(a, ledger, [f"{tag}/log", f"{tag}/two.md", f"{tag}/three.c", f"{tag}/four.md"])
    done = a.memfs("sync")
    assert done.returncode == 0, f"a: sync: {done.stderr}"
    write_tokens(a, ledger, [f"{tag}/log"])
    done = a.memfs("commit")
    assert done.returncode == 0, f"a: commit: {done.stderr}"
    committed_at = int(time.time())
    done = b.memfs("sync")  # b takes the shared files (not a's commit) while the second passes
    assert done.returncode == 0, f"b: sync: {done.stderr}"
    wait_for(lambda: int(time.time()) > committed_at, 5, "the next second")
    write_tokens(b, ledger, [f"{tag}/log", f"{tag}/four.md", f"{tag}/five.md", f"{tag}/six"])
    done = b.memfs("sync")
    assert done.returncode == 0, f"b: sync: {done.stderr}"
    if local_edits:
        write_tokens(a, ledger, [f"{tag}/two.md"])
        ledger.removed(f"{tag}/three.c")
        (a.root / tag / "three.c").unlink()


def check_after_crash(machines: list[Machine], ledger: Ledger, what: str) -> None:
    """After a kill: every repo fsck clean, the next syncs converge, no edit lost."""
    for machine in machines:
        found = fsck(machine.root)
        assert found == "", f"{what}: git fsck --strict on {machine.name}: {found}"
    sync_until_converged(machines)
    files = committed_files(machines[0].root)
    lost = ledger.lost(files)
    assert lost == {}, f"{what}: edits lost: {lost}"
    for machine in machines:
        assert worktree_files(machine.root) == committed_files(machine.root), machine.name


# -- watchers --------------------------------------------------------------------------------

WATCH_OPTIONS = ("--quiet-ms", "100", "--max-delay-ms", "1000", "--poll-s", "0.2")


def start_watcher(machine: Machine) -> None:
    """``memfs watch --daemon`` on this machine's agent (returns once it watches)."""
    done = machine.memfs("watch", "--daemon", str(machine.root), *WATCH_OPTIONS, agent=False)
    assert done.returncode == 0, f"{machine.name}: watch --daemon: {done.stderr}"


def stop_watcher(machine: Machine) -> subprocess.CompletedProcess[str]:
    """``memfs watch --stop``: commits and pushes what is pending, then stops."""
    return machine.memfs("watch", "--stop", str(machine.root), agent=False)


def edit_for_a_while(editor: RandomEditor, count: int, max_pause_s: float = 0.3) -> None:
    """``count`` random edits, 0 to ``max_pause_s`` apart (the pauses are the workload)."""
    for _ in range(count):
        editor.edit()
        time.sleep(editor.random.uniform(0.0, max_pause_s))


def watched_machines_converged(
    machines: list[Machine], remote_head: Callable[[], str | None]
) -> bool:
    """Both heads equal the remote's and every work tree is clean."""
    heads = {machine.head() for machine in machines}
    return len(heads) == 1 and heads == {remote_head()} and all(m.clean() for m in machines)


# -- fault runs ------------------------------------------------------------------------------


@dataclass
class FaultRun:
    """What one faulty two-machine run did."""

    syncs: int = 0
    exits: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # "exit: message" of failed syncs
    faults: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    edits: int = 0
    lost: dict[str, str] = field(default_factory=dict)
    fsck: dict[str, str] = field(default_factory=dict)


def faulty_two_machine_run(
    base: Path, proxy: FaultProxy, url: str, seed: int, rounds: int, edits_per_round: int
) -> FaultRun:
    """Two machines edit at random and sync through ``proxy`` for ``rounds``, then converge.

    Raises AssertionError on an internal error, a traceback or no convergence; returns the
    figures, with the lost tokens and fsck findings for the caller to assert on or print.
    """
    env = dict(CREDENTIALS, AWS_ENDPOINT_URL=proxy.endpoint)
    proxy.enabled = False
    a, b = setup_two_machines(base, url, env)
    ledger = Ledger()
    rng = random.Random(seed)
    editors = [RandomEditor(m.name, m.root, ledger, random.Random(rng.random())) for m in (a, b)]
    run = FaultRun()
    proxy.enabled = True
    for _ in range(rounds):
        for machine, editor in zip((a, b), editors, strict=True):
            random_edits([editor], edits_per_round)
            result = machine.memfs("sync")
            assert_exit_is_documented(result, f"machine {machine.name}: sync (faults on)")
            run.syncs += 1
            run.exits[result.returncode] += 1
            if result.returncode != 0:
                run.errors[f"{result.returncode}: {result.stderr.strip()[:160]}"] += 1
    proxy.enabled = False
    run.faults = Counter(proxy.counts)
    run.requests = proxy.requests

    def remote_head() -> str | None:
        return open_remote(url).head("main")

    sync_until_converged([a, b], remote_head=remote_head)
    assert a.head() == b.head()
    assert committed_files(a.root) == committed_files(b.root)
    fresh = Machine.create(base, "fresh", env)
    cloned = fresh.memfs("clone", url, str(fresh.root), agent=False)
    assert cloned.returncode == 0, f"a fresh clone failed: {cloned.stderr}"
    run.edits = sum(ledger.edits.values())
    run.lost = ledger.lost(committed_files(fresh.root))
    run.fsck = {m.name: fsck(m.root) for m in (a, b, fresh)}
    return run


def watched_two_machine_run(
    a: Machine,
    b: Machine,
    url: str,
    seed: int,
    edits_per_machine: int,
    remote_head: Callable[[], str | None] | None = None,
    max_pause_s: float = 0.3,
) -> tuple[Ledger, dict[str, str]]:
    """Watchers on both, random editors on both; wait for convergence; the lost tokens.
    ``remote_head``: how to read the remote's head (by default in this process: a plain
    remote; an encrypted one is read with a machine's keys, ``remote_head_as``)."""
    if remote_head is None:

        def remote_head() -> str | None:
            return open_remote(url).head("main")

    ledger = Ledger()
    rng = random.Random(seed)
    editors = [RandomEditor(m.name, m.root, ledger, random.Random(rng.random())) for m in (a, b)]
    for machine in (a, b):
        start_watcher(machine)
    try:
        threads = [
            threading.Thread(target=edit_for_a_while, args=(editor, edits_per_machine, max_pause_s))
            for editor in editors
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_for(
            lambda: watched_machines_converged([a, b], remote_head),
            timeout=60,
            what="both watched machines to converge on the remote's head",
        )
    finally:
        stopped = [stop_watcher(machine) for machine in (a, b)]
    assert all(done.returncode == 0 for done in stopped), [d.stderr for d in stopped]
    return ledger, ledger.lost(committed_files(a.root))


def remote_head_as(machine: Machine, url: str) -> Callable[[], str | None]:
    """A reader of the head of ``url``'s main as ``machine`` sees it (its identity and key
    cache: an encrypted remote), in a new process each time."""

    def head() -> str | None:
        code = f"from memfs.remotes import open_remote; print(open_remote({url!r}).head('main'))"
        found = fresh_python(code, machine.env())
        return None if found == "None" else found

    return head


def isolate_this_process(base: Path) -> None:
    """Point this process's HOME, config and data dir into ``base`` (for the stress scripts,
    which run outside pytest and its fixtures), with moto's test credentials."""
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    for key in [k for k in os.environ if k.startswith(("MEMFS_", "GIT_", "AWS_"))]:
        del os.environ[key]
    os.environ.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        MEMFS_CONFIG=str(home / ".config/memfs/config.yaml"),
        MEMFS_DATA_DIR=str(home / ".local/share/memfs"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        **CREDENTIALS,
    )
