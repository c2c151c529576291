"""The command group and its entry points; the one place exit codes are decided.

One command group serves two doors: ``python my_experiment.py <verb>`` (the file's own
``executor.auto_cli()``, which passes its experiment in) and the bare ``experiments`` command,
where ``--file my_experiment.py`` names the experiment. The verbs live in one module per family
(``launch_cmd``, ``watch_cmd``, ``logs_cmd``, ``results_cmd``, ``manage_cmd``, ``config_cmd``),
each with its own rendering, and load only when run (click's lazy group pattern): ``--help``
lists them from the static table :data:`COMMANDS`, so it imports no verb, no rich and no
backend. Commands return their exit code; :func:`_invoke` turns that, an error or an
interruption into the process's exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from gettext import gettext
from pathlib import Path
from typing import Any, NamedTuple

import click
from click.utils import make_default_short_help

from .. import __version__
from ..errors import ExperimentsError
from ..experiment import DescribesExperiment, Experiment, as_experiment
from . import render
from .context import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CliState, UsageProblem
from .options import common

HELP = """Run experiment grids as dependency-ordered Slurm array jobs, or locally.

An experiment file defines artifacts (frozen dataclasses), groups them into stages and
creates an executor. Point this command at it with --file, or run the file itself, which
calls executor.auto_cli():

\b
    experiments init my_experiment.py              # write a starter experiment
    experiments --file my_experiment.py launch --local
    python my_experiment.py status                 # the same verbs, from the file

Documentation: the docs/ folder (mkdocs serve).
"""


class LazyCommand(NamedTuple):
    """Where a verb's command lives, and its one-line help for the command list."""

    module: str  # under experiments.cli
    attribute: str
    summary: str  # the help's first sentence, or the command's explicit short_help
    explicit: bool = False  # True: short_help, shown whole; False: shortened as click does

    def short_help(self, limit: int) -> str:
        """The command list's line for this verb, exactly as click makes it from the help."""
        return self.summary if self.explicit else make_default_short_help(self.summary, limit)


COMMANDS: dict[str, LazyCommand] = {
    "launch": LazyCommand("launch_cmd", "launch",
                          "Submit the stages' jobs (all stages by default)."),
    "drylaunch": LazyCommand("launch_cmd", "drylaunch",
                             "Show what launch would submit, without submitting anything."),
    "status": LazyCommand("watch_cmd", "status",
                          "Per stage: built, stale, running, queued, failed, not started."),
    "wait": LazyCommand("watch_cmd", "wait",
                        "Block until every artifact of the stages (all by default) is built, "
                        "failed or cancelled."),
    "history": LazyCommand("watch_cmd", "history", "Every submitted job with its task counts."),
    "cat": LazyCommand("logs_cmd", "cat", "Show the log of JOB (<id>, Slurm's task "
                                          "<id>_<index>, or <id>_<index>/<relpath>: one "
                                          "artifact of a pack); long logs show their last "
                                          "lines (--full for all)."),
    "logs": LazyCommand("logs_cmd", "logs_command", "Every attempt's log of one artifact.",
                        explicit=True),
    "efficiency": LazyCommand("results_cmd", "efficiency",
                              "Elapsed, CPU and memory use vs requested.", explicit=True),
    "cancel": LazyCommand("manage_cmd", "cancel", "Cancel the live jobs of the stages."),
    "invalidate": LazyCommand("manage_cmd", "invalidate", "Mark built artifacts for rebuilding.",
                              explicit=True),
    "accept": LazyCommand("manage_cmd", "accept", "Declare stale results current, on purpose.",
                          explicit=True),
    "gc": LazyCommand("manage_cmd", "gc", "Remove old logs, specs, markers and snapshots.",
                      explicit=True),
    "table": LazyCommand("results_cmd", "table_cmd",
                         "The results of STAGE: parameters (as built), metrics, state, changed, "
                         "folder."),
    "report": LazyCommand("results_cmd", "report_cmd",
                          "Write an HTML report of the stages (all by default): progress, "
                          "failures with logs, results, plots, provenance and cost, in one "
                          "self-contained file."),
    "serve": LazyCommand("results_cmd", "serve", "Serve the report live (refreshed as states "
                                                 "change), read-only, to you alone: every "
                                                 "request needs the secret token the printed "
                                                 "URL carries (the browser keeps it in a "
                                                 "cookie), on localhost too."),
    "config": LazyCommand("config_cmd", "config_group", "Show the merged configuration.",
                          explicit=True),
    "init": LazyCommand("manage_cmd", "init", "Write a starter experiment file.", explicit=True),
}
"""Every verb: the bare ``experiments`` command has them all; an experiment file all but init."""


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands by name: a verb's module is imported when its command is looked up
    (running it, or its ``--help``), never to list the names."""

    def __init__(self, table: Mapping[str, LazyCommand]) -> None:
        self.table = dict(table)
        self._added: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name in self._added:
            return self._added[name]
        where = self.table[name]
        # __import__ rather than importlib.import_module: `python -X importtime` sees it
        module = __import__(f"{__package__}.{where.module}", fromlist=[where.attribute])
        command = getattr(module, where.attribute)
        assert isinstance(command, click.Command), f"{where} is not a click command"
        return command

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._added[name] = command

    def __delitem__(self, name: str) -> None:
        found = self._added.pop(name, None) or self.table.pop(name, None)
        if found is None:
            raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self.table, *self._added]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*self.table, *self._added]))


class LazyGroup(click.Group):
    """A click group whose verbs load on use; its help lists them from the static table."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: LazyCommands = LazyCommands(lazy)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's command list, with each verb's line from the table (nothing imported)."""
        names = [n for n in self.list_commands(ctx)
                 if n in self.commands.table or not self.commands[n].hidden]
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, self.commands.table[n].short_help(limit) if n in self.commands.table
                 else self.commands[n].get_short_help_str(limit)) for n in names]
        with formatter.section(gettext("Commands")):
            formatter.write_dl(rows)


def make_cli(experiment: Experiment | None = None) -> click.Group:
    """The command group, for ``experiment`` (auto_cli) or for the file named by --file."""
    title = f"Experiments of project '{experiment.project}'." if experiment else HELP
    lazy = {n: c for n, c in COMMANDS.items() if experiment is None or n != "init"}

    @click.group(cls=LazyGroup, lazy=lazy, help=title, invoke_without_command=True,
                 context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, "--version", prog_name="experiments",
                          message="%(prog)s %(version)s")
    @click.option("--file", "file", default=None, metavar="PATH", hidden=experiment is not None,
                  help="The experiment file (a Python file that creates an executor).")
    @common
    @click.pass_context
    def cli(ctx: click.Context, /, file: str | None, **opts: Any) -> int:
        if ctx.invoked_subcommand is None:  # a bare command: help, not an error
            click.echo(ctx.get_help())
            return 0
        ctx.obj = CliState(experiment, file, opts, argv=tuple(ctx.obj or ()))
        return 0

    cli.experiment = experiment  # type: ignore[attr-defined]  # read by shell completion
    return cli


def _invoke(group: click.Group, args: Sequence[str], prog_name: str | None = None) -> int:
    """Run ``group`` on ``args``; the one place that turns outcomes into exit codes."""
    try:  # obj: the arguments as typed (`launch --detach` runs them again)
        on = _on_remote(group, args)  # `--on NAME`: the verb runs on that cluster, over SSH
        if on is not None:
            return on
        code = group.main(args=list(args), prog_name=prog_name or Path(sys.argv[0]).name,
                          complete_var="_EXPERIMENTS_COMPLETE", standalone_mode=False,
                          obj=tuple(args))
    except UsageProblem as exc:
        render.error(str(exc))
        return EXIT_USAGE
    except ExperimentsError as exc:
        render.error(str(exc))
        return int(getattr(exc, "exit_code", EXIT_FAILED))  # LaunchIncomplete: 4
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        render.error("interrupted")
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # a library's own exit: its code, never a traceback
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    return code if isinstance(code, int) else 0


def _on_remote(group: click.Group, args: Sequence[str]) -> int | None:
    """With ``--on NAME`` among ``args``: run the command on that remote, its exit code."""
    from ..remote.command import split_on, take

    found = split_on(args)
    if found is None:
        return None
    from ..remote.run import run as run_on
    from .context import load_experiment

    name, rest = found
    experiment = getattr(group, "experiment", None) or load_experiment(take(rest, "--file")[0])
    return run_on(experiment, name, rest)


def run(experiment: Experiment | DescribesExperiment, argv: Sequence[str] | None = None) -> int:
    """Run the CLI for ``experiment`` (``auto_cli``); returns the exit code."""
    return _invoke(make_cli(as_experiment(experiment)), sys.argv[1:] if argv is None else argv)


cli = make_cli()
"""The bare ``experiments`` command: ``experiments --file my_experiment.py <verb>``."""


def _file_first(args: list[str]) -> list[str]:
    """Move ``--file PATH`` to the front, so it may also follow the verb."""
    for i, a in enumerate(args):
        if a == "--file" and i + 1 < len(args):
            return [a, args[i + 1], *args[:i], *args[i + 2:]]
        if a.startswith("--file="):
            return [a, *args[:i], *args[i + 1:]]
        if a == "--":
            break
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """``experiments [--file exp.py] <verb> ...`` (and ``python -m experiments``)."""
    args = _file_first(list(sys.argv[1:] if argv is None else argv))
    return _invoke(cli, args, prog_name="experiments")


def entry() -> None:
    """Console-script entry point: the bare ``experiments`` command."""
    sys.exit(main())
