"""Rich rendering of plans, statuses, histories and logs: where the CLI prints.

(The only other writer to the terminal is the excepthook ``experiments/__init__.py`` installs,
which turns an ``ExperimentsError`` escaping an experiment file into one line on stderr.)
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.progress import Progress

from ..plan import Plan
from ..plan.lanes import ArrayLayout, describe_arrays
from ..tracking import logfiles as logs
from ..tracking.views import ResultTable, cell_text
from . import waiting_lines as waiting

if TYPE_CHECKING:
    from ..report import ReportWritten
from ..launching.snapshots import GcResult
from ..tracking.ends import root_text
from ..tracking.staleness import Stale
from ..tracking.status import ORDER, ArtifactState, JobView, StageStatus, TaskView
from ..tracking.store import JobRecord
from ..verbs import (
    DryRun,
    HistoryReport,
    Invalidation,
    LaunchResult,
    Outcome,
    StatusReport,
    WaitResult,
)
from ..verbs.cost import StageCost
from ..verbs.efficiency import EfficiencyReport
from ..verbs.retry import format_time

WIDE = 100_000  # piped output: never wrapped, so grep and awk see whole lines


def _console(stderr: bool = False) -> Console:
    """A console for stdout or stderr: the terminal's width on a terminal; when piped, no
    wrapping at all (full lines, tables as wide as their content)."""
    if Console(stderr=stderr).is_terminal:
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, width=WIDE, soft_wrap=True)


out = _console()
err = _console(stderr=True)

S = ArtifactState
_STYLE = {S.BUILT: "green", S.RUNNING: "cyan", S.QUEUED: "blue", S.FAILED: "red",
          S.DEP_FAILED: "red", S.CANCELLED: "yellow", S.MODIFIED: "red",
          S.UNKNOWN: "magenta", S.SUBMITTING: "magenta", S.NOT_STARTED: "dim"}


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def warnings(messages: Sequence[str]) -> None:
    for m in messages:
        err.print(f"[yellow]warning:[/] {escape(m)}", soft_wrap=True)


def plan(dry: DryRun, verbose: bool) -> None:
    p: Plan = dry.plan
    out.print(f"[bold]Plan[/] for stages {', '.join(p.stages)} on the {dry.backend} backend: "
              f"{p.task_count} to build in {len(p.groups)} job(s), {len(p.skipped)} skipped")
    if dry.overrides:
        sets = [f"{k}={v}" for k, v in dry.overrides.everywhere.items()]
        sets += [f"{s}:{k}={v}" for s, kv in dry.overrides.per_stage.items()
                 for k, v in kv.items()]
        out.print(escape(f"Overrides (--set, this launch only): {' '.join(sets)}"))
    n = 0
    for tier_no, tier in enumerate(p.tiers):
        out.print(f"[bold]Tier {tier_no}[/]")
        for group in tier:
            deps = len({d for t in group.tasks for d in t.dep_ids})
            out.print(f"  [cyan]{group.stage}[/]: {len(group.tasks)} task(s), "
                      f"{escape(group.resources.summary())}"
                      + (f", waits for {deps} artifact(s) of earlier tiers" if deps else ""))
            if n < len(dry.details):
                for line in dry.details[n].lines:
                    out.print(f"      {line}", markup=False)
            n += 1
            shown = group.tasks if verbose else group.tasks[:3]
            for task in shown:
                out.print(f"      - {task.relpath} ({len(task.steps)} steps)", markup=False)
            if len(group.tasks) > len(shown):
                out.print(f"      … {len(group.tasks) - len(shown)} more (-v lists all)")
    reasons: dict[str, int] = {}
    for s in p.skipped:
        key = "built" if s.reason == "built" else "already queued/running"
        reasons[key] = reasons.get(key, 0) + 1
    if reasons:
        out.print("Skipped: " + ", ".join(f"{n} {k}" for k, n in reasons.items()))
        for s in p.skipped if verbose else []:
            out.print(f"  - {s.relpath} [{s.stage}]: {s.reason}", markup=False)
    if dry.arrays:
        arrays(dry.arrays, verbose)
    for note in dry.layout_notes:
        out.print(f"  {note}", markup=False)
    if dry.stale and dry.rebuild_stale:
        out.print(f"--rebuild-stale: {len(dry.stale)} stale artifact(s) planned for rebuilding")
    else:
        stale(dry.stale)
    for problem in dry.problems:
        err.print(f"[red]problem:[/] {escape(problem)}", soft_wrap=True)
    out.print("[dim]drylaunch submits and records nothing.[/]")


def arrays(layout: Sequence[ArrayLayout], verbose: bool, limit: int = 12) -> None:
    """The arrays a launch submits and what each one's tasks wait for."""
    tasks = sum(a.task_count for a in layout)
    out.print(f"[bold]Arrays[/]: {len(layout)} sbatch call(s), {tasks} array task(s)")
    lines = describe_arrays(layout)
    shown = lines if verbose else lines[:limit]
    for line in shown:
        out.print(f"  {line}", markup=False)
    if len(lines) > len(shown):
        out.print(f"  … {len(lines) - len(shown)} more (-v lists all)")
def stale(found: Sequence[Stale], limit: int = 20) -> None:
    """Stale results with their reasons, and how to rebuild them."""
    if not found:
        return
    out.print(f"[yellow]{len(found)} stale[/] (built, but no longer what the experiment "
              "describes):")
    for s in found[:limit]:
        out.print(f"[yellow]stale[/] {escape(f'{s.relpath} [{s.stage}]: {s.reason}')}",
                  soft_wrap=True)
    if len(found) > limit:
        out.print(f"… and {len(found) - limit} more")
    out.print("`launch --rebuild-stale` rebuilds them and their dependents.")


_MAX_JOB_LINES = 20  # a million-artifact launch is a thousand arrays: list the first ten


def launched(result: LaunchResult) -> None:
    snap = result.snapshot
    if snap is not None:
        git = ""
        if snap.git is not None:
            git = (f", git {(snap.git.commit or 'no commit')[:12]}"
                   f"{' (dirty)' if snap.git.dirty else ''}")
        out.print(escape(f"Code snapshot {snap.id} ({'reused' if snap.reused else 'new'}, "
                         f"{snap.files} files, {snap.bytes / 1e6:.1f} MB{git})"))
    if result.invalidated:
        out.print(f"Moved {len(result.invalidated)} done marker(s) aside to rebuild stale "
                  "results.")
    if not result.plan.groups:
        out.print(f"Nothing to launch: {len(result.plan.skipped)} artifact(s) already built or "
                  "queued.")
        return
    shown = result.records if len(result.records) <= _MAX_JOB_LINES else result.records[:10]
    for rec in shown:
        counts: dict[str, int] = {}
        for s in rec.task_states.values():
            counts[s] = counts.get(s, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or f"{len(rec.tasks)} tasks"
        deps = f" after {','.join(rec.depends_on)}" if rec.depends_on else ""
        out.print(escape(f"job {rec.job_id} [{rec.stage}, tier {rec.tier}]{deps}: {summary}"))
    if len(shown) < len(result.records):
        out.print(f"… and {len(result.records) - len(shown)} more job(s): `history` lists them")
    failed = sum(1 for r in result.records for s in r.task_states.values() if s != "completed")
    if result.records and all(r.backend == "local" for r in result.records):
        out.print(f"Built {result.plan.task_count - failed} of {result.plan.task_count}; "
                  "`status` shows what failed and why." if failed else
                  f"Built all {result.plan.task_count} artifact(s).")
    else:
        out.print(f"Submitted {len(result.records)} job(s) for {result.plan.task_count} "
                  "artifact(s); `status` or `history` to follow them.")


def _counts_text(counts: dict[ArtifactState, int]) -> str:
    parts = [f"[{_STYLE[k]}]{counts[k]} {k.value}[/]" for k in ORDER if counts.get(k)]
    return ", ".join(parts) or "-"


def stage_table(stages: Sequence[StageStatus], limit: int | None = 20) -> None:
    out.print(_stage_table(stages))
    _problems(stages, limit)
    waiting.show(out, waiting.of_stages(stages), limit)


def _stage_table(stages: Sequence[StageStatus]) -> Table:
    shown = [k for k in ORDER
             if k in (S.BUILT, S.NOT_STARTED) or any(s.counts.get(k) for s in stages)]
    table = Table(title="Status")
    table.add_column("stage")
    for state in shown:
        table.add_column(state.value, justify="right", style=_STYLE[state])
    table.add_column("total", justify="right")
    for s in stages:
        table.add_row(s.stage, *(str(s.counts.get(k, 0)) for k in shown),
                      str(sum(s.counts.values())))
    return table


def _problems(stages: Sequence[StageStatus], limit: int | None) -> None:
    problems = [p for s in stages for p in s.problems]
    for p in problems if limit is None else problems[:limit]:
        where = f" — `cat {p.job_id}_{p.index}`" if p.job_id else ""
        detail = escape(p.detail or "no reason recorded")
        out.print(f"[red]{escape(p.label)}[/] {escape(p.relpath)}: {detail}{escape(where)}",
                  soft_wrap=True)
    if limit is not None and len(problems) > limit:
        out.print(f"… and {len(problems) - limit} more (`status -v` lists all)", markup=False)


def status_root(report: StatusReport) -> None:
    """Which root the counts are of, when the project has jobs of other roots too."""
    if report.other_roots:
        others = ", ".join(str(r) for r in report.other_roots)
        out.print(escape(f"Root {report.root}; jobs that built into other roots ({others}) "
                         "are not counted here (`--artifact-path DIR status` shows one)"),
                  soft_wrap=True)


def _labels_text(view: JobView) -> str:
    """``2 built, 1 failed (TIMEOUT); 1 rebuilt by 9``: what happened, as recorded."""
    parts = []
    for label, n in view.label_counts.items():
        state = ArtifactState(label.split(" (", 1)[0])
        parts.append(f"[{_STYLE[state]}]{n} {escape(label)}[/]")
    notes = [f"{n} {escape(note)}" for note, n in view.notes.items()]
    return ", ".join(parts) + ("; " + ", ".join(notes) if notes else "") or "-"
def invalidation(inv: Invalidation, done: bool) -> None:
    """What ``invalidate`` will touch (``done=False``) or touched."""
    if not inv.targets:
        out.print("Nothing to invalidate: no built artifact matches.")
        return
    verb = "Marked" if done else "Will mark"
    out.print(f"{verb} {len(inv.targets)} built artifact(s) for rebuilding (done marker moved "
              "aside, results kept):")
    for t in inv.targets:
        why = "" if t.why == "selected" else f" ({t.why})"
        out.print(escape(f"  - {t.relpath} [{t.stage}]{why}"), soft_wrap=True)
    if done:
        out.print("`launch` rebuilds them.")


def gc_result(result: GcResult, older_than_days: float) -> None:
    verb = "Would remove" if result.dry_run else "Removed"
    out.print(f"{verb} {len(result.removed)} snapshot(s) unused for {older_than_days:g} days, "
              f"{result.bytes_freed / 1e6:.1f} MB; kept {len(result.kept_in_use)} in use by "
              "live jobs.")
    for r in result.removed:
        out.print(f"  - {escape(r.id)} ({r.bytes / 1e6:.1f} MB, idle {r.idle_s / 86400:.1f} "
                  "days)")


def history(views: Sequence[JobView]) -> None:
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
        table.add_row(*row, *([escape(root_text(v.root))] if roots else []))
    out.print(table)
    waiting.show(out, waiting.of_jobs(views))


def task_table(view: JobView, limit: int | None) -> None:
    table = Table(title=f"job {view.record.job_id} ({view.record.stage}, "
                        f"{len(view.tasks)} tasks)")
    for col in ("task", "artifact", "state", "detail"):
        table.add_column(col)
    tasks = view.tasks if limit is None else view.tasks[:limit]
    for t in tasks:
        detail = " — ".join(x for x in (t.detail, t.note) if x)
        table.add_row(f"{t.job_id}_{t.index}", escape(t.relpath),
                      f"[{_STYLE[t.state]}]{escape(t.label)}[/]", escape(detail))
    out.print(table)
    job_facts(view)
    if len(view.tasks) > len(tasks):
        out.print(f"… {len(view.tasks) - len(tasks)} more tasks (--all shows every one)")


def job_facts(view: JobView) -> None:
    """The root a job built into (when the project has several) and its --set overrides."""
    if view.show_root:
        out.print(escape(f"built into {root_text(view.root)}"), soft_wrap=True)
    if view.record.overrides:
        sets = " ".join(f"{k}={v}" for k, v in view.record.overrides.items())
        out.print(escape(f"launched with --set {sets}"), soft_wrap=True)


def task_line(view: JobView, index: int) -> None:
    """One task's state as recorded, with the scheduler's reason and what happened since."""
    t = view.tasks[index]
    parts = [f"{t.job_id}_{t.index} {t.label}", t.detail, t.note]
    out.print(f"[{_STYLE[t.state]}]{escape(' — '.join(p for p in parts if p))}[/]",
              soft_wrap=True)
    job_facts(view)
def _title(title: str) -> None:
    """A rule with ``title`` on a terminal; one plain ``==> title <==`` line when piped."""
    if out.is_terminal:
        out.rule(title)
    else:
        out.print(f"==> {title} <==", markup=False)


def log(title: str, text: str) -> None:
    _title(title)
    out.out(text, end="" if text.endswith("\n") else "\n", highlight=False)


def log_file(path: Path, title: str, *, full: bool = False, gone: str | None = None,
             section: str | None = None) -> int:
    """A task's log under a rule with ``title``, streamed in bounded memory (its last lines
    unless ``full``); returns the byte offset shown up to, for following it. ``gone`` says why
    a missing log is missing (default: the task has not started); ``section``: only that
    artifact's part of a pack's log."""
    _title(title)
    try:
        if section is None:
            return logs.show(path, out.file, full=full).end
        found = logs.sections(path, section)
        if not found:
            out.out(f"(nothing yet for {section} in the pack's log {path}: its task has not "
                    "reached it)", highlight=False)
            return 0
        return logs.show_sections(path, out.file, found, full=full).end
    except FileNotFoundError:
        out.out(f"(no log at {path}: {gone})" if gone else
                f"(no log yet at {path}: the task has not started)", highlight=False)
        return 0


def raw(text: str) -> None:
    out.out(text, end="", highlight=False)


def progress_bar() -> Progress:
    """The launch's progress bar (rich.progress is imported here: only launch shows one)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("[bold]building"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                    console=out, transient=False)


def result_table(result: ResultTable, fmt: str) -> None:
    """A results table as a rich table, or as csv, json or markdown text (unwrapped)."""
    if fmt != "table":
        text = {"csv": result.to_csv, "json": result.to_json,
                "markdown": result.to_markdown}[fmt]()
        out.out(text, end="" if text.endswith("\n") else "\n", highlight=False)
        return
    table = Table(title=f"{result.stage}: {len(result)} artifact(s)")
    for col in result.columns:
        table.add_column(col, overflow="fold",
                         justify="right" if col in result.metric_columns else "left")
    for row in result.rows:
        table.add_row(*(escape(cell_text(v)) for v in row))
    out.print(table)


def report_written(written: ReportWritten) -> None:
    data = written.data
    counts: dict[str, int] = {}
    for st in data.stages:
        for k, n in st.counts.items():
            counts[k] = counts.get(k, 0) + n
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no artifacts"
    out.print(f"Wrote {written.path} ({written.size / 1024:,.0f} kB in {written.seconds:.2f} s): "
              f"{escape(summary)}", soft_wrap=True)


def serving(project: str, url: str) -> None:
    out.print(f"Serving the report of {escape(project)} at {url}", soft_wrap=True)
    out.print("Keep this URL to yourself: it holds the token every request needs (anyone "
              "with it can read the report and its logs); requests without it are refused.",
              soft_wrap=True)
    out.print("Read-only; Ctrl-C stops.")
    sys.stdout.flush()
# -- waiting and watching ------------------------------------------------------------------
def counts_line(stages: Sequence[StageStatus]) -> str:
    """``train: 3 built, 1 running; eval: 2 queued`` — one plain line, stable for grep."""
    return "; ".join(f"{s.stage}: " + (", ".join(f"{s.counts[k]} {k.value}" for k in ORDER
                                                 if s.counts.get(k)) or "-")
                     for s in stages)


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def poll_line(stages: Sequence[StageStatus], elapsed_s: float, next_s: float | None) -> None:
    """One plain line per poll (piped output): time, elapsed, counts, next poll."""
    after = f"; next check in {next_s:.0f}s" if next_s is not None else ""
    out.print(f"[{_clock()}] {elapsed_s:.0f}s {counts_line(stages)}{waiting.summary(stages)}"
              f"{after}", markup=False, soft_wrap=True)


class PollDisplay:
    """Where each poll of ``wait``/``status --watch`` goes: a redrawn table on a terminal,
    plain periodic lines when piped."""

    def __init__(self, title: str, quiet: bool = False) -> None:
        self.title = title
        self.quiet = quiet  # JSON follows on stdout: show nothing meanwhile
        self.live: Live | None = None
        if out.is_terminal and not quiet:
            self.live = Live(console=out, auto_refresh=False, transient=True)

    def __enter__(self) -> PollDisplay:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def show(self, report: StatusReport, elapsed_s: float, next_s: float | None) -> None:
        stages = report.stages
        if self.quiet:
            return
        if self.live is None:
            poll_line(stages, elapsed_s, next_s)
            return
        after = f", next refresh in {next_s:.0f}s" if next_s is not None else ""
        footer = Text(f"{self.title}: last refresh {_clock()} ({elapsed_s:.0f}s elapsed"
                      f"{after}); Ctrl-C stops watching, not the jobs", style="dim")
        groups = waiting.of_stages(stages)
        why = [Text(line, style="red" if g.never_clears else "blue")
               for g, line in zip(groups, waiting.lines(groups), strict=True)]
        self.live.update(Group(_stage_table(stages), *why, footer), refresh=True)


def wait_summary(result: WaitResult) -> None:
    """How a wait ended, in one line."""
    took = f"after {result.elapsed_s:.0f}s ({result.polls} check(s))"
    text = {Outcome.BUILT: f"All built {took}.",
            Outcome.FAILED: f"Done {took}, not all built: `status` shows why, "
                            "`cat JOB --failed` the logs.",
            Outcome.TIMED_OUT: f"Timed out {took}; still queued or running.",
            Outcome.LIVE: f"Still queued or running {took}."}[result.outcome]
    out.print(f"{text} {counts_line(result.report.stages)}", markup=False, soft_wrap=True)


def cancel_list(records: Sequence[JobRecord]) -> None:
    """The jobs a bare ``cancel`` would stop, one line each."""
    out.print(f"Live jobs ({len(records)}):", markup=False)
    for r in records:
        out.print(f"  {r.job_id}  {r.stage}  tier {r.tier}  {len(r.tasks)} task(s)  "
                  f"submitted {r.submitted_at[:16].replace('T', ' ')}", markup=False,
                  soft_wrap=True)


# -- JSON for scripts (--json): plain data, one document on stdout -------------------------
def as_json(data: object) -> None:
    """Print ``data`` as one JSON document (nothing else goes to stdout)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def _task_json(t: TaskView) -> dict[str, object]:
    return {"relpath": t.relpath, "state": t.state.value, "detail": t.detail,
            "task": str(t.key) if t.key else None, "held": t.held, "reason": t.reason,
            "outlook": t.outlook.value if t.outlook else None}


def status_json(report: StatusReport, outcome: Outcome) -> dict[str, object]:
    """``status --json``: the outcome, per stage the counts and every problem."""
    return {"outcome": outcome.value,
            "stages": [{"stage": s.stage,
                        "counts": {k.value: s.counts[k] for k in ORDER if s.counts.get(k)},
                        "total": sum(s.counts.values()),
                        "problems": [_task_json(p) for p in s.problems],
                        "queued": [_task_json(t) for t in s.waiting]}
                       for s in report.stages],
            "waiting": [g.as_dict() for g in waiting.of_stages(report.stages)],
            "warnings": list(report.warnings)}


def _record_json(r: JobRecord) -> dict[str, object]:
    return {"job_id": r.job_id, "name": r.name, "stage": r.stage, "tier": r.tier,
            "backend": r.backend, "submitted_at": r.submitted_at,
            "depends_on": list(r.depends_on), "tasks": len(r.tasks)}


def history_json(report: HistoryReport) -> dict[str, object]:
    """``history --json``: every job, with each task's artifact and state."""
    return {"jobs": [{**_record_json(v.record),
                      "counts": {k.value: n for k, n in v.counts.items()},
                      "task_states": [_task_json(t) for t in v.tasks]}
                     for v in report.jobs],
            "warnings": list(report.warnings)}


def launch_json(result: LaunchResult) -> dict[str, object]:
    """``launch --json``: the jobs submitted (or run locally) and what was skipped."""
    return {"jobs": [{**_record_json(r), "task_states": dict(r.task_states)}
                     for r in result.records],
            "to_build": result.plan.task_count, "skipped": len(result.plan.skipped),
            "warnings": list(result.warnings)}


# -- cost and efficiency ---------------------------------------------------------------------
def cost(costs: Sequence[StageCost]) -> None:
    """Requested GPU-hours and CPU-hours per stage and in total (array × limit × GPUs)."""
    for c in costs:
        apart = (f" (+{c.unlimited_tasks} task(s) without a time limit)"
                 if c.unlimited_tasks else "")
        label = "Total" if c.stage == "total" else f"Cost of {c.stage}"
        out.print(f"{label}: {c.tasks} task(s), {c.gpu_hours:,.1f} GPU-hours, "
                  f"{c.cpu_hours:,.1f} CPU-hours requested{apart}", markup=False)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _duration(seconds: float | None) -> str:
    """``0:00:06``, ``2:00:00``, ``1-00:00:00`` (as Slurm writes times)."""
    return "n/a" if seconds is None else format_time(int(seconds))


def _mb(value: float | None) -> str:
    return "n/a" if value is None else (f"{value / 1024:.1f}G" if value >= 1024
                                        else f"{value:.0f}M")


def efficiency(report: EfficiencyReport, show_all: bool) -> None:
    """Per stage: use against requests; then the tasks that waste most (or all with -v)."""
    table = Table(title="Efficiency")
    for col in ("stage", "tasks", "elapsed", "requested", "time used", "CPU eff",
                "peak mem", "mem used"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for s in report.stages:
        req = s.requested_h
        table.add_row(s.stage, str(len(s.tasks)), f"{s.elapsed_h:.2f}h",
                      "n/a" if req is None else f"{req:.2f}h",
                      _pct(s.mean("time_used")), _pct(s.mean("cpu_efficiency")),
                      _mb(s.peak_mem_mb), _pct(s.mean("mem_used")))
    out.print(table)
    for s in report.stages:
        shown = s.tasks if show_all else s.worst()
        if not shown:
            continue
        out.print(f"{s.stage}: {'every task' if show_all else 'wasting most'}", markup=False)
        for t in shown:
            out.print(f"  {t.task} {t.relpath}: {t.state}, {_duration(t.elapsed_s)} of "
                      f"{_duration(t.time_s)} ({_pct(t.time_used)}), CPU {_pct(t.cpu_efficiency)}"
                      f" of {t.cpus}, memory {_mb(t.max_rss_mb)} of {_mb(t.mem_mb)}",
                      markup=False, soft_wrap=True)
        if len(s.tasks) > len(shown):
            out.print(f"  … {len(s.tasks) - len(shown)} more (`efficiency -v` lists all)",
                      markup=False)


def changes(lines: Sequence[str]) -> None:
    """``--retry-failed``: each escalated requirement and why, one line each."""
    if lines:
        out.print(f"Escalated ({len(lines)} change(s), from config.json's escalation):",
                  markup=False)
    for line in lines:
        out.print(f"  {line}", markup=False, soft_wrap=True)
