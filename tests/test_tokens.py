"""memfs.tokens and ``memfs token``: shown once, stored hashed, revocable, safe to share."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from memfs.tokens import TokenChecker, create_token, list_tokens, revoke_token


def memfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memfs", *args], capture_output=True, text=True, timeout=60
    )


def test_a_token_is_printed_once_and_stored_only_as_its_hash(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    done = memfs("token", "create", "--name", "laptop", "--token-file", str(tokens))
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("memfs_") and len(secret) == 6 + 43
    assert "not shown again" in done.stderr and secret not in done.stderr
    stored = tokens.read_text()
    assert secret not in stored and secret[6:] not in stored
    record = json.loads(stored)["tokens"][0]
    assert record["sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    listed = memfs("token", "list", "--json", "--token-file", str(tokens))
    assert json.loads(listed.stdout) == [{"name": "laptop", "created_at": record["created_at"]}]
    assert TokenChecker(tokens).check(secret)
    assert not TokenChecker(tokens).check(secret + "x")


def test_names_are_unique_and_revoking_an_unknown_one_says_which_exist(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    assert memfs("token", "create", "--name", "a", "--token-file", str(tokens)).returncode == 0
    again = memfs("token", "create", "--name", "a", "--token-file", str(tokens))
    assert again.returncode == 1 and again.stderr == (
        "memfs: a token named 'a' exists: revoke it or pick another name\n"
    )
    bad = memfs("token", "create", "--name", "../x", "--token-file", str(tokens))
    assert bad.returncode == 1 and bad.stderr.startswith("memfs: invalid token name '../x'")
    gone = memfs("token", "revoke", "b", "--token-file", str(tokens))
    assert gone.returncode == 1 and "(tokens: a)" in gone.stderr
    assert memfs("token", "revoke", "a", "--token-file", str(tokens)).returncode == 0
    assert list_tokens(tokens) == []


@pytest.mark.parametrize(
    "garbled", ["[1, 2", '{"tokens": [{"name": "a", "sha256": "not-a-hash"}]}']
)
def test_a_garbled_token_file_is_one_line_and_exit_2(tmp_path: Path, garbled: str) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(garbled)
    for args in (("token", "list"), ("serve", "--listen", "127.0.0.1:0"), ("token", "create")):
        done = memfs(*args, "--token-file", str(tokens))
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith(f"memfs: cannot read token file {tokens}")
        assert len(done.stderr.splitlines()) == 1
    assert tokens.read_text() == garbled  # nothing added to a file no server can use


def test_tokens_created_at_once_all_land(tmp_path: Path) -> None:
    """Several creators sharing one file (a lock and an atomic rename) lose none."""
    tokens = tmp_path / "tokens.json"
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda n: create_token(tokens, f"t{n}"), range(16)))
    checker = TokenChecker(tokens)
    assert sorted(info.name for info in list_tokens(tokens)) == sorted(f"t{n}" for n in range(16))
    assert all(checker.check(secret) for secret, _ in made)
    revoke_token(tokens, "t3")
    assert not checker.check(made[3][0]) and checker.check(made[4][0])
    assert checker.count() == 15


def test_default_names_count_up_past_revoked_ones(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    names = [create_token(tokens)[1].name for _ in range(3)]
    assert names == ["token-1", "token-2", "token-3"]
    revoke_token(tokens, "token-2")
    assert create_token(tokens)[1].name == "token-2"
