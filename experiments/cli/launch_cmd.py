"""``launch`` and ``drylaunch``: the commands, ``--detach`` and what they
print (the plan, the arrays, the jobs launched, the cost, the escalations, the JSON, the waits
while Slurm is slow to accept a job).

Only click loads with this module (``launch --help`` needs nothing else); the verbs, the
backends and rich are imported by the functions that use them.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from . import context, render
from .context import CliState, UsageProblem, complete_stages
from .launch_bar import LazyBar, progress_printer
from .options import common

if TYPE_CHECKING:
    from ..errors import LaunchIncomplete
    from ..launching.launch_context import LaunchEvent
    from ..launching.waits import SubmitWait
    from ..plan.lanes import ArrayLayout
    from ..session import Session
    from ..tracking.store import JobRecord
    from ..verbs import DryRun, LaunchResult
    from ..verbs.cost import StageCost

    Progressor = Callable[[LaunchEvent], None]

RETRY_HELP = ("Only the failed (and dependency-failed) artifacts, with requirements escalated "
              "by the config's escalation policy (e.g. TIMEOUT: time x2).")
_MAX_JOB_LINES = 20  # a million-artifact launch is a thousand arrays: list the first ten


def _set_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--set [STAGE:]KEY=VALUE``, shared by launch and drylaunch."""
    return click.option(
        "--set", "sets", multiple=True, metavar="[STAGE:]KEY=VALUE",
        help="Override a requirement for this launch only (repeatable; STAGE: limits it to "
             "one stage; VALUE is JSON when it parses, else a string), e.g. --set "
             "time=2:00:00. Identity is unchanged; the job's record keeps it.")(fn)


@click.command(help="Submit the stages' jobs (all stages by default).")
@click.argument("stages", nargs=-1, shell_complete=complete_stages)
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
@click.option("--replace-queued", is_flag=True,
              help="With --rebuild-stale: cancel queued or running jobs that build other than "
                   "the experiment describes today and resubmit their artifacts, without "
                   "asking.")
@click.option("--keep-queued", is_flag=True,
              help="With --rebuild-stale: leave such jobs queued, without asking.")
@common
@click.pass_obj
def launch(state: CliState, /, stages: tuple[str, ...], with_deps: bool,
           max_running: int | None, sets: tuple[str, ...], detach: bool, rebuild_stale: bool,
           as_json: bool, retry_failed: bool, replace_queued: bool, keep_queued: bool,
           **opts: Any) -> int:
    """Submit (or run locally) and report; exit code 1 when a task did not complete."""
    from ..plan.overrides import parse_overrides
    from ..verbs.launch import launch as launch_verb
    from ..verbs.site import run_here_warnings

    if replace_queued and keep_queued:
        raise UsageProblem("--replace-queued and --keep-queued contradict each other; give one")
    replace = True if replace_queued else (False if keep_queued else None)
    session = state.session(**opts)
    overrides = parse_overrides(sets, session.experiment.stages)
    render.warnings(run_here_warnings(session))
    if detach:
        return _detach(state, session)
    request: Callable[..., LaunchResult] = functools.partial(
        launch_verb, session, list(stages) or None, with_deps=with_deps,
        max_running=max_running, overrides=overrides, rebuild_stale=rebuild_stale,
        retry_failed=retry_failed, replace_queued=replace)
    if rebuild_stale and replace is None and not as_json:
        request = _asking(request)
    if as_json:
        return _launch_as_json(request)
    with LazyBar() as bar:
        progress = progress_printer(bar, print_waiting)
        if os.environ.get(_detach_env()):
            progress = _announcing(progress)
        result = request(progress=progress)
    render.warnings(result.warnings)
    changes(result.changes)
    launched(result)
    return _launch_code(result)


def _asking(request: Callable[..., LaunchResult]) -> Callable[..., LaunchResult]:
    """``launch --rebuild-stale``: when queued work was planned with other parameters, list it
    and ask whether to replace it (cancel and resubmit); no terminal: the error stands."""
    from ..verbs.queued_stale import QueuedStaleError, listing

    def ask(**kwargs: Any) -> LaunchResult:
        try:
            return request(**kwargs)
        except QueuedStaleError as exc:
            if not context.can_ask():
                raise
            jobs = sorted({q.record.job_id or "" for q in exc.found})
            render.line(f"Queued or running task(s) build other than the experiment describes "
                        f"today ({len(exc.found)}):")
            for text in listing(exc.found):
                render.line(f"  {text}")
            agreed = click.confirm(f"Cancel job(s) {', '.join(jobs)} and resubmit their "
                                   "artifacts with today's parameters?", default=False)
            return request(**{**kwargs, "replace_queued": agreed})

    return ask


def _launch_as_json(request: Callable[..., LaunchResult]) -> int:
    """``launch --json``: one JSON document, also for a launch refused part-way."""
    from ..errors import LaunchIncomplete

    try:
        result = request(progress=waits_to_stderr)
    except LaunchIncomplete as exc:
        render.as_json(incomplete_json(exc))
        return exc.exit_code
    render.as_json({**launch_json(result), "changes": result.changes})
    return _launch_code(result)


def _launch_code(result: LaunchResult) -> int:
    """1 when any task launched did not complete (local runs), else 0."""
    return int(any(s != "completed" for r in result.records for s in r.task_states.values()))


def _detach_env() -> str:
    """The variable a detached launcher's child runs with."""
    from ..backends.local import detach

    return detach.ENV


def _announcing(progress: Progressor) -> Progressor:
    """Progress that also tells a waiting ``--detach`` parent when the jobs are recorded."""
    from ..backends.local import detach
    from ..launching.launch_context import EventKind

    def wrapped(event: LaunchEvent) -> None:
        if event.kind is EventKind.START:
            print(detach.announce(os.getpid(), event.total), flush=True)
        progress(event)

    return wrapped


def _detach(state: CliState, session: Session) -> int:
    """Re-run this very command without --detach in its own session; report how it went."""
    from ..backends.local import detach

    if session.backend().name != "local":
        raise UsageProblem("--detach is for local runs (add --local); Slurm jobs already run "
                           "without the terminal")
    args = [a for a in state.argv if a != "--detach"]
    if state.file is not None:
        argv = [sys.executable, "-m", "experiments", *args]
    else:
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if not main_file:
            raise UsageProblem("--detach needs the experiment file: run it as "
                               "`python my_experiment.py launch --local --detach`")
        argv = [sys.executable, os.path.abspath(main_file), *args]
    started = detach.start(argv, session.store.home, session.experiment.project)
    if started.running:
        render.line(f"Running in the background (pid {started.pid}); output in "
                    f"{started.log}. Follow with `status` or `cat`, stop with `cancel`.")
        return 0
    (sys.stderr if started.exit_code else sys.stdout).write(started.output)
    return started.exit_code or 0


@click.command(help="Show what launch would submit, without submitting anything.")
@click.argument("stages", nargs=-1, shell_complete=complete_stages)
@click.option("--with-deps", is_flag=True, help="Also plan missing dependencies.")
@click.option("--validate", is_flag=True,
              help="Ask Slurm to check each job (--test-only) and whether a job may submit "
                   "(relays need it); --local: check the python.")
@click.option("-v", "--verbose", is_flag=True, help="List every artifact.")
@_set_option
@click.option("--rebuild-stale", is_flag=True, help="Plan stale results for rebuilding.")
@click.option("--retry-failed", is_flag=True, help=RETRY_HELP)
@common
@click.pass_obj
def drylaunch(state: CliState, /, stages: tuple[str, ...], with_deps: bool, validate: bool,
              verbose: bool, sets: tuple[str, ...], rebuild_stale: bool, retry_failed: bool,
              **opts: Any) -> int:
    """The plan, its arrays and cost; exit code 1 when --validate found a problem."""
    from ..plan.overrides import parse_overrides
    from ..verbs.cost import plan_cost
    from ..verbs.launch import drylaunch as drylaunch_verb
    from ..verbs.site import run_here_warnings

    session = state.session(**opts)
    render.warnings(run_here_warnings(session))
    dry = drylaunch_verb(session, list(stages) or None, with_deps=with_deps,
                         validate=validate,
                         overrides=parse_overrides(sets, session.experiment.stages),
                         rebuild_stale=rebuild_stale, retry_failed=retry_failed)
    changes(dry.changes)
    plan(dry, verbose)
    cost(plan_cost(dry.plan))
    return 1 if dry.problems and validate else 0


# -- what drylaunch prints -------------------------------------------------------------------
def plan(dry: DryRun, verbose: bool) -> None:
    """The plan: its tiers and jobs, what is skipped, the arrays, staleness and problems."""
    out, p = render.out(), dry.plan
    jobs = len(dry.arrays) if dry.arrays else len(p.groups)  # what launch submits
    tasks = (f" ({sum(a.task_count for a in dry.arrays)} array task(s))" if dry.arrays
             else "")
    out.print(f"[bold]Plan[/] for stages {', '.join(p.stages)} on the {dry.backend} backend: "
              f"{p.task_count} artifact(s) to build in {jobs} job(s){tasks}, "
              f"{len(p.skipped)} skipped")
    if dry.overrides:
        sets = [f"{k}={v}" for k, v in dry.overrides.everywhere.items()]
        sets += [f"{s}:{k}={v}" for s, kv in dry.overrides.per_stage.items()
                 for k, v in kv.items()]
        render.line(f"Overrides (--set, this launch only): {' '.join(sets)}")
    _tiers(dry, verbose)
    _skipped(dry, verbose)
    if dry.arrays:
        arrays(dry.arrays, verbose)
    for note in dry.layout_notes:
        render.line(f"  {note}")
    for line in filter(None, [*dry.sweeps, dry.relays]):  # sweeps (their relays), the probe
        render.line(line)
    if dry.stale and dry.rebuild_stale:
        out.print(f"--rebuild-stale: {len(dry.stale)} stale artifact(s) planned for rebuilding")
    else:
        render.stale(dry.stale)
    render.queued_stale(dry.queued_stale, None if verbose else 20, dry.rebuild_stale)
    for problem in dry.problems:
        render.err().print(f"[red]problem:[/] {render.escape(problem)}", soft_wrap=True)
    out.print("[dim]drylaunch submits and records nothing.[/]")


def _tiers(dry: DryRun, verbose: bool) -> None:
    """Each tier's jobs: stage, size, resources, what they wait for, their first artifacts."""
    out, n = render.out(), 0
    for tier_no, tier in enumerate(dry.plan.tiers):
        out.print(f"[bold]Tier {tier_no}[/]")
        for group in tier:
            deps = len({d for t in group.tasks for d in t.dep_ids})
            out.print(f"  [cyan]{group.stage}[/]: {len(group.tasks)} task(s), "
                      f"{render.escape(group.resources.summary())}"
                      + (f", waits for {deps} artifact(s) of earlier tiers" if deps else ""))
            if n < len(dry.details):
                for text in dry.details[n].lines:
                    render.line(f"      {text}")
            n += 1
            shown = group.tasks if verbose else group.tasks[:3]
            for task in shown:
                render.line(f"      - {task.relpath} ({len(task.steps)} steps)")
            if len(group.tasks) > len(shown):
                out.print(f"      … {len(group.tasks) - len(shown)} more (-v lists all)")


def _skipped(dry: DryRun, verbose: bool) -> None:
    """How many artifacts the plan skips and why (each one with -v)."""
    reasons: dict[str, int] = {}
    for s in dry.plan.skipped:
        key = "built" if s.reason == "built" else "already queued/running"
        reasons[key] = reasons.get(key, 0) + 1
    if reasons:
        render.out().print("Skipped: " + ", ".join(f"{n} {k}" for k, n in reasons.items()))
        for s in dry.plan.skipped if verbose else []:
            render.line(f"  - {s.relpath} [{s.stage}]: {s.reason}")


def arrays(layout: Sequence[ArrayLayout], verbose: bool, limit: int = 12) -> None:
    """The arrays a launch submits and what each one's tasks wait for."""
    from ..plan.lanes import describe_arrays

    tasks = sum(a.task_count for a in layout)
    render.out().print(f"[bold]Arrays[/]: {len(layout)} sbatch call(s), {tasks} array task(s)")
    lines = describe_arrays(layout)
    shown = lines if verbose else lines[:limit]
    for text in shown:
        render.line(f"  {text}")
    if len(lines) > len(shown):
        render.out().print(f"  … {len(lines) - len(shown)} more (-v lists all)")


def cost(costs: Sequence[StageCost]) -> None:
    """Requested GPU-hours and CPU-hours per stage and in total (artifacts × limit × GPUs)."""
    for c in costs:
        apart = (f" (+{c.unlimited_tasks} artifact(s) without a time limit)"
                 if c.unlimited_tasks else "")
        label = "Total" if c.stage == "total" else f"Cost of {c.stage}"
        render.line(f"{label}: {c.tasks} artifact(s), {c.gpu_hours:,.1f} GPU-hours, "
                    f"{c.cpu_hours:,.1f} CPU-hours requested{apart}{c.requeue_note()}")


def changes(lines: Sequence[str]) -> None:
    """``--retry-failed``: each escalated requirement and why, one line each."""
    if lines:
        render.line(f"Escalated ({len(lines)} change(s), from config.json's escalation):")
    for text in lines:
        render.line(f"  {text}")


# -- what launch prints ----------------------------------------------------------------------
def launched(result: LaunchResult) -> None:
    """The code snapshot, the jobs launched (the first ten of many) and what to do next."""
    _snapshot_line(result)
    if result.replaced:
        render.line(f"Cancelled job(s) {', '.join(result.replaced)}: they built other than the "
                    "experiment describes today; their artifacts are resubmitted below.")
    if result.invalidated:
        render.line(f"Moved {len(result.invalidated)} done marker(s) aside to rebuild stale "
                    "results.")
    if not result.plan.groups:
        render.line(f"Nothing to launch: {len(result.plan.skipped)} artifact(s) already built "
                    "or queued.")
        _relay_line(result)
        return
    shown = result.records if len(result.records) <= _MAX_JOB_LINES else result.records[:10]
    for rec in shown:
        counts: dict[str, int] = {}
        for i, s in rec.task_states.items():  # as `status` says it: dep-failed, (TIMEOUT)
            end = rec.ended.get(i) or {}
            said = str(end.get("state") or s) + (f" ({end['label']})" if end.get("label") else "")
            counts[said] = counts.get(said, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or _array_text(rec)
        deps = f" after {','.join(rec.depends_on)}" if rec.depends_on else ""
        render.line(f"job {rec.job_id} [{rec.stage}, tier {rec.tier}]{deps}: {summary}")
    if len(shown) < len(result.records):
        render.line(f"… and {len(result.records) - len(shown)} more job(s): `history` lists "
                    "them")
    failed = sum(1 for r in result.records for s in r.task_states.values() if s != "completed")
    total = sum(len(r.tasks) for r in result.records)  # every round of a local sweep
    if result.records and all(r.backend == "local" for r in result.records):
        render.line(f"Built {total - failed} of {total}; `status` shows what failed and why."
                    if failed else f"Built all {total} artifact(s).")
    else:
        tasks = sum(_array_tasks(r) for r in result.records)
        render.line(f"Submitted {len(result.records)} job(s) for {total} artifact(s) ({tasks} "
                    "array task(s)); `status` or `history` to follow them.")
    _relay_line(result)


def _relay_line(result: LaunchResult) -> None:
    """What a sweep still waits for, and the relay that plans its next wave."""
    if result.relay is not None and result.waiting:
        render.line(f"Relay job {result.relay.job_id} plans the next wave when these jobs "
                    f"end ({'; '.join(result.waiting)}); nothing of ours runs meanwhile.")


def _array_tasks(rec: JobRecord) -> int:
    """How many array tasks a job has: one per artifact, or one per pack."""
    return len(set(rec.array_indices)) if rec.packed else len(rec.tasks)


def _array_text(rec: JobRecord) -> str:
    """``4 array task(s) for 200 artifact(s)`` (packed) or ``3 array task(s)``."""
    n = _array_tasks(rec)
    return f"{n} array task(s)" + (f" for {len(rec.tasks)} artifact(s)" if rec.packed else "")


def _snapshot_line(result: LaunchResult) -> None:
    """The code snapshot the jobs run in: new or reused, its size and git state."""
    snap = result.snapshot
    if snap is None:
        return
    git = ""
    if snap.git is not None:
        git = (f", git {(snap.git.commit or 'no commit')[:12]}"
               f"{' (dirty)' if snap.git.dirty else ''}")
    render.line(f"Code snapshot {snap.id} ({'reused' if snap.reused else 'new'}, "
                f"{snap.files} files, {snap.bytes / 1e6:.1f} MB{git})")


def launch_json(result: LaunchResult) -> dict[str, object]:
    """``launch --json``: the jobs submitted (or run locally) and what was skipped."""
    return {"jobs": [{**render.record_json(r), "task_states": dict(r.task_states)}
                     for r in result.records],
            "to_build": result.plan.task_count, "skipped": len(result.plan.skipped),
            "warnings": list(result.warnings)}


def incomplete_json(exc: LaunchIncomplete) -> dict[str, object]:
    """``launch --json`` of a launch refused part-way: what is queued, what is not, and why."""
    return {"incomplete": True, "error": exc.cause,
            "queued": [{"job_id": job, "stage": stage, "tier": tier, "artifacts": n}
                       for job, stage, tier, n in exc.queued],
            "missing": exc.missing, "message": str(exc)}


# -- while Slurm is slow to accept a job ---------------------------------------------------
def _at(seconds_from_now: float) -> str:
    """A clock time that far ahead, and the distance: ``12:00:15 (in 15 s)``."""
    return f"{time.strftime('%H:%M:%S', time.localtime(time.time() + seconds_from_now))} " \
           f"(in {seconds_from_now:.0f} s)"


def _next(w: SubmitWait) -> str:
    """What the submission does next, in words."""
    from ..launching.waits import WaitPhase

    if w.phase is WaitPhase.SUBMITTING:
        then = ("the job is looked up by name one last time and the launch gives up if it is "
                "not found" if w.last_attempt else
                f"the job is looked up by name and submitted again (attempt {w.attempt + 1} "
                f"of {w.attempts})")
        return f"sbatch is stopped at {_at(w.next_in_s)}, then {then}"
    if w.phase is WaitPhase.RETRY:
        if w.lookup_only:
            return (f"one last look-up by name at {_at(w.next_in_s)}, then the launch gives "
                    "up")
        return (f"look the job up by name, then submit it again at {_at(w.next_in_s)}; "
                f"attempt {w.attempt} of {w.attempts}")
    return (f"no job of that name yet; looking again at {_at(w.next_in_s)}, in case the "
            "controller still creates it, before submitting it again")


def waiting_line(event: LaunchEvent) -> str:
    """``Slurm is slow to accept job … (stage a, tier 0, 3 artifacts; submission 1 of 2):
    waited 15 s; Slurm says "…". Next: …``"""
    w, rec = event.wait, event.record
    if w is None:
        return ""
    what = (f"job {w.job_name}" + (f" (stage {rec.stage}, tier {rec.tier}, "
                                   f"{len(rec.tasks)} artifact(s)" if rec else " (")
            + f"; submission {event.position} of {event.total})")
    said = f'; Slurm says "{w.said}"' if w.said else ""
    return f"Slurm is slow to accept {what}: waited {w.waited_s:.0f} s{said}. Next: {_next(w)}."


def print_waiting(event: LaunchEvent) -> None:
    """One line per wait, above the progress bar."""
    render.out().print(f"[yellow]{render.escape(waiting_line(event))}[/]", soft_wrap=True)


def waits_to_stderr(event: LaunchEvent) -> None:
    """``launch --json``'s progress: only the waits, on stderr (stdout holds the JSON)."""
    from ..launching.launch_context import EventKind

    if event.kind is EventKind.WAITING:
        render.line(waiting_line(event), err=True)
