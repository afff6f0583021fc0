// The Letta Code oracle's node side: one process per test session that loads Letta Code's own
// code (the published @letta-ai/letta-code bundle, made importable by tests/lettacode.py) and
// answers JSON-lines requests on stdin: {"id", "method", "params"} -> {"id", "ok", "result"} or
// {"id", "ok": false, "error": {"name", "message", "letta"}}. "letta" is true when Letta Code's
// function itself threw (an answer: Letta refuses this input), false when the harness broke.
//
// Each method calls Letta Code's functions; where Letta Code's entry point needs its backend or
// network (the agent id, an API token), the method runs the same functions from the point where
// they take a memory directory, and says which source function it follows.
import { Buffer } from "node:buffer";
import { writeSync } from "node:fs";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const [, , buildDir] = process.argv;
const reply = (message) => writeSync(1, `${JSON.stringify(message)}\n`);
// Letta Code logs with console.log in places; stdout belongs to the protocol.
console.log = console.info = console.debug = (...args) => console.error(...args);

const lc = await import(pathToFileURL(`${buildDir}/letta-code.mjs`).href);
const constraints = await import(
  pathToFileURL(`${buildDir}/package/dist/memory-constraints.js`).href
);

const format = (v2) => (v2 ? "memfs-v2" : "memfs-v1");
const bytes = (b64) => Buffer.from(b64, "base64");

/** Run ``fn`` with extra environment variables (git and the hooks it runs inherit them). */
async function withEnv(env, fn) {
  const saved = {};
  for (const [key, value] of Object.entries(env ?? {})) {
    saved[key] = process.env[key];
    process.env[key] = value;
  }
  try {
    return await fn();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

/** The memory tool (src/tools/impl/memory.ts `memory`, memory-apply-patch.ts
 * `memory_apply_patch`) from the point where it has a memory dir: detect the format, refuse a
 * dirty repo, apply the command, commit the affected paths. Remote mode follows
 * prepareMemoryRepoForGitOps minus its network parts (origin URL, credential helper, display
 * name): installMemoryGitHooks, then commitMemoryPaths, as commitMemoryWrite does. */
async function agentWrite({ dir, command, args, agentId, agentName, syncMode }) {
  const memoryFormat = lc.detectMemoryFormat(dir, syncMode === "local");
  await lc.assertMemoryRepoCleanForWrite(dir);
  const affected =
    command === "apply_patch"
      ? await lc.applyMemoryPatch(dir, args.input, memoryFormat)
      : await lc.applyMemoryCommand(dir, { ...args, command }, memoryFormat);
  if (affected.length === 0) {
    throw new Error(`Memory ${command} made no changes: it produced no changed paths.`);
  }
  const author = {
    agentId,
    authorName: agentName.trim() || agentId,
    authorEmail: `${agentId}@letta.com`,
  };
  const reason = args.reason ?? `memory ${command}`;
  let commit;
  if (syncMode === "local") {
    commit = await lc.commitMemoryWrite({
      memoryDir: dir,
      pathspecs: affected,
      reason,
      author,
      syncMode,
    });
  } else {
    lc.installMemoryGitHooks(dir);
    commit = await lc.commitMemoryPaths(dir, affected, reason, author);
  }
  if (!commit.committed) {
    throw new Error(`Memory ${command} made no effective changes; nothing was committed.`);
  }
  return { format: memoryFormat, affected, sha: commit.sha };
}

/** What prepareMemoryRepoForGitOps / pullMemory do to a repo before git runs, minus the network
 * parts (origin URL, credential helper, fetching the agent's display name): the hooks, and
 * ensureLocalMemfsGitConfig's upstream and signing settings. */
async function prepareForGitOps(dir) {
  lc.installMemoryGitHooks(dir);
  await lc.setLocalGitConfig(dir, "branch.main.remote", "origin");
  await lc.setLocalGitConfig(dir, "branch.main.merge", "refs/heads/main");
  if ((await lc.getLocalGitConfig(dir, "commit.gpgsign")) === null) {
    await lc.setLocalGitConfig(dir, "commit.gpgsign", "false");
  }
}

/** pullMemory (src/agent/memory-git.ts) from its first git command on: `pull --ff-only`; when
 * that fails and HEAD shares no history with upstream, reset to origin/main (keeping the old
 * HEAD under refs/letta-backup/); else `pull --rebase`. */
async function pull({ dir }) {
  await prepareForGitOps(dir);
  try {
    const { stdout, stderr } = await lc.runGitWithRetry(dir, ["pull", "--ff-only"], "", {
      operation: "pull --ff-only",
    });
    const output = stdout + stderr;
    const updated = !output.includes("Already up to date");
    return { updated, step: "ff-only", summary: updated ? output.trim() : "Already up to date" };
  } catch {
    if (!(await lc.hasMergeBaseWithUpstream(dir))) {
      try {
        const summary = await lc.recoverMemoryPullByResettingToRemote(dir, "");
        return { updated: true, step: "reset", summary };
      } catch {}
    }
    try {
      const { stdout, stderr } = await lc.runGitWithRetry(dir, ["pull", "--rebase"], "", {
        operation: "pull --rebase",
      });
      return { updated: true, step: "rebase", summary: (stdout + stderr).trim() };
    } catch (rebaseErr) {
      if (lc.isRecoverableMemoryPullHistoryError(rebaseErr)) {
        try {
          const summary = await lc.recoverMemoryPullByResettingToRemote(dir, "");
          return { updated: true, step: "reset", summary };
        } catch {}
      }
      const conflict = await lc.getMemoryConflictSummary(dir);
      return { updated: false, step: "failed", summary: String(rebaseErr.message), conflict };
    }
  }
}

/** syncPendingMemoryCommitsAfterTurn (src/agent/memory-git.ts), the push after each turn, from
 * its status check on: conflict / dirty / clean, else `push -u origin main`; a non-fast-forward
 * push is followed by `pull --rebase` and one more push. */
async function pushAfterTurn({ dir }) {
  const { stdout: statusOut } = await lc.runGit(dir, ["status", "--porcelain"]);
  const conflict = await lc.getMemoryConflictSummary(dir, statusOut);
  if (conflict) return { status: "conflict", summary: conflict };
  if (statusOut.trim().length > 0) return { status: "dirty", summary: statusOut.trim() };
  await prepareForGitOps(dir);
  const divergence = await lc.getMemoryAheadBehind(dir);
  if (!divergence || divergence.ahead <= 0) return { status: "clean", summary: "" };
  const push = () =>
    lc.runGitWithRetry(dir, ["push", "-u", "origin", "main"], "", { operation: "push" });
  try {
    await push();
    return { status: "pushed", summary: "" };
  } catch (pushError) {
    if (!lc.isNonFastForwardPushError(pushError)) {
      return { status: "push_failed", summary: String(pushError.message) };
    }
    try {
      await lc.runGitWithRetry(dir, ["pull", "--rebase"], "", { operation: "pull --rebase" });
      const afterRebase = await lc.getMemoryConflictSummary(dir);
      if (afterRebase) return { status: "conflict", summary: afterRebase };
      await push();
      return { status: "rebased_and_pushed", summary: "" };
    } catch (error) {
      const afterFailure = await lc.getMemoryConflictSummary(dir);
      if (afterFailure) return { status: "conflict", summary: afterFailure };
      return { status: "push_failed", summary: String(error.message) };
    }
  }
}

/** The pre-commit hook's tree check (MEMORY_CONSTRAINTS_VALIDATOR_SCRIPT `main`) over files
 * given in memory instead of git's index, with the exported validator of dist/. */
async function validateTree({ files, layout, headHasRootMarker }) {
  const errors = [];
  const paths = Object.keys(files);
  const hasConfig = paths.includes(constraints.MEMORY_CONSTRAINTS_CONFIG_PATH);
  const hasV2Root = layout === "root-marker" && (paths.includes("MEMORY.md") || headHasRootMarker);
  if (!hasConfig && !hasV2Root) return errors;
  let config = constraints.DEFAULT_MEMORY_CONSTRAINTS_CONFIG;
  if (hasConfig) {
    const text = bytes(files[constraints.MEMORY_CONSTRAINTS_CONFIG_PATH].data).toString("utf8");
    try {
      const parsed = constraints.parseMemoryConstraintsConfig(text);
      config = layout === "root-marker" ? { ...config, ...parsed } : parsed;
    } catch (error) {
      return error.message.split("\n");
    }
  }
  const reader = {
    listFiles: async () => paths.map((path) => ({ path, mode: files[path].mode })),
    readFile: async (path) => (path in files ? bytes(files[path].data) : null),
  };
  errors.push(
    ...(await constraints.validateMemoryTreeConstraints(reader, {
      config,
      layout,
      requireRootMarker: headHasRootMarker,
    })),
  );
  return errors;
}

const methods = {
  ping: () => ({ pid: process.pid }),
  parseFrontmatter: ({ text }) => lc.parseFrontmatter(text),
  parseMemoryMarkdown: ({ text, path, v2 }) =>
    lc.parseMemoryMarkdown({
      content: text,
      relativePath: path,
      format: format(v2),
      errorPrefix: "memory",
    }),
  renderMemoryMarkdown: ({ frontmatter, body, path, v2 }) =>
    lc.renderMemoryMarkdown({
      frontmatter,
      body,
      relativePath: path,
      format: format(v2),
      errorPrefix: "memory",
    }),
  defaultMemoryName: ({ path }) => lc.defaultMemoryName(path),
  detectMemoryFormat: ({ dir, localMemfs }) => lc.detectMemoryFormat(dir, localMemfs),
  validateFrontmatter: ({ path, content, previous, v2 }) =>
    constraints.validateMemoryFileFrontmatter({
      path,
      content,
      previousContent: previous,
      format: v2 ? "memfs-v2" : "legacy",
    }),
  parseConstraintsConfig: ({ text }) => constraints.parseMemoryConstraintsConfig(text),
  validateTree,
  memoryBlockPath: ({ label }) => lc.memoryBlockPath(label),
  renderInitialMemoryFile: ({ label, value, description }) =>
    lc.renderInitialMemoryFile({ label, value, description }) ?? null,
  renderMemfsProjection: ({ dir }) => lc.renderMemfsProjection(dir),
  compileLocalSystemPrompt: ({ dir, agentId, conversationId, now, previousMessages, system }) =>
    lc.compileLocalSystemPrompt({
      agent: { id: agentId, system },
      memoryDir: dir,
      conversationId,
      now: new Date(now),
      previousMessageCount: previousMessages,
    }),
  hookScripts: () => ({
    preCommit: lc.PRE_COMMIT_HOOK_SCRIPT,
    postCommit: lc.POST_COMMIT_HOOK_SCRIPT,
    constraintsValidator: lc.MEMORY_CONSTRAINTS_VALIDATOR_SCRIPT,
  }),
  installHooks: ({ dir, policy }) => {
    // installMemoryGitHooks: what every clone/pull/push of a Letta-hosted repo installs;
    // prepareLocalOnlyMemoryRepoForGitOps: the local backend's legacy-only pair.
    if (policy === "root-marker") lc.installMemoryGitHooks(dir);
    else if (policy === "legacy-only") {
      lc.installPreCommitHook(dir);
      lc.installPostCommitHook(dir);
    } else if (policy === "shared-memory") lc.installSharedMemoryPreCommitHook(dir);
    else throw new TypeError(`unknown layout policy ${policy}`);
    return null;
  },
  initializeLocalMemoryRepo: async ({ dir, agentId, authorName, files }) => {
    await lc.initializeLocalMemoryRepo({
      memoryDir: dir,
      agentId,
      authorName,
      files: files.map(({ path, data }) => ({ relativePath: path, content: bytes(data) })),
    });
    return null;
  },
  commitMemoryPaths: ({ dir, paths, reason, agentId, authorName }) =>
    lc.commitMemoryPaths(dir, paths, reason, {
      agentId,
      authorName,
      authorEmail: `${agentId}@letta.com`,
    }),
  agentWrite,
  pull,
  pushAfterTurn,
  // For the harness's own test: node dying in the middle of a call.
  exitForTest: ({ code, message }) => {
    console.error(message);
    process.exit(code);
  },
};

const input = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
reply({ id: 0, ok: true, result: { ready: true, pid: process.pid } });
for await (const line of input) {
  if (!line.trim()) continue;
  let request;
  try {
    request = JSON.parse(line);
  } catch (error) {
    reply({ id: null, ok: false, error: { name: "ProtocolError", message: String(error), letta: false } });
    continue;
  }
  const { id, method, params, env } = request;
  const fn = methods[method];
  if (!fn) {
    reply({ id, ok: false, error: { name: "ProtocolError", message: `no method ${method}`, letta: false } });
    continue;
  }
  try {
    const result = await withEnv(env, () => fn(params ?? {}));
    reply({ id, ok: true, result: result === undefined ? null : result });
  } catch (error) {
    const name = error?.constructor?.name ?? "Error";
    const letta = !(error instanceof TypeError || error instanceof ReferenceError);
    // A failed git command (a hook refusing a commit) says why on its stdout.
    const output = [error?.stdout, error?.stderr].filter((text) => text?.trim?.()).join("\n");
    const message = String(error?.message ?? error) + (output && !String(error?.message).includes(output.trim()) ? `\n${output}` : "");
    reply({ id, ok: false, error: { name, message, letta } });
  }
}
