"""``status``, ``wait`` and ``history``: where the stages stand, waiting for them to end, and
every job submitted; with what they print (the stage table, the problems, why queued tasks
wait, the poll display of ``wait``/``status --watch``) and their JSON for scripts.

Only click loads with this module (``status --help`` needs nothing else); the verbs and rich
are imported by the functions that use them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from . import render
from .context import CliState, complete_stages, outcome_code
from .options import common

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from ..tracking.status import JobView, StageStatus, TaskView
    from ..tracking.waiting import WaitGroup
    from ..verbs import HistoryReport, StatusReport, WaitResult
    from ..verbs.wait import Outcome


STATES_DOC = "docs/states.md, \"What each state means\""
ALLOW_STALE_HELP = ("Take stale results as built for the exit code (0 instead of 5): results "
                    "built from other parameters, dependencies or code are accepted as they are.")


@click.command(help="Per stage: built, stale, running, queued, failed, not started. Exit code 0 "
                    "all built and current, 5 all built but some stale (--allow-stale: 0), 1 "
                    "something failed or is not built, 3 something is queued or running. What "
                    f"each state means: {STATES_DOC}.")
@click.argument("stages", nargs=-1, shell_complete=complete_stages)
@click.option("--watch", is_flag=True,
              help="Refresh until nothing is queued or running (backs off when idle).")
@click.option("--interval", type=click.FloatRange(min=5.0), default=10.0,
              help="First refresh interval in seconds (min 5; grows when idle).")
@click.option("-v", "--all", "show_all", is_flag=True,
              help="List every problem and stale result (the default shows the first 20).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (for scripts).")
@click.option("--allow-stale", is_flag=True, help=ALLOW_STALE_HELP)
@common
@click.pass_obj
def status(state: CliState, /, stages: tuple[str, ...], watch: bool, interval: float,
           show_all: bool, as_json: bool, allow_stale: bool, **opts: Any) -> int:
    """The stage table (or JSON); its exit code says where the artifacts stand."""
    from ..tracking.status import ArtifactState
    from ..verbs.inspect import status as status_verb
    from ..verbs.wait import Outcome, outcome, wait

    session = state.session(**opts)
    report = status_verb(session, list(stages) or None)
    if watch and outcome(report) is Outcome.LIVE:
        with PollDisplay("status --watch", quiet=as_json) as display:
            report = wait(session, list(stages) or None, interval_s=interval,
                          on_poll=display.show).report
    ended = outcome(report, allow_stale)
    if as_json:
        render.as_json(status_json(report, ended))
        return outcome_code(ended)
    render.warnings(report.warnings)
    stage_table(report.stages, None if show_all else 20)
    status_root(report)
    untrusted_lines(report, None if show_all else 20)
    sweep_rungs(report)
    render.stale(report.stale, None if show_all else 20)
    if session.config.escalation and any(
            s.counts.get(ArtifactState.FAILED) for s in report.stages):
        render.line("`launch --retry-failed` resubmits the failed artifacts with the "
                    "escalation policy of config.json (`drylaunch --retry-failed` shows the "
                    "changes).")
    return outcome_code(ended)


def sweep_rungs(report: StatusReport) -> None:
    """Each sweep rung by rung, then what each undecided one waits for."""
    from ..model.sweep_summary import text_lines

    for summary in report.sweep_rungs:
        for line in text_lines(summary):
            render.line(line)
    for line in report.sweeps:
        render.line(line)


@click.command(name="wait", help="Block until every artifact of the stages (all by default) "
                                 "is built, failed or cancelled. Exit code 0 all built and "
                                 "current, 5 all built but some stale (--allow-stale: 0), 1 some "
                                 "failed or not built, 3 timed out.")
@click.argument("stages", nargs=-1, shell_complete=complete_stages)
@click.option("--timeout", "timeout", type=click.FloatRange(min=0), default=None,
              metavar="SECONDS", help="Give up after this long (exit code 3).")
@click.option("--interval", type=click.FloatRange(min=1.0), default=5.0,
              help="First poll interval in seconds (grows while nothing changes).")
@click.option("--allow-stale", is_flag=True, help=ALLOW_STALE_HELP)
@common
@click.pass_obj
def wait(state: CliState, /, stages: tuple[str, ...], timeout: float | None, interval: float,
         allow_stale: bool, **opts: Any) -> int:
    """Poll until nothing is live; the exit code says how it ended."""
    from ..verbs.wait import wait as wait_verb

    session = state.session(**opts)
    with PollDisplay("wait") as display:
        result = wait_verb(session, list(stages) or None, timeout_s=timeout,
                           interval_s=interval, on_poll=display.show, allow_stale=allow_stale)
    render.warnings(result.report.warnings)
    stage_table(result.report.stages)
    wait_summary(result)
    render.stale(result.report.stale)
    return outcome_code(result.outcome)


@click.command(help="Every submitted job with its task counts.")
@click.argument("stages", nargs=-1, shell_complete=complete_stages)
@click.option("--json", "as_json", is_flag=True,
              help="Print every job and task state as JSON (for scripts).")
@common
@click.pass_obj
def history(state: CliState, /, stages: tuple[str, ...], as_json: bool, **opts: Any) -> None:
    """Every job of the stages, newest last (or JSON)."""
    from ..verbs.inspect import history as history_verb

    report = history_verb(state.session(**opts), list(stages) or None)
    if as_json:
        render.as_json(history_json(report))
        return
    render.warnings(report.warnings)
    if not report.jobs:
        render.line("No jobs submitted yet.")
    else:
        history_table(report.jobs)
    accepted_lines(report.accepted)


def accepted_lines(accepted: Sequence[dict[str, Any]]) -> None:
    """``accept``s of the project: when, who, how many results of which stages, and why."""
    if not accepted:
        return
    render.line("Accepted on purpose (`accept`; `invalidate` undoes it):")
    for a in accepted:
        when = str(a.get("at", ""))[:16].replace("T", " ")
        found = a.get("artifacts")
        arts = found if isinstance(found, list) else []
        stages = ", ".join(map(str, a.get("stages") or []))
        render.line(f"  {when} by {a.get('by', '?')}: {len(arts)} stale result(s) of "
                    f"{stages} declared current ({a.get('reason', '')}) in {a.get('root', '?')}")


# -- the stage table -------------------------------------------------------------------------
def stage_table(stages: Sequence[StageStatus], limit: int | None = 20) -> None:
    """The counts per stage, the problems (the first ``limit``) and why queued tasks wait."""
    out = render.out()
    out.print(_stage_table(stages))
    _problems(stages, limit)
    show_waits(out, waits_of_stages(stages), limit)


def _stage_table(stages: Sequence[StageStatus]) -> Table:
    """The counts as a table: built and not started always, other states when present."""
    from rich.table import Table

    from ..tracking.status import ORDER, ArtifactState

    always = (ArtifactState.BUILT, ArtifactState.NOT_STARTED)
    shown = [k for k in ORDER if k in always or any(s.counts.get(k) for s in stages)]
    table = Table(title="Status")
    table.add_column("stage")
    for state in shown:
        table.add_column(state.value, justify="right", style=render.style(state))
    table.add_column("total", justify="right")
    for s in stages:
        table.add_row(s.stage, *(str(s.counts.get(k, 0)) for k in shown),
                      str(sum(s.counts.values())))
    return table


def _problems(stages: Sequence[StageStatus], limit: int | None) -> None:
    """One red line per failed task with its reason and where its log is."""
    esc = render.escape
    problems = [p for s in stages for p in s.problems]
    for p in problems if limit is None else problems[:limit]:
        where = f" — `cat {p.address}`" if p.job_id else ""
        detail = esc(p.detail or "no reason recorded")
        render.out().print(f"[red]{esc(p.label)}[/] {esc(p.relpath)}: {detail}{esc(where)}",
                           soft_wrap=True)
    if limit is not None and len(problems) > limit:
        render.line(f"… and {len(problems) - limit} more (`status -v` lists all)")


def status_root(report: StatusReport) -> None:
    """Which root the counts are of, when the project has jobs of other roots too."""
    if report.other_roots:
        others = ", ".join(str(r) for r in report.other_roots)
        render.line(f"Root {report.root}; jobs that built into other roots ({others}) are not "
                    "counted here (`--artifact-path DIR status` shows one)")


def untrusted_lines(report: StatusReport, limit: int | None) -> None:
    """Results another account built here that this user does not trust: whose, and which."""
    from ..tracking.foreign import summary

    text = summary(report.untrusted)
    if text is None:
        return
    render.out().print(f"[yellow]{render.escape(text)}[/]", soft_wrap=True)
    shown = report.untrusted if limit is None else report.untrusted[:limit]
    for u in shown:
        render.line(f"  built by {u.owner}: {u.relpath} [{u.stage}]")
    if len(report.untrusted) > len(shown):
        render.line(f"  … and {len(report.untrusted) - len(shown)} more (`status -v` lists all)")


def history_table(views: Sequence[JobView]) -> None:
    """``history``: one row per job, and why its queued tasks wait."""
    from rich.table import Table

    from ..tracking.ends import root_text

    table = Table(title="Jobs")
    roots = any(v.show_root for v in views)
    cols = ("job", "stage", "tier", "backend", "submitted", "tasks", "states")
    for col in cols + (("root",) if roots else ()):
        table.add_column(col, overflow="fold")
    for v in views:
        r = v.record
        when = r.submitted_at[:16].replace("T", " ")
        row = [r.job_id or "(unconfirmed)", r.stage, str(r.tier), r.backend, when,
               str(len(r.tasks)), _labels_text(v)]
        table.add_row(*row, *([render.escape(root_text(v.root))] if roots else []))
    out = render.out()
    out.print(table)
    show_waits(out, waits_of_jobs(views))


def _labels_text(view: JobView) -> str:
    """``2 built, 1 failed (TIMEOUT); 1 rebuilt by 9``: what happened, as recorded."""
    from ..tracking.status import ArtifactState

    parts = []
    for label, n in view.label_counts.items():
        state = ArtifactState(label.split(" (", 1)[0])
        parts.append(f"[{render.style(state)}]{n} {render.escape(label)}[/]")
    notes = [f"{n} {render.escape(note)}" for note, n in view.notes.items()]
    return ", ".join(parts) + ("; " + ", ".join(notes) if notes else "") or "-"


# -- why queued tasks wait, grouped by the scheduler's reason --------------------------------
def waits_of_stages(stages: Sequence[StageStatus]) -> list[WaitGroup]:
    """The wait groups of a status report's stages."""
    from ..tracking import waiting

    return waiting.group((s.stage, v) for s in stages for v in s.waiting)


def waits_of_jobs(views: Iterable[JobView]) -> list[WaitGroup]:
    """The wait groups of the live tasks in ``history``'s jobs."""
    from ..tracking import waiting

    return waiting.group((v.record.stage, t) for v in views for t in v.tasks)


def wait_lines(groups: Sequence[WaitGroup]) -> list[str]:
    """Plain lines: ``12 queued: PartitionTimeLimit — … (never clears on its own) [train]``."""
    return [f"{g.text} [{g.stage}]" for g in groups]


def show_waits(out: Console, groups: Sequence[WaitGroup], limit: int | None = 20) -> None:
    """The groups under a heading, never-clearing ones first and in red; then what to do."""
    if not groups:
        return
    out.print("[bold]Why queued tasks wait[/] (the scheduler's reason):")
    shown = groups if limit is None else groups[:limit]
    for g, text in zip(shown, wait_lines(shown), strict=True):
        style = "red" if g.never_clears else "blue"
        out.print(f"  [{style}]{render.escape(text)}[/]", soft_wrap=True)
    if len(groups) > len(shown):
        out.print(f"  … and {len(groups) - len(shown)} more reasons (`status -v` lists all)",
                  markup=False)
    stuck = sum(g.count for g in groups if g.never_clears)
    if stuck:
        out.print(f"{stuck} queued task(s) will never start on their own: change what the "
                  "hint says, `cancel` them and launch again.", markup=False, soft_wrap=True)


def wait_summary_text(stages: Sequence[StageStatus]) -> str:
    """`` — why: 12 PartitionTimeLimit (never clears on its own)`` for one poll line."""
    from ..tracking import waiting

    text = waiting.short(waits_of_stages(stages))
    return f" — why: {text}" if text else ""


# -- waiting and watching ------------------------------------------------------------------
def counts_line(stages: Sequence[StageStatus]) -> str:
    """``train: 3 built, 1 running; eval: 2 queued`` — one plain line, stable for grep."""
    from ..tracking.status import ORDER

    return "; ".join(f"{s.stage}: " + (", ".join(f"{s.counts[k]} {k.value}" for k in ORDER
                                                 if s.counts.get(k)) or "-")
                     for s in stages)


def _clock() -> str:
    """The time of day, for poll lines."""
    return time.strftime("%H:%M:%S")


def poll_line(stages: Sequence[StageStatus], elapsed_s: float, next_s: float | None) -> None:
    """One plain line per poll (piped output): time, elapsed, counts, next poll."""
    after = f"; next check in {next_s:.0f}s" if next_s is not None else ""
    render.line(f"[{_clock()}] {elapsed_s:.0f}s {counts_line(stages)}"
                f"{wait_summary_text(stages)}{after}")


class PollDisplay:
    """Where each poll of ``wait``/``status --watch`` goes: a redrawn table on a terminal,
    plain periodic lines when piped."""

    def __init__(self, title: str, quiet: bool = False) -> None:
        self.title = title
        self.quiet = quiet  # JSON follows on stdout: show nothing meanwhile
        self.live: Live | None = None
        if not quiet and render.out().is_terminal:
            from rich.live import Live

            self.live = Live(console=render.out(), auto_refresh=False, transient=True)

    def __enter__(self) -> PollDisplay:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def show(self, report: StatusReport, elapsed_s: float, next_s: float | None) -> None:
        """Redraw the table, or print one line, for this poll."""
        from rich.console import Group
        from rich.text import Text

        stages = report.stages
        if self.quiet:
            return
        if self.live is None:
            poll_line(stages, elapsed_s, next_s)
            return
        after = f", next refresh in {next_s:.0f}s" if next_s is not None else ""
        footer = Text(f"{self.title}: last refresh {_clock()} ({elapsed_s:.0f}s elapsed"
                      f"{after}); Ctrl-C stops watching, not the jobs", style="dim")
        groups = waits_of_stages(stages)
        why = [Text(text, style="red" if g.never_clears else "blue")
               for g, text in zip(groups, wait_lines(groups), strict=True)]
        self.live.update(Group(_stage_table(stages), *why, footer), refresh=True)


def wait_summary(result: WaitResult) -> None:
    """How a wait ended, in one line."""
    from ..verbs.wait import Outcome

    took = f"after {result.elapsed_s:.0f}s ({result.polls} check(s))"
    text = {Outcome.BUILT: f"All built {took}.",
            Outcome.STALE: f"All built {took}, but some are stale (listed below; "
                           "`--allow-stale` accepts them, `accept` marks them current, "
                           "`launch --rebuild-stale` rebuilds them).",
            Outcome.FAILED: f"Done {took}, not all built: `status` shows why, "
                            "`cat JOB --failed` the logs.",
            Outcome.TIMED_OUT: f"Timed out {took}; still queued or running.",
            Outcome.LIVE: f"Still queued or running {took}."}[result.outcome]
    render.line(f"{text} {counts_line(result.report.stages)}")


# -- JSON for scripts --------------------------------------------------------------------------
def _task_json(t: TaskView) -> dict[str, object]:
    """One task's state, reason and outlook."""
    return {"relpath": t.relpath, "state": t.state.value, "detail": t.detail,
            "task": t.task_id or None, "held": t.held, "reason": t.reason,
            "outlook": t.outlook.value if t.outlook else None}


def status_json(report: StatusReport, outcome: Outcome) -> dict[str, object]:
    """``status --json``: the outcome, per stage the counts, every problem and every stale
    result with its reason (never cut short)."""
    from ..tracking.status import JSON_VERSION, ORDER

    return {"version": JSON_VERSION, "outcome": outcome.value,
            "stages": [{"stage": s.stage,
                        "counts": {k.value: s.counts[k] for k in ORDER if s.counts.get(k)},
                        "total": sum(s.counts.values()),
                        "problems": [_task_json(p) for p in s.problems],
                        "queued": [_task_json(t) for t in s.waiting],
                        "stale": [{"relpath": t.relpath, "reason": t.detail}
                                  for t in s.stale]}
                       for s in report.stages],
            "waiting": [g.as_dict() for g in waits_of_stages(report.stages)],
            "untrusted": [{"stage": u.stage, "relpath": u.relpath, "owner": u.owner}
                          for u in report.untrusted],
            "sweeps": list(report.sweeps),
            "sweep_rungs": [s.as_dict() for s in report.sweep_rungs],
            "warnings": list(report.warnings)}


def history_json(report: HistoryReport) -> dict[str, object]:
    """``history --json``: every job, with each task's artifact and state."""
    return {"jobs": [{**render.record_json(v.record),
                      "counts": {k.value: n for k, n in v.counts.items()},
                      "task_states": [_task_json(t) for t in v.tasks]}
                     for v in report.jobs],
            "accepted": list(report.accepted),
            "warnings": list(report.warnings)}
