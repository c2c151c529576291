"""Click commands: each verb is a thin call into the executor, rendered by ``render``.

``python my_experiment.py <verb>`` (via ``executor.auto_cli()``) or
``experiments --file my_experiment.py <verb>``.
"""

from __future__ import annotations

import runpy
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ..api import Executor, registered
from ..errors import ExperimentsError
from . import render


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every verb accepts (also before the verb)."""
    fn = click.option("--local", is_flag=True, default=None,
                      help="Run on this machine instead of Slurm.")(fn)
    fn = click.option("--workers", type=click.IntRange(min=1), default=None,
                      help="Parallel local workers (default: CPU count).")(fn)
    fn = click.option("--artifact-path", default=None, help="Override the artifact root.")(fn)
    fn = click.option("--code-path", default=None, help="Override the code directory.")(fn)
    return fn


class _State:
    def __init__(self, executor: Executor) -> None:
        self.base = executor
        self.opts: dict[str, Any] = {}

    def executor(self, **opts: Any) -> tuple[Executor, bool | None]:
        merged = {**self.opts, **{k: v for k, v in opts.items() if v is not None}}
        ex = self.base.with_paths(merged.get("artifact_path"), merged.get("code_path"))
        if merged.get("workers"):
            ex.workers = merged["workers"]
        return ex, (True if merged.get("local") else None)


def _build(executor: Executor) -> click.Group:
    @click.group(help=f"Experiments of project '{executor.project}'.")
    @_common
    @click.pass_context
    def cli(ctx: click.Context, **opts: Any) -> None:
        state = _State(executor)
        state.opts = {k: v for k, v in opts.items() if v is not None}
        ctx.obj = state

    @cli.command(help="Submit the stages' jobs (all stages by default).")
    @click.argument("stages", nargs=-1)
    @click.option("--with-deps", is_flag=True, help="Also build missing dependencies.")
    @_common
    @click.pass_obj
    def launch(state: _State, stages: tuple[str, ...], with_deps: bool, **opts: Any) -> None:
        ex, local = state.executor(**opts)
        with render.progress_bar() as bar:
            handle: dict[str, Any] = {}

            def progress(event: str, data: dict[str, Any]) -> None:
                if event == "start":
                    handle["id"] = bar.add_task("build", total=data["total"], failed=0)
                    handle["failed"] = 0
                elif event == "task" and "id" in handle:
                    if data["state"] != "completed":
                        handle["failed"] += 1
                    bar.update(handle["id"], advance=1, failed=handle["failed"])

            result = ex.launch(list(stages) or None, local=local, with_deps=with_deps,
                               progress=progress)
        render.warnings(result.warnings)
        render.launched(result)
        if any(s != "completed" for r in result.records for s in r.task_states.values()):
            sys.exit(1)

    @cli.command(help="Show what launch would submit, without submitting anything.")
    @click.argument("stages", nargs=-1)
    @click.option("--with-deps", is_flag=True, help="Also plan missing dependencies.")
    @click.option("--validate", is_flag=True, help="Ask Slurm to check each job (--test-only).")
    @click.option("-v", "--verbose", is_flag=True, help="List every artifact.")
    @_common
    @click.pass_obj
    def drylaunch(state: _State, stages: tuple[str, ...], with_deps: bool, validate: bool,
                  verbose: bool, **opts: Any) -> None:
        ex, local = state.executor(**opts)
        dry = ex.drylaunch(list(stages) or None, local=local, with_deps=with_deps,
                           validate=validate)
        render.plan(dry, verbose)
        if dry.problems and validate:
            sys.exit(1)

    @cli.command(help="Per stage: built, running, queued, failed, not started.")
    @click.argument("stages", nargs=-1)
    @click.option("--watch", is_flag=True, help="Refresh until interrupted (backs off).")
    @click.option("--interval", type=click.FloatRange(min=5.0), default=10.0,
                  help="First refresh interval in seconds (min 5; grows when idle).")
    @_common
    @click.pass_obj
    def status(state: _State, stages: tuple[str, ...], watch: bool, interval: float,
               **opts: Any) -> None:
        ex, _ = state.executor(**opts)
        last = None
        while True:
            result, warns = ex.status(list(stages) or None)
            render.warnings(warns)
            render.stage_table(result)
            if not watch:
                return
            snapshot = [s.counts for s in result]
            interval = interval if snapshot != last else min(interval * 1.5, 300.0)
            last = snapshot
            time.sleep(interval)

    @cli.command(help="Every submitted job with its task counts.")
    @click.argument("stages", nargs=-1)
    @_common
    @click.pass_obj
    def history(state: _State, stages: tuple[str, ...], **opts: Any) -> None:
        ex, _ = state.executor(**opts)
        views, warns = ex.history(list(stages) or None)
        render.warnings(warns)
        if not views:
            render.out.print("No jobs submitted yet.")
            return
        render.history(views)

    @cli.command(name="cat", help="Show the log of JOB (<id> or <id>_<index>).")
    @click.argument("job")
    @click.option("--follow", "-f", is_flag=True, help="Keep printing while the task runs.")
    @click.option("--all", "show_all", is_flag=True, help="Every task and every log.")
    @click.option("--failed", is_flag=True, help="The logs of the failed tasks.")
    @_common
    @click.pass_obj
    def cat(state: _State, job: str, follow: bool, show_all: bool, failed: bool,
            **opts: Any) -> None:
        ex, _ = state.executor(**opts)
        _cat(ex, job, follow, show_all, failed)

    @cli.command(help="Cancel the live jobs of the stages (all by default).")
    @click.argument("stages", nargs=-1)
    @_common
    @click.pass_obj
    def cancel(state: _State, stages: tuple[str, ...], **opts: Any) -> None:
        ex, _ = state.executor(**opts)
        cancelled = ex.cancel(list(stages) or None)
        render.out.print(f"Cancelled {len(cancelled)} job(s): {' '.join(cancelled)}"
                         if cancelled else "No live jobs to cancel.")

    return cli


def _cat(ex: Executor, job: str, follow: bool, show_all: bool, failed: bool) -> None:
    from ..status import DEP_FAILED, FAILED

    record, index = ex.find_job(job)
    views, _ = ex.history([record.stage])
    view = next(v for v in views if v.record.name == record.name)
    if index is None and len(record.tasks) == 1:
        index = 0
    if index is None:
        render.task_table(view, None if show_all else 50)
        wanted = [t.index for t in view.tasks
                  if show_all or (failed and t.state in (FAILED, DEP_FAILED))]
        if not wanted:
            render.out.print(f"`cat {record.job_id}_<index>` shows one task's log.")
        for i in wanted:
            _print_log(record.log_path(i), f"{record.job_id}_{i}")
        return
    path = record.log_path(index)
    _print_log(path, f"{record.job_id}_{index} {record.tasks[index][1]}")
    if follow:
        _follow(ex, record.job_id or "", index, path)


def _print_log(path: Path, title: str) -> None:
    try:
        render.log(title, path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        render.log(title, f"(no log yet at {path}: the task has not started)\n")


def _follow(ex: Executor, job_id: str, index: int, path: Path) -> None:
    from ..status import QUEUED, RUNNING

    pos = path.stat().st_size if path.exists() else 0
    delay = 1.0
    while True:
        time.sleep(delay)
        if path.exists() and path.stat().st_size > pos:
            with open(path, encoding="utf-8", errors="replace") as fh:
                fh.seek(pos)
                render.raw(fh.read())
                pos = fh.tell()
            delay = 1.0
            continue
        views, _ = ex.history()
        states = [t.state for v in views if v.record.job_id == job_id for t in v.tasks
                  if t.index == index]
        if not states or states[0] not in (QUEUED, RUNNING):
            return
        delay = min(delay * 1.5, 10.0)


def run(executor: Executor, argv: Sequence[str] | None = None) -> int:
    """Run the CLI for ``executor``; returns the exit code."""
    cli = _build(executor)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name=Path(sys.argv[0]).name, standalone_mode=False)
    except ExperimentsError as exc:
        render.error(str(exc))
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        render.error("interrupted")
        return 130
    except KeyboardInterrupt:
        render.error("interrupted")
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``experiments --file exp.py <verb> ...``: run the CLI of the executor defined in a file."""
    args = list(sys.argv[1:] if argv is None else argv)
    file = None
    for i, a in enumerate(args):
        if a == "--file" and i + 1 < len(args):
            file = args[i + 1]
            del args[i:i + 2]
            break
        if a.startswith("--file="):
            file = a.split("=", 1)[1]
            del args[i]
            break
    if file is None:
        render.error("name the experiment file: experiments --file my_experiment.py <verb>")
        return 2
    if not Path(file).is_file():
        render.error(f"experiment file {file} does not exist")
        return 2
    before = len(registered())
    try:
        sys.path.insert(0, str(Path(file).resolve().parent))
        runpy.run_path(file, run_name="__experiments__")
    except ExperimentsError as exc:
        render.error(f"{file}: {exc}")
        return 1
    made = registered()[before:]
    if not made:
        render.error(f"{file} defines no executor; create a SlurmExecutor or LocalExecutor "
                     "at module level")
        return 2
    return run(made[-1], args)


# -- the bare `experiments` command (issue 17) -----------------------------------------------

_BARE_HELP = """Run experiment grids as dependency-ordered Slurm array jobs, or locally.

An experiment file defines artifacts (frozen dataclasses), groups them into stages and
creates an executor. Point this command at it with --file, or run the file itself, which
calls executor.auto_cli():

\b
    experiments init my_experiment.py              # write a starter experiment
    experiments --file my_experiment.py launch --local
    python my_experiment.py status                 # the same verbs, from the file

Documentation: the docs/ folder (mkdocs serve).
"""


class _FileState(_State):
    """The verbs' state for the bare command: the experiment file is loaded on first use.

    Loading lazily lets ``experiments <verb> --help`` and ``init`` work without a file.
    """

    def __init__(self, file: str | None) -> None:
        self.file = file
        self.opts = {}

    def executor(self, **opts: Any) -> tuple[Executor, bool | None]:
        if not hasattr(self, "base"):
            self.base = _load_executor(self.file)
        return super().executor(**opts)


def _load_executor(file: str | None) -> Executor:
    """Run the experiment ``file`` and return the executor it created last."""
    if file is None:
        raise click.UsageError("name the experiment file: "
                               "experiments --file my_experiment.py <verb>")
    if not Path(file).is_file():
        raise click.UsageError(f"experiment file {file} does not exist")
    before = len(registered())
    sys.path.insert(0, str(Path(file).resolve().parent))
    try:
        runpy.run_path(file, run_name="__experiments__")
    except ExperimentsError as exc:
        raise ExperimentsError(f"{file}: {exc}") from exc
    made = registered()[before:]
    if not made:
        raise click.UsageError(f"{file} defines no executor; create a SlurmExecutor or "
                               "LocalExecutor at module level")
    return made[-1]


def _bare_cli() -> click.Group:
    """The bare ``experiments`` group: ``--file``, ``--version``, ``init`` and every verb.

    The verbs are the same click commands that ``auto_cli()`` builds (so help and the docs
    cannot drift); only their state differs: it comes from the file named by ``--file``.
    """
    from .. import __version__

    @click.group(help=_BARE_HELP, invoke_without_command=True,
                 context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--file", "file", metavar="PATH", default=None,
                  help="The experiment file (a Python file that creates an executor).")
    @click.version_option(__version__, "--version", prog_name="experiments",
                          message="%(prog)s %(version)s")
    @_common
    @click.pass_context
    def cli(ctx: click.Context, file: str | None, **opts: Any) -> None:
        if ctx.invoked_subcommand is None:  # a bare `experiments`: help, not an error
            click.echo(ctx.get_help())
            ctx.exit(0)
        state = _FileState(file)
        state.opts = {k: v for k, v in opts.items() if v is not None}
        ctx.obj = state

    @cli.command(help="Write a commented starter experiment to PATH.",
                 short_help="Write a starter experiment file.")
    @click.argument("path", default="my_experiment.py", type=click.Path(dir_okay=False))
    def init(path: str) -> None:
        from ..starter import write_starter

        written = write_starter(path)
        render.out.print(f"Wrote {written}. Try: python {written} launch --local")

    stand_in = type("_AnyFile", (), {"project": "(the --file)"})()
    for name, command in _build(stand_in).commands.items():  # type: ignore[arg-type]
        cli.add_command(command, name)
    return cli


cli = _bare_cli()


def _file_first(args: list[str]) -> list[str]:
    """Move ``--file PATH`` to the front, so it may also follow the verb (as it always could)."""
    for i, a in enumerate(args):
        if a == "--file" and i + 1 < len(args):
            return [a, args[i + 1], *args[:i], *args[i + 2:]]
        if a.startswith("--file="):
            return [a, *args[:i], *args[i + 1:]]
        if a == "--":
            break
    return args


def bare_main(argv: Sequence[str] | None = None) -> int:
    """``experiments ...`` and ``python -m experiments ...``: run the bare group; the exit code."""
    args = _file_first(list(sys.argv[1:] if argv is None else argv))
    try:
        cli.main(args=args, prog_name="experiments", complete_var="_EXPERIMENTS_COMPLETE",
                 standalone_mode=False)
    except ExperimentsError as exc:
        render.error(str(exc))
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        render.error("interrupted")
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def entry() -> None:
    """Console-script entry point: the bare ``experiments`` command."""
    sys.exit(bare_main())
