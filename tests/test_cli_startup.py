"""``memfs`` starts fast: heavy libraries load only in the commands that use them.

A heavy module loaded by a command that does not need it costs every call of that command (a
harness runs ``memfs status`` and ``memfs context`` on every turn). Each case runs one command
in a fresh interpreter on a real agent and lists what got loaded; timings are in benchmarks/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import memfs
from memfs.remotes.configure import add_remote
from tests.conftest import S3Bucket, write

DAY_NS = 86_400 * 1_000_000_000
HEAVY = ("dulwich", "pydantic", "s3fs", "fsspec", "watchdog", "yaml", "botocore")
# Encryption loads only for an encrypted remote or an agent with secrets (issue 14): no
# existing command imports it.
CRYPTO = ("cryptography", "nacl", "pyrage", "memfs.crypto")


def test_help_imports_no_heavy_library() -> None:
    probe = (
        "import sys\n"
        "from memfs.cli import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='memfs')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {(*HEAVY, *CRYPTO)!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip().endswith("[]"), result.stdout


def test_python_dash_m_memfs_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "memfs", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.strip() == "memfs, version 0.1.0"


def test_cli_defaults_are_the_librarys() -> None:
    """The CLI spells its defaults out (importing the library would slow --help); they must
    stay the library's."""
    from memfs.cli.sync import gc
    from memfs.cli.watch import watch
    from memfs.remotes.bucketgc import DEFAULT_GRACE_S
    from memfs.watcher import WatchSettings

    defaults = {param.name: param.default for param in watch.params}
    assert defaults["quiet_ms"] == WatchSettings.quiet_ms
    assert defaults["max_delay_ms"] == WatchSettings.max_delay_ms
    assert {param.name: param.default for param in gc.params}["grace"] == DEFAULT_GRACE_S


# What no command needs unless it talks to an object store, watches, or reports an invalid file.
REMOTE_STACK = (
    "s3fs",
    "fsspec",
    "botocore",
    "aiobotocore",
    "aiohttp",
    "watchdog",
    "dulwich.client",
    "memfs.sync",
    "memfs.remotes.git",
    "memfs.remotes.bucket",
    "memfs.remotes.storage",
)
# pydantic only explains an invalid file; building its models costs more than a whole command.
# dulwich.merge (with merge3) serves merges only.
LOCAL = (*REMOTE_STACK, *CRYPTO, "pydantic", "memfs.models", "dulwich.merge", "merge3")
# A read that prints no diff needs no diff machinery (dulwich.patch imports email).
READ_ONLY = (*LOCAL, "dulwich.patch", "dulwich.porcelain")

COMMANDS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "status": (["status"], READ_ONLY),
    "status --json": (["status", "--json"], READ_ONLY),
    "context": (["context"], (*READ_ONLY, "memfs.lettacontext")),
    "ls": (["ls"], READ_ONLY),
    "log": (["log"], READ_ONLY),
    "check": (["check"], READ_ONLY),
    "diff": (["diff"], LOCAL),
    "show": (["show", "HEAD"], LOCAL),
    "commit": (["commit", "-m", "edit"], LOCAL),
    "token list": (["token", "list"], (*LOCAL, "starlette", "uvicorn", "memfs.server")),
    # nor the work tree's writers, nor compaction (due only once 50 packs are listed), nor
    # what changes the remotes configured
    "push to a folder bucket": (
        ["push"],
        (
            *("s3fs", "fsspec", "botocore", "aiobotocore", "aiohttp", "watchdog", "pydantic"),
            *("memfs.worktreewrite", "memfs.remotes.bucketgc", "memfs.remotes.configure"),
            *CRYPTO,
        ),
    ),
    "sync with a folder bucket": (["sync"], ("s3fs", "botocore", "watchdog", *CRYPTO)),
    "envs with a folder bucket": (
        ["envs"],
        ("s3fs", "fsspec", "botocore", "watchdog", "pydantic", "dulwich.porcelain", *CRYPTO),
    ),
    "remote list": (["remote", "list"], (*REMOTE_STACK, *CRYPTO)),
    # the identity is an age key (pyrage); nothing else of the crypto, no store, no agent
    "key id": (["key", "id"], (*REMOTE_STACK, "cryptography", "pydantic", "dulwich.repo")),
    # an agent without secrets: no store read, no key, no cryptography
    "secret list": (["secret", "list"], LOCAL),
    "run": (["run", "--", "true"], LOCAL),
}

PROBE = """
import json, sys
from memfs.cli import cli
try:
    cli(sys.argv[1:], prog_name="memfs")
    code = 0
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An agent with pinned and on-demand memory, a commit, an uncommitted edit and a remote."""
    root = tmp_path_factory.mktemp("imports") / "agent"
    with memfs.init(root, name="imports-agent") as agent:
        write(root, "system/persona.md", "---\ndescription: who I am\nlimit: 500\n---\nCurious.\n")
        write(root, "reference/notes.md", "---\ndescription: notes\n---\nSome notes.\n")
        agent.commit(message="memory")
        add_remote(agent.history, "cloud", "memfs::" + (root.parent / "cloud").as_uri())
    write(
        root, "system/persona.md", "---\ndescription: who I am\nlimit: 500\n---\nCurious, kind.\n"
    )
    return root


def loaded_by(agent_dir: Path, args: list[str]) -> set[str]:
    """The modules a fresh interpreter holds after running ``memfs -C agent_dir ARGS``."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "-C", str(agent_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["code"] in (0, None), result.stderr
    return set(outcome["modules"])


def heavy_in(loaded: set[str], heavy: tuple[str, ...]) -> list[str]:
    """The heavy packages (or any of their submodules) among ``loaded``."""
    return sorted(h for h in heavy if any(m == h or m.startswith(h + ".") for m in loaded))


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_loads_no_heavy_module_it_does_not_use(agent_dir: Path, command: str) -> None:
    args, heavy = COMMANDS[command]
    if args[0] == "commit":  # something to commit, whichever cases ran before
        write(agent_dir, "reference/notes.md", f"---\ndescription: notes\n---\n{command}\n")
    assert heavy_in(loaded_by(agent_dir, args), heavy) == []


# What a clean harness-path command (status, context, ls: every turn of an agent) must not load:
# dulwich's repository and object model (refs and loose objects are read by
# memfs/history/light.py), YAML (the parse cache and the agent.yaml memo answer), pydantic,
# the watcher (status reads its state file), the work-tree updater, the parts of Agent a
# read does not use (committing, Letta's rules, history, updating: memfs/agent*.py), OpenSSL
# (hashlib: the parse cache of a small agent is checked with CPython's own SHA-1), the
# three-way merge (finding conflicts needs memfs.markers only), Letta's front matter reader (no
# file is read: the parse cache answers) and dulwich's lock files (nothing is written).
HARNESS_PATH = (
    *READ_ONLY,
    "hashlib",
    "_hashlib",
    "memfs.merge",
    "memfs.lettafm",
    "dulwich.file",
    "dulwich.repo",
    "dulwich.objects",
    "dulwich.object_store",
    "dulwich.index",
    "dulwich.pack",
    "yaml",
    "pickle",  # the status record is marshal'd plain data (a pickle ran code: review8 F1)
    "memfs.watcher",
    "memfs.apply",
    "memfs.agentcommit",
    "memfs.agentrules",
    "memfs.agenthistory",
    "memfs.agentupdate",
    "memfs.worktreewrite",  # nothing is written
    "memfs.gitindex",  # nor the index read: the records answer
    "memfs.gitindexwrite",
    "memfs.lettahookscript",
)


@pytest.fixture(scope="module")
def clean_agents(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two agents with nothing to commit, every cache filled by a first status: one without
    remotes, one whose remote is where the branch is (as after a push)."""
    roots = []
    for name in ("plain", "synced"):
        root = tmp_path_factory.mktemp("harness") / name
        with memfs.init(root, name=name) as agent:
            write(root, "system/persona.md", "---\ndescription: who I am\n---\nCurious.\n")
            write(root, "reference/notes.md", "---\ndescription: notes\n---\nSome notes.\n")
            agent.commit(message="memory")
            if name == "synced":
                add_remote(agent.history, "cloud", "memfs::" + (root.parent / "c").as_uri())
                head = agent.history.head()
                assert head is not None
                agent.history.set_ref("refs/remotes/cloud/main", head, "pushed")
        for path in root.rglob("*"):  # out of the racy window, so the caches keep them
            if ".git" not in path.parts and path.is_file():
                os.utime(path, ns=(time.time_ns() - DAY_NS,) * 2)
        loaded_by(root, ["status"])  # fills the parse cache and the agent.yaml memo
        roots.append(root)
    return roots


# A clean status answers from its record: it reads no memory file (no front matter reader) and
# walks no tree (ls and context take their snapshot from the record, which is a Scan).
STATUS_PATH = (*HARNESS_PATH, "memfs.frontmatter", "memfs.worktree")


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["context"], ["ls"]])
def test_a_clean_harness_command_reads_no_object_model_and_no_yaml(
    clean_agents: list[Path], args: list[str]
) -> None:
    heavy = STATUS_PATH if args[0] == "status" else HARNESS_PATH
    for root in clean_agents:
        assert heavy_in(loaded_by(root, args), heavy) == [], root.name


def test_the_constants_memfs_agent_keeps_are_the_librarys() -> None:
    """agent.py names the merge journal without importing memfs.apply."""
    from memfs import agent, apply

    assert agent.JOURNAL == apply.JOURNAL


def test_help_of_every_command_loads_no_library() -> None:
    """``memfs CMD --help`` builds click's tree only: no dulwich, YAML or remote stack."""
    from memfs.cli import cli

    for name in sorted(cli.commands):
        result = subprocess.run(
            [sys.executable, "-c", PROBE, name, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        outcome = json.loads(result.stdout.strip().splitlines()[-1])
        assert outcome["code"] == 0, (name, result.stderr)
        assert "Usage: memfs" in result.stdout, name
        loaded = set(outcome["modules"])
        assert heavy_in(loaded, ("dulwich", "yaml", "pathspec", *LOCAL)) == [], name


def test_every_command_is_registered_under_its_own_name() -> None:
    from memfs.cli import COMMANDS, cli

    assert {name: cli.commands[name].name for name in COMMANDS} == {name: name for name in COMMANDS}


def test_a_command_imports_no_other_commands_module(agent_dir: Path) -> None:
    """Commands register lazily: ``memfs status`` builds no option of push, watch or mount."""
    loaded = loaded_by(agent_dir, ["status"])
    assert sorted(m for m in loaded if m.startswith("memfs.cli.")) == [
        "memfs.cli.app",
        "memfs.cli.failure",
        "memfs.cli.localcmds",
        "memfs.cli.output",
        "memfs.cli.repo",
    ]


# A one-file commit the record vouches for (memfs/fastcommit.py) writes its objects and moves
# its branch itself: no dulwich repository, object model or pack code, no pydantic.
FAST_COMMIT = (
    "dulwich.repo",
    "dulwich.objects",
    "dulwich.object_store",
    "dulwich.index",
    "dulwich.pack",
    "pydantic",
    "memfs.models",
    *CRYPTO,
)


def test_a_one_file_commit_from_its_record_reads_no_object_model(tmp_path: Path) -> None:
    from memfs import commitrecord, statusrecord

    root = tmp_path / "agent"
    with memfs.init(root, name="fast") as agent:
        write(root, "reference/notes.md", "---\ndescription: notes\n---\nSome notes.\n")
        agent.commit(message="memory")
        deadline = time.monotonic() + 5
        newest = max(p.lstat().st_ctime_ns for p in [root, *root.rglob("*")])
        while time.time_ns() <= newest + statusrecord.RACY_NS + 20_000_000:
            assert time.monotonic() < deadline, "the clock does not advance"
            time.sleep(0.005)
        assert agent.commit() is None  # a clean tree walked: the record is written
    assert (root / ".git/memfs" / commitrecord.RECORD).exists()
    write(root, "reference/notes.md", "---\ndescription: notes\n---\nMore notes.\n")
    assert heavy_in(loaded_by(root, ["commit"]), FAST_COMMIT) == []
    with memfs.open(root) as agent:
        assert agent.status().clean


# The fast path (memfs/cli/fast.py), as ``main`` runs it: no click at all.
FAST_PROBE = """
import json, sys
from memfs.cli.fast import run_fast
code = run_fast(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["context"],
        ["ls"],
        ["commit", "-m", "edit"],
        ["push", "-q"],
        ["pull", "cloud"],
        ["fetch"],
        ["sync"],
    ],
)
def test_the_commands_a_harness_runs_load_no_click(agent_dir: Path, args: list[str]) -> None:
    if args[0] == "commit":
        write(agent_dir, "reference/notes.md", "---\ndescription: notes\n---\nfast commit\n")
    assert heavy_in(_fast_loads(agent_dir, *args), ("click",)) == []


# A one-file push of an agent pushed before (what a harness runs after each turn) reads its
# objects from loose files and pack indexes and writes its tracking ref itself
# (memfs/history/lightobjects.py, loose.py): no dulwich at all, nor what dulwich's repository
# brought (logging, tempfile, shutil); no dataclasses (inspect, ast, dis: memfs.record's
# classes instead); and of course no botocore, s3fs, pydantic or YAML.
ONE_FILE_PUSH = (
    "dulwich",
    "dataclasses",
    "inspect",
    "logging",
    "tempfile",
    "shutil",
    "datetime",
    "typing",
    "click",
    "pydantic",
    "memfs.models",
    "yaml",
    "s3fs",
    "fsspec",
    "botocore",
    "memfs.merge",
    *CRYPTO,
)


def _pushed_once(root: Path, url: str, encrypt: bool = False) -> None:
    """An agent with a commit pushed to ``url``, then a one-file edit committed."""
    from memfs import sync

    with memfs.init(root, name="pushed") as agent:
        for i in range(20):
            write(root, f"reference/n{i}.md", f"---\ndescription: note {i}\n---\nNote {i}.\n")
        agent.commit(message="memory")
        add_remote(agent.history, "cloud", url, encrypt=encrypt)
        assert sync.push(agent).ok
        write(root, "reference/n7.md", "---\ndescription: note 7\n---\nNote 7, edited.\n")
        assert agent.commit(message="edit") is not None


def _fast_loads(root: Path, *args: str) -> set[str]:
    """The modules ``memfs -C root ARGS`` loaded, run through FAST_PROBE; it must succeed."""
    result = subprocess.run(
        [sys.executable, "-c", FAST_PROBE, "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["code"] == 0, result.stderr
    return set(outcome["modules"])


def test_a_one_file_push_to_a_folder_bucket_loads_no_dulwich(tmp_path: Path) -> None:
    root = tmp_path / "agent"
    _pushed_once(root, "memfs::" + (tmp_path / "cloud").as_uri())
    assert heavy_in(_fast_loads(root, "push", "cloud"), ONE_FILE_PUSH) == []
    with memfs.open(root) as agent:  # pushed: the tracking ref is where the branch is
        assert agent.history.ref("refs/remotes/cloud/main") == agent.history.head()
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=root, capture_output=True, timeout=60)
    assert fsck.returncode == 0, fsck.stderr


# What encryption adds to a one-file push with the keys cached: libsodium (PyNaCl's compiled
# module) and memfs's sealing modules, no more (issue 14's 1.2x). cryptography (~4.5 ms with
# OpenSSL's first cipher fetch), PyNaCl's public nacl.bindings (~13 ms), typing, and hmac (which
# loads OpenSSL's libcrypto: ~2 ms) stay out: HKDF and the sealed store's digests use
# memfs.digests. (hashlib itself is not listed: the first commit scan of an agent made
# in-process reads its index.)
ENCRYPTED_ONE_FILE_PUSH = (
    *(name for name in ONE_FILE_PUSH if name not in ("nacl", "memfs.crypto")),
    *("hmac", "nacl.bindings", "nacl.public", "nacl.secret"),
    *("memfs.crypto.keyring", "memfs.crypto.keyfile", "memfs.crypto.identity"),
)


def test_an_encrypted_one_file_push_loads_only_the_cipher(tmp_path: Path) -> None:
    root = tmp_path / "agent"
    _pushed_once(root, "memfs::" + (tmp_path / "cloud").as_uri(), encrypt=True)
    loaded = _fast_loads(root, "push", "cloud")
    assert "memfs.crypto.envelope" in loaded  # it did seal
    assert heavy_in(loaded, ENCRYPTED_ONE_FILE_PUSH) == []
    with memfs.open(root) as agent:
        assert agent.history.ref("refs/remotes/cloud/main") == agent.history.head()


def test_an_encrypted_first_push_loads_no_typing_and_no_keyring_models(tmp_path: Path) -> None:
    """The first push to an encrypted store makes the keyring (pyrage wraps the key for this
    machine) and writes keys.json without its pydantic models, and, like every encrypted
    push, without typing or hmac."""
    root = tmp_path / "agent"
    with memfs.init(root, name="first") as agent:
        write(root, "reference/n.md", "---\ndescription: a note\n---\nA note.\n")
        agent.commit(message="memory")
        add_remote(agent.history, "cloud", "memfs::" + (tmp_path / "cloud").as_uri(), encrypt=True)
    loaded = _fast_loads(root, "push", "cloud")
    assert "memfs.crypto.keyring" in loaded  # it did make the keyring
    assert heavy_in(loaded, ("typing", "hmac", "pydantic", "memfs.crypto.keymodels")) == []


def test_a_one_file_push_to_s3_loads_no_dulwich(tmp_path: Path, s3: S3Bucket) -> None:
    root = tmp_path / "agent"
    _pushed_once(root, s3.url("agents/pushed"))
    s3.server.requests.clear()
    assert heavy_in(_fast_loads(root, "push", "cloud"), ONE_FILE_PUSH) == []
    # the manifest read, the pack and its index, the manifest's swap, the presence record
    assert s3.server.by_method() == {"GET": 1, "PUT": 4}, s3.server.requests
    with memfs.open(root) as agent:
        assert agent.history.ref("refs/remotes/cloud/main") == agent.history.head()


def test_a_one_file_pull_that_fast_forwards_loads_no_dulwich(tmp_path: Path) -> None:
    """The other side of the same exchange: the fetched pack is indexed by memfs.packs, the
    trees read from its objects, the branch moved by loose.move_ref."""
    from memfs import sync

    cloud = "memfs::" + (tmp_path / "cloud").as_uri()
    root = tmp_path / "agent"
    _pushed_once(root, cloud)
    other = sync.clone(cloud, tmp_path / "other")
    other.close()
    with memfs.open(root) as agent:
        assert sync.push(agent).ok
    loaded = _fast_loads(tmp_path / "other", "pull")
    # a fresh clone's first pull may parse a memory file whose stat the caches cannot
    # vouch for yet (YAML, a timestamp): that is the scan's business, not the object reads'
    unparsed = tuple(m for m in ONE_FILE_PUSH if m not in ("yaml", "datetime"))
    assert heavy_in(loaded, unparsed) == []
    assert "Note 7, edited." in (tmp_path / "other/reference/n7.md").read_text()
    fsck = subprocess.run(
        ["git", "fsck", "--strict"], cwd=tmp_path / "other", capture_output=True, timeout=60
    )
    assert fsck.returncode == 0, fsck.stderr
