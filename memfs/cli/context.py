"""``memfs context``: what a harness puts in the system prompt."""

from __future__ import annotations

import click

from memfs.cli import AppState, pass_state
from memfs.cli.output import emit_json


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Prompt text, or JSON for a harness to lay out itself.",
)
@click.option("--rev", metavar="REV", help="The context as it was at REV (default: the files now).")
@pass_state
def context(state: AppState, directory: str | None, output_format: str, rev: str | None) -> None:
    """Print the agent's prompt context: every pinned (system/) file in full with its label,
    description, characters used and limit; then a tree of the other memory files.

    Open conflicts are listed first so the agent can reconcile them. A file over its limit or
    with broken front matter is an error naming the file (exit 1).

    \b
    Examples:
      memfs context > prompt.txt
      memfs context ~/agents/garden --format json --rev HEAD~3
    """
    from memfs.agent import open_agent
    from memfs.context import build_context

    agent = open_agent(directory) if directory else state.agent()
    click.get_current_context().with_resource(agent)
    built = build_context(agent, rev)
    if output_format == "json":
        emit_json(built.to_dict())
    else:
        click.echo(built.render(), nl=False)
