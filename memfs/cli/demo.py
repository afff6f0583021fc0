"""``memfs demo``: the README's first command."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Keep the demo agent in this folder (default: a temporary folder, removed after).",
)
def demo(directory: str | None) -> None:
    """Tell the two-machine story: create, edit, sync, check out by name, edit on both
    machines at once, merge, and the prompt context. No account, no network, seconds."""
    import tempfile

    from memfs.demo import run_demo

    with tempfile.TemporaryDirectory(prefix="memfs-demo-") as temporary:
        workdir = Path(directory) if directory else Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        for number, step in enumerate(run_demo(workdir), start=1):
            click.secho(f"\n{number}. {step.title}", bold=True)
            click.secho(f"   $ {step.command}", fg="cyan")
            for line in step.output.rstrip("\n").split("\n"):
                click.echo(f"   {line}")
        click.echo(
            "\nDone. Try it on your own agent: memfs init my-agent && memfs -C my-agent push"
        )
