"""``memfs demo``: the README's first command."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Keep the demo agent in this folder (default: a temporary folder, removed after).",
)
@click.option(
    "--serve/--no-serve",
    default=None,
    help="Last, serve the demo's cloud (web console, git, Letta's API) until Ctrl-C "
    "(default: ask, when run in a terminal).",
)
@click.option(
    "--listen",
    default="127.0.0.1:8283",
    show_default=True,
    metavar="HOST:PORT",
    help="Where --serve listens (loopback only: the demo has no token).",
)
def demo(directory: str | None, serve: bool | None, listen: str) -> None:
    """Tell the two-machine story: create, edit, sync, check out by name, edit on both
    machines at once, merge, and the prompt context. No account, no network, seconds."""
    import tempfile

    from memfs.demo import demo_cloud, run_demo, serve_demo

    with tempfile.TemporaryDirectory(prefix="memfs-demo-") as temporary:
        workdir = Path(directory) if directory else Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        number = 0
        for number, step in enumerate(run_demo(workdir), start=1):
            click.secho(f"\n{number}. {step.title}", bold=True)
            click.secho(f"   $ {step.command}", fg="cyan")
            for line in step.output.rstrip("\n").split("\n"):
                click.echo(f"   {line}")
        if serve is None:
            serve = (
                sys.stdin.isatty()
                and sys.stdout.isatty()
                and click.confirm(
                    "\nServe the demo's cloud and open its web console?", default=False
                )
            )
        if serve:
            click.secho(
                f"\n{number + 1}. Serve the cloud: a web console, git for Letta Code, "
                "Letta's memory API",
                bold=True,
            )
            click.secho(f"   $ memfs serve --cloud {demo_cloud(workdir)}", fg="cyan")

            def ready(url: str) -> None:
                click.echo(f"   Console: {url}/")
                click.echo(f"   Letta Code: LETTA_MEMFS_BASE_URL={url}")
                click.echo(f"   git clone {url}/v1/git/garden/state.git")
                click.echo("   Ctrl-C stops the server (and removes the demo's folder).")

            serve_demo(workdir, listen, ready)
            return
        click.echo(
            "\nDone. Try it on your own agent: memfs init my-agent && memfs -C my-agent push"
        )
