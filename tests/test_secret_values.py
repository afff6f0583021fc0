"""A secret's value is an environment variable's: ``memfs.secrets.store.check_value`` refuses
what none can hold (a NUL byte, text that is not UTF-8) wherever a value comes in (``secret
set``, ``import-af``), and ``memfs run`` refuses one already stored (by an older memfs) with
one line naming the secret, exit 2.

Found from outside (review11 F01): ``secret set`` took a value holding a NUL byte, and from
then on every ``memfs run``, on every machine the secret reached, ended in exit 70
("internal error: ValueError: embedded null byte").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import memfs
from memfs.secrets.store import Op, SecretStore

from .conftest import memfs_process
from .secretsfix import agent_with_secrets

NUL_VALUE = "a\0bcdefghij"


def _secret_set(root: Path, name: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(root), "secret", "set", name],
        input=data,
        capture_output=True,
        timeout=60,
    )


def test_secret_set_refuses_a_nul_byte_with_exit_2(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": "api-key-value-1"})
    done = _secret_set(root, "NUL_KEY", NUL_VALUE.encode())
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode() == (
        "memfs: the value of NUL_KEY holds a NUL byte, which an environment variable cannot: "
        "nothing was set\n"
    )
    listed = json.loads(memfs_process("-C", str(root), "secret", "list", "--json").stdout)
    assert [row["name"] for row in listed["secrets"]] == ["API_KEY"]


def test_run_refuses_a_stored_nul_value_in_one_line_and_only_leaves_it_out(
    tmp_path: Path,
) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": "api-key-value-1"})
    with memfs.open(root) as agent:  # as an older memfs stored it, bypassing check_value
        SecretStore.load(agent)._change(
            Op("set", "NUL_KEY", "2026-11-30T00:00:00Z", "old", NUL_VALUE)
        )
    for extra in ((), ("--no-mask",)):
        done = memfs_process("-C", str(root), "run", *extra, "--", "true")
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "NUL_KEY holds a NUL byte" in done.stderr
        assert "bcdefghij" not in done.stderr
    done = memfs_process("-C", str(root), "run", "--only", "API_KEY", "--", "true")
    assert done.returncode == 0, done.stderr


def test_import_af_refuses_a_nul_value_before_writing_anything(tmp_path: Path) -> None:
    document = {
        "agents": [
            {
                "name": "helper",
                "block_ids": ["block-0"],
                "tool_exec_environment_variables": {"TOOL_TOKEN": "tool\u0000token-value"},
            }
        ],
        "blocks": [{"id": "block-0", "label": "human", "value": "Ada", "limit": 5000}],
    }
    (tmp_path / "in.af").write_text(json.dumps(document))
    done = memfs_process("import-af", "in.af", "helper", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("memfs: the value of TOOL_TOKEN holds a NUL byte")
    assert done.stderr.count("\n") == 1 and "token-value" not in done.stderr
    assert not (tmp_path / "helper").exists()
