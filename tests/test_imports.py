"""What lets a command skip a heavy import must answer as the library it skips would.

pydantic's models and pathspec's gitignore rules cost ~0.1 s and ~10 ms to import, so plainly
valid input is checked by hand (memfs.schema) and an agent without ignore files is matched by
memfs's own regexes (memfs.ignore). These tests hold each shortcut to the library's answers;
tests/test_cli_startup.py checks that the commands indeed load neither.
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
from memfs.schema import front_matter_error, manifest_error

from .conftest import S3Bucket
from .harness import fresh_python

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
    {"name": "../escape", "id": "x", "created_at": NOW},  # the pattern is anchored
    {"name": "a/b", "id": "x", "created_at": NOW},
    {"name": "ok name", "id": "x", "created_at": NOW},
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
    assert fresh_python(probe) == "False"


def test_yaml_is_imported_without_compiling_the_pure_python_readers_pattern() -> None:
    """memfs.yamllib defers the ~10 ms pattern only PyYAML's pure-Python reader uses, and
    PyYAML itself until YAML is first parsed."""
    probe = (
        "import re, sys\n"
        "compile_before = re.compile\n"
        "from memfs.frontmatter import load_yaml\n"
        "assert 'yaml' not in sys.modules\n"
        "assert load_yaml('a: 1') == {'a': 1}\n"
        "import yaml\n"
        "assert re.compile is compile_before\n"
        "deferred = not isinstance(yaml.reader.Reader.NON_PRINTABLE, re.Pattern)\n"
        "print(deferred)\n"
    )
    assert fresh_python(probe) == "True"


@pytest.mark.parametrize("loader", ["SafeLoader", "CSafeLoader"])
def test_yaml_still_refuses_control_characters(loader: str) -> None:
    from memfs.yamllib import yaml

    with pytest.raises(yaml.YAMLError, match="characters are not allowed"):
        yaml.load("a: \x07", Loader=getattr(yaml, loader))


def test_plain_library_modules_load_no_encryption() -> None:
    """The AEAD and pyrage load for an encrypted remote or an agent with secrets only
    (issue 14): the modules every plain push, pull, watch and mount uses import neither."""
    probe = (
        "import sys\n"
        "import memfs, memfs.sync, memfs.remotes, memfs.remotes.bucket, memfs.remotes.storage\n"
        "import memfs.watcher, memfs.mount, memfs.cloud, memfs.context, memfs.incoming\n"
        "import memfs.secrets.hooks, memfs.secrets.guard, memfs.secrets.scrub\n"
        "import memfs.cloning, memfs.keys\n"
        "import memfs.presence, memfs.envs\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in ('cryptography', 'pyrage', 'nacl')\n"
        "             or m.startswith('memfs.crypto')))\n"
    )
    assert fresh_python(probe) == "[]"


def test_no_submodule_shadows_a_lazy_name_of_the_package() -> None:
    """``import memfs.x`` sets the package's attribute ``x`` to the submodule: a lazy name of
    ``memfs`` (``memfs.clone``, a function) with a submodule of the same name would turn into
    that module once anything imported it ("'module' object is not callable", found by a
    test order)."""
    package = Path(memfs.__file__).parent
    for name, (_, attribute) in memfs._LAZY.items():
        if attribute is not None:
            assert not (package / f"{name}.py").exists(), f"memfs/{name}.py shadows memfs.{name}"
            assert not (package / name).is_dir(), f"memfs/{name}/ shadows memfs.{name}"
    run = "import memfs, memfs.cloning, memfs.sync; assert callable(memfs.clone)"
    subprocess.run([sys.executable, "-c", run], check=True, timeout=60)


def test_an_encrypted_push_and_pull_with_cached_keys_load_nothing_of_age(tmp_path: Path) -> None:
    """Issue 14's fixed cost of an encrypted command: with the agent's keys in this machine's
    key cache, a push and a pull open no keys.json and no age slot, so pyrage, pydantic and the
    keyring's models stay unloaded, and of the AEAD only PyNaCl's compiled libsodium module
    loads (not cryptography, not nacl.bindings). The
    keys come from the key cache itself: neither the keyring's operations, keys.json's
    format, this machine's identity nor the first push's claim is imported."""
    import os

    from memfs import sync
    from memfs.remotes.configure import add_remote

    cloud = f"memfs::{(tmp_path / 'cloud').as_uri()}"
    a = memfs.init(tmp_path / "a", name="a")
    add_remote(a.history, "origin", cloud, encrypt=True)
    assert sync.push(a).ok  # the first push makes the keyring and caches the key
    b = sync.clone(cloud, tmp_path / "b")
    (a.root / "notes.md").write_text("one more line\n")
    probe = (
        "import sys\n"
        "import memfs\n"
        "from memfs import sync\n"
        f"assert sync.push(memfs.open({str(a.root)!r})).ok\n"
        f"assert sync.pull(memfs.open({str(b.root)!r})).ok\n"
        "print(sorted(m for m in sys.modules\n"
        "    if m.split('.')[0] in ('pyrage', 'pydantic', 'cryptography')\n"
        "    or m.startswith(('nacl.bindings', 'memfs.crypto.keymodels'))\n"
        "    or m in ('memfs.crypto.keyring', 'memfs.crypto.keyfile', 'memfs.crypto.identity',\n"
        "             'memfs.remotes.sealedclaim')))\n"
    )
    assert fresh_python(probe, os.environ) == "[]"
    assert (b.root / "notes.md").read_text() == "one more line\n"


# What the library calls behind a harness's every turn (status, context, ls) must not load: the
# dataclass machinery (inspect, ast, dis, tokenize: ~7 ms, plus ~0.5 ms a class), typing
# (~3 ms, with dulwich's package, which imports it), an agent id's uuid (with platform), and
# datetime. memfs.record's classes stand for dataclasses, TYPE_CHECKING = False for typing.
HARNESS_LIBRARY_UNLOADED = (
    "dataclasses",
    "inspect",
    "ast",
    "dis",
    "tokenize",
    "typing",
    "dulwich",
    "uuid",
    "platform",
    "datetime",
)
HARNESS_CALLS = """
import sys
from memfs.opening import find_agent
from memfs.remotestate import remote_states
from memfs.secrets.hooks import pending_count, shown_paths
from memfs.watchstate import status as watcher_status
from memfs.context import build_context
from memfs.layout import in_context

agent = find_agent(ROOT)
report = agent.status()
assert report.clean, report
assert [r.to_dict()["name"] for r in remote_states(agent)] == REMOTES
watcher_status(agent)
pending_count(agent)
shown_paths(agent, report)
assert "persona" in build_context(agent).render()
layout = agent.layout
rows = agent.parsed_memory(agent.snapshot(), layout)
assert sorted(rows) == ["reference/notes.md", "system/persona.md"], rows
assert [in_context(path, layout) for path in sorted(rows)] == [False, True]
agent.close()
print(sorted(m for m in HEAVY if m in sys.modules))
"""


@pytest.mark.parametrize("remote", [False, True], ids=["plain", "with-remote"])
def test_the_harness_library_calls_load_no_dataclasses_typing_or_uuid(
    tmp_path: Path, remote: bool
) -> None:
    """``find_agent(...).status()``, context building and the listing ``ls`` makes, on a
    clean agent whose caches are filled, load none of ``HARNESS_LIBRARY_UNLOADED``."""
    import os
    import time

    from memfs.remotes.configure import add_remote

    root = tmp_path / "agent"
    with memfs.init(root, name="harness") as agent:
        (root / "system" / "persona.md").write_text("---\ndescription: me\n---\nCurious.\n")
        (root / "reference").mkdir()
        (root / "reference" / "notes.md").write_text("---\ndescription: notes\n---\nNotes.\n")
        for extra in (root / "system").glob("*.md"):
            if extra.name != "persona.md":
                extra.unlink()
        agent.commit(message="memory")
        if remote:  # where the branch is, as after a push: ahead/behind need no walk
            add_remote(agent.history, "cloud", "memfs::" + (tmp_path / "cloud").as_uri())
            head = agent.history.head()
            assert head is not None
            agent.history.set_ref("refs/remotes/cloud/main", head, "pushed")
    day_ago = time.time_ns() - 86_400 * 1_000_000_000
    for path in root.rglob("*"):  # out of the racy window, so the caches keep them
        if ".git" not in path.parts and path.is_file():
            os.utime(path, ns=(day_ago, day_ago))
    with memfs.open(root) as agent:  # fills the parse cache and the status record
        assert agent.status().clean
        agent.parsed_memory(agent.snapshot(), agent.layout)
    probe = (
        HARNESS_CALLS.replace("ROOT", repr(str(root)))
        .replace("REMOTES", repr(["cloud"] if remote else []))
        .replace("HEAVY", repr(HARNESS_LIBRARY_UNLOADED))
    )
    assert fresh_python(probe) == "[]"


def test_a_commit_loads_no_uuid(tmp_path: Path) -> None:
    """An agent's id is made by init only: a commit (and status) loads no uuid (nor platform,
    which uuid imports)."""
    root = tmp_path / "agent"
    memfs.init(root, name="ids").close()
    (root / "system" / "persona.md").write_text("---\ndescription: me\n---\nChanged.\n")
    probe = (
        "import sys\n"
        "from memfs.opening import find_agent\n"
        f"agent = find_agent({str(root)!r})\n"
        "assert agent.commit(message='edit') is not None\n"
        "agent.close()\n"
        "print(sorted(m for m in ('uuid', 'platform') if m in sys.modules))\n"
    )
    assert fresh_python(probe) == "[]"


USER_FOLDER_ENVIRONMENTS: list[dict[str, str]] = [
    {"HOME": "/home/ada"},
    {"HOME": "/home/ada/", "XDG_CONFIG_HOME": "/cfg", "XDG_DATA_HOME": "/data/"},
    {"HOME": "/", "XDG_CONFIG_HOME": "", "XDG_DATA_HOME": ""},
    {"HOME": "//net/ada"},
    {"HOME": "/home/ada", "XDG_CONFIG_HOME": "relative", "XDG_DATA_HOME": " /x"},
    {"HOME": "relative-home"},
    {"HOME": ""},
]


@pytest.mark.parametrize("environment", USER_FOLDER_ENVIRONMENTS, ids=repr)
def test_user_folders_found_without_platformdirs_are_platformdirs_answers(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """memfs.config finds ~/.config/memfs and ~/.local/share/memfs by hand on Linux (importing
    platformdirs costs a push or pull ~4 ms): the answers must be platformdirs' own."""
    import platformdirs

    from memfs.config import config_path, data_dir

    for name in ("MEMFS_CONFIG", "MEMFS_DATA_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert config_path() == platformdirs.user_config_path("memfs") / "config.yaml"
    assert data_dir() == platformdirs.user_data_path("memfs")


def test_user_folders_under_home_load_no_platformdirs(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMFS_", "XDG_"))}
    env["HOME"] = str(tmp_path)
    probe = (
        "import sys\n"
        "from memfs.config import commit_identity, config_path, data_dir\n"
        "assert commit_identity() is None\n"
        "print(config_path().parent == data_dir().parent.parent.parent / '.config' / 'memfs',\n"
        "      sorted(m for m in ('platformdirs', 'tempfile', 'shutil') if m in sys.modules))\n"
    )
    assert fresh_python(probe, env) == "True []"


def test_the_os_tag_of_a_presence_record_is_platforms() -> None:
    """memfs.presence reads the OS and machine from os.uname(), without importing platform."""
    import platform

    from memfs.presence import os_tag

    assert os_tag() == f"{platform.system().lower()}-{platform.machine().lower()}"


def test_the_harness_library_calls_compile_no_name_or_url_pattern(tmp_path: Path) -> None:
    """memfs.schema's and memfs.remotes' patterns are compiled on first use (LazyPattern): a
    status of an agent with a remote matches none of them, so compiles none."""
    from memfs.remotes.configure import add_remote

    root = tmp_path / "agent"
    with memfs.init(root, name="patterns") as agent:
        add_remote(agent.history, "cloud", "memfs::" + (tmp_path / "cloud").as_uri())
        agent.status()
    probe = (
        "from memfs.opening import find_agent\n"
        "from memfs.remotestate import remote_states\n"
        "from memfs import remotes, schema\n"
        "from memfs.util import LazyPattern\n"
        f"agent = find_agent({str(root)!r})\n"
        "agent.status()\n"
        "assert [r.name for r in remote_states(agent)] == ['cloud']\n"
        "lazy = [v for m in (remotes, schema) for v in vars(m).values()\n"
        "        if isinstance(v, LazyPattern)]\n"
        "assert len(lazy) == 6, lazy\n"
        "print([p.pattern for p in lazy if p._compiled is not None])\n"
    )
    assert fresh_python(probe) == "[]"
    from memfs.schema import NAME_PATTERN, is_valid_name

    assert is_valid_name("agent-1.x") and not is_valid_name("-agent")
    assert NAME_PATTERN.compiled().pattern == NAME_PATTERN.pattern


def test_an_encrypted_first_push_to_s3_loads_no_thread_pool(tmp_path: Path, s3: S3Bucket) -> None:
    """The first read at an encrypted URL asks its three objects on plain threads:
    concurrent.futures (~5 ms a process) stays unloaded, as on a plain first push."""
    import os

    from memfs.remotes.configure import add_remote

    a = memfs.init(tmp_path / "a", name="a")
    add_remote(a.history, "origin", s3.url("agents/pool"), encrypt=True)
    probe = (
        "import sys\n"
        "import memfs\n"
        "from memfs import sync\n"
        f"assert sync.push(memfs.open({str(a.root)!r})).ok\n"
        "print(sorted(m for m in sys.modules if m.startswith('concurrent')))\n"
    )
    assert fresh_python(probe, os.environ) == "[]"


def test_a_commit_from_the_record_loads_no_updater_nor_lettas_rules(tmp_path: Path) -> None:
    """A one-file commit the commit record makes (memfs.fastcommit) on a memfs-native agent
    with no journal left by a crash loads neither the work-tree updater (agentupdate, apply)
    nor Letta's rules and gate (agentrules, lettahook, lettahookscript, lettaconstraints), nor
    the index's stat cache (gitindex: it splices), nor the status as rows, nor typing."""
    from .test_fastcommit import EDITED, make_agent

    agent = make_agent(tmp_path)
    root = agent.root
    agent.close()
    (root / EDITED).write_text("---\ndescription: n1\n---\nedited\n")
    probe = (
        "import sys\n"
        "from memfs.opening import find_agent\n"
        f"agent = find_agent({str(root)!r})\n"
        "assert agent.commit(message='edit') is not None\n"
        "from memfs import fastcommit\n"
        "assert fastcommit.commits_fast == 1\n"
        "agent.close()\n"
        "unloaded = ('memfs.agentupdate', 'memfs.apply', 'memfs.agentrules', 'memfs.lettahook',"
        " 'memfs.lettahookscript', 'memfs.lettaconstraints', 'memfs.gitindex', 'memfs.statusdata',"
        " 'typing')\n"
        "print(sorted(m for m in unloaded if m in sys.modules))\n"
    )
    assert fresh_python(probe) == "[]"


def test_the_remote_configuration_is_importable_from_memfs_remotes_as_before() -> None:
    """Scripts written from the old examples import add_remote from memfs.remotes; it lives in
    memfs.remotes.configure now and loads only when asked for."""
    probe = (
        "import sys\n"
        "import memfs.remotes\n"
        "before = 'memfs.remotes.configure' in sys.modules\n"
        "from memfs.remotes import add_remote, record_encrypted, remove_remote\n"
        "from memfs.remotes import configure\n"
        "assert add_remote is configure.add_remote and remove_remote is configure.remove_remote\n"
        "assert record_encrypted is configure.record_encrypted\n"
        "print(before)\n"
    )
    assert fresh_python(probe) == "False"
