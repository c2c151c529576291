"""``cat`` and ``logs``: a job's tasks and their logs, every attempt of one artifact, and
following a log while its task runs; with the task table and the log sections they print.

Only click loads with this module (``cat --help`` needs nothing else); the verbs and rich are
imported by the functions that use them. Logs are streamed in bounded memory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import render
from .context import CliState, UsageProblem, complete_jobs
from .options import common

if TYPE_CHECKING:
    from ..session import Session
    from ..tracking.status import JobView
    from ..tracking.store import JobRecord


@click.command(name="cat", help="Show the log of JOB (<id>, Slurm's task <id>_<index>, or "
                                "<id>_<index>/<relpath>: one artifact of a pack); long logs "
                                "show their last lines (--full for all).")
@click.argument("job", shell_complete=complete_jobs)
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the task runs.")
@click.option("--all", "show_all", is_flag=True, help="Every task and every log.")
@click.option("--failed", is_flag=True, help="The logs of the failed tasks.")
@click.option("--full", is_flag=True, help="Whole logs, not only their last lines.")
@common
@click.pass_obj
def cat(state: CliState, /, job: str, follow: bool, show_all: bool, failed: bool, full: bool,
        **opts: Any) -> None:
    """One task's log (following it with -f), or a job's task table and chosen logs."""
    from ..verbs.housekeeping import missing_log_note
    from ..verbs.inspect import find_tasks, job_view

    session = state.session(**opts)
    record, where = find_tasks(session, job)
    view = job_view(session, record)
    if where is None and len(record.tasks) == 1:
        where = [0]
    if where is None:
        _job_logs(view, show_all, failed, full)
        return
    index = where[0]
    path = record.log_path(index)
    for i in where:  # a pack's task: every artifact it builds, then its whole log
        task_line(view, i, facts=i == where[-1])
    shown = log_file(path, f"{record.task_id(index)} " + (
        record.tasks[index][1] if len(where) == 1 else f"(a pack of {len(where)} artifacts)"),
                     full=full, gone=missing_log_note(record),
                     section=record.log_section(index) if len(where) == 1 else None)
    if follow:
        _follow(session, record, where, path, shown)


def _job_logs(view: JobView, show_all: bool, failed: bool, full: bool) -> None:
    """``cat JOB``: the task table, then every log (--all) or the failed tasks' (--failed)."""
    from ..tracking.status import ArtifactState
    from ..verbs.housekeeping import missing_log_note

    record = view.record
    task_table(view, None if show_all else 50)
    bad = (ArtifactState.FAILED, ArtifactState.DEP_FAILED)
    wanted = [t.index for t in view.tasks if show_all or (failed and t.state in bad)]
    if not wanted:
        render.line(f"`cat {record.job_id}_<index>` shows one task's log" + (
            f", `cat {record.job_id}_<index>/<relpath>` one artifact of a pack's task."
            if record.packed else "."))
    for i in wanted:
        log_file(record.log_path(i), record.address(i), full=full,
                 gone=missing_log_note(record), section=record.log_section(i))


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
@common
@click.pass_obj
def logs_command(state: CliState, /, selector: str | None, where: tuple[str, ...], failed: bool,
                 follow: bool, full: bool, **opts: Any) -> None:
    """Every attempt's log of one artifact, or the last failed attempt of each failed one."""
    from ..tracking.status import ArtifactState
    from ..verbs import logs as logs_verb
    from ..verbs.housekeeping import missing_log_note

    session = state.session(**opts)
    if failed:
        _failed_logs(session, selector, full)
        return
    if selector is None:
        raise UsageProblem("name the artifact: logs RELPATH, logs STAGE --where key=value, or "
                           "logs --failed [STAGE]")
    art = logs_verb.select(session, selector, where)
    found = logs_verb.attempts(session, art)
    if not found:
        render.line(f"{art.relpath} was never launched.")
        return
    shown = 0
    for n, a in enumerate(found, 1):
        now = f", {a.view.state.value}" if a.view else ""
        if a.view and a.view.state is ArtifactState.STALE:
            now += f" ({a.view.detail})"
        shown = log_file(a.log, f"attempt {n} of {len(found)}: job {a.task} "
                                f"[{a.record.stage}] submitted "
                                f"{a.record.submitted_at[:19]}{now}", full=full,
                         gone=missing_log_note(a.record), section=a.record.log_section(a.index))
    last = found[-1]
    if follow and last.view and last.view.state in (ArtifactState.QUEUED, ArtifactState.RUNNING):
        _follow(session, last.record, [last.index], last.log, shown)


def _failed_logs(session: Session, stage: str | None, full: bool) -> None:
    """``logs --failed [STAGE]``: the last failed attempt of each failed artifact."""
    from ..verbs import logs as logs_verb
    from ..verbs.housekeeping import missing_log_note

    found = logs_verb.failed_attempts(session, [stage] if stage else None)
    for a in found:
        log_file(a.log, f"{a.task} {a.record.tasks[a.index][1]} "
                        f"[{a.record.stage}]: {a.view.detail if a.view else ''}",
                 full=full, gone=missing_log_note(a.record),
                 section=a.record.log_section(a.index))
    render.line(f"{len(found)} failed artifact(s).")


def _follow(session: Session, record: JobRecord, where: list[int], path: Path,
            start: int) -> None:
    """Print what the task's log gains until none of the artifacts at positions ``where``
    (one, or a pack's) is queued or running."""
    from ..tracking import logfiles
    from ..tracking.status import ArtifactState
    from ..verbs.inspect import job_view

    def ended() -> bool:
        tasks = job_view(session, record).tasks
        return all(tasks[i].state not in (ArtifactState.QUEUED, ArtifactState.RUNNING)
                   for i in where)

    for text in logfiles.follow(path, start, stop=ended):
        render.line(text, end="")


# -- what cat and logs print -------------------------------------------------------------------
def task_table(view: JobView, limit: int | None) -> None:
    """A job's tasks: artifact, state and reason (the first ``limit``)."""
    from rich.table import Table

    esc = render.escape
    table = Table(title=f"job {view.record.job_id} ({view.record.stage}, "
                        f"{len(view.tasks)} tasks)")
    for col in ("task", "artifact", "state", "detail"):
        table.add_column(col)
    tasks = view.tasks if limit is None else view.tasks[:limit]
    for t in tasks:
        detail = " — ".join(x for x in (t.detail, t.note) if x)
        table.add_row(t.task_id, esc(t.relpath),
                      f"[{render.style(t.state)}]{esc(t.label)}[/]", esc(detail))
    out = render.out()
    out.print(table)
    job_facts(view)
    if len(view.tasks) > len(tasks):
        out.print(f"… {len(view.tasks) - len(tasks)} more tasks (--all shows every one)")


def job_facts(view: JobView) -> None:
    """The root a job built into (when the project has several) and its --set overrides."""
    from ..tracking.ends import root_text

    if view.show_root:
        render.line(f"built into {root_text(view.root)}")
    if view.record.overrides:
        sets = " ".join(f"{k}={v}" for k, v in view.record.overrides.items())
        render.line(f"launched with --set {sets}")


def task_line(view: JobView, index: int, facts: bool = True) -> None:
    """One task's state as recorded, with the scheduler's reason and what happened since
    (and, with ``facts``, the job's root and overrides)."""
    t = view.tasks[index]
    parts = [f"{t.address} {t.label}", t.detail, t.note]
    render.out().print(f"[{render.style(t.state)}]"
                       f"{render.escape(' — '.join(p for p in parts if p))}[/]", soft_wrap=True)
    if facts:
        job_facts(view)


def _title(title: str) -> None:
    """A rule with ``title`` on a terminal; one plain ``==> title <==`` line when piped."""
    if render.is_terminal():
        render.out().rule(title)
    else:
        render.line(f"==> {title} <==")


def log_file(path: Path, title: str, *, full: bool = False, gone: str | None = None,
             section: str | None = None) -> int:
    """A task's log under a rule with ``title``, streamed in bounded memory (its last lines
    unless ``full``); returns the byte offset shown up to, for following it. ``gone`` says why
    a missing log is missing (default: the task has not started); ``section``: only that
    artifact's part of a pack's log."""
    from ..tracking import logfiles

    _title(title)
    try:
        if section is None:
            return logfiles.show(path, sys.stdout, full=full).end
        found = logfiles.sections(path, section)
        if not found:
            render.line(f"(nothing yet for {section} in the pack's log {path}: its task has "
                        "not reached it)")
            return 0
        return logfiles.show_sections(path, sys.stdout, found, full=full).end
    except FileNotFoundError:
        render.line(f"(no log at {path}: {gone})" if gone else
                    f"(no log yet at {path}: the task has not started)")
        return 0
