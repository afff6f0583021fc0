"""``memfs context``: what a harness puts in the system prompt."""

from __future__ import annotations

from typing import BinaryIO

import click

from memfs.cli.app import AppState, pass_state


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "letta"]),
    default="text",
    show_default=True,
    help="memfs's prompt text, JSON for a harness to lay out itself, or exactly the memory "
    "section Letta Code compiles.",
)
@click.option("--rev", metavar="REV", help="The context as it was at REV (default: the files now).")
@click.option(
    "--from-head",
    is_flag=True,
    help="From the last commit, as Letta Code compiles it (the same as --rev HEAD).",
)
@click.option(
    "--metadata",
    is_flag=True,
    help="letta: add <memory_metadata> as Letta Code does (implied by the options below).",
)
@click.option("--agent-id", metavar="ID", help="letta: AGENT_ID in <memory_metadata>.")
@click.option(
    "--conversation-id", metavar="ID", help="letta: CONVERSATION_ID (default: 'default')."
)
@click.option(
    "--now",
    "compiled_at",
    metavar="ISO-TIME",
    help="letta: when the prompt was compiled (default: now), e.g. 2026-01-02T03:04:05Z.",
)
@click.option(
    "--messages",
    type=click.IntRange(min=0),
    help="letta: previous messages in recall memory (default: 0).",
)
@click.option(
    "--system",
    "system_file",
    type=click.File("rb"),
    metavar="FILE",
    help="letta: print the whole system prompt: FILE with {CORE_MEMORY} replaced by the memory "
    "and <memory_metadata> (appended if FILE has no {CORE_MEMORY}), as Letta Code builds it.",
)
@click.option(
    "--root-projection",
    is_flag=True,
    help="letta: render a MemFS v2 repo as Letta Code's newer compiler does (root files in "
    "full, indexed folders deferred; after 0.32.18), not as the published 0.32.18 does.",
)
@click.option("--strict", is_flag=True, help="Exit 1 when a memory file was reported.")
@pass_state
def context(
    state: AppState,
    directory: str | None,
    output_format: str,
    rev: str | None,
    from_head: bool,
    metadata: bool,
    agent_id: str | None,
    conversation_id: str | None,
    compiled_at: str | None,
    messages: int | None,
    system_file: BinaryIO | None,
    root_projection: bool,
    strict: bool,
) -> None:
    """Print the agent's prompt context.

    text/json: every pinned file in full (system/; in a Letta MemFS v2 repo, the root *.md
    files) with its label, description, characters used and limit; then a tree of the other
    memory files. Open conflicts are listed first so the agent can reconcile them.

    letta: byte for byte the memory section Letta Code (0.32.18) compiles into its system
    prompt (<self>, <memory> with <projection> and <description>, the tree of the other
    files), with no newline added; --root-projection renders a v2 repo as Letta's newer
    compiler does (the root files in full, then the indexed folders). Letta Code
    compiles from the last commit: use --from-head for the same; without it, the files as
    they are now (uncommitted edits included) are rendered the same way.

    A file memfs cannot read never fails the agent: it is reported on stderr as
    'path:line: what' and the rest is printed (exit 0, as Letta Code skips what it cannot
    read; exit 1 with --strict).

    \b
    Examples:
      memfs context > prompt.txt
      memfs context ~/agents/garden --format json --rev HEAD~3
      memfs context --format letta --from-head --metadata --agent-id agent-123
      memfs context --format letta --from-head --system system.md > prompt.txt
    """
    from memfs.cli.contextcmd import LETTA_ONLY, BadOption
    from memfs.cli.contextcmd import context as run
    from memfs.opening import open_agent

    if from_head and rev is not None:
        raise click.UsageError("--from-head and --rev are the same thing: give one")
    values = (metadata, agent_id, conversation_id, compiled_at, messages, system_file)
    letta_only = dict(zip(LETTA_ONLY, (*values, root_projection), strict=True))
    given = [name for name, value in letta_only.items() if value is not None and value is not False]
    if given and output_format != "letta":
        raise click.UsageError(f"{given[0]} goes with --format letta")
    agent = open_agent(directory) if directory else state.agent()
    click.get_current_context().with_resource(agent)
    try:
        code = run(
            agent,
            output_format,
            "HEAD" if from_head else rev,
            given,
            agent_id,
            conversation_id,
            compiled_at,
            messages,
            system_file,
            root_projection,
            strict,
        )
    except BadOption as error:
        raise click.BadParameter(error.message, param_hint=error.hint) from error
    if code:
        click.get_current_context().exit(code)
