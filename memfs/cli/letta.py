"""Letta Agent Files: import-af and export-af."""

from __future__ import annotations

import click

from memfs.cli import AppState, pass_state


@click.command(name="import-af")
@click.argument("source", metavar="FILE.af", type=click.Path(dir_okay=False))
@click.argument("directory", required=False, type=click.Path(file_okay=False))
def import_af(source: str, directory: str | None) -> None:
    """Create an agent from a Letta Agent File, in DIRECTORY (default: the agent's name).

    Memory blocks become system/<label>.md; everything else of the file is kept in
    .letta/agent-file.json so 'memfs export-af' gives back an equivalent file.

    \b
    Example:
      memfs import-af customer_service.af ~/agents/support
    """
    from memfs.letta import import_agent_file

    agent = import_agent_file(source, directory)
    with agent:
        click.echo(f"Imported {agent.name} into {agent.root} ({len(agent.memory)} memory blocks)")


@click.command(name="export-af")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .af file to write."
)
@pass_state
def export_af(state: AppState, directory: str | None, output: str) -> None:
    """Write the agent as a Letta Agent File, with its memory as it is now.

    \b
    Example:
      memfs export-af ~/agents/support -o support.af
    """
    from memfs.agent import open_agent
    from memfs.letta import export_agent_file

    agent = open_agent(directory) if directory else state.agent()
    click.get_current_context().with_resource(agent)
    document = export_agent_file(agent, output)
    click.echo(f"Wrote {output} ({len(document.get('blocks', []))} memory blocks)")
