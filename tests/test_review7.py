"""Outside review of issue 14's secrets (session 7): a held file's value kept out of every
context rendering, a value split across lines kept out of commits, a killed `secret set`
never leaving a change that no sync sends. Whole ``memfs`` processes where a user meets it."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import memfs_process, write
from .secretsfix import agent_with_secrets

VALUE = "sk-test-4c1d9e0f7a2b5c8d"


def test_a_held_file_s_value_is_masked_in_every_context_rendering(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    write(root, "system/held.md", f"---\ndescription: k {VALUE}\n---\nthe key is {VALUE} ok\n")
    done = memfs_process("-C", str(root), "commit")
    assert VALUE not in done.stdout + done.stderr
    assert (root / "system/held.md").exists()  # held: on disk, out of the commit
    for form in ([], ["--format", "json"], ["--format", "letta"]):
        shown = memfs_process("-C", str(root), "context", *form)
        assert shown.returncode == 0, shown.stderr
        assert VALUE not in shown.stdout + shown.stderr, form
        assert "API_KEY=<REDACTED>" in shown.stdout, form
    parsed = json.loads(memfs_process("-C", str(root), "context", "--format", "json").stdout)
    assert parsed["secrets"] == ["API_KEY"]
