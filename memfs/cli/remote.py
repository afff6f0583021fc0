"""``memfs remote``: the agent's remotes, kept in .git/config as ordinary git remotes."""

from __future__ import annotations

import click

from memfs.cli.app import AppState, pass_state
from memfs.cli.output import emit_json, json_option


@click.group()
def remote() -> None:
    """Add, list and remove remotes: git hosts, object stores and Letta servers.

    Remotes are ordinary git remotes: 'git remote -v' shows them too. A Letta Code
    repository's letta.memoryRepository.url is listed as the push-only mirror
    'letta.memoryRepository'.
    """


@remote.command(name="add")
@click.argument("name")
@click.argument("url")
@click.option(
    "--mirror", is_flag=True, help="Push-only backup: pushed on every sync, never merged from."
)
@click.option(
    "--encrypt",
    is_flag=True,
    help="Encrypt everything pushed there (object stores only); a plain agent there is refused.",
)
@pass_state
def add(state: AppState, name: str, url: str, mirror: bool, encrypt: bool) -> None:
    """Add remote NAME at URL: a path, file://, git://, ssh://, user@host:path, http(s)://,
    an object store (s3://...), or letta://AGENT_ID.

    letta://AGENT_ID is the agent's memory repository on a Letta server, as Letta Code
    reaches it: $LETTA_MEMFS_BASE_URL/v1/git/AGENT_ID/state.git (default base
    https://api.letta.com), with HTTP Basic letta:$LETTA_API_KEY. Both are read when the
    remote is used; the key is never stored or printed. Without LETTA_API_KEY, or with a
    key the server refuses, a push or fetch fails with exit 7. An http(s) URL ending in
    /v1/git/AGENT_ID/state.git gets the same key when it has no credentials of its own.

    \b
    Examples:
      memfs remote add origin git@github.com:ada/garden-agent.git
      memfs remote add origin letta://agent-3f2a1c9e-1111-2222-3333-444455556666
      memfs remote add backup /mnt/usb/garden-agent.git --mirror
      memfs remote add origin s3://acme-agents/garden --encrypt
    """
    from memfs.remotes.configure import add_remote

    config = add_remote(state.agent().history, name, url, mirror=mirror, encrypt=encrypt)
    kind = "mirror" if config.mirror else "remote"
    sealed = " (encrypted)" if config.encrypt else ""
    click.echo(f"Added {kind} {config.name}: {config.display_url}{sealed}")


@remote.command(name="list")
@json_option
@pass_state
def list_(state: AppState, as_json: bool) -> None:
    """List remotes (credentials in URLs are never shown).

    A letta:// remote shows the URL it stands for now; mirrors are push-only (pushed on
    every push and sync, never fetched or merged from), including Letta Code's
    letta.memoryRepository.url, whose push failures are only warnings.
    """
    from memfs.remotes import letta_mirror, list_remotes

    history = state.agent().history
    remotes = list_remotes(history)
    mirror = letta_mirror(history)
    if mirror is not None:
        remotes.append(mirror)
    if as_json:
        emit_json([r.to_dict() for r in remotes])
        return
    for config in remotes:
        line = f"{config.name}\t{config.display_url}"
        if config.resolved_url:
            line += f" -> {config.resolved_url}"
        if config.config_key:
            line += f"  (push-only mirror, from {config.config_key})"
        elif config.mirror:
            line += "  (push-only mirror)"
        if config.encrypt:
            line += "  (encrypted)"
        click.echo(line)


@remote.command(name="remove")
@click.argument("name")
@pass_state
def remove(state: AppState, name: str) -> None:
    """Remove remote NAME (nothing on the remote is touched).

    'letta.memoryRepository' unsets Letta Code's letta.memoryRepository.url.
    """
    from memfs.remotes.configure import remove_remote

    remove_remote(state.agent().history, name)
    click.echo(f"Removed remote {name}")
