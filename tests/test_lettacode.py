"""The Letta Code oracle itself (tests/lettacode.py): it loads, answers as Letta Code does, runs
Letta's hooks, compiles v1 and v2 repos, and its node process is reused, restarted and reported."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from . import lettacode
from .conftest import git, write
from .lettacode import LettaCode, LettaCodeError, OracleBroken
from .servers import wait_for


def test_the_pinned_package_is_the_one_built(letta_code: LettaCode) -> None:
    built = letta_code.built
    assert (built / "READY").read_text().strip() == lettacode.LETTA_CODE_INTEGRITY
    package = (built / "package" / "package.json").read_text()
    assert f'"version": "{lettacode.LETTA_CODE_VERSION}"' in package
    with open(built / "letta-code.mjs", "rb") as module:
        module.seek(-4096, os.SEEK_END)
        tail = module.read().decode()
    assert lettacode.BUNDLE_ENTRY not in tail
    assert "export { parseFrontmatter, " in tail


def test_a_bundle_without_its_entry_statement_is_refused() -> None:
    with pytest.raises(OracleBroken, match="entry statement"):
        lettacode.patch_bundle("#!/usr/bin/env node\nconsole.log(1);\n")


def test_parse_frontmatter_reads_line_by_line_not_yaml(letta_code: LettaCode) -> None:
    text = "---\ndescription: a: b\nread_only: true\n---\n\n  hello\n\n"
    parsed = letta_code.parse_frontmatter(text)
    # The body comes back trimmed: that is the value the prompt compiler uses.
    assert parsed == {"frontmatter": {"description": "a: b", "read_only": "true"}, "body": "hello"}


def test_the_memory_tool_refuses_a_file_without_frontmatter(letta_code: LettaCode) -> None:
    with pytest.raises(LettaCodeError, match="missing required frontmatter"):
        letta_code.parse_memory_markdown("just text\n", "system/x.md")
    v2 = letta_code.render_memory_markdown(
        {"name": "X", "description": "a: b"}, "body\n", "x.md", v2=True
    )
    assert v2 == '---\nname: "X"\ndescription: "a: b"\n---\nbody\n'


def test_the_hook_rejects_read_only_added(letta_code: LettaCode, letta_v1_repo: Path) -> None:
    added = "---\ndescription: Mine now\nread_only: true\n---\nText\n"
    message = "system/mine.md: 'read_only' is a protected field and cannot be set by the agent"
    assert message in letta_code.validate_frontmatter("system/mine.md", added)
    write(letta_v1_repo, "system/mine.md", added)
    git(letta_v1_repo, "add", "system/mine.md")
    head = git(letta_v1_repo, "rev-parse", "HEAD")
    refused = subprocess.run(
        ["git", "commit", "-m", "add"], cwd=letta_v1_repo, capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert message in refused.stderr  # git hands a hook's stdout to stderr
    assert git(letta_v1_repo, "rev-parse", "HEAD") == head


def test_the_hooks_and_layout_policy_letta_code_installs(
    letta_code: LettaCode, tmp_path: Path
) -> None:
    repo = lettacode.letta_repo(letta_code, tmp_path / "repo", "v1", {}, hooks=False)
    assert lettacode.layout_policy(repo) is None
    letta_code.install_hooks(repo)
    hooks = repo / ".git" / "hooks"
    scripts = letta_code.hook_scripts()
    assert (hooks / "pre-commit").read_text() == scripts["preCommit"]
    assert (hooks / "post-commit").read_text() == scripts["postCommit"]
    assert (hooks / "letta-memory-constraints.cjs").read_text() == scripts["constraintsValidator"]
    assert os.access(hooks / "pre-commit", os.X_OK)
    assert lettacode.layout_policy(repo) == "root-marker"
    letta_code.install_hooks(repo, "legacy-only")
    assert lettacode.layout_policy(repo) == "legacy-only"


def test_the_v2_tree_check(letta_code: LettaCode) -> None:
    deep = '---\nname: "X"\ndescription: "é"\n---\n'
    files: dict[str, bytes | str] = {"MEMORY.md": "# Memory\n", "deep/x.md": deep}
    assert letta_code.validate_tree(files) == ["deep/x.md: missing required index deep/MEMORY.md"]
    files["deep/MEMORY.md"] = "# Deep\n"
    files[".memfs.config.json"] = '{"version": 1, "maxFileCharacters": 10}\n'
    # Characters, not bytes: "é" counts once.
    assert letta_code.validate_tree(files) == [
        f"deep/x.md: {len(deep)} characters exceeds 10 from maxFileCharacters"
    ]
    with pytest.raises(LettaCodeError, match="version must be 1"):
        letta_code.parse_constraints_config('{"version": 2}')


def test_compile_a_v1_repo(letta_code: LettaCode, letta_v1_repo: Path) -> None:
    memory = letta_code.compile_memory(letta_v1_repo)
    assert "<self>\n<projection>$MEMORY_DIR/system/persona.md</projection>\n" in memory
    assert "<memory>\n<human>\n  <projection>$MEMORY_DIR/system/human.md</projection>" in memory
    assert "  <x>\n    <projection>$MEMORY_DIR/system/project/x.md</projection>" in memory
    assert "└── reference/\n    └── notes.md\n</external_projection>\n</memory>" in memory
    assert "skills" not in memory
    prompt = letta_code.compile_prompt(
        letta_v1_repo, previous_messages=3, system="S\n{CORE_MEMORY}"
    )
    assert prompt["content"] == "S\n" + prompt["coreMemory"]
    assert prompt["coreMemory"].startswith(memory + "\n\n<memory_metadata>\n")
    assert "- 3 previous messages between you and the user" in prompt["coreMemory"]
    assert prompt["memfsRevision"] == git(letta_v1_repo, "rev-parse", "HEAD").strip()


def test_compile_a_v2_repo(letta_code: LettaCode, letta_v2_repo: Path) -> None:
    # Letta Code's local compiler has no v2 case: root files are not <self>, all is projected.
    memory = letta_code.compile_memory(letta_v2_repo)
    assert "<self>" not in memory
    assert memory.endswith(
        "<memory>\n<external_projection>\n${MEMORY_DIR}/\n├── projects/\n│   ├── letta.md\n"
        "│   └── MEMORY.md\n├── MEMORY.md\n└── persona.md\n</external_projection>\n</memory>"
    )
    assert letta_code.detect_memory_format(letta_v2_repo) == "memfs-v2"
    assert lettacode.layout_policy(letta_v2_repo) == "root-marker"


def test_the_agent_patches_a_v2_repo(letta_code: LettaCode, letta_v2_repo: Path) -> None:
    patch = (
        "*** Begin Patch\n*** Update File: projects/letta.md\n@@\n-Letta: agents with memory.\n"
        "+Letta: stateful agents.\n*** Add File: projects/new.md\n+fresh\n*** End Patch"
    )
    written = letta_code.agent_write(letta_v2_repo, "apply_patch", {"input": patch, "reason": "p"})
    assert written["format"] == "memfs-v2"
    assert sorted(written["affected"]) == ["projects/letta.md", "projects/new.md"]
    assert "Letta: stateful agents." in (letta_v2_repo / "projects/letta.md").read_text()
    assert (letta_v2_repo / "projects/new.md").read_text().startswith('---\nname: "New"\n')
    assert git(letta_v2_repo, "status", "--porcelain") == ""
    with pytest.raises(LettaCodeError, match=r"Memory requires deep/MEMORY\.md"):
        letta_code.agent_write(
            letta_v2_repo,
            "create",
            {"file_path": "deep/x.md", "description": "d", "file_text": "x", "reason": "r"},
        )


def test_the_agent_writes_and_syncs_as_letta_code(
    letta_code: LettaCode, letta_v1_repo: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(letta_v1_repo), str(bare))
    git(letta_v1_repo, "remote", "add", "origin", str(bare))
    git(letta_v1_repo, "fetch", "-q", "origin")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    letta_code.install_hooks(other)
    edit = {"file_path": "system/human.md", "old_string": "Ada", "new_string": "Ada L."}
    letta_code.agent_write(other, "str_replace", {**edit, "reason": "name"})
    assert letta_code.push_after_turn(other)["status"] == "pushed"
    created = letta_code.agent_write(
        letta_v1_repo,
        "create",
        {"file_path": "system/new.md", "description": "a: b", "file_text": "x\n", "reason": "r"},
    )
    assert created["affected"] == ["system/new.md"]
    assert letta_code.push_after_turn(letta_v1_repo)["status"] == "rebased_and_pushed"
    assert letta_code.pull(other)["step"] == "ff-only"
    assert (other / "system/new.md").read_text() == "---\ndescription: a: b\n---\nx\n"
    assert "Ada L." in (letta_v1_repo / "system/human.md").read_text()
    with pytest.raises(LettaCodeError, match="read_only and cannot be modified"):
        letta_code.agent_write(
            other,
            "str_replace",
            {"file_path": "system/rules.md", "old_string": "N", "new_string": "n", "reason": "r"},
        )


def test_the_session_process_is_reused(letta_code: LettaCode) -> None:
    pid, starts = letta_code.pid, letta_code.stats.starts
    for _ in range(20):
        letta_code.memory_block_path("persona")
    assert letta_code.memory_block_path("/a/b") == "system//a/b.md"
    assert (letta_code.pid, letta_code.stats.starts) == (pid, starts)


def test_a_killed_node_is_restarted_or_reported(letta_code: LettaCode) -> None:
    pid = letta_code.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not letta_code.alive(), timeout=10, what="node to die")
    assert letta_code.memory_block_path("human") == "system/human.md"
    assert letta_code.pid != pid
    with pytest.raises(OracleBroken, match=r"exited with 3 during exitForTest; stderr: .*gone"):
        letta_code.call("exitForTest", {"code": 3, "message": "gone"})
    assert letta_code.memory_block_path("human") == "system/human.md"


def test_a_half_built_cache_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    target = lettacode.build_dir(cache)
    (target / "package").mkdir(parents=True)  # a build that stopped before READY
    stale = cache / f".{target.name}.killed"
    stale.mkdir()

    def killed_build(scratch: Path, tarballs: Path) -> None:
        (scratch / "letta-code.mjs").write_text("half")
        raise OracleBroken("killed")

    monkeypatch.setattr(lettacode, "_build", killed_build)
    with pytest.raises(OracleBroken, match="killed"):
        lettacode.ensure_built(cache)
    assert sorted(path.name for path in cache.iterdir()) == [f"{target.name}.lock"]

    def build(scratch: Path, tarballs: Path) -> None:
        (scratch / "letta-code.mjs").write_text("whole")

    monkeypatch.setattr(lettacode, "_build", build)
    assert lettacode.ensure_built(cache) == target
    assert (target / "letta-code.mjs").read_text() == "whole"
    assert (target / "READY").read_text().strip() == lettacode.LETTA_CODE_INTEGRITY


def test_hook_verdicts_on_commits_already_made(letta_code: LettaCode, letta_v1_repo: Path) -> None:
    base = git(letta_v1_repo, "rev-parse", "HEAD").strip()
    write(letta_v1_repo, "system/human.md", "---\ndescription: The user\n---\nAda\n")
    git(letta_v1_repo, "commit", "-qam", "fine")
    write(letta_v1_repo, "system/rules.md", "---\ndescription: Rules\n---\nNone.\n")
    git(letta_v1_repo, "commit", "-qam", "drops read_only", "--no-verify")
    assert lettacode.hook_verdict(letta_code, letta_v1_repo, "HEAD~1").accepted
    rejected = lettacode.hook_rejections(letta_code, letta_v1_repo, f"{base}..HEAD")
    assert [verdict.commit for verdict in rejected] == [
        git(letta_v1_repo, "rev-parse", "HEAD").strip()
    ]
    assert "system/rules.md: file is read_only and cannot be modified" in rejected[0].output
    assert git(letta_v1_repo, "status", "--porcelain") == ""
    first = git(letta_v1_repo, "rev-list", "--max-parents=0", "HEAD").strip()
    assert lettacode.hook_verdict(letta_code, letta_v1_repo, first).accepted


def test_a_config_change_needs_approval(letta_code: LettaCode, letta_v2_repo: Path) -> None:
    refused = lettacode.hook_verdict(letta_code, letta_v2_repo)
    assert not refused.accepted
    assert ".memfs.config.json is protected and requires human approval" in refused.output
    assert lettacode.hook_verdict(letta_code, letta_v2_repo, approve_config=True).accepted
