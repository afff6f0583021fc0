"""``memfs serve`` and ``memfs token``: the self-hosted memory backend and its access tokens."""

from __future__ import annotations

from pathlib import Path

import click

from memfs.cli.output import emit_json, json_option

TOKEN_FILE_HELP = (
    "The token file (default: tokens.json beside memfs's config; share one between servers). "
    "[env: MEMFS_TOKEN_FILE]"
)


@click.command()
@click.option("--cloud", "cloud_name", metavar="NAME", help="The cloud to serve (name or URL).")
@click.option(
    "--listen",
    default="127.0.0.1:8283",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen; another address than loopback needs a token (port 0: any free one).",
)
@click.option(
    "--token-file", type=click.Path(dir_okay=False), envvar="MEMFS_TOKEN_FILE", help=TOKEN_FILE_HELP
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Where to keep checkouts of the agents (default: in memfs's cache dir).",
)
@click.option(
    "--fresh-ms",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="A read within this long of the server's last look at an agent's bucket does not "
    "look again (0: every read asks, with a conditional request). Writes always look.",
)
@click.option("--no-access-log", is_flag=True, help="Do not log a line per request.")
def serve(
    cloud_name: str | None,
    listen: str,
    token_file: str | None,
    cache_dir: str | None,
    fresh_ms: int,
    no_access_log: bool,
) -> None:
    """Serve every agent of a cloud: git smart HTTP, Letta's memory API, a web console.

    Letta Code uses it as its memory backend with LETTA_MEMFS_BASE_URL set to the URL printed.
    Tokens are required once 'memfs token create' made one; SIGTERM or Ctrl-C stops the server.

    \b
    Example:
      memfs token create --name laptop
      memfs serve --cloud team --listen 0.0.0.0:8283
    """
    from memfs.server.runner import Announcement
    from memfs.server.runner import serve as run

    def announce(said: Announcement) -> None:
        click.echo(said.line)

    run(
        cloud_name,
        listen,
        Path(token_file) if token_file else None,
        Path(cache_dir) if cache_dir else None,
        access_log=not no_access_log,
        fresh_s=fresh_ms / 1000,
        announce=announce,
    )


def _token_path(token_file: str | None) -> Path:
    from memfs.tokens import default_token_file

    return Path(token_file) if token_file else default_token_file()


token_file_option = click.option(
    "--token-file", type=click.Path(dir_okay=False), envvar="MEMFS_TOKEN_FILE", help=TOKEN_FILE_HELP
)


@click.group()
def token() -> None:
    """Create, list and revoke the tokens 'memfs serve' accepts.

    A token is shown once, when created; the file keeps its SHA-256 only. Git and Letta Code
    send it as HTTP Basic 'letta:<token>', the REST API as 'Authorization: Bearer <token>'.
    """


@token.command(name="create")
@click.option("--name", metavar="NAME", help="A name to revoke it by (default: token-N).")
@token_file_option
def create(name: str | None, token_file: str | None) -> None:
    """Create a token and print it (once: it is not stored, only its hash)."""
    from memfs.tokens import create_token

    secret, info = create_token(_token_path(token_file), name)
    click.echo(secret)
    click.echo(f"Created token {info.name}: keep it now, it is not shown again.", err=True)


@token.command(name="list")
@token_file_option
@json_option
def list_(token_file: str | None, as_json: bool) -> None:
    """List tokens by name and creation date (never the secrets)."""
    from memfs.tokens import list_tokens

    tokens = list_tokens(_token_path(token_file))
    if as_json:
        emit_json([t.to_dict() for t in tokens])
        return
    for info in tokens:
        click.echo(f"{info.name:<24} {info.created_at}")
    if not tokens:
        click.echo("No tokens: 'memfs serve' accepts anyone on loopback. 'memfs token create'.")


@token.command(name="revoke")
@click.argument("name")
@token_file_option
def revoke(name: str, token_file: str | None) -> None:
    """Revoke token NAME: running servers refuse it at their next request."""
    from memfs.tokens import revoke_token

    revoke_token(_token_path(token_file), name)
    click.echo(f"Revoked token {name}")
