"""``drylaunch`` and ``launch``: plan the stages, then show the plan or submit it.

Planning resolves each distinct requirement set once through the session's backend, so an
error names the first artifact that asked for it, and nothing is submitted before every group
has been resolved. ``launch`` holds the project's launch lock, reconciles intents left by a
crashed launch, and refuses to plan when a scheduler cannot say what is already queued.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from filelock import FileLock, Timeout

from .. import _gc, paths
from ..backends.base import Description, Resources, freeze_requirements
from ..config.settings import lock_mode
from ..errors import DefinitionError, ExperimentsError, SchedulerQueryError, SubmissionError
from ..launching.context import LaunchContext, Progress, pending_intents
from ..launching.project_budget import held_slots
from ..launching.python_check import python_problem
from ..launching.snapshot_pins import unpin
from ..launching.snapshots import Snapshot
from ..model.artifact import Artifact
from ..model.identity import check_relpath
from ..model.task import Download, Task, Upload
from ..plan import Plan, build_plan
from ..plan.lanes import ArrayLayout
from ..plan.overrides import Overrides, apply_overrides
from ..session import Session
from ..tracking.ends import of_root, record_endings, unknown_root_warning
from ..tracking.markers import DoneIndex
from ..tracking.staleness import Stale, move_marker_aside, utc_stamp
from ..tracking.status import Live, live_artifacts
from ..tracking.store import JobRecord, RecordState
from .cancel import other_files
from .code_snapshots import take as take_snapshot
from .launch_incomplete import incomplete
from .queued_stale import QueuedStale, for_drylaunch, settle
from .reconcile import reconcile_intents
from .retry import RetrySelection, select_failed
from .stale import find_stale


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


def drylaunch(session: Session, stages: Sequence[str] | None = None, *,
              with_deps: bool = False, validate: bool = False,
              overrides: Overrides | None = None,
              rebuild_stale: bool = False, retry_failed: bool = False) -> DryRun:
    """The plan that ``launch`` would submit; submits and records nothing.

    Stale built artifacts are listed in ``stale``; with ``rebuild_stale`` they (and their
    dependents) are planned as ``launch --rebuild-stale`` would; with ``retry_failed`` only
    the failed artifacts, with their escalated requirements listed in ``changes``.
    """
    records = of_root(session.records(), session.experiment.artifact_path)
    live = session.live(records)
    stale, stale_warnings = find_stale(session, stages)
    live, queued = for_drylaunch(session, stages, records, live,
                                 {s.artifact_id for s in stale}, rebuild_stale)
    retry = _retry(session, records, live) if retry_failed else None
    plan = make_plan(session, stages, with_deps, records, live, overrides=overrides,
                     rebuild={s.artifact_id for s in stale} if rebuild_stale else (),
                     retry=retry)
    backend = session.backend()
    dry = DryRun(plan, backend.name, problems=live.warnings() + stale_warnings,
                 overrides=overrides or Overrides(), stale=stale, rebuild_stale=rebuild_stale,
                 changes=[c.describe() for c in retry.changes] if retry else [],
                 queued_stale=queued)
    if validate and backend.name == "local":  # on Slurm the batch script checks on the node
        dry.problems.extend(filter(None, [python_problem(session.config.python
                                                         or sys.executable)]))
    dry.arrays, dry.layout_notes, problems = _layout(backend, plan, records)  # packs first:
    dry.problems.extend(problems)  # --validate checks the arrays launch submits
    for group in plan.groups:
        dry.details.append(backend.describe(group, validate=validate))
        dry.problems.extend(dry.details[-1].problems)
    check_storage(plan)
    return dry


def _layout(backend: object, plan: Plan, records: Sequence[JobRecord]
            ) -> tuple[list[ArrayLayout], list[str], list[str]]:
    """The arrays a backend that lays out dependencies (Slurm) would submit, if it can say,
    with its notes and problems about them (packed to fit the submit limit, or cannot)."""
    notes = getattr(backend, "layout_notes", None)
    layout = getattr(backend, "layout", None)
    if (layout is None and notes is None) or not plan.groups:
        return [], [], []
    try:
        if notes is not None:
            arrays, said, problems = notes(plan, records)
            return list(arrays), list(said), list(problems)
        return list(layout(plan, records)), [], []  # type: ignore[misc]
    except SchedulerQueryError:
        return [], [], []


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
    ex = session.experiment
    with _launch_lock(session):
        warnings = reconcile(session) + other_files(session)
        records = of_root(session.records(), ex.artifact_path)
        warnings += unknown_root_warning(records)
        live = session.live(records)
        if live.unreachable:
            name, why = next(iter(live.unreachable.items()))
            raise SchedulerQueryError(
                f"cannot launch: the {name} scheduler could not say which jobs are already "
                f"queued ({why}); nothing was submitted. Try again when it answers")
        record_endings(session.store, records, live, ex.artifact_path)  # before rebuilding
        rebuild: set[str] = set()
        if rebuild_stale:
            stale, stale_warnings = find_stale(session, stages)
            rebuild = {s.artifact_id for s in stale}
            warnings.extend(stale_warnings)
        settled = settle(session, stages, records, live, rebuild, rebuild_stale, replace_queued)
        live, warnings = settled.live, warnings + settled.warnings
        retry = _retry(session, records, live) if retry_failed else None
        plan = make_plan(session, stages, with_deps, records, live, overrides=overrides,
                         rebuild=rebuild, retry=retry)
        check_storage(plan)
        snapshot, snapshot_warnings = take_snapshot(session) if plan.groups else (None, [])
        warnings.extend(snapshot_warnings)
        ctx = LaunchContext.for_plan(
            plan, project=ex.project, home=session.store.home, config=session.config,
            store=session.store, artifact_path=ex.artifact_path, code_path=ex.code_path,
            python=session.config.python or sys.executable, progress=progress,
            max_running=(max_running if max_running is not None
                         else session.config.max_running_for(ex.project)),
            overrides=overrides, snapshot=snapshot,
            experiment_file=getattr(ex, "source_file", ""),
            setup=getattr(ex, "setup", ()))
        ctx.held = _held(session, records, live, ctx.max_running) if max_running is None else []
        invalidated = _set_aside(ex.artifact_path, plan) if rebuild else []
        try:
            submitted = session.backend().launch(plan, ctx) if plan.groups else []
        except SubmissionError as exc:
            if not ctx.submitted:
                raise
            raise incomplete(plan, ctx.submitted, exc,
                             pending_intents(session.store)) from exc
        ended = [r for r in submitted if r.state is not RecordState.SUBMITTED]  # local runs
        if ended:
            submitted = record_endings(session.store, submitted, session.live(ended),
                                       ex.artifact_path)
        return LaunchResult(plan, submitted, warnings, snapshot, invalidated,
                            [c.describe() for c in retry.changes] if retry else [],
                            settled.replaced)


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


def _retry(session: Session, records: Sequence[JobRecord], live: Live) -> RetrySelection:
    return select_failed(records, live, session.experiment.artifact_path,
                         session.config.escalation)


@contextmanager
def _launch_lock(session: Session) -> Iterator[None]:
    """One launcher per project at a time; a second one is refused, not queued. The launch's
    code snapshot stays pinned while it holds the lock (see ``launching.snapshot_pins``)."""
    project = session.experiment.project
    path = paths.launch_lock(session.store.home, project)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=2, mode=lock_mode(session.config.umask))
    try:
        lock.acquire()
    except Timeout:
        raise ExperimentsError(
            f"another launch of project {project!r} is running (lock {path}); wait for it to "
            "finish, or check `status`") from None
    try:
        yield
    finally:
        unpin(session.store.home, project)  # the jobs' records name its snapshot now
        lock.release()


def reconcile(session: Session) -> list[str]:
    """Resolve intents left by a crashed launch: adopt the job if it exists, drop it only when
    no submission can still be in flight, and cancel untracked twins (see ``verbs.reconcile``)."""
    return reconcile_intents(session)


def make_plan(session: Session, stages: Sequence[str] | None, with_deps: bool,
              records: Sequence[JobRecord], live: Live, *,
              overrides: Overrides | None = None,
              rebuild: Collection[str] = (),
              retry: RetrySelection | None = None) -> Plan:
    """The plan for ``stages``: closure, skips (built or live), tiers and resource groups.

    Only ``records`` building into the session's root hold artifacts; ``overrides`` are merged
    last, over the config's defaults and each artifact's own requirements. Artifact ids in
    ``rebuild`` count as not built (``--rebuild-stale``: staleness is transitive, so the
    dependents of a stale artifact are in it too). With ``retry``, only its failed artifacts
    are planned (every other one counts as done), with its escalated requirements.
    """
    ex = session.experiment
    selected = session.selected(stages)
    backend = session.backend()
    cache: dict[tuple[Any, ...], Resources] = {}
    seen: dict[tuple[type, tuple[tuple[str, Any], ...]], Resources] = {}

    memo = retry is None  # --retry-failed escalates per artifact: equal asks may differ

    def resources(art: Artifact) -> Resources:
        reqs = art.get_requirements()
        if memo and type(reqs) is dict:  # the same requirements as an earlier artifact
            try:
                return seen[(type(art), tuple(reqs.items()))]
            except (KeyError, TypeError):  # new, or a value that is not hashable
                pass
        where = f"{type(art).__qualname__} {art.relpath}"
        merged = session.config.resolve_requirements(requirements_of(art, where, reqs))
        if retry is not None:
            merged.update(retry.overrides(art, merged))
        key = freeze_requirements(merged, where)
        if key not in cache:
            cache[key] = backend.resolve(merged, where)
        if memo and type(reqs) is dict:
            try:
                seen[(type(art), tuple(reqs.items()))] = cache[key]
            except TypeError:
                pass
        return cache[key]

    done = DoneIndex(ex.artifact_path)
    checked: set[type] = set()
    redo = frozenset(rebuild)

    def built(art: Artifact) -> bool:
        cls = type(art)
        if cls.relpath is not Artifact.relpath or cls not in checked:
            check_relpath(art.relpath, cls.__qualname__)  # an override: check every one
            if cls.relpath is Artifact.relpath:
                checked.add(cls)  # the default is safe by construction once its class name is
        if retry is not None and art.artifact_id not in retry.ids:
            return True  # --retry-failed: only the failed artifacts are planned
        if redo and art.artifact_id in redo:
            return False
        return done(art.relpath)

    with _gc.paused():
        plan = build_plan(ex.stages, selected, is_built=built,
                          live=live_artifacts(of_root(records, ex.artifact_path), live),
                          resources=resources, construct=steps_recorder(session),
                          with_deps=with_deps)
    return apply_overrides(plan, overrides or Overrides(), backend.resolve)


def requirements_of(art: Artifact, where: str, reqs: Any = None) -> dict[str, Any]:
    """``art.get_requirements()`` (or ``reqs``, its result), checked to be a dict (None means
    none)."""
    if reqs is None:
        reqs = art.get_requirements()
    if reqs is None:
        return {}
    if not isinstance(reqs, dict):
        raise DefinitionError(f"{where}: get_requirements() must return a dict, got "
                              f"{type(reqs).__name__}")
    return reqs


def steps_recorder(session: Session) -> Callable[[Artifact], tuple[Any, ...]]:
    """A function that runs an artifact's ``construct`` on a fresh ``Task`` builder and returns
    the steps it recorded (the experiment's paths looked up once, not per artifact)."""
    ex = session.experiment
    artifact_path, code_path, gs_path = ex.artifact_path, ex.code_path, ex.gs_path

    def record(art: Artifact) -> tuple[Any, ...]:
        relpath = art.relpath
        builder = Task(artifact_path=artifact_path, code_path=code_path, relpath=relpath,
                       gs_path=gs_path, where=f"{type(art).__qualname__} {relpath}")
        try:
            art.construct(builder)
        except ExperimentsError:
            raise
        except Exception as exc:
            raise DefinitionError(f"{type(art).__qualname__}.construct raised "
                                  f"{type(exc).__name__}: {exc} (artifact {relpath})") from exc
        return tuple(builder.steps)

    return record


def check_storage(plan: Plan) -> None:
    """Fail before submission when a storage step's URL or packages are unusable."""
    urls = {s.url for g in plan.groups for t in g.tasks for s in t.steps
            if isinstance(s, (Upload, Download))}
    if urls:
        from .. import storage

        for url in sorted(urls):
            storage.check_url(url)

