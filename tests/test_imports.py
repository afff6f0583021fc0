"""Each command loads only what it uses: a heavy module loaded by a command that does not need it
costs every call of that command (a harness runs ``memfs status`` and ``memfs context`` on every
turn). Each case runs one command in a fresh interpreter on a real agent and lists what got
loaded. The timings themselves are in benchmarks/, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import memfs
from memfs.models import AgentManifest, FrontMatter
from memfs.remotes import add_remote
from memfs.schema import front_matter_error, manifest_error
from tests.conftest import write

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
LOCAL = (*REMOTE_STACK, "pydantic", "memfs.models", "dulwich.merge", "merge3")
# A read that prints no diff needs no diff machinery (dulwich.patch imports email).
READ_ONLY = (*LOCAL, "dulwich.patch", "dulwich.porcelain")

COMMANDS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "status": (["status"], READ_ONLY),
    "status --json": (["status", "--json"], READ_ONLY),
    "context": (["context"], READ_ONLY),
    "ls": (["ls"], READ_ONLY),
    "log": (["log"], READ_ONLY),
    "check": (["check"], READ_ONLY),
    "diff": (["diff"], LOCAL),
    "show": (["show", "HEAD"], LOCAL),
    "commit": (["commit", "-m", "edit"], LOCAL),
    "push to a folder bucket": (
        ["push"],
        ("s3fs", "botocore", "aiobotocore", "aiohttp", "watchdog"),
    ),
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


def test_help_of_every_command_loads_no_library() -> None:
    """``memfs CMD --help`` builds click's tree only: no memfs library module, no dulwich."""
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


# The hand-written checks must accept only what the pydantic models accept (a strict subset:
# anything else goes to pydantic), so a valid file is never reported and an invalid one never
# slips through.
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
FRONT_MATTERS: list[Any] = [
    {},
    {"description": "d", "read_only": False, "limit": 5},
    {"description": None, "read_only": None, "limit": None, "other": [1]},
    {"description": 3},
    {"read_only": "yes"},
    {"read_only": 1},
    {"limit": True},
    {"limit": 0},
    {"limit": -1},
    {"limit": 2.0},
    {"limit": "5"},
    {1: "int key"},
    {"description": "d", "limit": 10**30},
    [],
    "text",
]
MANIFESTS: list[Any] = [
    {"name": "a", "id": "x", "created_at": "2026-01-02T03:04:05Z"},
    {"name": "a", "id": "x", "created_at": NOW, "format": 1, "max_file_size": 10},
    {"name": "a", "id": "x", "created_at": "2026-01-02T03:04:05.123+01:00", "extra": True},
    {"name": "a", "id": "x", "created_at": "2026-01-02 03:04:05"},
    {"name": "a", "id": "x", "created_at": "2026-13-02T03:04:05Z"},
    {"name": "a", "id": "x", "created_at": "2026-01-02"},
    {"name": "a", "id": "x", "created_at": "yesterday"},
    {"name": "a", "id": "x", "created_at": 1700000000},
    {"name": "a", "id": "x"},
    {"name": "!bad", "id": "x", "created_at": NOW},
    {"name": "..", "id": "x", "created_at": NOW},
    {"name": 5, "id": "x", "created_at": NOW},
    {"name": "a", "id": 5, "created_at": NOW},
    {"name": "a", "id": "x", "created_at": NOW, "description": None},
    {"name": "a", "id": "x", "created_at": NOW, "format": 2},
    {"name": "a", "id": "x", "created_at": NOW, "format": True},
    {"name": "a", "id": "x", "created_at": NOW, "max_file_size": 0},
    {"name": "a", "id": "x", "created_at": NOW, "max_file_size": None},
    None,
]


def _pydantic_says(model: Any, data: Any) -> bool:
    try:
        model.model_validate(data)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("metadata", FRONT_MATTERS, ids=repr)
def test_front_matter_check_agrees_with_the_model(metadata: Any) -> None:
    assert (front_matter_error(metadata) is None) == _pydantic_says(FrontMatter, metadata)


@pytest.mark.parametrize("data", MANIFESTS, ids=repr)
def test_manifest_check_agrees_with_the_model(data: Any) -> None:
    assert (manifest_error(data) is None) == _pydantic_says(AgentManifest, data)


USER_CONFIGS: list[Any] = [
    {},
    {"identity": {"name": "Ada", "email": "ada@example.com"}},
    {"identity": None, "default_cloud": "work", "newer_key": 1},
    {"clouds": {"work": {"url": "s3://b/agents", "options": {"anon": True}}}},
    {"clouds": {"work": {"url": "s3://b/agents"}}, "default_cloud": "work"},
    {"identity": {"name": "Ada"}},
    {"identity": {"name": "Ada", "email": "a@b", "extra": 1}},
    {"identity": {"name": 1, "email": "a@b"}},
    {"identity": "Ada"},
    {"clouds": {"work": {"url": 5}}},
    {"clouds": {"work": {"url": "s3://b", "other": 1}}},
    {"clouds": {"work": {"url": "s3://b", "options": [1]}}},
    {"clouds": ["s3://b"]},
    {"default_cloud": 3},
]


@pytest.mark.parametrize("data", USER_CONFIGS, ids=repr)
def test_plain_user_config_is_one_the_model_accepts(
    data: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memfs.config import commit_identity, load_user_config
    from memfs.models import UserConfig
    from memfs.schema import is_plain_user_config

    if is_plain_user_config(data):
        assert _pydantic_says(UserConfig, data)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(data))  # JSON is YAML
    monkeypatch.setenv("MEMFS_CONFIG", str(config))
    try:
        identity = load_user_config().identity
    except memfs.MemfsError:
        with pytest.raises(memfs.MemfsError):
            commit_identity()
        return
    assert commit_identity() == (f"{identity.name} <{identity.email}>" if identity else None)


# With no .gitignore or .memfsignore, memfs's own rules are matched without pathspec: they must
# leave out exactly what pathspec's gitignore rules leave out.
NAMES = st.sampled_from(
    [
        "a", "ok.md", ".env", ".env.local", ".envrc", "a.env", "env", "x.swp", "x.swo", "#x#",
        "4913", "49130", "id_rsa", "id_rsa.pub", "id_ed25519_sk", ".memfs-tmp-1", "k.key",
        "key", "x~", "~x", ".#x", ".DS_Store", "x.tmp", "y.pem", "x.PEM", "[x]", "*",
    ]
)  # fmt: skip
# pathspec lets no folder name hold a newline (its '.' stops there): memfs leaves such paths
# out like any other, so they are not compared.
COMPONENTS = st.one_of(
    NAMES, st.text(min_size=1, max_size=6).filter(lambda t: not {"/", "\n"} & set(t))
)


@given(parts=st.lists(COMPONENTS, min_size=1, max_size=4))
def test_own_ignore_rules_match_pathspec(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str]
) -> None:
    import pathspec

    from memfs.ignore import LITTER_PATTERNS, SECRET_PATTERNS, IgnoreRules

    own = [*LITTER_PATTERNS, *SECRET_PATTERNS]
    spec = pathspec.GitIgnoreSpec.from_lines(own)
    rules = IgnoreRules(Path("/nonexistent-agent"))
    path = "/".join(parts)
    assert rules.is_ignored(path) == spec.match_file(path)
    assert rules.is_ignored(path, is_dir=True) == spec.match_file(path + "/")
    result = spec.check_file(path)
    expected_secret = bool(result.include) and result.index >= len(LITTER_PATTERNS)
    assert rules.is_secret(path) == expected_secret


def test_ignore_rules_without_ignore_files_load_no_pathspec(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from memfs.ignore import IgnoreRules\n"
        f"rules = IgnoreRules(Path({str(tmp_path)!r}))\n"
        "assert rules.is_ignored('a/.env') and rules.is_secret('a/.env')\n"
        "print('pathspec' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"
