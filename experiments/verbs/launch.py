"""``drylaunch`` and ``launch``: plan the stages, then show the plan or submit it.

Both start with :func:`experiments.verbs.planning.prologue` (the root's jobs, what is live,
stale and failed artifacts, the plan), so nothing is submitted before every group has been
resolved. ``launch`` then holds the project's launch lock, reconciles intents left by a
crashed launch, refuses to plan when a scheduler cannot say what is already queued, freezes
the code into a snapshot and hands the plan to the backend.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..backends.base import Backend, Description, LaysOutArrays
from ..errors import SchedulerQueryError, SubmissionError
from ..launching.launch_context import LaunchContext, Progress, pending_intents
from ..launching.launch_lock import LaunchLocks
from ..launching.project_budget import held_slots
from ..launching.python_check import python_problem
from ..launching.relay import (
    RELAY_ENV,
    RETRY_MINUTES,
    SubmitsRelays,
    is_relay,
    launch_options,
    relay_problem,
    submit_relay,
)
from ..launching.snapshots import Snapshot
from ..model.sets import Sweep
from ..plan import Plan
from ..plan.lanes import ArrayLayout
from ..plan.overrides import Overrides
from ..plan.waves import first_wave, waves_needed
from ..session import Session
from ..states import TaskKey
from ..tracking.ends import record_endings, unknown_root_warning
from ..tracking.staleness import Stale, move_marker_aside, utc_stamp
from ..tracking.status import Live
from ..tracking.store import JobRecord, RecordState
from .cancel import other_files
from .code_snapshots import take as take_snapshot
from .launch_incomplete import incomplete
from .planning import Prepared, prologue
from .queued_stale import QueuedStale
from .reconcile import reconcile_intents


@dataclass
class DryRun:
    """What ``drylaunch`` shows: the plan and, per group, what the backend would submit."""

    plan: Plan
    backend: str
    details: list[Description] = field(default_factory=list)  # one per group, in plan order
    problems: list[str] = field(default_factory=list)
    arrays: list[ArrayLayout] = field(default_factory=list)  # what launch submits, in order
    overrides: Overrides = field(default_factory=Overrides)  # --set, merged into the groups
    stale: list[Stale] = field(default_factory=list)  # built but stale (rebuilt with the flag)
    rebuild_stale: bool = False
    changes: list[str] = field(default_factory=list)  # --retry-failed: escalated requirements
    layout_notes: list[str] = field(default_factory=list)  # e.g. packed to fit a submit limit
    queued_stale: list[QueuedStale] = field(default_factory=list)  # queued, planned otherwise
    sweeps: list[str] = field(default_factory=list)  # each sweep's rungs, budget, where it is


@dataclass
class LaunchResult:
    """What ``launch`` did: the plan, the jobs it recorded, and what it warned about."""

    plan: Plan
    records: list[JobRecord]
    warnings: list[str] = field(default_factory=list)
    snapshot: Snapshot | None = None  # the code the tasks run (None: snapshots are off)
    invalidated: list[str] = field(default_factory=list)  # relpaths whose marker was moved aside
    changes: list[str] = field(default_factory=list)  # --retry-failed: escalated requirements
    replaced: list[str] = field(default_factory=list)  # jobs cancelled: planned otherwise
    live_relays: list[JobRecord] = field(default_factory=list)  # relays queued before it
    waiting: list[str] = field(default_factory=list)  # sweeps not decided yet, per stage
    relay: JobRecord | None = None  # the relay that plans the next wave


def drylaunch(session: Session, stages: Sequence[str] | None = None, *,
              with_deps: bool = False, validate: bool = False,
              overrides: Overrides | None = None,
              rebuild_stale: bool = False, retry_failed: bool = False) -> DryRun:
    """The plan that ``launch`` would submit; submits and records nothing.

    Stale built artifacts are listed in ``stale``; with ``rebuild_stale`` they (and their
    dependents) are planned as ``launch --rebuild-stale`` would; with ``retry_failed`` only
    the failed artifacts, with their escalated requirements listed in ``changes``.
    """
    prep = prologue(session, stages, with_deps=with_deps, overrides=overrides,
                    rebuild_stale=rebuild_stale, retry_failed=retry_failed)
    plan, backend = prep.plan, session.backend()
    dry = DryRun(plan, backend.name, problems=prep.warnings, overrides=overrides or Overrides(),
                 stale=prep.stale, rebuild_stale=rebuild_stale, changes=prep.changes,
                 queued_stale=prep.queued_stale)
    if validate and backend.name == "local":  # on Slurm the batch script checks on the node
        dry.problems.extend(filter(None, [python_problem(session.config.python
                                                         or sys.executable)]))
    dry.arrays, dry.layout_notes, problems = _layout(backend, plan, prep.records)  # packs
    dry.problems.extend(_waves(session, dry, prep, problems))  # first: --validate checks the
    for group in plan.groups:  # arrays launch submits
        dry.details.append(backend.describe(group, validate=validate))
        dry.problems.extend(dry.details[-1].problems)
    dry.sweeps += [f"Sweep {name}: {arts.spec.describe()}" for name, arts in
                   session.experiment.stages.items() if isinstance(arts, Sweep)
                   and name in plan.stages] + [
        f"Stage {w.replace(':', ' waits for', 1)}: what follows is planned by a relay "
        "(--local: by this launch) once it has ended"
        for w in plan.waiting]
    return dry


def _waves(session: Session, dry: DryRun, prep: Prepared, problems: list[str]) -> list[str]:
    """Past the allowance, a launch goes in waves, each planned by a relay: what drylaunch
    says about that instead of the layout's problems (which it returns otherwise)."""
    backend, plan, ex = session.backend(), prep.plan, session.experiment
    room = (backend.wave_room(plan, prep.records) if problems and isinstance(
        backend, SubmitsRelays) and not relay_problem(ex.source_file, ex.code_path,
                                                      ex.snapshot_code) else None)
    if room is None or room < 2:
        return problems
    dry.layout_notes += problems
    dry.sweeps.append(f"Waves: {waves_needed(plan.task_count, room - 1)} of at most "
                      f"{room - 1} task(s) each; launch submits the first and a relay "
                      "job, each relay the next wave when the one before has ended")
    return []


def _layout(backend: Backend, plan: Plan, records: Sequence[JobRecord]
            ) -> tuple[list[ArrayLayout], list[str], list[str]]:
    """The arrays a backend that lays out dependencies (Slurm) would submit, if it can say,
    with its notes and problems about them (packed to fit the submit limit, or cannot)."""
    if not isinstance(backend, LaysOutArrays) or not plan.groups:
        return [], [], []
    try:
        arrays, said, problems = backend.layout_notes(plan, records)
    except SchedulerQueryError:
        return [], [], []
    return list(arrays), list(said), list(problems)


def launch(session: Session, stages: Sequence[str] | None = None, *,
           with_deps: bool = False, progress: Progress | None = None,
           max_running: int | None = None,
           overrides: Overrides | None = None,
           rebuild_stale: bool = False, retry_failed: bool = False,
           replace_queued: bool | None = None) -> LaunchResult:
    """Plan the stages and submit (or run, locally) everything not built or queued.

    ``max_running`` bounds how many tasks of this launch run at once, across all its jobs and
    tiers; without it, config.json's ``max_running`` for the project bounds the project's
    tasks across launches (live jobs of earlier launches hold part of it). Only jobs building into
    this launch's artifact root hold artifacts (jobs of unknown root count too, with a
    warning). ``overrides`` (``--set``) change the jobs' requirements. The code is frozen into
    a snapshot first (unless snapshots are off) and every job runs in it. With
    ``rebuild_stale``, stale built artifacts and their dependents are rebuilt: their done
    markers are moved aside (``.done.invalidated-<time>``) just before submission, and queued
    work planned otherwise is replaced or kept as ``replace_queued`` says (``queued_stale``).
    With ``retry_failed``, only the failed artifacts are resubmitted, escalated by the config's
    policy.
    """
    with _launch_lock(session) as locks:
        warnings = reconcile(session) + other_files(session)
        result, ctx, live = _round(session, stages, warnings, locks, with_deps=with_deps,
                                   progress=progress, max_running=max_running,
                                   overrides=overrides, rebuild_stale=rebuild_stale,
                                   retry_failed=retry_failed, replace_queued=replace_queued)
        last = result
        while _decides_more(last):  # a local run ended a sweep's rung: plan again, here
            last, ctx, live = _round(session, stages, [], locks, with_deps=with_deps,
                                     progress=progress, max_running=max_running,
                                     overrides=overrides)
            result.records += last.records
            result.warnings += last.warnings
        result.waiting = list(last.plan.waiting)
        if result.waiting:
            _relay(session, stages, result, ctx, live + [r.job_id or "" for r in last.records
                                                         if r.state is RecordState.SUBMITTED],
                   launch_options(with_deps, max_running, overrides or Overrides()))
        return result


def _relay(session: Session, stages: Sequence[str] | None, result: LaunchResult,
           ctx: LaunchContext, after: list[str], options: list[str]) -> None:
    """A sweep still waits: queue a relay after every live job of the root (one relay is
    enough: none when another is queued), or say why no relay can be queued."""
    backend = session.backend()
    if not isinstance(backend, SubmitsRelays):
        return
    own = os.environ.get("SLURM_ARRAY_JOB_ID", "")  # a relay running this launch
    queued = [r for r in result.live_relays if r.job_id != own]
    if queued:
        result.relay = queued[0]
        return
    after = sorted({j for j in after if j and j != own})
    later = RETRY_MINUTES if any("allowance is full" in w for w in result.waiting) else 0
    if not after and not later:
        result.warnings.append("nothing is queued that could decide " + "; ".join(
            result.waiting) + ": launch again once its failures are fixed")
        return
    if ctx.snapshot is None and session.experiment.snapshot_code:
        ctx.snapshot, more = take_snapshot(session)
        result.warnings += more
    relayed = [*result.records, *result.live_relays]  # relays ask what their jobs asked
    like = relayed[-1].requirements if relayed else {}
    try:
        got = submit_relay(backend, ctx, result.waiting[0].split(":")[0], stages, after, like,
                           options, later)
    except SubmissionError as exc:
        got = str(exc)
    if isinstance(got, str):
        result.warnings.append(f"no relay can be queued ({got}): launch again when jobs "
                               f"{' '.join(after)} have ended to go on")
    else:
        result.relay = got


def _decides_more(result: LaunchResult) -> bool:
    """Whether a sweep waits on what this launch ran to its end (the local backend): then
    planning again decides the next rung. Jobs still queued leave that to a relay."""
    return bool(result.plan.waiting and result.records and all(
        r.state is not RecordState.SUBMITTED for r in result.records))


def _round(session: Session, stages: Sequence[str] | None, warnings: list[str],
           locks: LaunchLocks, *, with_deps: bool, progress: Progress | None,
           max_running: int | None, overrides: Overrides | None, rebuild_stale: bool = False,
           retry_failed: bool = False, replace_queued: bool | None = None
           ) -> tuple[LaunchResult, LaunchContext, list[str]]:
    """Plan once and submit what the plan holds (the launch lock held); also the launch's
    context and the jobs of the root live before it submitted."""
    prep = prologue(session, stages, with_deps=with_deps, overrides=overrides,
                    rebuild_stale=rebuild_stale, retry_failed=retry_failed, launching=True,
                    replace_queued=replace_queued)
    warnings += unknown_root_warning(prep.records) + prep.warnings
    later = _cut_wave(session, prep)
    snapshot, snapshot_warnings = take_snapshot(session) if prep.plan.groups else (None, [])
    warnings.extend(snapshot_warnings)
    from_config = max_running is None  # config.json's budget spans the project's launches
    if max_running is None:
        max_running = session.config.max_running_for(session.experiment.project)
    ctx = LaunchContext.for_plan(prep.plan, session.experiment, session.config,
                                 session.store, progress=progress, max_running=max_running,
                                 overrides=overrides, snapshot=snapshot)
    ctx.held = _held(session, prep.records, prep.live, max_running) if from_config else []
    ctx.running = locks.running
    invalidated = (_set_aside(ctx.artifact_path, prep.plan)
                   if rebuild_stale and prep.stale else [])
    submitted = list(_submit(session, prep.plan, ctx))  # not ctx.submitted: relays join it
    live = [r for r in prep.records if _is_live(r, prep.live)]
    result = LaunchResult(prep.plan, submitted, warnings, snapshot, invalidated, prep.changes,
                          prep.replaced, live_relays=[r for r in live if is_relay(r)])
    result.plan = dataclasses.replace(prep.plan, waiting=prep.plan.waiting + later)
    return result, ctx, [r.job_id or "" for r in live if not is_relay(r)]


def _cut_wave(session: Session, prep: Prepared) -> tuple[str, ...]:
    """Past the user's submit allowance, keep in ``prep.plan`` only the first wave (what
    fits, leaving room for the relay that plans the next); returns what waits for later
    waves. Where the allowance has no room for a task and a relay, the backend refuses as
    before."""
    backend, plan, ex = session.backend(), prep.plan, session.experiment
    if not plan.groups or not isinstance(backend, SubmitsRelays) or relay_problem(
            ex.source_file, ex.code_path, ex.snapshot_code):
        return ()
    room = backend.wave_room(plan, prep.records)
    if room is None or (room < 2 and not os.environ.get(RELAY_ENV)):
        return ()  # it fits; or a launch by hand, which the backend refuses as before
    if room < 2:  # a relay finding the allowance full: submit nothing, try again later
        prep.plan = dataclasses.replace(plan, tiers=())
        return (f"{plan.groups[0].stage}: your submit allowance is full; a relay tries again "
                f"in {RETRY_MINUTES} minutes",)
    prep.plan = first_wave(plan, room - 1)
    left = plan.task_count - prep.plan.task_count
    return (f"{prep.plan.groups[-1].stage}: {left} artifact(s) past your submit allowance, "
            f"wave 1 of {1 + waves_needed(left, room - 1)}",)


def _is_live(record: JobRecord, live: Live) -> bool:
    """Whether a task of ``record`` is queued or running."""
    return any((st := live.get(TaskKey(record.job_id or "", i))) is not None and st.state.live
               for i in range(len(record.tasks)))


def _submit(session: Session, plan: Plan, ctx: LaunchContext) -> list[JobRecord]:
    """Hand the plan to the backend; a refusal after some jobs were queued says what is
    queued and what is not. Ends seen during the launch (local runs) are recorded."""
    try:
        submitted = session.backend().launch(plan, ctx) if plan.groups else []
    except SubmissionError as exc:
        if not ctx.submitted:
            raise
        raise incomplete(plan, ctx.submitted, exc, pending_intents(session.store)) from exc
    ended = [r for r in submitted if r.state is not RecordState.SUBMITTED]  # local runs
    if ended:
        submitted = record_endings(session.store, submitted, session.live(ended),
                                   ctx.artifact_path)
    return submitted


def _held(session: Session, records: Sequence[JobRecord], live: Live,
          budget: int | None) -> list[tuple[str, int]]:
    """Slots of config.json's project budget held by live arrays of earlier launches (the
    backend's own jobs only: a new array can wait for those alone)."""
    if budget is None:
        return []
    name = session.backend().name
    return held_slots([r for r in records if r.backend == name], live, budget)


def _set_aside(root: str, plan: Plan) -> list[str]:
    """Move aside the done markers of planned tasks that are built (stale ones, or dependents
    of what is rebuilt), so the worker rebuilds them; their results stay in place."""
    stamp = utc_stamp()
    return [t.relpath for g in plan.groups for t in g.tasks
            if move_marker_aside(root, t.relpath, stamp)]


@contextmanager
def _launch_lock(session: Session) -> Iterator[LaunchLocks]:
    """One launcher per project at a time, and per artifact root while a local run builds
    into it; a second one is refused, not queued, with who holds the lock. The launch's code
    snapshot stays pinned while it holds the project's lock (``launching.snapshot_pins``)."""
    ex = session.experiment
    locks = LaunchLocks(session.store.home, ex.project, ex.artifact_path, session.config.umask)
    locks.acquire()
    try:
        yield locks
    finally:
        try:
            session.store.sync()  # job ids committed without an fsync each: durable from here
        finally:
            locks.release()  # the jobs' records name its snapshot now


def reconcile(session: Session) -> list[str]:
    """Resolve intents left by a crashed launch: adopt the job if it exists, drop it only when
    no submission can still be in flight, and cancel untracked twins (see ``verbs.reconcile``)."""
    return reconcile_intents(session)
