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

from .. import _gc
from ..backends.base import Backend, Description, LaysOutArrays
from ..errors import ExperimentsError, SchedulerQueryError, SubmissionError
from ..launching import relay_probe
from ..launching.launch_context import LaunchContext, Progress, pending_intents
from ..launching.launch_lock import LaunchLocks
from ..launching.project_budget import held_slots
from ..launching.python_check import python_problem
from ..launching.relay import (
    RELAY_ENV,
    RETRY_MINUTES,
    SubmitsRelays,
    at_submit_limit,
    is_relay,
    launch_options,
    limit_reason,
    relay_problem,
    requeue_if_busy,
    submit_relay,
    this_wave,
)
from ..launching.snapshots import Snapshot
from ..model.sets import Sweep
from ..plan import Plan
from ..plan.lanes import ArrayLayout
from ..plan.overrides import Overrides
from ..plan.waves import first_wave, waves_needed
from ..session import Session
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
from .wave_relays import is_live_record, part_way, queue_ahead, refused_line, wait_for_wave


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
    relays: str = ""  # --validate: whether compute nodes may submit (the relay probe's verdict)


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
    refused: SubmissionError | None = None  # Slurm's refusal at the submit limit, part-way
    wave: dict[str, int] = field(default_factory=dict)  # the next wave: number, of, left
    ahead: JobRecord | None = None  # a relay's successor, queued before its wave


@_gc.thawed_after()  # planning froze the plan: see verbs.planning.prologue
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
    if validate:  # before the waves: they depend on the verdict
        dry.relays = _probe(session, plan)
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


def _probe(session: Session, plan: Plan) -> str:
    """``drylaunch --validate``: may compute nodes submit here (what relays need)? Asked
    with a probe job (:mod:`experiments.launching.relay_probe`), as a relay of this plan's
    first job would be submitted; "" on a backend that runs no relays."""
    backend = session.backend()
    if not isinstance(backend, relay_probe.ProbesNodes):
        return ""
    if not session.config.relays:
        return f"Relays: none here ({relay_probe.OFF})"
    like = (dict(plan.groups[0].resources.requirements) if plan.groups
            else session.config.resolve_requirements({}))
    return relay_probe.probe(backend, like, session.experiment.project,
                             session.store.home).line()


def _no_relays(session: Session) -> str:
    """Why no relay can run for this experiment here ("" when one can): the backend runs
    none, the snapshot cannot hold the experiment file, the configuration turned relays off,
    or the last probe found that compute nodes cannot submit."""
    backend, ex = session.backend(), session.experiment
    if not isinstance(backend, SubmitsRelays):
        return f"the {backend.name} backend runs no relays"
    return (relay_problem(ex.source_file, ex.code_path, ex.snapshot_code)
            or relay_probe.refusal(session.config.relays, backend, session.store.home))


def _waves(session: Session, dry: DryRun, prep: Prepared, problems: list[str]) -> list[str]:
    """Past the allowance, a launch goes in waves, each planned by a relay: what drylaunch
    says about that instead of the layout's problems (which it returns otherwise, with why
    no relay can carry the rest where none can)."""
    backend, plan = session.backend(), prep.plan
    why = _no_relays(session) if problems or plan.waiting else ""
    if why and isinstance(backend, SubmitsRelays):
        return problems + [f"{_unavailable(why)}: launch stops half-way here"
                           if problems else f"sweeps wait for a relay, {_unavailable(why)}: "
                           "launch again after each rung, or use --local"]
    room = backend.wave_room(plan, prep.records) if problems and not why and isinstance(
        backend, SubmitsRelays) else None
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


@_gc.thawed_after()  # planning froze the plan: see verbs.planning.prologue
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
    options = launch_options(with_deps, max_running, overrides or Overrides())
    with _launch_lock(session) as locks:
        warnings = reconcile(session) + other_files(session)
        result, ctx, live = _round(session, stages, warnings, locks, with_deps=with_deps,
                                   progress=progress, max_running=max_running,
                                   overrides=overrides, rebuild_stale=rebuild_stale,
                                   retry_failed=retry_failed, replace_queued=replace_queued,
                                   options=options)
        last, first_plan = result, result.plan
        while _decides_more(last) or (last is result and result.refused is not None):
            # a local run ended a sweep's rung, or Slurm refused at the submit limit part-way
            # (its limits are read now): plan again, here
            last, ctx, live = _round(session, stages, [], locks, with_deps=with_deps,
                                     progress=progress, max_running=max_running,
                                     overrides=overrides, options=options,
                                     recut=limit_reason(result.refused) if result.refused else "")
            result.records += last.records
            result.warnings += last.warnings
        result.waiting, result.wave = list(last.plan.waiting), last.wave
        if result.waiting:
            result.ahead = last.ahead or result.ahead
            _relay(session, stages, result, ctx, live + [r.job_id or "" for r in last.records
                                                         if r.state is RecordState.SUBMITTED],
                   options)
        refused = result.refused or last.refused
        if refused is not None and result.relay is None and result.waiting:
            raise part_way(session, first_plan, result.records, refused)  # no relay goes on
        return result


def _relay(session: Session, stages: Sequence[str] | None, result: LaunchResult,
           ctx: LaunchContext, after: list[str], options: Sequence[str]) -> None:
    """A sweep still waits: queue a relay after every live job of the root (one relay is
    enough: none when another is queued), or say why no relay can be queued."""
    backend = session.backend()
    if not isinstance(backend, SubmitsRelays):
        return
    own = os.environ.get("SLURM_ARRAY_JOB_ID", "")  # a relay running this launch
    if result.ahead is not None:  # queued before the wave: now it waits for the wave too
        result.relay = result.ahead
        result.warnings += wait_for_wave(backend, result.ahead,
                                         sorted({j for j in after if j} | {own}))
        return
    queued = [r for r in result.live_relays if r.job_id != own]
    if queued:
        result.relay = queued[0]
        return
    after = sorted({j for j in after if j and j != own})
    later = RETRY_MINUTES if not after and any("allowance is full" in w
                                               for w in result.waiting) else 0
    if not after and not later:
        result.warnings.append("nothing is queued that could decide " + "; ".join(
            result.waiting) + ": launch again once its failures are fixed")
        return
    got: JobRecord | str = _no_relays(session)  # before a snapshot that would go unused
    if not got:
        if ctx.snapshot is None and session.experiment.snapshot_code:
            ctx.snapshot, more = take_snapshot(session)
            result.warnings += more
        relayed = [*result.records, *result.live_relays]  # relays ask what their jobs asked
        like = relayed[-1].requirements if relayed else {}
        try:
            got = submit_relay(backend, ctx, result.waiting[0].split(":")[0], stages, after,
                               like, options, later, result.wave)
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
           retry_failed: bool = False, replace_queued: bool | None = None, recut: str = "",
           options: Sequence[str] = ()) -> tuple[LaunchResult, LaunchContext, list[str]]:
    """Plan once and submit what the plan holds (the launch lock held); also the launch's
    context and the jobs of the root live before it submitted. ``recut``: Slurm refused
    this launch at the submit limit before (its words), so what does not fit waits for a
    relay."""
    prep = prologue(session, stages, with_deps=with_deps, overrides=overrides,
                    rebuild_stale=rebuild_stale, retry_failed=retry_failed, launching=True,
                    replace_queued=replace_queued)
    warnings += unknown_root_warning(prep.records) + prep.warnings
    later, wave = _cut_wave(session, prep, recut)
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
    ahead = queue_ahead(session, stages, prep, ctx, later, wave, options)
    submitted, refused = _submit(session, prep.plan, ctx)  # not ctx.submitted: relays join it
    submitted = [r for r in submitted if r is not ahead]
    live = [r for r in prep.records if is_live_record(r, prep.live)]
    result = LaunchResult(prep.plan, submitted, warnings, snapshot, invalidated, prep.changes,
                          prep.replaced, live_relays=[r for r in live if is_relay(r)],
                          refused=refused, wave=wave, ahead=ahead)
    if refused is not None:
        later += (refused_line(prep.plan, submitted, refused),)
    result.plan = dataclasses.replace(prep.plan, waiting=prep.plan.waiting + later)
    return result, ctx, [r.job_id or "" for r in live if not is_relay(r)]


def _cut_wave(session: Session, prep: Prepared, refused: str = ""
              ) -> tuple[tuple[str, ...], dict[str, int]]:
    """Past the user's submit allowance, keep in ``prep.plan`` only this wave (what fits,
    leaving room for the relay that plans the next); returns what waits for later waves and
    the next wave's number, the waves in all and the artifacts left (for ``status``). Where
    the allowance has no room for a task and a relay, the backend refuses as before (a
    launch by hand), or nothing is submitted and a relay goes on (a relay, or a launch that
    Slurm ``refused`` part-way at the limit: its words)."""
    backend, plan = session.backend(), prep.plan
    if not plan.groups or not isinstance(backend, SubmitsRelays) or _no_relays(session):
        return (), {}
    room = backend.wave_room(plan, prep.records)
    if room is None or (room < 2 and not os.environ.get(RELAY_ENV) and not refused):
        return (), {}  # it fits; or a launch by hand, which the backend refuses as before
    wave, why = this_wave(), f" (Slurm refused more: {refused})" if refused else ""
    if room < 2:  # no room now: submit nothing, a relay goes on later
        prep.plan = dataclasses.replace(plan, tiers=())
        note = {"wave": wave, "of": 0, "left": plan.task_count}  # "of": not known yet
        if refused:
            return (f"{plan.groups[0].stage}: {plan.task_count} artifact(s) wait for room in "
                    f"your submit allowance{why}",), note
        return (f"{plan.groups[0].stage}: your submit allowance is full; a relay tries again "
                f"when the jobs here end (in {RETRY_MINUTES} minutes if none is queued)",), note
    prep.plan = first_wave(plan, room - 1)
    left = plan.task_count - prep.plan.task_count
    total = wave + waves_needed(left, room - 1)
    return ((f"{prep.plan.groups[-1].stage}: {left} artifact(s) past your submit allowance, "
             f"wave {wave} of {total}{why}",), {"wave": wave + 1, "of": total, "left": left})


def _submit(session: Session, plan: Plan, ctx: LaunchContext
            ) -> tuple[list[JobRecord], SubmissionError | None]:
    """Hand the plan to the backend; a refusal after some jobs were queued says what is
    queued and what is not. Ends seen during the launch (local runs) are recorded. A refusal
    at the submit limit is returned instead where relays can submit the rest later."""
    backend = session.backend()
    try:
        submitted = list(backend.launch(plan, ctx)) if plan.groups else []
    except SubmissionError as exc:
        if at_submit_limit(exc) and not _no_relays(session):
            return list(ctx.submitted), exc
        said = _without_relays(session, exc)
        if not ctx.submitted:
            if said is exc:
                raise
            raise said from exc
        raise incomplete(plan, ctx.submitted, said, pending_intents(session.store)) from exc
    ended = [r for r in submitted if r.state is not RecordState.SUBMITTED]  # local runs
    if ended:
        submitted = record_endings(session.store, submitted, session.live(ended),
                                   ctx.artifact_path)
    return submitted, None


def _unavailable(why: str) -> str:
    """The sentence every fallback says: relays cannot run here, why, and how to check."""
    return (f"relays are unavailable here ({why}; `drylaunch --validate` checks whether "
            "compute nodes may submit)")


def _without_relays(session: Session, exc: SubmissionError) -> SubmissionError:
    """``exc``, saying why no relay carries the rest when Slurm refused at a submit limit
    and relays cannot run here (``exc`` itself otherwise)."""
    why = _no_relays(session) if at_submit_limit(exc) else ""
    if not why:
        return exc
    out = SubmissionError(f"{exc}. Waves would carry the rest, but {_unavailable(why)}")
    out.uncertain = exc.uncertain
    return out


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
    try:
        locks.acquire()
    except ExperimentsError as exc:  # a relay beside the user's launch: queued again
        raise requeue_if_busy(session.backend(), exc) from None
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
