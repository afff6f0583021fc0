"""The body of ``memfs context``: click-free, run by its click command (memfs/cli/context.py)
and by the fast path (memfs/cli/fast.py) alike."""

from __future__ import annotations

from memfs.cli.output import echo, emit_json, warn

TYPE_CHECKING = False  # typing costs a command ~3 ms to import; mypy reads the block
if TYPE_CHECKING:
    from datetime import datetime
    from typing import BinaryIO

    from memfs.agent import Agent
    from memfs.schema import Problem

# The options that go with --format letta only, by their names on the command line.
LETTA_ONLY = (
    "--metadata",
    "--agent-id",
    "--conversation-id",
    "--now",
    "--messages",
    "--system",
    "--root-projection",
)


class BadOption(Exception):
    """An option's value the command cannot use: click reports it as a usage error (exit 2)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def context(
    agent: Agent,
    output_format: str,
    rev: str | None,
    letta_given: list[str],
    agent_id: str | None,
    conversation_id: str | None,
    compiled_at: str | None,
    messages: int | None,
    system_file: BinaryIO | None,
    root_projection: bool,
    strict: bool,
) -> int:
    """Print the agent's prompt context; 1 with ``strict`` when a memory file was reported.

    ``letta_given`` names the --format letta options given (checked by the caller: they go
    with --format letta only); ``rev`` is HEAD for --from-head.
    """
    if output_format == "letta":
        from memfs.lettacontext import (
            MemoryMetadata,
            build_letta_context,
            inject_core_memory,
            letta_agent_id,
        )

        memory_metadata = None
        if [name for name in letta_given if name != "--root-projection"]:
            memory_metadata = MemoryMetadata(
                agent_id=agent_id or letta_agent_id(agent),
                conversation_id=conversation_id or "default",
                compiled_at=_parse_time(compiled_at),
                previous_messages=messages or 0,
            )
        letta = build_letta_context(agent, rev, memory_metadata, root_projection)
        _report(letta.problems)
        text = letta.text
        if system_file is not None:
            text = inject_core_memory(_system_prompt(system_file), text)
        echo(text, nl=False)
        return _exit_code(letta.problems, strict)
    from memfs.context import build_context  # not with Letta's: that one is another module

    built = build_context(agent, rev)
    _report(built.problems)
    if output_format == "json":
        emit_json(built.to_dict())
    else:
        echo(built.render(), nl=False)
    return _exit_code(built.problems, strict)


def _report(problems: list[Problem]) -> None:
    for problem in problems:
        warn(problem.render())


def _exit_code(problems: list[Problem], strict: bool) -> int:
    return 1 if strict and problems else 0


def _parse_time(text: str | None) -> datetime:
    from datetime import datetime, timezone

    if text is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadOption(f"not an ISO 8601 time: {text!r}", "--now") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _system_prompt(system_file: BinaryIO) -> str:
    """The text of ``--system FILE``; a usage error (exit 2) if it is not UTF-8."""
    data = system_file.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadOption(
            f"{system_file.name} is not UTF-8 text (byte {error.start})", "'--system'"
        ) from error
