"""Clouds and the agents in them: cloud add/list/default, agents, checkout."""

from __future__ import annotations

import click

from memfs.cli.output import emit_json, json_option, progress_printer


@click.group()
def cloud() -> None:
    """Name the object stores that hold your agents.

    With none configured, the cloud is a folder in memfs's data dir (~/.local/share/memfs/cloud).
    S3 credentials come from the standard AWS chain and AWS_ENDPOINT_URL (MinIO, R2, ...).
    """


def _parse_options(values: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not key=value", param_hint="--option")
        options[key] = setting
    return options


@cloud.command(name="add")
@click.argument("name")
@click.argument("url")
@click.option(
    "--option", "options", multiple=True, metavar="KEY=VALUE", help="An fsspec storage option."
)
@click.option(
    "--encrypt",
    is_flag=True,
    help="Encrypt every agent pushed to or checked out from this cloud (keys: 'memfs key').",
)
def add(name: str, url: str, options: tuple[str, ...], encrypt: bool) -> None:
    """Add cloud NAME at URL (s3://bucket/prefix, file:///path, ...).

    \b
    Example:
      memfs cloud add team s3://acme-agents/memory --option endpoint_url=https://minio:9000
      memfs cloud add vault s3://acme-agents/sealed --encrypt
    """
    from memfs.cloud import add_cloud

    added = add_cloud(name, url, _parse_options(options), encrypt=encrypt)
    sealed = " (encrypted)" if added.encrypt else ""
    click.echo(f"Added cloud {added.name}: {added.url}{sealed}")


@cloud.command(name="list")
@json_option
def list_(as_json: bool) -> None:
    """List clouds; the default is marked with '*'."""
    from memfs.cloud import list_clouds

    clouds = list_clouds()
    if as_json:
        emit_json([c.to_dict() for c in clouds])
        return
    for entry in clouds:
        sealed = "\t(encrypted)" if entry.encrypt else ""
        click.echo(f"{'*' if entry.default else ' '} {entry.name}\t{entry.url}{sealed}")


@cloud.command(name="default")
@click.argument("name")
def default(name: str) -> None:
    """Use cloud NAME when no --cloud is given (MEMFS_CLOUD overrides it)."""
    from memfs.cloud import set_default_cloud

    chosen = set_default_cloud(name)
    click.echo(f"Default cloud: {chosen.name} ({chosen.url})")


@click.command()
@click.option(
    "--cloud", "cloud_name", metavar="NAME", help="The cloud to list (default: the default cloud)."
)
@json_option
def agents(cloud_name: str | None, as_json: bool) -> None:
    """List the agents in a cloud: name, last push, host, head, environments online
    (see 'memfs envs'), description."""
    from memfs.cloud import list_agents

    name, entries = list_agents(cloud_name)
    if as_json:
        emit_json([entry.to_dict() for entry in entries])
        return
    for entry in entries:
        when = (entry.pushed_at or "")[:16].replace("T", " ")
        head = (entry.head or "")[:7]
        host = entry.host or "-"
        about = f"unreadable: {entry.problem}" if entry.problem else entry.description
        if entry.encrypted and not entry.problem and entry.head is None:
            about = "encrypted (no key on this machine: memfs key id)"
        online = f"{'?' if entry.online is None else entry.online} online"
        line = f"{entry.name:<24} {when:<16}  {host:<12} {head:<7}  {online:<9} {about}"
        click.echo(line.rstrip())
    if not entries:
        click.echo(f"No agents in cloud {name} yet: 'memfs push' in an agent puts it there.")


@click.command()
@click.argument("name")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--cloud", "cloud_name", metavar="NAME", help="The cloud to take it from.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def checkout(name: str, directory: str | None, cloud_name: str | None, quiet: bool) -> None:
    """Bring agent NAME down from a cloud into DIRECTORY (default: NAME), ready to edit and sync.

    A DIRECTORY left by a checkout that was stopped midway is finished: run it again.

    \b
    Example:
      memfs checkout garden-agent --cloud team
    """
    from memfs.cloud import checkout as run

    agent = run(name, directory, cloud_name, progress_printer(quiet))
    with agent:
        count = agent.committed_memory_count()
        click.echo(f"Checked out {agent.name} into {agent.root} ({count} memory files)")
