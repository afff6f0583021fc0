"""What shows a memory file's text masks the agent's secret values, as ``memfs context`` does
(docs/design-encryption.md §6.2): ``ls`` (text and --json), ``diff``, ``show``.

Found from outside (review11 F14): a file the commit guard held for holding a secret's value
was masked by ``context`` but printed whole by ``ls`` (its description) and ``diff``.
"""

from __future__ import annotations

from pathlib import Path

from .conftest import memfs_process, write
from .secretsfix import agent_with_secrets

VALUE = "sk-held-value-3141592653"


def test_ls_diff_and_show_mask_a_held_files_value(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    write(root, "system/keys.md", f"---\ndescription: key {VALUE}\n---\nthe key is {VALUE}\n")
    held = memfs_process("-C", str(root), "commit", "-m", "keys")
    assert held.returncode == 1 and "secret API_KEY" in held.stderr
    for args in (("ls",), ("ls", "--json"), ("diff",), ("show", "HEAD")):
        done = memfs_process("-C", str(root), *args)
        assert done.returncode == 0, (args, done.stderr)
        assert VALUE not in done.stdout + done.stderr, args
    assert "API_KEY=<REDACTED>" in memfs_process("-C", str(root), "ls").stdout
    assert "API_KEY=<REDACTED>" in memfs_process("-C", str(root), "diff").stdout


def test_export_af_masks_a_held_files_value_unless_asked_for_values(tmp_path: Path) -> None:
    """review11 F19: export-af without --with-secrets wrote a held block's value in the clear
    into a file meant for sharing."""
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    write(root, "system/human.md", f"---\ndescription: the human\n---\nHer key: {VALUE}\n")
    done = memfs_process("-C", str(root), "export-af", "-o", str(tmp_path / "out.af"))
    assert done.returncode == 0, done.stderr
    exported = (tmp_path / "out.af").read_text()
    assert VALUE not in exported and "API_KEY=<REDACTED>" in exported
    assert "masked in the export" in done.stderr and VALUE not in done.stderr
