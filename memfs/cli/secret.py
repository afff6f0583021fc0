"""``memfs secret``: the agent's secrets, set here and used by ``memfs run`` on every machine
the agent is shared with (docs/design-encryption.md §6). Values are read from stdin or a
hidden prompt, never from the command line, and never printed."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from memfs.cli.app import AppState, pass_state
from memfs.cli.output import emit_json, json_option, warn

if TYPE_CHECKING:
    from memfs.agent import Agent


@click.group()
def secret() -> None:
    """Set, list and remove the agent's secrets (environment variables for 'memfs run').

    Secrets are stored sealed in the agent's object-store remote, readable on every machine
    that holds a key for it ('memfs key add') and nowhere else; never in the work tree, a
    commit, 'memfs context' or a log. Names: capital letters, digits and _.
    """


def _read_value(name: str) -> str:
    """The value from stdin (one trailing newline dropped), or a hidden prompt on a TTY."""
    if sys.stdin is not None and not sys.stdin.isatty():
        data = sys.stdin.buffer.read()
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise click.UsageError(f"the value of {name} is not UTF-8 text") from None
    import getpass

    return getpass.getpass(f"Value of {name} (hidden): ")


@secret.command(name="set")
@click.argument("name")
@click.argument("refused", metavar="", nargs=-1, required=False)
@pass_state
def set_(state: AppState, name: str, refused: tuple[str, ...]) -> None:
    """Set secret NAME; its value is read from stdin, or from a hidden prompt.

    \b
    Examples:
      memfs secret set OPENAI_API_KEY            (prompts)
      pass show openai | memfs secret set OPENAI_API_KEY
    """
    from memfs.secrets.forms import MIN_MASKED, is_masked
    from memfs.secrets.loadnames import changes_loading
    from memfs.secrets.store import SecretStore, check_name

    check_name(name)
    if refused:
        raise click.UsageError(
            "the value is read from stdin or a prompt, never from the command line "
            "(shell history and 'ps' would show it); nothing was set"
        )
    value = _read_value(name)
    agent = state.agent()
    store = SecretStore.load(agent)
    store.set(name, value)
    if changes_loading(name):
        warn(
            f"{name} changes how programs load or run: every 'memfs run' of this agent, on "
            "every machine it syncs to, runs with this value"
        )
    if not is_masked(value):
        warn(
            f"{name} is shorter than {MIN_MASKED} bytes: stored, but not masked in "
            "'memfs run' output and not kept out of commits"
        )
    _push(agent, f"Set {name}")


def _push(agent: Agent, done: str) -> None:
    from memfs.errors import EncryptionError, RemoteError
    from memfs.secrets.store import push_secrets

    try:
        pushed = push_secrets(agent)
    except EncryptionError:
        raise
    except RemoteError as error:
        warn(f"{error}; the change is kept here and sent by the next sync")
        pushed = False
    from memfs.secrets.hooks import read_meta

    if pushed:
        click.echo(done)
    elif read_meta(agent.history.state_dir).get("local"):
        click.echo(f"{done} (kept here only: add an object-store remote to share it)")
    else:
        click.echo(f"{done} (not pushed yet: the next sync sends it)")


@secret.command(name="list")
@json_option
@pass_state
def list_(state: AppState, as_json: bool) -> None:
    """List the secrets' names, who set them and when (never their values)."""
    from memfs.secrets.store import SecretStore

    rows = SecretStore.load(state.agent()).listing()
    if as_json:
        emit_json({"secrets": rows})
        return
    if not rows:
        click.echo("No secrets.")
        return
    for row in rows:
        if row.get("removed"):
            click.echo(f"{row['name']}  (removed, not pushed yet)")
            continue
        waiting = "  (not pushed yet)" if row["pending"] else ""
        click.echo(f"{row['name']}  set {row['set_at']} by {row['set_by']}{waiting}")


@secret.command(name="rm")
@click.argument("name")
@pass_state
def rm(state: AppState, name: str) -> None:
    """Remove secret NAME (on every machine, from its next sync)."""
    from memfs.secrets.store import SecretStore

    agent = state.agent()
    SecretStore.load(agent).rm(name)
    _push(agent, f"Removed {name}")
