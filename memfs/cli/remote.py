"""``memfs remote``: the agent's remotes, kept in .git/config as ordinary git remotes."""

from __future__ import annotations

import click

from memfs.cli import AppState, pass_state
from memfs.cli.output import emit_json, json_option


@click.group()
def remote() -> None:
    """Add, list and remove remotes (git hosts now; object stores soon).

    Remotes are ordinary git remotes: 'git remote -v' shows them too.
    """


@remote.command(name="add")
@click.argument("name")
@click.argument("url")
@click.option(
    "--mirror", is_flag=True, help="Push-only backup: pushed on every sync, never merged from."
)
@pass_state
def add(state: AppState, name: str, url: str, mirror: bool) -> None:
    """Add remote NAME at URL: a path, file://, git://, ssh://, user@host:path or http(s)://.

    \b
    Examples:
      memfs remote add origin git@github.com:ada/garden-agent.git
      memfs remote add backup /mnt/usb/garden-agent.git --mirror
    """
    from memfs.remotes import add_remote

    config = add_remote(state.agent().history, name, url, mirror=mirror)
    kind = "mirror" if config.mirror else "remote"
    click.echo(f"Added {kind} {config.name}: {config.display_url}")


@remote.command(name="list")
@json_option
@pass_state
def list_(state: AppState, as_json: bool) -> None:
    """List remotes (credentials in URLs are never shown)."""
    from memfs.remotes import list_remotes

    remotes = list_remotes(state.agent().history)
    if as_json:
        emit_json([r.to_dict() for r in remotes])
        return
    for config in remotes:
        flag = "  (mirror)" if config.mirror else ""
        click.echo(f"{config.name}\t{config.display_url}{flag}")


@remote.command(name="remove")
@click.argument("name")
@pass_state
def remove(state: AppState, name: str) -> None:
    """Remove remote NAME (nothing on the remote is touched)."""
    from memfs.remotes import remove_remote

    remove_remote(state.agent().history, name)
    click.echo(f"Removed remote {name}")
