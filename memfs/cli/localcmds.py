"""The bodies of ``memfs status``, ``commit`` and ``ls``: click-free, run by their click
commands (memfs/cli/repo.py) and by the fast path (memfs/cli/fast.py) alike.

Each takes the open agent and its options and returns the command's exit code.
"""

from __future__ import annotations

from memfs.cli.output import echo, emit_json, warn

TYPE_CHECKING = False  # typing costs a command ~3 ms to import; mypy reads the block
if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.lettahook import Refusal


def status(agent: Agent, as_json: bool) -> int:
    """Uncommitted changes, problems in memory files, files left out, remotes, the watcher."""
    from memfs.remotestate import remote_states
    from memfs.secrets.hooks import HOLDS_SECRET, pending_count, shown_paths
    from memfs.watchstate import status as watcher_status

    report = agent.status()
    remotes = remote_states(agent)
    watcher = watcher_status(agent)
    pending = pending_count(agent)
    shown = shown_paths(agent, report)  # a held file's name may hold a secret's value
    if as_json:
        remote_dicts = [r.to_dict() for r in remotes]
        extra = {"remotes": remote_dicts, "watcher": watcher, "secrets_pending": pending}
        data = report.to_dict()
        data["changes"] = [{**c, "path": shown(c["path"])} for c in data["changes"]]
        emit_json({**data, **extra})
        return 0
    head = report.head[:7] if report.head else "no commits yet"
    echo(f"On branch {report.branch} at {head}")
    if report.git_operation:
        operation = report.git_operation
        echo(
            f"A git {operation} is in progress: memfs commits and merges nothing until "
            f"'git {operation} --continue' (or --abort) ends it"
        )
    elif report.detached:
        echo("HEAD is detached (not on a branch): memfs commits nothing until 'git switch'")
    if report.clean:
        echo("Nothing to commit: the memory matches the last commit.")
    else:
        echo("Changes not committed (run 'memfs commit'):")
        held = {problem.path for problem in report.held}
        for change in report.changes:
            path = shown(change.path)
            kept = "  (kept out of commits, see below)" if path in held else ""
            echo(f"  {change.status + ':':<10} {path}{kept}")
    holding = [p for p in report.held if p.message.startswith(HOLDS_SECRET)]
    identity = []
    if report.held:  # agent.yaml deleted or given another id (memfs/agentidentity.py)
        from memfs.agentidentity import MANIFEST_FILE, REFUSED

        identity = [p for p in report.held if p.path == MANIFEST_FILE and REFUSED in p.message]
    letta = [p for p in report.held if p not in holding and p not in identity]
    if identity:
        echo("memfs leaves this in the work tree, uncommitted:")
        for problem in identity:
            echo(f"  {problem.render()}")
    if letta:
        echo(
            "Letta refuses these, so memfs leaves them in the work tree, uncommitted"
            + (" (and commits nothing until the first is fixed):" if report.blocked else ":")
        )
        for problem in letta:
            echo(f"  {problem.render()}")
    if holding:
        echo("These hold a secret's value: memfs leaves them in the work tree, uncommitted:")
        for problem in holding:
            echo(f"  {problem.render()}")
    if pending:
        echo(f"Secrets: {pending} change{'s' if pending > 1 else ''} not pushed yet")
    if report.update_pending:
        echo(
            "A merge is updating the files, or stopped midway: the next commit or sync puts"
            " back what it wrote and merges again (nothing is lost)"
        )
    if report.conflicts:
        echo("Open conflicts (reconcile, then 'memfs resolve PATH --keep ours|theirs|both'):")
        for conflict in report.conflicts:
            if conflict.kind == "copy":
                echo(f"  {conflict.path}: other version at {conflict.copy_path}")
            else:
                echo(f"  {conflict.path}: conflict markers")
    if report.problems:
        echo("Problems (run 'memfs check' for details):")
        for problem in report.problems:
            echo(f"  {problem.render()}")
    if report.secrets:
        echo("Ignored, looks like a secret: " + ", ".join(report.secrets))
    for skipped in report.skipped:
        echo(f"Not versioned: {skipped.shown}: {skipped.reason}")
    for remote in remotes:
        line = f"Remote {remote.name}: {remote.ahead} ahead, {remote.behind} behind"
        if remote.last_error:
            line += f"; last sync failed: {remote.last_error}"
        elif remote.last_ok:
            line += f"; last sync {remote.last_ok}"
        echo(line)
    if watcher["running"]:
        line = f"Watcher: running (pid {watcher['pid']}), last commit {watcher.get('last_commit')}"
        echo(line + (f"; last error: {watcher['last_error']}" if watcher.get("last_error") else ""))
    return 0


def commit(agent: Agent, message: str | None, allow_read_only: tuple[str, ...]) -> int:
    """Commit every change; 1 if some files were left out."""
    info = agent.commit(message=message, allow_read_only=allow_read_only)
    held = agent.held
    if info is None:
        echo("Nothing to commit." if not held else "Nothing committed.")
    else:
        echo(f"[{agent.history.branch()} {info.short}] {info.summary}")
        for path in agent.overridden:
            warn(f"{path} is read-only in Letta: changed on purpose (Letta's hook would refuse it)")
    warn_held(held)
    skipped = agent.skipped
    for item in skipped:
        warn(f"not versioned: {item.shown}: {item.reason}")
    return 1 if skipped or held else 0


def warn_held(held: list[Refusal]) -> None:
    """Each change Letta's rules keep out of a commit, on stderr."""
    for refusal in held:
        if refusal.blocking:
            warn(f"Letta's hook refuses every commit until this is fixed: {refusal.render()}")
        else:
            warn(f"not committed, kept in the work tree: {refusal.render()}")


def ls(agent: Agent, as_json: bool) -> int:
    """List memory files: label, pinned or not, size against limit, description."""
    from memfs.layout import in_context
    from memfs.secrets.hooks import masker

    mask = masker(agent)  # a file the commit guard holds may hold a secret's value (§6.2)
    layout = agent.layout
    # From the parse cache: a file is read only when its stat data changed since last time.
    parsed = agent.parsed_memory(agent.snapshot(), layout)
    for path, found in parsed.items():
        if found.unreadable:
            for problem in found.problem_list(path):
                if problem.severity == "error":
                    warn(problem.render())
    rows = [
        {
            "label": mask(found.label),
            "path": mask(path),
            "description": mask(found.description) if found.description else found.description,
            "pinned": in_context(path, layout),
            "read_only": found.read_only,
            "size": found.size,
            "limit": found.limit,
        }
        for path, found in parsed.items()
    ]
    if as_json:
        emit_json(rows)
        return 0
    width = max((len(row["label"]) for row in rows), default=5)
    lines = []
    for row in rows:
        pinned = "pinned" if row["pinned"] else "      "
        size = f"{row['size']}/{row['limit']}" if row["limit"] else str(row["size"])
        flags = " read-only" if row["read_only"] else ""
        description = row["description"] or ""
        line = f"{row['label']:<{width}}  {pinned}  {size:>11}{flags}  {description}"
        lines.append(line.rstrip())
    if lines:  # one write, not one flushed write per file (10,000 files: ~20 ms)
        echo("\n".join(lines))
    return 0
