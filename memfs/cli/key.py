"""``memfs key``: which machines (and passphrases) can read an encrypted agent."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from memfs.cli.app import AppState, pass_state
from memfs.cli.failure import CommandError
from memfs.cli.output import emit_json, json_option, warn

if TYPE_CHECKING:
    from memfs.keys import Rotation

remote_option = click.option(
    "--remote",
    metavar="NAME",
    help="The object-store remote whose keyring to use (default: the agent's encrypted one).",
)


def read_passphrase(prompt: str, confirm: bool) -> str:
    """A passphrase from a hidden prompt on a terminal, else one line of stdin per ask (two
    when ``confirm``); never from argv, where shell history and ``ps`` would show it."""
    import sys

    if sys.stdin.isatty():
        value = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
        if confirm and sys.stdin.readline().rstrip("\r\n") != value:
            raise CommandError("the two passphrases differ; nothing was changed", 2)
    if not value:
        raise CommandError("an empty passphrase: nothing was changed", 2)
    return str(value)


@click.group()
def key() -> None:
    """Machines and passphrases that can read an encrypted agent (or its secrets).

    Each machine has one identity (beside its config file); 'memfs key id' prints its
    public part. A machine that has the key lets another in with 'memfs key add'; removing
    one ('memfs key rm') moves every remaining machine to a new key, so the removed one
    cannot read anything pushed afterwards (it keeps what it could already read).

    \b
    Example (a new laptop joins):
      laptop$  memfs key id
      desktop$ memfs key add age1... --name laptop
      laptop$  memfs clone s3://bucket/agents/garden-agent
    """


@key.command(name="id")
def id_() -> None:
    """Print this machine's recipient (age1...), made on first use; no agent needed."""
    from memfs.keys import key_id

    click.echo(key_id())


@key.command(name="add")
@click.argument("recipient", required=False)
@click.option("--name", help="A label for the slot (a passphrase slot: default 'passphrase').")
@click.option(
    "--passphrase",
    is_flag=True,
    help="Add a recovery slot opened by a passphrase (asked twice; stdin lines when piped).",
)
@remote_option
@pass_state
def add(
    state: AppState, recipient: str | None, name: str | None, passphrase: bool, remote: str | None
) -> None:
    """Let the machine whose 'memfs key id' is RECIPIENT read the agent, or (--passphrase)
    anyone who knows a passphrase. No re-encryption: the current key is wrapped once more."""
    from memfs.keys import add_key, add_passphrase

    agent = state.agent()
    if passphrase:
        if recipient is not None:
            raise click.UsageError("give either RECIPIENT or --passphrase, not both")
        secret = read_passphrase("Passphrase", confirm=True)
        slot = add_passphrase(agent, secret, name or "passphrase", remote)
    else:
        if recipient is None or not name:
            raise click.UsageError("give RECIPIENT and --name (or --passphrase)")
        slot = add_key(agent, recipient, name, remote)
    click.echo(f"Added slot {slot.id} ({slot.kind}, {slot.name})")


@key.command(name="list")
@json_option
@remote_option
@pass_state
def list_(state: AppState, as_json: bool, remote: str | None) -> None:
    """List the slots of the agent's keyring; '*' marks this machine's."""
    from memfs.keys import list_keys

    listing = list_keys(state.agent(), remote)
    if as_json:
        emit_json(listing.to_dict())
        return
    for slot in listing.slots:
        mark = "*" if slot["this_machine"] else " "
        added = (slot["added_at"] or "")[:16].replace("T", " ")
        line = f"{mark} {slot['id']:<10} {slot['kind']:<10} {slot['name']:<20} {slot['host']:<16}"
        click.echo(f"{line} {added}".rstrip())
    note = "" if listing.verified else " (not verified: this machine holds no slot)"
    click.echo(f"{listing.remote}: epoch {listing.epoch}, {len(listing.slots)} slots{note}")


@key.command(name="rm")
@click.argument("slot")
@click.option("--force", is_flag=True, help="Remove this machine's own slot too.")
@click.option(
    "--no-reseal",
    is_flag=True,
    help="Rotate and re-seal the manifest, but leave the packs to a later 'memfs gc --remote'.",
)
@remote_option
@pass_state
def rm(state: AppState, slot: str, force: bool, no_reseal: bool, remote: str | None) -> None:
    """Remove SLOT (its id or name): every remaining slot moves to a new key, the manifest and
    secrets are sealed again under it, and (unless --no-reseal) the packs by a compaction.

    The removed machine keeps what it could already read; revoke its store credentials too,
    and change any secret values it has seen.
    """
    from memfs.keys import remove_key

    rotation = remove_key(state.agent(), slot, force=force, reseal=not no_reseal, remote=remote)
    _report(rotation, f"Removed slot {rotation.removed}")


@key.command(name="rotate")
@click.option("--no-reseal", is_flag=True, help="Leave the packs to a later 'memfs gc --remote'.")
@remote_option
@pass_state
def rotate(state: AppState, no_reseal: bool, remote: str | None) -> None:
    """Move every slot to a new key and re-seal under it (after a suspected leak)."""
    from memfs.keys import rotate_keys

    _report(rotate_keys(state.agent(), remote, reseal=not no_reseal), "Rotated")


def _report(rotation: Rotation, done: str) -> None:
    parts = [f"{done}: {rotation.remote} is at epoch {rotation.epoch}"]
    if rotation.manifest:
        parts.append("manifest re-sealed")
    if rotation.packs is not None:
        parts.append(f"packs re-sealed ({rotation.packs[0]} merged, {rotation.packs[1]} deleted)")
    click.echo("; ".join(parts))
    for pending in rotation.pending:
        warn(pending)


@key.command(name="unlock")
@click.option("--passphrase", is_flag=True, required=True, help="Open the passphrase slot.")
@remote_option
@pass_state
def unlock(state: AppState, passphrase: bool, remote: str | None) -> None:
    """Join the agent's keyring with its passphrase: this machine gets its own slot, so later
    commands need no passphrase."""
    from memfs.keys import unlock as run

    secret = read_passphrase("Passphrase", confirm=False)
    slot = run(state.agent(), secret, remote)
    click.echo(f"Unlocked: this machine has slot {slot.id} ({slot.name})")


@key.command(name="trust-rollback")
@click.argument("remote")
@pass_state
def trust_rollback(state: AppState, remote: str) -> None:
    """Accept REMOTE's current state after restoring its store from a backup on purpose: the
    rollback check forgets the newer state this machine had seen there."""
    from memfs.keys import trust_rollback as run

    if run(state.agent(), remote):
        click.echo(f"{remote}: its next state is accepted as it is")
    else:
        click.echo(f"{remote}: nothing was recorded for it")
