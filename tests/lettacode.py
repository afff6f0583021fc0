"""Letta Code's own code, run with node, as the oracle for the Letta layouts.

The published ``@letta-ai/letta-code`` package (pinned version, its npm sha512 checked) is
fetched once with ``npm pack`` into a cache outside the repository and made importable: its
``letta.js`` is one ESM bundle whose last statement starts the CLI; that statement is replaced by
calls to the lazy module initialisers the tests need and an ``export`` of the functions they
call. One node process per test session (``tests/lettacode_server.mjs``) loads it and answers
JSON-lines requests, so a call costs about a millisecond, not the bundle's load time.

``LettaCode`` methods name the Letta Code source function they run. Two kinds of failure:
``LettaCodeError`` is Letta Code's own function refusing the input (an answer, e.g. "target file
is missing required frontmatter"); ``OracleBroken`` is the harness failing (fetch, build, node
died), which must fail a test, never skip it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import select
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

LETTA_CODE_VERSION = "0.32.18"
LETTA_CODE_INTEGRITY = "sha512-PkpJewqQAQq5faHW4wIfmbKyIMCapiIVbsYhXs9CalB1oyUzV8Gg7+ZhhjK52PdSNgP20juc2KP2pQEPfmA6SQ=="
# letta.js imports one bare package at load time: ws (it declares ^8.19.0).
WS_VERSION = "8.23.0"
WS_INTEGRITY = "sha512-wCkmX8QMOrKjgO8HW2WyDbTSGeqkocxgDzS9iR79rEAexty6/2qzilx3Ag8Tqf9ykop3irLKle0MtVn5qjVnoQ=="

# The bundle's last statement starts the CLI; replaced by the initialisers of the modules the
# oracle calls (bun wraps each module in `var init_x = __esm(...)`) and an export of its functions.
BUNDLE_ENTRY = "await init_src5().then(() => exports_src2);"
BUNDLE_INITS = (
    "init_system_prompt_compilation",  # src/backend/local/system-prompt-compilation.ts
    "init_memory_markdown",  # src/agent/memory-markdown.ts
    "init_memory_git",  # src/agent/memory-git.ts (+ memory-git-hooks.ts, memory-constraints.ts)
    "init_memory6",  # src/tools/impl/memory.ts
    "init_memory_apply_patch",  # src/tools/impl/memory-apply-patch.ts
)
BUNDLE_EXPORTS = (
    # src/utils/frontmatter.ts: what the prompt compiler reads
    "parseFrontmatter",
    # src/agent/memory-markdown.ts, memory-format.ts: how the memory tool reads and writes
    "parseMemoryMarkdown",
    "renderMemoryMarkdown",
    "defaultMemoryName",
    "detectMemoryFormat",
    # src/backend/local/local-backend.ts
    "memoryBlockPath",
    "renderInitialMemoryFile",
    # src/backend/local/system-prompt-compilation.ts
    "renderMemfsProjection",
    "compileLocalSystemPrompt",
    # src/agent/memory-git-hooks.ts, memory-constraints.ts
    "PRE_COMMIT_HOOK_SCRIPT",
    "POST_COMMIT_HOOK_SCRIPT",
    "MEMORY_CONSTRAINTS_VALIDATOR_SCRIPT",
    "installMemoryGitHooks",
    "installPreCommitHook",
    "installPostCommitHook",
    "installSharedMemoryPreCommitHook",
    # src/agent/memory-git.ts
    "initializeLocalMemoryRepo",
    "commitMemoryPaths",
    "commitMemoryWrite",
    "assertMemoryRepoCleanForWrite",
    "runGit",
    "runGitWithRetry",
    "getLocalGitConfig",
    "setLocalGitConfig",
    "hasMergeBaseWithUpstream",
    "recoverMemoryPullByResettingToRemote",
    "isRecoverableMemoryPullHistoryError",
    "isNonFastForwardPushError",
    "getMemoryConflictSummary",
    "getMemoryAheadBehind",
    # src/tools/impl/memory.ts, memory-apply-patch.ts
    "applyMemoryCommand",
    "applyMemoryPatch",
)
SERVER_SCRIPT = Path(__file__).with_name("lettacode_server.mjs")

# Resolved at import, before the tests' own HOME (conftest.isolated_environment) is in place.
CACHE_ROOT = Path(
    os.environ.get("MEMFS_TEST_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memfs-tests"
)
_REAL_ENVIRONMENT = dict(os.environ)

LayoutPolicy = Literal["root-marker", "legacy-only", "shared-memory"]
LAYOUT_POLICY_FILE = "letta-memory-layout-policy"
CONSTRAINTS_UPDATE_ENV = "LETTA_MEMORY_CONSTRAINTS_UPDATE"
CONSTRAINTS_CONFIG = ".memfs.config.json"


class OracleBroken(RuntimeError):
    """The oracle itself failed (fetch, build, node died): a test must fail, never skip."""


class LettaCodeError(Exception):
    """Letta Code's own function threw: its answer that the input is refused."""


def missing_tools() -> list[str]:
    """The programs the oracle needs that are not on PATH (node, npm)."""
    return [tool for tool in ("node", "npm") if shutil.which(tool) is None]


# ---------------------------------------------------------------------------------------------
# Fetch and build, once per machine, atomically
# ---------------------------------------------------------------------------------------------


def _patch_digest() -> str:
    """What the build depends on besides the tarballs: a cache built by other code is not used."""
    recipe = json.dumps([BUNDLE_ENTRY, BUNDLE_INITS, BUNDLE_EXPORTS, WS_VERSION])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def build_dir(cache_root: Path = CACHE_ROOT) -> Path:
    """Where the oracle for this version and recipe lives once built."""
    return cache_root / f"letta-code-{LETTA_CODE_VERSION}-{_patch_digest()}"


def ensure_built(cache_root: Path = CACHE_ROOT) -> Path:
    """The built oracle directory, fetching and building it first if needed.

    The build happens in a temporary sibling renamed into place at the end, under a lock, so a
    run killed half-way leaves nothing that a later run would take for a finished build.
    """
    target = build_dir(cache_root)
    if (target / "READY").is_file():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    with _locked(cache_root / f"{target.name}.lock"):
        if (target / "READY").is_file():
            return target
        # Leftovers of a killed build (or a hand-made dir): never used, removed under the lock.
        for leftover in cache_root.glob(f".{target.name}.*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_root))
        try:
            _build(scratch, cache_root / "tarballs")
            (scratch / "READY").write_text(LETTA_CODE_INTEGRITY + "\n", encoding="utf-8")
            os.rename(scratch, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(scratch: Path, tarballs: Path) -> None:
    """Unpack both packages into ``scratch`` and write the importable ``letta-code.mjs``."""
    letta = _fetch("@letta-ai/letta-code", LETTA_CODE_VERSION, LETTA_CODE_INTEGRITY, tarballs)
    ws = _fetch("ws", WS_VERSION, WS_INTEGRITY, tarballs)
    _extract(letta, scratch)  # -> scratch/package
    _extract(ws, scratch / "node_modules" / "ws-unpack")
    (scratch / "node_modules" / "ws-unpack" / "package").rename(scratch / "node_modules" / "ws")
    (scratch / "node_modules" / "ws-unpack").rmdir()
    bundle = (scratch / "package" / "letta.js").read_text(encoding="utf-8")
    (scratch / "letta-code.mjs").write_text(patch_bundle(bundle), encoding="utf-8")


def patch_bundle(bundle: str) -> str:
    """The CLI bundle turned into a module: no shebang, no CLI start, the oracle's exports."""
    if bundle.count(BUNDLE_ENTRY) != 1:
        raise OracleBroken(
            f"letta.js {LETTA_CODE_VERSION}: expected its entry statement {BUNDLE_ENTRY!r} once"
        )
    if bundle.startswith("#!"):
        bundle = bundle.split("\n", 1)[1]
    tail = "".join(f"{init}();\n" for init in BUNDLE_INITS)
    tail += "export { " + ", ".join(BUNDLE_EXPORTS) + " };\n"
    return bundle.replace(BUNDLE_ENTRY, tail)


def _fetch(name: str, version: str, integrity: str, tarballs: Path) -> Path:
    """The package's tarball from ``npm pack``, kept in ``tarballs`` and checked every time."""
    tarballs.mkdir(parents=True, exist_ok=True)
    kept = tarballs / f"{name.replace('@', '').replace('/', '-')}-{version}.tgz"
    if kept.is_file() and _integrity(kept) == integrity:
        return kept
    with tempfile.TemporaryDirectory(dir=tarballs) as download:
        completed = subprocess.run(
            ["npm", "pack", "--json", "--pack-destination", download, f"{name}@{version}"],
            cwd=download,
            capture_output=True,
            text=True,
            env=_REAL_ENVIRONMENT,
            timeout=300,
            check=False,
        )
        if completed.returncode != 0:
            raise OracleBroken(
                f"npm pack {name}@{version} failed (exit {completed.returncode}): "
                f"{completed.stderr.strip()[-2000:]}"
            )
        packed = [path for path in Path(download).iterdir() if path.suffix == ".tgz"]
        if len(packed) != 1:
            raise OracleBroken(f"npm pack {name}@{version} left {packed!r}, expected one .tgz")
        found = _integrity(packed[0])
        if found != integrity:
            raise OracleBroken(f"{name}@{version}: tarball is {found}, expected {integrity}")
        os.replace(packed[0], kept)
    return kept


def _integrity(path: Path) -> str:
    """npm's integrity string (Subresource Integrity, sha512) of a file."""
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def _extract(tarball: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        archive.extractall(destination, filter="data")


# ---------------------------------------------------------------------------------------------
# The session's node process
# ---------------------------------------------------------------------------------------------


@dataclass
class CallStats:
    """How the session process was used: restarts and calls, for the tests and the report."""

    starts: int = 0
    calls: int = 0


class LettaCode:
    """One persistent node process running Letta Code's functions; restarted if it died.

    ``home`` is the HOME (and the only git config) of node and of every git and hook it runs, so
    nothing of the developer's config leaks into the oracle's answers.
    """

    def __init__(self, built: Path, home: Path, call_timeout: float = 60.0) -> None:
        self.built = built
        self.home = home
        self.call_timeout = call_timeout
        self.stats = CallStats()
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._next_id = 0
        self._lock = threading.Lock()
        self._stderr_path = home / "lettacode-node.stderr"
        home.mkdir(parents=True, exist_ok=True)
        (home / ".gitconfig").touch()

    # -- process lifecycle -----------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The node process's pid, or None before the first call."""
        return None if self._process is None else self._process.pid

    def environment(self) -> dict[str, str]:
        """The environment node (and git, and Letta's hooks) run with."""
        env = {key: value for key, value in os.environ.items() if key in ("PATH", "TMPDIR")}
        env.update(
            # Letta Code sorts with localeCompare: one fixed locale makes the answers stable.
            LANG="en_US.UTF-8",
            HOME=str(self.home),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=str(self.home / ".gitconfig"),
            NO_COLOR="1",
        )
        return env

    def alive(self) -> bool:
        """Whether the node process is running (it starts on the first call)."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start node and wait for its ready line."""
        self.close()
        stderr = open(self._stderr_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._process = subprocess.Popen(
                ["node", str(SERVER_SCRIPT), str(self.built)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=self.environment(),
                cwd=self.home,
            )
        finally:
            stderr.close()
        self._buffer = b""
        self.stats.starts += 1
        ready = self._read_message(time.monotonic() + self.call_timeout, "start")
        if not ready.get("ok") or not ready.get("result", {}).get("ready"):
            raise OracleBroken(f"Letta Code oracle did not start: {ready!r}")

    def close(self) -> None:
        """Stop the node process, if any."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.stdin.close()  # type: ignore[union-attr]
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(OSError):
            process.stdout.close()  # type: ignore[union-attr]

    def call(self, method: str, params: Mapping[str, Any], env: Mapping[str, str] = {}) -> Any:
        """Run one method in node; restart node first if it is not running."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self.start()
            assert self._process is not None and self._process.stdin is not None
            self._next_id += 1
            request = {"id": self._next_id, "method": method, "params": params, "env": dict(env)}
            try:
                self._process.stdin.write(json.dumps(request).encode() + b"\n")
                self._process.stdin.flush()
            except (BrokenPipeError, OSError) as error:
                raise self._died(method) from error
            deadline = time.monotonic() + self.call_timeout
            response = self._read_message(deadline, method)
            # The answer to a call interrupted on this side (a test timeout) may still come.
            while isinstance(response.get("id"), int) and response["id"] < request["id"]:
                response = self._read_message(deadline, method)
            self.stats.calls += 1
        if response.get("id") != request["id"]:
            raise OracleBroken(f"oracle answered {response!r} to request {request['id']}")
        if response.get("ok"):
            return response.get("result")
        error = response.get("error") or {}
        message = f"{error.get('name', 'Error')}: {error.get('message', '')}"
        if error.get("letta"):
            raise LettaCodeError(error.get("message", ""))
        raise OracleBroken(f"Letta Code oracle failed in {method}: {message}")

    def _read_message(self, deadline: float, method: str) -> dict[str, Any]:
        process = self._process
        assert process is not None and process.stdout is not None
        descriptor = process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise OracleBroken(f"Letta Code oracle gave no answer to {method} in time")
            readable, _, _ = select.select([descriptor], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(descriptor, 1 << 20)
            if not chunk:
                raise self._died(method)
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _died(self, method: str) -> OracleBroken:
        process = self._process
        code = None if process is None else process.wait()
        self._process = None
        tail = ""
        with contextlib.suppress(OSError):
            tail = self._stderr_path.read_text(errors="replace")[-2000:]
        return OracleBroken(
            f"Letta Code oracle (node) exited with {code} during {method}; stderr: {tail.strip()}"
        )

    # -- src/utils/frontmatter.ts, src/agent/memory-markdown.ts ----------------------------

    def parse_frontmatter(self, text: str) -> dict[str, Any]:
        """parseFrontmatter: ``{"frontmatter": {key: str | list[str]}, "body": str}``, what the
        prompt compiler reads (it takes ``description`` trimmed and the body as the value)."""
        return self.call("parseFrontmatter", {"text": text})

    def parse_memory_markdown(self, text: str, path: str, v2: bool = False) -> dict[str, Any]:
        """parseMemoryMarkdown, how the memory tool reads a file it edits; raises
        LettaCodeError for a file the tool refuses (no front matter, no description, ...)."""
        return self.call("parseMemoryMarkdown", {"text": text, "path": path, "v2": v2})

    def render_memory_markdown(
        self, frontmatter: Mapping[str, str], body: str, path: str, v2: bool = False
    ) -> str:
        """renderMemoryMarkdown, how the memory tool writes a file."""
        params = {"frontmatter": dict(frontmatter), "body": body, "path": path, "v2": v2}
        return self.call("renderMemoryMarkdown", params)

    def default_memory_name(self, path: str) -> str:
        """defaultMemoryName: the v2 ``name`` the memory tool gives a file it creates."""
        return self.call("defaultMemoryName", {"path": path})

    def detect_memory_format(self, repo: Path, local_memfs: bool = False) -> str:
        """detectMemoryFormat: ``memfs-v2`` only for a Letta-hosted repo with a root MEMORY.md."""
        return self.call("detectMemoryFormat", {"dir": str(repo), "localMemfs": local_memfs})

    # -- dist/memory-constraints.js: what the pre-commit hook runs ------------------------

    def validate_frontmatter(
        self, path: str, content: str, previous: str | None = None, v2: bool = False
    ) -> list[str]:
        """validateMemoryFileFrontmatter: the hook's per-file errors (``previous``: the file at
        HEAD; the hook passes it only for the legacy format)."""
        params = {"path": path, "content": content, "previous": previous, "v2": v2}
        return self.call("validateFrontmatter", params)

    def parse_constraints_config(self, text: str) -> dict[str, Any]:
        """parseMemoryConstraintsConfig of a ``.memfs.config.json``; LettaCodeError if invalid."""
        return self.call("parseConstraintsConfig", {"text": text})

    def validate_tree(
        self,
        files: Mapping[str, bytes | str],
        layout: LayoutPolicy = "root-marker",
        head_has_root_marker: bool = False,
        modes: Mapping[str, str] = {},
    ) -> list[str]:
        """The hook's tree check (its validator's ``main``: config from ``.memfs.config.json``
        among ``files``, defaults for a v2 root) through validateMemoryTreeConstraints."""
        encoded = {
            path: {"data": _b64(content), "mode": modes.get(path, "100644")}
            for path, content in files.items()
        }
        params = {"files": encoded, "layout": layout, "headHasRootMarker": head_has_root_marker}
        return self.call("validateTree", params)

    # -- src/backend/local/local-backend.ts -------------------------------------------------

    def memory_block_path(self, label: str) -> str:
        """memoryBlockPath: where the local backend puts a block (``system/<label>.md``)."""
        return self.call("memoryBlockPath", {"label": label})

    def render_initial_memory_file(
        self, label: str, value: str, description: str | None = None
    ) -> dict[str, str] | None:
        """renderInitialMemoryFile: ``{"relativePath", "content"}`` of a new agent's block."""
        params = {"label": label, "value": value, "description": description}
        return self.call("renderInitialMemoryFile", params)

    # -- src/backend/local/system-prompt-compilation.ts ------------------------------------

    def compile_memory(self, repo: Path) -> str:
        """renderMemfsProjection(repo).content: the memory section compiled from HEAD."""
        return self.call("renderMemfsProjection", {"dir": str(repo)})["content"]

    def compile_prompt(
        self,
        repo: Path,
        agent_id: str = "agent-00000000-0000-4000-8000-000000000000",
        conversation_id: str = "default",
        now_iso: str = "2026-01-02T03:04:05.000Z",
        previous_messages: int = 0,
        system: str = "{CORE_MEMORY}",
    ) -> dict[str, Any]:
        """compileLocalSystemPrompt: ``content`` (the system prompt), ``coreMemory`` (memory +
        ``<memory_metadata>``), ``compiledAt``, ``rawSystemHash``, ``memfsRevision``."""
        params = {
            "dir": str(repo),
            "agentId": agent_id,
            "conversationId": conversation_id,
            "now": now_iso,
            "previousMessages": previous_messages,
            "system": system,
        }
        return self.call("compileLocalSystemPrompt", params)

    # -- src/agent/memory-git-hooks.ts ------------------------------------------------------

    def hook_scripts(self) -> dict[str, str]:
        """The hook files' texts: ``preCommit``, ``postCommit``, ``constraintsValidator``."""
        return self.call("hookScripts", {})

    def install_hooks(self, repo: Path, policy: LayoutPolicy = "root-marker") -> None:
        """Letta Code's hooks in ``repo/.git``: pre-commit, post-commit (not for shared-memory),
        hooks/letta-memory-constraints.cjs and ``.git/letta-memory-layout-policy``.

        ``root-marker`` is installMemoryGitHooks, what Letta Code installs on every clone, pull
        and push of a Letta-hosted repo (v1 and v2 alike: the hook validates as v2 only once
        MEMORY.md exists); ``legacy-only`` is what the local backend installs
        (initializeLocalMemoryRepo, commitMemoryWrite in local mode).
        """
        self.call("installHooks", {"dir": str(repo), "policy": policy})

    # -- src/agent/memory-git.ts, src/tools/impl/memory*.ts ---------------------------------

    def initialize_local_memory_repo(
        self,
        repo: Path,
        files: Mapping[str, bytes | str],
        agent_id: str = "agent-local",
        author_name: str = "Letta Agent",
        env: Mapping[str, str] = {},
    ) -> None:
        """initializeLocalMemoryRepo: git init on main, the local backend's hooks and config,
        then ``files`` committed through the hook ("chore: initialize local memory")."""
        params = {
            "dir": str(repo),
            "agentId": agent_id,
            "authorName": author_name,
            "files": [{"path": path, "data": _b64(data)} for path, data in files.items()],
        }
        self.call("initializeLocalMemoryRepo", params, env)

    def commit_paths(
        self,
        repo: Path,
        paths: list[str],
        reason: str,
        agent_id: str = "agent-local",
        author_name: str = "Letta Agent",
        env: Mapping[str, str] = {},
    ) -> dict[str, Any]:
        """commitMemoryPaths: ``git add -A -- paths`` then ``git commit -m reason`` (hooks run);
        ``{"committed": bool, "sha"}``; LettaCodeError with git's output if the hook refuses."""
        params = {
            "dir": str(repo),
            "paths": paths,
            "reason": reason,
            "agentId": agent_id,
            "authorName": author_name,
        }
        return self.call("commitMemoryPaths", params, env)

    def agent_write(
        self,
        repo: Path,
        command: str,
        args: Mapping[str, Any],
        agent_id: str = "agent-local",
        agent_name: str = "Letta Agent",
        sync_mode: Literal["remote", "local"] = "remote",
    ) -> dict[str, Any]:
        """The memory tool as the agent runs it: ``command`` is one of create, str_replace,
        insert, delete, rename, update_description (memory.ts) or apply_patch
        (memory-apply-patch.ts, ``args["input"]``); paths like ``system/x.md``. Refuses a dirty
        repo, writes, commits through the hooks; ``{"format", "affected", "sha"}``."""
        params = {
            "dir": str(repo),
            "command": command,
            "args": dict(args),
            "agentId": agent_id,
            "agentName": agent_name,
            "syncMode": sync_mode,
        }
        return self.call("agentWrite", params)

    def pull(self, repo: Path) -> dict[str, Any]:
        """pullMemory's git sequence: ``pull --ff-only``, else reset for unrelated history, else
        ``pull --rebase``; ``{"updated", "step", "summary"}`` (step: ff-only, reset, rebase,
        failed; a failed rebase is left in progress, as Letta leaves it)."""
        return self.call("pull", {"dir": str(repo)})

    def push_after_turn(self, repo: Path) -> dict[str, Any]:
        """syncPendingMemoryCommitsAfterTurn's git sequence: ``{"status"}`` one of conflict,
        dirty, clean, pushed, rebased_and_pushed, push_failed."""
        return self.call("pushAfterTurn", {"dir": str(repo)})


def layout_policy(repo: Path) -> str | None:
    """The layout policy Letta's hooks read (``.git/letta-memory-layout-policy``), if any."""
    path = repo / ".git" / LAYOUT_POLICY_FILE
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def _b64(data: bytes | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


# ---------------------------------------------------------------------------------------------
# Memory repos as Letta Code makes them
# ---------------------------------------------------------------------------------------------

MEMORY_INDEX = "MEMORY.md"


def letta_repo(
    oracle: LettaCode,
    path: Path,
    layout: Literal["v1", "v2"] = "v1",
    files: Mapping[str, bytes | str] = {},
    hooks: bool = True,
    policy: LayoutPolicy | None = None,
    agent_id: str = "agent-00000000-0000-4000-8000-000000000000",
) -> Path:
    """A memory repo created and committed by Letta Code's own code, holding ``files``.

    v1: initializeLocalMemoryRepo with ``files`` (the local backend's way; its hook checks the
    first commit). v2: initializeLocalMemoryRepo with no files, then the hooks a Letta-hosted
    repo gets (installMemoryGitHooks, root-marker), then ``files`` committed through them with
    commitMemoryPaths (``.memfs.config.json`` with the human approval the hook asks for).
    ``policy`` installs that layout policy's hooks last (default: legacy-only for v1, root-marker
    for v2); ``hooks=False`` removes Letta's hooks after the commits.
    """
    if layout == "v1":
        oracle.initialize_local_memory_repo(path, files, agent_id=agent_id)
        if policy not in (None, "legacy-only"):
            oracle.install_hooks(path, policy)
    else:
        oracle.initialize_local_memory_repo(path, {}, agent_id=agent_id)
        oracle.install_hooks(path, policy or "root-marker")
        for relative, content in files.items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        if files:
            approval = {CONSTRAINTS_UPDATE_ENV: "1"} if CONSTRAINTS_CONFIG in files else {}
            oracle.commit_paths(
                path, sorted(files), "chore: initialize memory", agent_id=agent_id, env=approval
            )
    if not hooks:
        remove_hooks(path)
    return path


def remove_hooks(repo: Path) -> None:
    """Take Letta's hooks and layout policy out of ``repo/.git``."""
    hooks = repo / ".git" / "hooks"
    for name in ("pre-commit", "post-commit", "letta-memory-constraints.cjs"):
        (hooks / name).unlink(missing_ok=True)
    (repo / ".git" / LAYOUT_POLICY_FILE).unlink(missing_ok=True)


def v1_files(oracle: LettaCode) -> dict[str, str]:
    """A realistic v1 repo's files: blocks as the local backend writes them
    (renderInitialMemoryFile), a nested block, a reference file and a skill."""
    files: dict[str, str] = {}
    for label, value, description in (
        ("persona", "I am a careful coding agent.\nI keep notes.", "Who I am and how I work"),
        ("human", "Name: Ada\nPrefers: short answers", "What I know about the user"),
        ("project/x", "Project X: a memory format.", "Project X: goals, status: active"),
    ):
        rendered = oracle.render_initial_memory_file(label, value, description)
        assert rendered is not None
        files[rendered["relativePath"]] = rendered["content"]
    files["reference/notes.md"] = oracle.render_memory_markdown(
        {"description": "# Notes: loose ends"}, "- check the hook\n", "reference/notes.md"
    )
    files["skills/review/SKILL.md"] = (
        "---\nname: review\ndescription: Review a change before commit\n---\n# Review\n\nRead the diff.\n"
    )
    return files


def v2_files(oracle: LettaCode) -> dict[str, str]:
    """A realistic MemFS v2 repo: root MEMORY.md, a root (in-context) file, an indexed folder
    with its MEMORY.md and a file in it, and ``.memfs.config.json`` (Letta's default limits)."""

    def memory_file(path: str, description: str, body: str) -> str:
        name = oracle.default_memory_name(path)
        frontmatter = {"name": name, "description": description}
        return oracle.render_memory_markdown(frontmatter, body, path, v2=True)

    return {
        MEMORY_INDEX: "# Memory\n\n- persona.md: who I am\n- projects/: what I work on\n",
        "persona.md": memory_file("persona.md", "Who I am: a coding agent", "I am careful.\n"),
        "projects/MEMORY.md": "# Projects\n\n- letta.md: the Letta project\n",
        "projects/letta.md": memory_file(
            "projects/letta.md",
            "The Letta project: status and links",
            "Letta: agents with memory.\n",
        ),
        CONSTRAINTS_CONFIG: json.dumps(
            {
                "version": 1,
                "maxDepth": 2,
                "maxFileCharacters": 20000,
                "maxCoreMemoryCharacters": 65536,
            },
            indent=2,
        )
        + "\n",
    }


# A read-only block as Letta's server writes it (block_markdown.serialize_block: yaml.dump of
# description, then read_only only when true); an agent's commit may not add the flag.
READ_ONLY_RULES = (
    "---\ndescription: House rules set by the user\nread_only: true\n---\nNever force-push.\n"
)
SERVER_AUTHOR = ("Letta System", "system@letta.ai")  # letta/services/memory_repo/git_operations.py


def server_commit(repo: Path, files: Mapping[str, bytes | str], message: str) -> str:
    """Commit ``files`` as Letta's server does: its own git, no client hook runs. Returns sha."""
    for relative, content in files.items():
        target = repo / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    name, email = SERVER_AUTHOR
    identity = ["-c", f"user.name={name}", "-c", f"user.email={email}"]
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "add", "--", *files], check=True, capture_output=True)
    subprocess.run(
        [*git, *identity, "commit", "--no-verify", "-q", "-m", message],
        check=True,
        capture_output=True,
    )
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def letta_v1_repo(oracle: LettaCode, path: Path, hooks: bool = True) -> Path:
    """A realistic v1 repo: v1_files through Letta Code's init, then a read-only block from the
    server, then Letta-hosted hooks (root-marker, as after every clone or pull)."""
    letta_repo(oracle, path, "v1", v1_files(oracle), hooks=False)
    server_commit(path, {"system/rules.md": READ_ONLY_RULES}, "Update system/rules.md")
    if hooks:
        oracle.install_hooks(path, "root-marker")
    return path


def letta_v2_repo(oracle: LettaCode, path: Path, hooks: bool = True) -> Path:
    """A realistic MemFS v2 repo (v2_files) committed through Letta Code's root-marker hook."""
    return letta_repo(oracle, path, "v2", v2_files(oracle), hooks=hooks)


# ---------------------------------------------------------------------------------------------
# Would Letta's hook have accepted a commit?
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HookVerdict:
    """Letta's pre-commit hook run on one commit: ``accepted``, and what it printed."""

    commit: str
    accepted: bool
    output: str


def hook_verdict(
    oracle: LettaCode,
    repo: Path,
    commit: str = "HEAD",
    policy: LayoutPolicy | None = None,
    approve_config: bool = False,
) -> HookVerdict:
    """Run Letta Code's pre-commit hook as if ``commit`` were being made now on its first parent.

    A scratch clone (sharing ``repo``'s objects) is checked out at the parent, its index set to
    the commit's tree, and Letta's hooks installed with ``policy`` (default: ``repo``'s own
    layout policy, else root-marker, what Letta Code installs on a hosted agent's repo). Nothing
    in ``repo`` changes. ``approve_config`` is the human approval a `.memfs.config.json` change
    needs (LETTA_MEMORY_CONSTRAINTS_UPDATE=1).
    """
    sha = _git_text(repo, "rev-parse", "--verify", f"{commit}^{{commit}}")
    parents = _git_text(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]
    policy = policy or layout_policy(repo) or "root-marker"
    with tempfile.TemporaryDirectory(prefix="letta-hook-") as scratch:
        work = Path(scratch) / "repo"
        _git_text(Path(scratch), "clone", "-q", "--shared", "--no-checkout", str(repo), str(work))
        if parents:
            _git_text(work, "checkout", "-q", "--detach", parents[0])
        else:
            _git_text(work, "checkout", "-q", "--orphan", "letta-hook-root")
        _git_text(work, "read-tree", sha)
        oracle.install_hooks(work, policy)
        env = dict(os.environ)
        if approve_config:
            env[CONSTRAINTS_UPDATE_ENV] = "1"
        completed = subprocess.run(
            [str(work / ".git" / "hooks" / "pre-commit")],
            cwd=work,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    return HookVerdict(sha, completed.returncode == 0, completed.stdout + completed.stderr)


def hook_rejections(
    oracle: LettaCode,
    repo: Path,
    revisions: str,
    policy: LayoutPolicy | None = None,
    approve_config: bool = False,
) -> list[HookVerdict]:
    """The commits of ``revisions`` (``git rev-list`` syntax, e.g. ``base..HEAD``) that Letta's
    hook would have refused, oldest first."""
    shas = _git_text(repo, "rev-list", "--reverse", revisions).split()
    verdicts = [hook_verdict(oracle, repo, sha, policy, approve_config) for sha in shas]
    return [verdict for verdict in verdicts if not verdict.accepted]


def _git_text(cwd: Path, *args: str) -> str:
    completed = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise OracleBroken(f"git {' '.join(args)} failed in {cwd}: {completed.stderr.strip()}")
    return completed.stdout.strip()
