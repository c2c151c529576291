"""Rich rendering of plans, statuses, histories and logs: where the CLI prints.

(The only other writer to the terminal is the excepthook ``experiments/__init__.py`` installs,
which turns an ``ExperimentsError`` escaping an experiment file into one line on stderr.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress

from .. import logs
from ..plan import Plan
from ..status import ORDER, ArtifactState, JobView, StageStatus
from ..verbs import DryRun, LaunchResult

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

S = ArtifactState
_STYLE = {S.BUILT: "green", S.RUNNING: "cyan", S.QUEUED: "blue", S.FAILED: "red",
          S.DEP_FAILED: "red", S.CANCELLED: "yellow", S.UNKNOWN: "magenta",
          S.SUBMITTING: "magenta", S.NOT_STARTED: "dim"}


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def warnings(messages: Sequence[str]) -> None:
    for m in messages:
        err.print(f"[yellow]warning:[/] {escape(m)}", soft_wrap=True)


def plan(dry: DryRun, verbose: bool) -> None:
    p: Plan = dry.plan
    out.print(f"[bold]Plan[/] for stages {', '.join(p.stages)} on the {dry.backend} backend: "
              f"{p.task_count} to build in {len(p.groups)} job(s), {len(p.skipped)} skipped")
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
    for problem in dry.problems:
        err.print(f"[red]problem:[/] {escape(problem)}", soft_wrap=True)
    out.print("[dim]drylaunch submits and records nothing.[/]")


def launched(result: LaunchResult) -> None:
    if not result.plan.groups:
        out.print(f"Nothing to launch: {len(result.plan.skipped)} artifact(s) already built or "
                  "queued.")
        return
    for rec in result.records:
        counts: dict[str, int] = {}
        for s in rec.task_states.values():
            counts[s] = counts.get(s, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or f"{len(rec.tasks)} tasks"
        deps = f" after {','.join(rec.depends_on)}" if rec.depends_on else ""
        out.print(escape(f"job {rec.job_id} [{rec.stage}, tier {rec.tier}]{deps}: {summary}"))
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


def stage_table(stages: Sequence[StageStatus]) -> None:
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
    out.print(table)
    problems = [p for s in stages for p in s.problems]
    for p in problems[:20]:
        where = f" — `cat {p.job_id}_{p.index}`" if p.job_id else ""
        detail = escape(p.detail or "no reason recorded")
        out.print(f"[red]{p.state.value}[/] {escape(p.relpath)}: {detail}{escape(where)}",
                  soft_wrap=True)
    if len(problems) > 20:
        out.print(f"… and {len(problems) - 20} more")


def history(views: Sequence[JobView]) -> None:
    table = Table(title="Jobs")
    for col in ("job", "stage", "tier", "backend", "submitted", "tasks", "states"):
        table.add_column(col, overflow="fold")
    for v in views:
        r = v.record
        when = r.submitted_at[:16].replace("T", " ")
        table.add_row(r.job_id or "(unconfirmed)", r.stage, str(r.tier), r.backend, when,
                      str(len(r.tasks)), _counts_text(v.counts))
    out.print(table)


def task_table(view: JobView, limit: int | None) -> None:
    table = Table(title=f"job {view.record.job_id} ({view.record.stage}, "
                        f"{len(view.tasks)} tasks)")
    for col in ("task", "artifact", "state", "detail"):
        table.add_column(col)
    tasks = view.tasks if limit is None else view.tasks[:limit]
    for t in tasks:
        table.add_row(f"{t.job_id}_{t.index}", escape(t.relpath),
                      f"[{_STYLE[t.state]}]{t.state.value}[/]", escape(t.detail))
    out.print(table)
    if len(view.tasks) > len(tasks):
        out.print(f"… {len(view.tasks) - len(tasks)} more tasks (--all shows every one)")


def log(title: str, text: str) -> None:
    out.rule(title)
    out.out(text, end="" if text.endswith("\n") else "\n", highlight=False)


def log_file(path: Path, title: str, *, full: bool = False) -> int:
    """A task's log under a rule with ``title``, streamed in bounded memory (its last lines
    unless ``full``); returns the byte offset shown up to, for following it."""
    out.rule(title)
    try:
        return logs.show(path, out.file, full=full).end
    except FileNotFoundError:
        out.out(f"(no log yet at {path}: the task has not started)", highlight=False)
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
