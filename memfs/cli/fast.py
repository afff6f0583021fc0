"""The commands a harness runs on every turn, run without importing click.

``import click`` costs a command ~20 ms of its ~60-130 ms (issue 12). This module reads argv
for exactly the common shapes of status, context, ls, commit, push, fetch, pull and sync (the
global ``-C DIR``/``--agent DIR``/``--agent=DIR`` or ``MEMFS_AGENT``, each command's usual
options) and runs the same body the click command runs (memfs/cli/localcmds.py,
contextcmd.py, synccmds.py), printing the same lines and ending with the same exit code
(memfs/cli/failure.py, output.py). Anything else -- help, an unknown or repeated option, a
missing value, ``--``, a value click would check or refuse -- is not read here at all:
``run_fast`` returns None and click runs the command as it always did, with its help and its
usage errors. tests/test_cli_fast.py runs both ways on the same inputs and compares.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs a command ~3 ms to import; mypy reads the block
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from memfs.agent import Agent

# An option: its names on the command line -> (the body's argument, its kind). A "flag" takes
# no value, a "value" one (given once), a "many" one value per use (click's multiple=True).
Options = dict[str, tuple[str, str]]

JSON: Options = {"--json": ("as_json", "flag")}
QUIET: Options = {"-q": ("quiet", "flag"), "--quiet": ("quiet", "flag")}
CONFLICT: Options = {"--conflict": ("policy", "value")}
UNRELATED: Options = {"--allow-unrelated-histories": ("allow_unrelated", "flag")}
POLICIES = ("copy", "markers", "ours", "theirs")
FORMATS = ("text", "json", "letta")

# command -> (its options, how many positional arguments it takes)
SHAPES: dict[str, tuple[Options, int]] = {
    "status": (JSON, 0),
    "ls": (JSON, 0),
    "commit": (
        {
            "-m": ("message", "value"),
            "--message": ("message", "value"),
            "--allow-read-only": ("allow_read_only", "many"),
        },
        0,
    ),
    "context": (
        {
            "--format": ("output_format", "value"),
            "--rev": ("rev", "value"),
            "--from-head": ("from_head", "flag"),
            "--metadata": ("metadata", "flag"),
            "--agent-id": ("agent_id", "value"),
            "--conversation-id": ("conversation_id", "value"),
            "--messages": ("messages", "value"),
            "--root-projection": ("root_projection", "flag"),
            "--strict": ("strict", "flag"),
        },
        1,
    ),
    "push": ({**CONFLICT, **UNRELATED, **QUIET, **JSON}, 1),
    "fetch": ({**QUIET, **JSON}, 1),
    "pull": ({**CONFLICT, "--ff-only": ("ff_only", "flag"), **UNRELATED, **QUIET, **JSON}, 1),
    "sync": ({**CONFLICT, **UNRELATED, "--env-name": ("env_name", "value"), **QUIET, **JSON}, 0),
}
GLOBAL_AGENT = ("-C", "--agent")


class Parsed:
    """A command line the fast path runs: the command, the agent folder, its options."""

    __slots__ = ("agent_dir", "arguments", "command", "options")

    def __init__(
        self, command: str, agent_dir: str | None, options: dict[str, Any], arguments: list[str]
    ) -> None:
        self.command = command
        self.agent_dir = agent_dir
        self.options = options
        self.arguments = arguments


def run_fast(argv: list[str]) -> int | None:
    """Run ``memfs ARGV`` without click and return its exit code; None if click must run it."""
    if not _plain_console():
        return None
    parsed = parse(argv)
    if parsed is None:
        return None
    from memfs.cli.failure import explain
    from memfs.cli.output import warn

    try:
        return _RUNNERS[parsed.command](parsed)
    except (Exception, KeyboardInterrupt) as error:
        message, code = explain(error)
        try:
            warn(message)
        except BrokenPipeError:  # stderr is gone: nobody reads the line; exit 1, no traceback
            return 1
        return code


def _plain_console() -> bool:
    """Whether click would print through sys.stdout and sys.stderr as they are.

    click rewraps a stream whose encoding is ASCII (click/_compat.py), and its shell
    completion runs when ``_MEMFS_COMPLETE`` is set: both are left to click.
    """
    if "_MEMFS_COMPLETE" in os.environ:
        return False
    import codecs

    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None)
        if not encoding or getattr(stream, "errors", None) is None:
            return False
        try:
            if codecs.lookup(encoding).name == "ascii":
                return False
        except LookupError:
            return False
    return True


def parse(argv: list[str]) -> Parsed | None:
    """The fast path's reading of ``argv``, or None for any shape it does not run."""
    agent_dir: str | None = None
    given = False
    at = 0
    while at < len(argv) and argv[at].startswith("-"):
        token = argv[at]
        if token in GLOBAL_AGENT and at + 1 < len(argv):
            value, at = argv[at + 1], at + 2
        elif token.startswith("--agent="):
            value, at = token.removeprefix("--agent="), at + 1
        else:
            return None
        if given or not value or value.startswith("-"):
            return None
        agent_dir, given = value, True
    if at >= len(argv) or argv[at] not in SHAPES:
        return None
    if not given:
        agent_dir = os.environ.get("MEMFS_AGENT") or None  # click: an empty variable is unset
    command = argv[at]
    spec, most = SHAPES[command]
    options: dict[str, Any] = {}
    arguments: list[str] = []
    rest = argv[at + 1 :]
    index = 0
    while index < len(rest):
        token = rest[index]
        index += 1
        if not token.startswith("-"):
            if len(arguments) >= most or not token:
                return None
            arguments.append(token)
            continue
        name, equals, value = token.partition("=") if token.startswith("--") else (token, "", "")
        if name not in spec:
            return None  # --help, -h, --, an unknown option: click says what it says
        dest, kind = spec[name]
        if kind == "flag":
            if equals or dest in options:
                return None
            options[dest] = True
            continue
        if not equals:
            if index >= len(rest):
                return None
            value = rest[index]
            index += 1
        if value.startswith("-") or (kind == "value" and dest in options):
            return None
        if kind == "many":
            options[dest] = (*options.get(dest, ()), value)
        else:
            options[dest] = value
    parsed = Parsed(command, agent_dir, options, arguments)
    return parsed if _acceptable(parsed) else None


def _acceptable(parsed: Parsed) -> bool:
    """Whether click would take these values as they are (else it reports them: exit 2)."""
    options = parsed.options
    if options.get("policy", "copy") not in POLICIES:
        return False
    if parsed.command != "context":
        return True
    if options.get("output_format", "text") not in FORMATS:
        return False
    messages = options.get("messages")
    if messages is not None:
        if not (isinstance(messages, str) and messages.isascii() and messages.isdigit()):
            return False
        options["messages"] = int(messages)
    if options.get("from_head") and "rev" in options:
        return False
    letta_only = ("metadata", "agent_id", "conversation_id", "messages", "root_projection")
    if options.get("output_format") != "letta" and any(name in options for name in letta_only):
        return False
    if parsed.arguments:  # click.Path(file_okay=False): an existing file or unreadable is refused
        try:
            found = os.stat(parsed.arguments[0])
        except OSError:
            return True
        import stat

        return stat.S_ISDIR(found.st_mode) and os.access(parsed.arguments[0], os.R_OK)
    return True


def _open(parsed: Parsed, directory: str | None = None) -> Agent:
    """The agent the command runs on, as click's ``AppState.agent`` finds it."""
    from memfs.opening import find_agent, open_agent

    if directory:
        return open_agent(directory)
    return open_agent(parsed.agent_dir) if parsed.agent_dir is not None else find_agent(".")


def _status(parsed: Parsed) -> int:
    from memfs.cli.localcmds import status

    with _open(parsed) as agent:
        return status(agent, bool(parsed.options.get("as_json")))


def _ls(parsed: Parsed) -> int:
    from memfs.cli.localcmds import ls

    with _open(parsed) as agent:
        return ls(agent, bool(parsed.options.get("as_json")))


def _commit(parsed: Parsed) -> int:
    from memfs.cli.localcmds import commit

    options = parsed.options
    with _open(parsed) as agent:
        message = options.get("message")
        return commit(agent, message, options.get("allow_read_only", ()))


def _context(parsed: Parsed) -> int:
    from memfs.cli.contextcmd import LETTA_ONLY, context

    o = parsed.options
    values = (o.get("metadata"), o.get("agent_id"), o.get("conversation_id"), None)
    values += (o.get("messages"), None, o.get("root_projection"))
    given = [name for name, value in zip(LETTA_ONLY, values, strict=True) if value is not None]
    directory = parsed.arguments[0] if parsed.arguments else None
    with _open(parsed, directory) as agent:
        return context(
            agent,
            o.get("output_format", "text"),
            "HEAD" if o.get("from_head") else o.get("rev"),
            given,
            o.get("agent_id"),
            o.get("conversation_id"),
            None,
            o.get("messages"),
            None,
            bool(o.get("root_projection")),
            bool(o.get("strict")),
        )


def _sync_command(parsed: Parsed) -> int:
    from memfs.cli import synccmds

    o = parsed.options
    remote = parsed.arguments[0] if parsed.arguments else None
    policy = o.get("policy")
    unrelated, quiet, as_json = (bool(o.get(k)) for k in ("allow_unrelated", "quiet", "as_json"))
    with _open(parsed) as agent:
        if parsed.command == "push":
            return synccmds.push(agent, remote, policy, unrelated, quiet, as_json)
        if parsed.command == "fetch":
            return synccmds.fetch(agent, remote, quiet, as_json)
        if parsed.command == "pull":
            ff_only = bool(o.get("ff_only"))
            return synccmds.pull(agent, remote, policy, ff_only, unrelated, quiet, as_json)
        env_name = o.get("env_name")
        return synccmds.sync(agent, policy, unrelated, env_name, quiet, as_json)


_RUNNERS: dict[str, Callable[[Parsed], int]] = {
    "status": _status,
    "ls": _ls,
    "commit": _commit,
    "context": _context,
    "push": _sync_command,
    "fetch": _sync_command,
    "pull": _sync_command,
    "sync": _sync_command,
}
