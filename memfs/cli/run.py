"""``memfs run``: a command with the agent's secrets in its environment, output masked."""

from __future__ import annotations

import click

from memfs.cli.app import AppState, pass_state
from memfs.cli.output import warn


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--only", metavar="A,B", help="Only these secrets (comma-separated names).")
@click.option(
    "--no-mask",
    is_flag=True,
    help="Run the command in place of memfs (a terminal stays a terminal): nothing is masked.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_state
def run(state: AppState, only: str | None, no_mask: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND with the agent's secrets as environment variables.

    Its output is masked: each secret's value, and its base64, URL, JSON and hex forms,
    become NAME=<REDACTED> (values shorter than 8 bytes are not masked). The exit code and
    signals pass through.

    \b
    Examples:
      memfs run -- sh -c 'curl -H "Authorization: Bearer $OPENAI_API_KEY" https://api.openai.com/v1/models'
      memfs run --only GITHUB_TOKEN -- gh repo list
    """
    from memfs.secrets.run import check_environment, exec_unmasked
    from memfs.secrets.run import run as run_command
    from memfs.secrets.store import SecretStore, UnknownSecretError

    args = list(command)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        raise click.UsageError("no command given: memfs run -- COMMAND ...")
    store = SecretStore.load(state.agent())
    names = [name.strip() for name in only.split(",") if name.strip()] if only is not None else None
    try:
        chosen = store.values(names)
    except UnknownSecretError as error:
        raise click.UsageError(str(error)) from None
    values = {name: value.reveal() for name, value in chosen.items()}
    check_environment(values)  # before --no-mask's warning: one line when refused
    click.get_current_context().close()  # the agent's files are not held by the command
    if no_mask:
        warn("--no-mask: the command's output is not masked")
        exec_unmasked(args, values)
    raise SystemExit(run_command(args, values))
