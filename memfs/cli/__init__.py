"""The ``memfs`` command: a thin click shell over the library.

Each command parses its arguments, makes one library call and formats the result. Library
modules are imported inside the commands so ``memfs --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
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
  3  not a memfs agent (or a clone/checkout stopped midway: run it again)
  4  unknown revision or path
  5  agent busy (lock held) or changed meanwhile; try again
  6  revert conflicts with later edits, diverged with --ff-only, or unrelated histories
  7  a remote failed: unreachable, refused credentials, not found, not an agent
  8  a watcher already runs for the agent, or none does (--stop)
  9  the agent's git repository is damaged
  10 a key or integrity problem: no key for an encrypted remote, tampered, rolled back
  70 internal error (set MEMFS_DEBUG=1 for the traceback)
"""


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


class CommandError(click.ClickException):
    """A library error on its way out: one line on stderr and the error's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: object = None) -> None:
        click.echo(f"memfs: {self.format_message()}", err=True)


class MemfsGroup(click.Group):
    """Runs a subcommand and turns whatever it raises into a ``CommandError``."""

    def invoke(self, ctx: click.Context) -> object:
        from memfs.errors import MemfsError

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except MemfsError as error:
            raise CommandError(str(error), error.exit_code) from error
        except KeyboardInterrupt:
            raise CommandError("interrupted", 130) from None
        except OSError as error:
            where = f": {error.filename}" if error.filename else ""
            raise CommandError(f"{error.strerror or error}{where}", 1) from error
        except Exception as error:
            if os.environ.get("MEMFS_DEBUG"):
                import traceback

                traceback.print_exc()
            if type(error).__module__.startswith("dulwich"):  # no import: the CLI stays light
                raise CommandError(
                    f"the agent's git repository is damaged or unreadable ({type(error).__name__}: "
                    f"{error}); 'git fsck' says what is wrong, and a clone from a remote is whole",
                    9,
                ) from error
            raise CommandError(
                f"internal error: {type(error).__name__}: {error} "
                "(set MEMFS_DEBUG=1 for the traceback, and please report it)",
                70,
            ) from error


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


def main() -> None:
    """Entry point of the ``memfs`` console script and ``python -m memfs``."""
    _collect_later()
    try:
        cli(prog_name="memfs")
    except SystemExit as done:
        _exit_now(done.code)
        raise


COLLECT_AFTER_S = 5.0


def _collect_later() -> None:
    """Python's cycle collector off for the first seconds of a command, on again after.

    A command allocates tens of thousands of objects that live until it ends (modules,
    index entries, trees) and frees the rest by reference counting; the collector scanned
    them again and again, reclaiming next to nothing: 30-40 ms of a 10,000-file pull or
    status, ~8 ms of a small push. A command that runs longer than ``COLLECT_AFTER_S`` (a
    watcher, a server, a large clone) collects as usual from then on.
    """
    import gc
    import threading

    gc.disable()
    timer = threading.Timer(COLLECT_AFTER_S, gc.enable)
    timer.name, timer.daemon = "memfs-collect-later", True
    timer.start()


def _exit_now(code: object) -> None:
    """End the process once the command is done, without the interpreter's teardown.

    Tearing down the modules and objects of a command costs ~20-30 ms, more than many whole
    commands take (benchmarks/bench_process.py). The command has closed what it opened (its
    click context) by now; atexit handlers still run and stdout and stderr are flushed. A
    thread still working (anything but an idle pool thread of the S3 client) is left to
    Python's own exit, which waits for it; so is a run under a profiler or a tracer.
    """
    import atexit
    import contextlib
    import sys
    import threading

    if code is not None and not isinstance(code, int):
        return  # a message to print: Python's exit does that
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return  # a profiler or coverage writes its data when the interpreter ends
    main_thread = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main_thread and not thread.daemon and not thread.name.startswith("memfs-"):
            return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code or 0)
