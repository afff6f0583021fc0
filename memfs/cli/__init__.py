"""The ``memfs`` command: a thin click shell over the library.

Each command parses its arguments, makes one library call and formats the result. Library
modules are imported inside the commands so ``memfs --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from memfs import __version__

if TYPE_CHECKING:
    from memfs.agent import Agent

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  error, or problems found (check), or files left out (commit)
  2  bad usage or bad config
  3  not a memfs agent
  4  unknown revision or path
  5  agent busy (lock held) or changed meanwhile; try again
  6  revert conflicts with later edits
  70 internal error (set MEMFS_DEBUG=1 for the traceback)
"""


@dataclass
class AppState:
    """What the root command resolved for its subcommands."""

    agent_dir: str | None

    def agent(self) -> Agent:
        """The agent named by ``-C``, or the one containing the current folder."""
        from memfs.agent import find_agent, open_agent

        if self.agent_dir is not None:
            return open_agent(self.agent_dir)
        return find_agent(".")


pass_state = click.make_pass_decorator(AppState)


@click.group(
    help="memfs: an AI agent's memory as plain files, versioned with git.\n\n" + EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-C",
    "--agent",
    "agent_dir",
    metavar="DIR",
    envvar="MEMFS_AGENT",
    help="The agent's folder (default: the one containing the current folder). [env: MEMFS_AGENT]",
)
@click.version_option(__version__, prog_name="memfs")
@click.pass_context
def cli(ctx: click.Context, agent_dir: str | None) -> None:
    ctx.obj = AppState(agent_dir=agent_dir)


def _register() -> None:
    from memfs.cli import demo, repo

    for command in (
        repo.init, repo.status, repo.commit, repo.log, repo.diff, repo.show,
        repo.restore, repo.revert, repo.check, repo.ls, demo.demo,
    ):  # fmt: skip
        cli.add_command(command)


_register()


def main() -> None:
    """Entry point: run the CLI, turning every error into one line on stderr and an exit code."""
    from memfs.errors import MemfsError

    try:
        result = cli.main(prog_name="memfs", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("memfs: aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except MemfsError as error:
        click.echo(f"memfs: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("memfs: interrupted", err=True)
        sys.exit(130)
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        click.echo(f"memfs: {error.strerror or error}{where}", err=True)
        sys.exit(1)
    except Exception as error:
        if os.environ.get("MEMFS_DEBUG"):
            traceback.print_exc()
        click.echo(
            f"memfs: internal error: {type(error).__name__}: {error} "
            "(set MEMFS_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(70)
    sys.exit(result if isinstance(result, int) else 0)
