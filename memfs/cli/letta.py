"""Letta Agent Files: import-af and export-af."""

from __future__ import annotations

import click

from memfs.cli.app import AppState, pass_state
from memfs.cli.output import emit_json, json_option, warn


@click.command(name="import-af")
@click.argument("source", metavar="FILE.af", type=click.Path(dir_okay=False))
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--agent", "agent_name", metavar="NAME", help="Import only the agent named NAME.")
@click.option(
    "--native",
    is_flag=True,
    help="Make memfs-native agents (agent.yaml, YAML front matter) instead of Letta Code repos.",
)
@json_option
def import_af(
    source: str, directory: str | None, agent_name: str | None, native: bool, as_json: bool
) -> None:
    """Create agents from a Letta Agent File: one folder per agent in it.

    Each memory block becomes system/<label>.md, written as Letta's server writes it, so the
    folder is a Letta Code memory repo (no agent.yaml). Everything else of the file (settings,
    tools, messages, limits, labels as written) is kept in .letta/agent-file.json so
    'memfs export-af' gives back an equal file. One agent goes to DIRECTORY (default: its
    name); a file with several (a main agent and its sleeptime agent) gives DIRECTORY/<name>
    for each (default DIRECTORY: the file's name), or --agent picks one.

    Secret values are never committed: agent secrets and tool environment variables with
    valid names (A-Z, 0-9, _) go to the agent's secrets (memfs secret list, memfs run);
    others and MCP tokens are left out; each is named in a warning. A value over its
    limit is imported whole, with a warning. Nothing is written if a block cannot be
    imported whole (exit 1).

    \b
    Examples:
      memfs import-af customer_service.af ~/agents/support
      memfs import-af team.af ~/agents/team      # team/main, team/main-sleeptime
      memfs import-af team.af ~/agents/main --agent main
    """
    from memfs.agentfile import import_agent_file

    with import_agent_file(source, directory, agent=agent_name, native=native) as result:
        for message in result.warnings:
            warn(f"warning: {message}")
        agents = [
            {
                "name": agent.name,
                "path": str(agent.root),
                "layout": agent.layout.value,
                "blocks": sum(1 for m in agent.memory.values() if m.pinned),
            }
            for agent in result.agents
        ]
        if as_json:
            emit_json(
                {
                    "agents": agents,
                    "warnings": result.warnings,
                    "secrets_left_out": result.secrets_left_out,
                }
            )
            return
        for entry in agents:
            click.echo(
                f"Imported {entry['name']} into {entry['path']} ({entry['blocks']} memory blocks)"
            )


@click.command(name="export-af")
@click.argument("directories", metavar="[DIRECTORY]...", nargs=-1, type=click.Path(file_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .af file to write."
)
@click.option(
    "--with-secrets",
    is_flag=True,
    help="Write the values of the agents' secrets into the file (mode 0600); default: blank.",
)
@json_option
@pass_state
def export_af(
    state: AppState, directories: tuple[str, ...], output: str, with_secrets: bool, as_json: bool
) -> None:
    """Write agents as a Letta Agent File, with their memory as it is now.

    One DIRECTORY (default: the agent here) gives that agent's .af. Several agents imported
    from one file (a main agent and its sleeptime agent) give one file holding them all, their
    shared blocks once; a shared block edited differently in two of them is refused (exit 1).
    Secrets whose values were left out at import are named in a warning (and in --json).
    The agents' own secrets (memfs secret list, and those import-af kept) are written blank
    and named too, unless --with-secrets writes their values.

    \b
    Examples:
      memfs export-af ~/agents/support -o support.af
      memfs export-af ~/agents/team/main ~/agents/team/main-sleeptime -o team.af
    """
    from memfs.agentfile import export_agent_files
    from memfs.opening import open_agent

    context = click.get_current_context()
    if directories:
        agents = [context.with_resource(open_agent(directory)) for directory in directories]
    else:
        agents = [context.with_resource(state.agent())]
    result = export_agent_files(agents, output, with_secrets)
    for message in result.warnings:
        warn(f"warning: {message}")
    if result.secrets_left_out:
        warn(
            f"warning: {output} has no values for {len(result.secrets_left_out)} secrets left out "
            "at import (set them in Letta; --with-secrets writes those memfs holds): "
            f"{', '.join(result.secrets_left_out)}"
        )
    blocks = len(result.document.get("blocks", []))
    if as_json:
        emit_json(
            {
                "output": output,
                "agents": [a.get("name") for a in result.document.get("agents", [])],
                "blocks": blocks,
                "warnings": result.warnings,
                "secrets_left_out": result.secrets_left_out,
            }
        )
        return
    click.echo(f"Wrote {output} ({blocks} memory blocks)")
