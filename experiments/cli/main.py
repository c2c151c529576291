"""Click commands: each verb is a thin call into :mod:`experiments.verbs`, rendered by ``render``.

One command group serves two doors: ``python my_experiment.py <verb>`` (the file's own
``executor.auto_cli()``, which passes its executor in) and the bare ``experiments`` command,
where ``--file my_experiment.py`` names the experiment. Everything here only parses, calls and
renders; exit codes are decided in one place, :func:`_invoke`.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem
from rich.markup import escape

from .. import __version__, _registry, verbs
from ..backends.local import detach as local_detach
from ..config import settings as config_mod
from ..errors import ExperimentsError, LaunchIncomplete
from ..experiment import DescribesExperiment, Experiment, as_experiment
from ..launching.context import EventKind, LaunchEvent
from ..plan.overrides import parse_overrides
from ..session import Session
from ..tracking import logfiles as logs
from ..tracking.status import ArtifactState
from ..tracking.store import JobRecord, Store
from ..verbs.housekeeping import missing_log_note
from ..verbs.site import run_here_warnings
from . import launch_report, render
from .config_cmd import config_group
from .gc_cmd import gc
from .options import common as _common

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LIVE = 3
EXIT_CODES = {verbs.Outcome.BUILT: 0, verbs.Outcome.FAILED: EXIT_FAILED,
              verbs.Outcome.LIVE: EXIT_LIVE, verbs.Outcome.TIMED_OUT: EXIT_LIVE}
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


class UsageProblem(ExperimentsError):
    """The command line cannot be carried out as typed (exit code 2)."""


class _State:
    """The experiment (given, or loaded from --file on first use) and the global options."""

    def __init__(self, experiment: Experiment | None, file: str | None,
                 opts: dict[str, Any]) -> None:
        self._experiment = experiment
        self.file = file
        self.opts = {k: v for k, v in opts.items() if v is not None}

    def experiment(self) -> Experiment:
        if self._experiment is None:
            self._experiment = load_experiment(self.file)
        return self._experiment

    def session(self, **opts: Any) -> Session:
        merged = {**self.opts, **{k: v for k, v in opts.items() if v is not None}}
        ex = self.experiment().with_paths(merged.get("artifact_path"), merged.get("code_path"))
        return Session.open(ex, backend="local" if merged.get("local") else None,
                            workers=merged.get("workers"))


def load_experiment(file: str | None) -> Experiment:
    """Run an experiment file and return what the last executor it created describes."""
    if file is None:
        raise UsageProblem("name the experiment file: experiments --file my_experiment.py "
                           "<verb>")
    if not Path(file).is_file():
        raise UsageProblem(f"experiment file {file} does not exist")
    before = len(_registry.created())
    sys.path.insert(0, str(Path(file).resolve().parent))
    try:
        runpy.run_path(file, run_name="__experiments__")
    except ExperimentsError as exc:
        raise ExperimentsError(f"{file}: {exc}") from None
    made = _registry.created()[before:]
    if not made:
        raise UsageProblem(f"{file} defines no executor; create a SlurmExecutor or "
                           "LocalExecutor at module level")
    return as_experiment(made[-1])


def _completion_experiment(ctx: click.Context) -> Experiment | None:
    """The experiment while the shell completes a word (no command callback has run yet)."""
    root = ctx.find_root()
    given = getattr(root.command, "experiment", None)
    if given is not None:
        return given  # type: ignore[no-any-return]
    file = root.params.get("file")
    try:
        return load_experiment(file) if file else None
    except Exception:  # a broken file completes nothing rather than printing a traceback
        return None


def _complete_stages(ctx: click.Context, param: click.Parameter,
                     incomplete: str) -> list[CompletionItem]:
    """Stage names of the experiment, for shell completion."""
    ex = _completion_experiment(ctx)
    return [CompletionItem(s) for s in (ex.stages if ex else ()) if s.startswith(incomplete)]


def _complete_jobs(ctx: click.Context, param: click.Parameter,
                   incomplete: str) -> list[CompletionItem]:
    """Tracked job ids of the experiment's project, newest first, for shell completion."""
    ex = _completion_experiment(ctx)
    if ex is None:
        return []
    try:
        records = Store(config_mod.home(), ex.project).all_records()
    except ExperimentsError:
        return []
    ids = [r.job_id for r in reversed(records) if r.job_id]
    return [CompletionItem(i) for i in dict.fromkeys(ids) if i.startswith(incomplete)]


def make_cli(experiment: Experiment | None = None) -> click.Group:
    """The command group, for ``experiment`` (auto_cli) or for the file named by --file."""
    title = f"Experiments of project '{experiment.project}'." if experiment else HELP

    @click.group(help=title, invoke_without_command=True,
                 context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, "--version", prog_name="experiments",
                          message="%(prog)s %(version)s")
    @click.option("--file", "file", default=None, metavar="PATH", hidden=experiment is not None,
                  help="The experiment file (a Python file that creates an executor).")
    @_common
    @click.pass_context
    def cli(ctx: click.Context, /, file: str | None, **opts: Any) -> None:
        if ctx.invoked_subcommand is None:  # a bare command: help, not an error
            click.echo(ctx.get_help())
            ctx.exit(0)
        ctx.obj = _State(experiment, file, opts)

    for command in _COMMANDS:
        cli.add_command(command)
    if experiment is None:
        cli.add_command(init)
    cli.experiment = experiment  # type: ignore[attr-defined]  # read by shell completion
    return cli


RETRY_HELP = ("Only the failed (and dependency-failed) artifacts, with requirements escalated "
              "by the config's escalation policy (e.g. TIMEOUT: time x2).")


def _progress_printer(bar: Any) -> Callable[[LaunchEvent], None]:
    handle: dict[str, Any] = {}

    def progress(event: LaunchEvent) -> None:
        if event.kind is EventKind.START:
            handle["id"] = bar.add_task("build", total=event.total, failed=0)
            handle["failed"] = 0
        elif event.kind is EventKind.WAITING:
            launch_report.print_waiting(event)
        elif event.kind is EventKind.TASK_ENDED and "id" in handle:
            if event.state is not None and event.state.value != "completed":
                handle["failed"] += 1
            bar.update(handle["id"], advance=1, failed=handle["failed"])

    return progress


def _set_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--set", "sets", multiple=True, metavar="[STAGE:]KEY=VALUE",
        help="Override a requirement for this launch only (repeatable; STAGE: limits it to "
             "one stage; VALUE is JSON when it parses, else a string), e.g. --set "
             "time=2:00:00. Identity is unchanged; the job's record keeps it.")(fn)


@click.command(help="Submit the stages' jobs (all stages by default).")
@click.argument("stages", nargs=-1, shell_complete=_complete_stages)
@click.option("--with-deps", is_flag=True, help="Also build missing dependencies.")
@click.option("--max-running", type=click.IntRange(min=1), default=None, metavar="N",
              help="At most N tasks of this launch run at once, across all its jobs "
                   "(default: config.json's max_running).")
@_set_option
@click.option("--detach", is_flag=True,
              help="Local runs: keep running in the background after the terminal closes "
                   "(follow with status/cat, stop with cancel).")
@click.option("--rebuild-stale", is_flag=True,
              help="Rebuild stale results and their dependents (done markers moved aside).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the jobs submitted as JSON (for scripts).")
@click.option("--retry-failed", is_flag=True, help=RETRY_HELP)
@_common
@click.pass_obj
def launch(state: _State, /, stages: tuple[str, ...], with_deps: bool,
           max_running: int | None, sets: tuple[str, ...], detach: bool, rebuild_stale: bool,
           as_json: bool, retry_failed: bool, **opts: Any) -> None:
    session = state.session(**opts)
    overrides = parse_overrides(sets, session.experiment.stages)
    render.warnings(run_here_warnings(session))
    if detach:
        _detach(state, session)
        return

    def run(progress: Callable[[LaunchEvent], None] | None) -> verbs.LaunchResult:
        return verbs.launch(session, list(stages) or None, with_deps=with_deps,
                            progress=progress, max_running=max_running, overrides=overrides,
                            rebuild_stale=rebuild_stale, retry_failed=retry_failed)

    if as_json:
        try:
            result = run(launch_report.waits_to_stderr)
        except LaunchIncomplete as exc:
            render.as_json(launch_report.incomplete_json(exc))
            sys.exit(exc.exit_code)
        render.as_json({**render.launch_json(result), "changes": result.changes})
    else:
        with render.progress_bar() as bar:
            progress = _progress_printer(bar)
            if os.environ.get(local_detach.ENV):
                progress = _announcing(progress)
            result = run(progress)
        render.warnings(result.warnings)
        render.changes(result.changes)
        render.launched(result)
    if any(s != "completed" for r in result.records for s in r.task_states.values()):
        sys.exit(1)


def _announcing(progress: Callable[[LaunchEvent], None]) -> Callable[[LaunchEvent], None]:
    """Progress that also tells a waiting ``--detach`` parent when the jobs are recorded."""
    def wrapped(event: LaunchEvent) -> None:
        if event.kind is EventKind.START:
            print(local_detach.announce(os.getpid(), event.total), flush=True)
        progress(event)

    return wrapped


def _detach(state: _State, session: Session) -> None:
    """Re-run this very command without --detach in its own session; report how it went."""
    if session.backend().name != "local":
        raise UsageProblem("--detach is for local runs (add --local); Slurm jobs already run "
                           "without the terminal")
    args = [a for a in _INVOCATION.get("args", []) if a != "--detach"]
    if state.file is not None:
        argv = [sys.executable, "-m", "experiments", *args]
    else:
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if not main_file:
            raise UsageProblem("--detach needs the experiment file: run it as "
                               "`python my_experiment.py launch --local --detach`")
        argv = [sys.executable, os.path.abspath(main_file), *args]
    started = local_detach.start(argv, session.store.home, session.experiment.project)
    if started.running:
        render.out.print(escape(f"Running in the background (pid {started.pid}); output in "
                                f"{started.log}. Follow with `status` or `cat`, stop with "
                                "`cancel`."))
        return
    (sys.stderr if started.exit_code else sys.stdout).write(started.output)
    sys.exit(started.exit_code or 0)


@click.command(help="Show what launch would submit, without submitting anything.")
@click.argument("stages", nargs=-1, shell_complete=_complete_stages)
@click.option("--with-deps", is_flag=True, help="Also plan missing dependencies.")
@click.option("--validate", is_flag=True, help="Ask Slurm to check each job (--test-only).")
@click.option("-v", "--verbose", is_flag=True, help="List every artifact.")
@_set_option
@click.option("--rebuild-stale", is_flag=True, help="Plan stale results for rebuilding.")
@click.option("--retry-failed", is_flag=True, help=RETRY_HELP)
@_common
@click.pass_obj
def drylaunch(state: _State, /, stages: tuple[str, ...], with_deps: bool, validate: bool,
              verbose: bool, sets: tuple[str, ...], rebuild_stale: bool, retry_failed: bool,
              **opts: Any) -> None:
    from ..verbs.cost import plan_cost

    session = state.session(**opts)
    render.warnings(run_here_warnings(session))
    dry = verbs.drylaunch(session, list(stages) or None, with_deps=with_deps,
                          validate=validate,
                          overrides=parse_overrides(sets, session.experiment.stages),
                          rebuild_stale=rebuild_stale, retry_failed=retry_failed)
    render.changes(dry.changes)
    render.plan(dry, verbose)
    render.cost(plan_cost(dry.plan))
    if dry.problems and validate:
        sys.exit(1)


@click.command(help="Per stage: built, running, queued, failed, not started. Exit code 0 "
                    "all built, 1 something failed or is not built, 3 something is queued or "
                    "running.")
@click.argument("stages", nargs=-1, shell_complete=_complete_stages)
@click.option("--watch", is_flag=True,
              help="Refresh until nothing is queued or running (backs off when idle).")
@click.option("--interval", type=click.FloatRange(min=5.0), default=10.0,
              help="First refresh interval in seconds (min 5; grows when idle).")
@click.option("-v", "--all", "show_all", is_flag=True,
              help="List every problem (the default shows the first 20).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (for scripts).")
@_common
@click.pass_obj
def status(state: _State, /, stages: tuple[str, ...], watch: bool, interval: float,
           show_all: bool, as_json: bool, **opts: Any) -> None:
    session = state.session(**opts)
    report = verbs.status(session, list(stages) or None)
    if watch and verbs.outcome(report) is verbs.Outcome.LIVE:
        with render.PollDisplay("status --watch", quiet=as_json) as display:
            report = verbs.wait(session, list(stages) or None, interval_s=interval,
                                on_poll=display.show).report
    if as_json:
        render.as_json(render.status_json(report, verbs.outcome(report)))
    else:
        render.warnings(report.warnings)
        render.stage_table(report.stages, None if show_all else 20)
        render.status_root(report)
        render.stale(report.stale)
        if session.config.escalation and any(
                s.counts.get(ArtifactState.FAILED) for s in report.stages):
            render.out.print("`launch --retry-failed` resubmits the failed artifacts with the "
                             "escalation policy of config.json (`drylaunch --retry-failed` "
                             "shows the changes).", markup=False)
    sys.exit(EXIT_CODES[verbs.outcome(report)])


@click.command(name="wait", help="Block until every artifact of the stages (all by default) "
                                 "is built, failed or cancelled. Exit code 0 all built, 1 some "
                                 "failed or not built, 3 timed out.")
@click.argument("stages", nargs=-1, shell_complete=_complete_stages)
@click.option("--timeout", "timeout", type=click.FloatRange(min=0), default=None,
              metavar="SECONDS", help="Give up after this long (exit code 3).")
@click.option("--interval", type=click.FloatRange(min=1.0), default=5.0,
              help="First poll interval in seconds (grows while nothing changes).")
@_common
@click.pass_obj
def wait(state: _State, /, stages: tuple[str, ...], timeout: float | None, interval: float,
         **opts: Any) -> None:
    session = state.session(**opts)
    with render.PollDisplay("wait") as display:
        result = verbs.wait(session, list(stages) or None, timeout_s=timeout,
                            interval_s=interval, on_poll=display.show)
    render.warnings(result.report.warnings)
    render.stage_table(result.report.stages)
    render.wait_summary(result)
    sys.exit(EXIT_CODES[result.outcome])


@click.command(help="Every submitted job with its task counts.")
@click.argument("stages", nargs=-1, shell_complete=_complete_stages)
@click.option("--json", "as_json", is_flag=True,
              help="Print every job and task state as JSON (for scripts).")
@_common
@click.pass_obj
def history(state: _State, /, stages: tuple[str, ...], as_json: bool, **opts: Any) -> None:
    report = verbs.history(state.session(**opts), list(stages) or None)
    if as_json:
        render.as_json(render.history_json(report))
        return
    render.warnings(report.warnings)
    if not report.jobs:
        render.out.print("No jobs submitted yet.")
        return
    render.history(report.jobs)


@click.command(name="cat", help="Show the log of JOB (<id> or <id>_<index>); long logs show "
                                "their last lines (--full for all).")
@click.argument("job", shell_complete=_complete_jobs)
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the task runs.")
@click.option("--all", "show_all", is_flag=True, help="Every task and every log.")
@click.option("--failed", is_flag=True, help="The logs of the failed tasks.")
@click.option("--full", is_flag=True, help="Whole logs, not only their last lines.")
@_common
@click.pass_obj
def cat(state: _State, /, job: str, follow: bool, show_all: bool, failed: bool, full: bool,
        **opts: Any) -> None:
    session = state.session(**opts)
    record, index = verbs.find_job(session, job)
    view = verbs.job_view(session, record)
    if index is None and len(record.tasks) == 1:
        index = 0
    if index is None:
        render.task_table(view, None if show_all else 50)
        bad = (ArtifactState.FAILED, ArtifactState.DEP_FAILED)
        wanted = [t.index for t in view.tasks if show_all or (failed and t.state in bad)]
        if not wanted:
            render.out.print(f"`cat {record.job_id}_<index>` shows one task's log.")
        for i in wanted:
            render.log_file(record.log_path(i), f"{record.job_id}_{i}", full=full,
                            gone=missing_log_note(record),
                            section=record.log_section(i))
        return
    path = record.log_path(index)
    render.task_line(view, index)
    shown = render.log_file(path, f"{record.job_id}_{index} {record.tasks[index][1]}",
                            full=full, gone=missing_log_note(record),
                            section=record.log_section(index))
    if follow:
        _follow(session, record, index, path, shown)


@click.command(name="logs",
               help="The logs of one artifact, every attempt (relaunches and requeues), "
                    "newest last. SELECTOR is its relpath or a unique prefix, or a stage with "
                    "--where key=value. With --failed: the last failed attempt of each failed "
                    "artifact of the stage SELECTOR (all stages without one).",
               short_help="Every attempt's log of one artifact.")
@click.argument("selector", required=False)
@click.option("--where", multiple=True, metavar="KEY=VALUE",
              help="Choose the artifact of stage SELECTOR by parameter (repeatable; dotted "
                   "keys reach into dependencies: base.lr=0.1).")
@click.option("--failed", is_flag=True,
              help="The last failed attempt of each failed artifact of stage SELECTOR.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the newest attempt runs.")
@click.option("--full", is_flag=True, help="Whole logs, not only their last lines.")
@_common
@click.pass_obj
def logs_command(state: _State, /, selector: str | None, where: tuple[str, ...], failed: bool,
                 follow: bool, full: bool, **opts: Any) -> None:
    from ..verbs import logs as logs_verb

    session = state.session(**opts)
    if failed:
        found = logs_verb.failed_attempts(session, [selector] if selector else None)
        for a in found:
            render.log_file(a.log, f"{a.task} {a.record.tasks[a.index][1]} "
                                   f"[{a.record.stage}]: {a.view.detail if a.view else ''}",
                            full=full, gone=missing_log_note(a.record),
                            section=a.record.log_section(a.index))
        render.out.print(f"{len(found)} failed artifact(s).", markup=False)
        return
    if selector is None:
        raise UsageProblem("name the artifact: logs RELPATH, logs STAGE --where key=value, or "
                           "logs --failed [STAGE]")
    art = logs_verb.select(session, selector, where)
    found = logs_verb.attempts(session, art)
    if not found:
        render.out.print(f"{art.relpath} was never launched.", markup=False)
        return
    shown = 0
    for n, a in enumerate(found, 1):
        now = f", {a.view.state.value}" if a.view else ""
        shown = render.log_file(a.log, f"attempt {n} of {len(found)}: job {a.task} "
                                       f"[{a.record.stage}] submitted "
                                       f"{a.record.submitted_at[:19]}{now}", full=full,
                                 gone=missing_log_note(a.record),
                                 section=a.record.log_section(a.index))
    last = found[-1]
    if follow and last.view and last.view.state in (ArtifactState.QUEUED, ArtifactState.RUNNING):
        _follow(session, last.record, last.index, last.log, shown)


@click.command(help="What finished tasks used against what they asked for, per stage: "
                    "elapsed vs requested time, CPU efficiency, peak memory vs requested, and "
                    "the tasks that waste most (one sacct call).",
               short_help="Elapsed, CPU and memory use vs requested.")
@click.argument("stages", nargs=-1)
@click.option("-v", "--all", "show_all", is_flag=True,
              help="List every task, not only the 5 that waste most per stage.")
@_common
@click.pass_obj
def efficiency(state: _State, /, stages: tuple[str, ...], show_all: bool, **opts: Any) -> None:
    from ..verbs.efficiency import efficiency as efficiency_verb

    report = efficiency_verb(state.session(**opts), list(stages) or None)
    render.warnings(report.warnings)
    render.efficiency(report, show_all)


def _follow(session: Session, record: JobRecord, index: int, path: Path, start: int) -> None:
    """Print what the task's log gains until the task is neither queued nor running."""
    def ended() -> bool:
        task = verbs.job_view(session, record).tasks[index]
        return task.state not in (ArtifactState.QUEUED, ArtifactState.RUNNING)

    for text in logs.follow(path, start, stop=ended):
        render.raw(text)


@click.command(help="Cancel the live jobs of the stages. Without stages it lists every live "
                    "job and asks first (or needs --yes when there is no terminal to ask).")
@click.argument("stages", nargs=-1, shell_complete=_complete_stages)
@click.option("--yes", "-y", is_flag=True, help="Cancel every live job without asking.")
@_common
@click.pass_obj
def cancel(state: _State, /, stages: tuple[str, ...], yes: bool, **opts: Any) -> None:
    session = state.session(**opts)
    if not stages and not yes:
        targets = verbs.cancel_targets(session)
        if targets:
            render.cancel_list(targets)
            if not can_ask():
                raise UsageProblem(f"cancel without stages would cancel all {len(targets)} "
                                   "live job(s) above; name the stages, or pass --yes")
            if not click.confirm(f"Cancel these {len(targets)} job(s)?", default=False):
                render.out.print("Nothing cancelled.")
                return
    result = verbs.cancel_jobs(session, list(stages) or None)
    render.warnings(result.notes)
    cancelled = result.job_ids
    render.out.print(f"Cancelled {len(cancelled)} job(s): {' '.join(cancelled)}"
                     if cancelled else "No live jobs to cancel.")
    if len(verbs.tracked_roots(session)) > 1:  # say which root, and that others are left
        render.out.print(f"(jobs building into {session.experiment.artifact_path}; jobs of "
                         "other roots are left alone: `--artifact-path DIR cancel` stops them)",
                         markup=False, soft_wrap=True)


@click.command(name="table", help="The results of STAGE: parameters, metrics, state, folder.")
@click.argument("stage")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Only artifacts whose parameter KEY (a field path such as "
                   "base_model.lr) equals VALUE (read as JSON when it parses). Repeatable.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]),
              default="table", show_default=True, help="Output format.")
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@click.option("--columns", default=None, metavar="A,B,...", help="Only these columns.")
@click.option("--sort", default=None, metavar="KEY", help="Sort by a column (-KEY: descending).")
@_common
@click.pass_obj
def table_cmd(state: _State, /, stage: str, where: tuple[str, ...], fmt: str, as_json: bool,
              columns: str | None, sort: str | None, **opts: Any) -> None:
    from ..model.selection import SelectionError

    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    try:
        result = verbs.table(state.session(**opts), stage, where, cols, sort)
    except SelectionError as exc:
        raise UsageProblem(str(exc)) from None
    render.result_table(result, "json" if as_json else fmt)


@click.command(name="report", help="Write an HTML report of the stages (all by default): "
               "progress, failures with logs, results, plots, provenance and cost, in one "
               "self-contained file.")
@click.argument("stages", nargs=-1)
@click.option("-o", "--output", default="report.html", show_default=True,
              type=click.Path(dir_okay=False), help="Where to write the report.")
@_common
@click.pass_obj
def report_cmd(state: _State, /, stages: tuple[str, ...], output: str, **opts: Any) -> None:
    from ..report import write_report

    written = write_report(state.session(**opts), list(stages) or None, output)
    render.warnings(written.data.warnings)
    render.report_written(written)


@click.command(help="Serve the report live (refreshed as states change), read-only. On any "
                    "address but localhost, the printed URL carries a token every request needs.")
@click.argument("stages", nargs=-1)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but localhost requires the token.")
@click.option("--refresh", type=click.FloatRange(min=2.0), default=5.0, show_default=True,
              help="Seconds between scheduler queries (shared by every viewer).")
@_common
@click.pass_obj
def serve(state: _State, /, stages: tuple[str, ...], port: int, host: str, refresh: float,
          **opts: Any) -> None:
    from ..report.serve import make_server

    session = state.session(**opts)
    try:
        server = make_server(session, list(stages) or None, host, port, refresh)
    except OSError as exc:
        raise UsageProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose "
                           "another --port or --host") from None
    render.serving(session.experiment.project, server.url, server.token is not None)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command(help="Mark built artifacts of STAGES for rebuilding: their done markers are moved "
                    "aside (.done.invalidated-<time>), their results kept. --where key=value "
                    "(repeatable; the value is JSON when it parses, the key may be dotted like "
                    "base.lr) chooses which.",
               short_help="Mark built artifacts for rebuilding.")
@click.argument("stages", nargs=-1, required=True)
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Only artifacts whose parameter KEY equals VALUE (repeatable: all must hold).")
@click.option("--downstream", is_flag=True,
              help="Also every built artifact that depends on one of them, in any stage.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_common
@click.pass_obj
def invalidate(state: _State, /, stages: tuple[str, ...], where: tuple[str, ...],
               downstream: bool, yes: bool, **opts: Any) -> None:
    found = verbs.select_invalidation(state.session(**opts), list(stages), where=list(where),
                            downstream=downstream)
    render.invalidation(found, done=False)
    if not found.targets:
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UsageProblem("invalidate asks for confirmation, but there is no terminal to "
                               "ask on; pass --yes to mark them without asking")
        if not click.confirm("Mark them for rebuilding?", default=False):
            render.out.print("Nothing changed.")
            return
    verbs.apply_invalidation(found)
    render.out.print(f"Moved {len(found.moved)} done marker(s) aside; `launch` rebuilds them.")


def can_ask() -> bool:
    """True when someone is at a terminal to answer a question (never in a pipe or a job)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


@click.command(help="Write a commented starter experiment to PATH.",
               short_help="Write a starter experiment file.")
@click.argument("path", default="my_experiment.py", type=click.Path(dir_okay=False))
def init(path: str) -> None:
    from ..verbs.starter import write_starter

    written = write_starter(path)
    render.out.print(f"Wrote {written}. Try: python {written} launch --local")


_INVOCATION: dict[str, list[str]] = {}
_COMMANDS = (launch, drylaunch, status, wait, history, cat, logs_command, efficiency, cancel,
             invalidate, gc, table_cmd, report_cmd, serve, config_group)


def _invoke(group: click.Group, args: Sequence[str], prog_name: str | None = None) -> int:
    """Run ``group`` on ``args``; the one place that turns outcomes into exit codes."""
    _INVOCATION["args"] = list(args)  # `launch --detach` re-runs the command as typed
    try:
        on = _on_remote(group, args)  # `--on NAME`: the verb runs on that cluster, over SSH
        if on is not None:
            return on
        group.main(args=list(args), prog_name=prog_name or Path(sys.argv[0]).name,
                   complete_var="_EXPERIMENTS_COMPLETE", standalone_mode=False)
    except UsageProblem as exc:
        render.error(str(exc))
        return EXIT_USAGE
    except ExperimentsError as exc:
        render.error(str(exc))
        return int(getattr(exc, "exit_code", 1))  # LaunchIncomplete: 4
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


def _on_remote(group: click.Group, args: Sequence[str]) -> int | None:
    """With ``--on NAME`` among ``args``: run the command on that remote, its exit code."""
    from ..remote.command import split_on, take

    found = split_on(args)
    if found is None:
        return None
    from ..remote.run import run as run_on

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
