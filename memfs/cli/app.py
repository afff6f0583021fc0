"""The ``memfs`` click application: the root group, its state and its lazily loaded commands.

click is the CLI's definition, help and error reporting. The commands a harness runs many
times a day also have a click-free fast path (memfs/cli/fast.py); ``memfs.cli.main`` tries it
first and hands everything else here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING

import click

from memfs import __version__
from memfs.cli import EXIT_CODES_HELP
from memfs.cli.failure import explain
from memfs.cli.output import warn

if TYPE_CHECKING:
    from memfs.agent import Agent


class AppState:
    """What the root command resolved for its subcommands (a plain class: building a
    dataclass costs a command ~0.3 ms)."""

    __slots__ = ("agent_dir",)

    def __init__(self, agent_dir: str | None) -> None:
        self.agent_dir = agent_dir

    def agent(self) -> Agent:
        """The agent named by ``-C``, or the one containing the current folder."""
        from memfs.opening import find_agent, open_agent

        agent = open_agent(self.agent_dir) if self.agent_dir is not None else find_agent(".")
        return click.get_current_context().with_resource(agent)


pass_state = click.make_pass_decorator(AppState)


class ClickCommandError(click.ClickException):
    """A failure on its way out through click: one line on stderr and its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: object = None) -> None:
        warn(self.format_message())


class MemfsGroup(click.Group):
    """Runs a subcommand and turns whatever it raises into a ``ClickCommandError`` with the
    line and exit code the fast path gives for it (memfs/cli/failure.py)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (Exception, KeyboardInterrupt) as error:
            message, code = explain(error)
            raise ClickCommandError(message, code) from (
                None if isinstance(error, KeyboardInterrupt) else error
            )


@click.group(
    cls=MemfsGroup,
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


# Every subcommand, registered here in one place by where it lives; a command's module is
# imported when the command is first looked up (run, or listed by --help), so one command does
# not pay for building the others' options (~4 ms).
COMMANDS = {
    "init": "repo:init", "status": "repo:status", "commit": "repo:commit", "log": "repo:log",
    "diff": "repo:diff", "show": "repo:show", "restore": "repo:restore", "revert": "repo:revert",
    "check": "repo:check", "ls": "repo:ls", "remote": "remote:remote", "push": "sync:push",
    "fetch": "sync:fetch", "pull": "sync:pull", "sync": "sync:sync", "clone": "sync:clone",
    "conflicts": "sync:conflicts", "resolve": "sync:resolve", "cloud": "cloud:cloud",
    "agents": "cloud:agents", "checkout": "cloud:checkout", "gc": "sync:gc",
    "watch": "watch:watch", "context": "context:context", "import-af": "letta:import_af",
    "export-af": "letta:export_af", "mount": "mount:mount", "unmount": "mount:unmount",
    "mounts": "mount:mounts", "demo": "demo:demo", "serve": "serve:serve",
    "token": "serve:token", "key": "key:key", "envs": "envs:envs",
    "secret": "secret:secret", "run": "run:run",
}  # fmt: skip


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands by name, each imported from ``memfs.cli.<module>`` on first lookup."""

    def __init__(self, where: Mapping[str, str]) -> None:
        self._where = dict(where)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module, attribute = self._where[name].split(":")
            self._loaded[name] = getattr(importlib.import_module(f"memfs.cli.{module}"), attribute)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command
        self._where.setdefault(name, "")

    def __delitem__(self, name: str) -> None:
        del self._where[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


cli.commands = LazyCommands(COMMANDS)  # type: ignore[assignment]
