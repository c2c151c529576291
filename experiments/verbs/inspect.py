"""``status``, ``history`` and the job look-ups behind ``cat``: one scheduler query each."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ExperimentsError
from ..launching.relay import is_relay, wave_lines
from ..model.id_cache import prime_stages
from ..model.sweep_summary import SweepSummary
from ..session import Session
from ..states import TaskKey
from ..tracking.ends import of_root, record_endings, root_of, roots, unknown_root_warning
from ..tracking.foreign import Untrusted, untrusted
from ..tracking.markers import DoneIndex
from ..tracking.stage_counts import stage_status
from ..tracking.staleness import Stale
from ..tracking.status import (
    ArtifactState,
    JobView,
    Live,
    StageStatus,
    TaskView,
    latest_tasks,
    task_history,
)
from ..tracking.store import JobRecord
from ..tracking.sweep_outcomes import RootOutcomes, stages_now, sweeps_now
from .accept import accepted_log
from .stale import find_stale


@dataclass
class StatusReport:
    """Per stage: counts of artifact states and the problems; plus what could not be asked."""

    stages: list[StageStatus]
    warnings: list[str] = field(default_factory=list)
    root: str = ""                                            # the root shown
    other_roots: list[str] = field(default_factory=list)  # roots of other jobs, not counted
    stale: list[Stale] = field(default_factory=list)  # built, but stale (counted as stale)
    untrusted: list[Untrusted] = field(default_factory=list)  # built by an untrusted account
    unreachable: bool = False  # a scheduler tracking some of them could not be asked
    sweeps: list[str] = field(default_factory=list)  # undecided sweeps and their next relay
    relaying: bool = False  # a relay is queued or running: more will be submitted
    sweep_rungs: list[SweepSummary] = field(default_factory=list)  # each sweep rung by rung


@dataclass
class HistoryReport:
    """Every tracked job with the state of each task, oldest first."""

    jobs: list[JobView]
    warnings: list[str] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)  # `accept`s, oldest first


def status(session: Session, stages: Sequence[str] | None = None, *,
           ask: bool = True) -> StatusReport:
    """Per stage: how many artifacts are built, stale, running, queued, failed, not started.

    ``ask=False`` asks no scheduler and records no end: only for artifacts whose every end the
    file system shows (``wait`` after :class:`~.wait_disk.DiskWatch` said so)."""
    selected = session.selected(stages)
    ex = session.experiment
    prime_stages(ex.stages, selected, session.store.home, ex.project)
    # every stage (an artifact may belong to several); jobs of other roots hold nothing here
    if ask:
        tracked = session.tracked()
        every, records, live = tracked.every, tracked.records, tracked.live
    else:
        every, live = session.records(), Live()
        records = of_root(every, ex.artifact_path)
    # One listing per folder, taken after the scheduler answered (a task it saw end has its
    # marker listed), shared by the endings, the staleness check and the stages.
    done = DoneIndex(ex.artifact_path)
    if ask:
        records = record_endings(session.store, records, live, ex.artifact_path, done)
    latest = latest_tasks(records)
    others = [r for r in roots(every) if r is not None and r != root_of_path(ex.artifact_path)]
    stale, stale_warnings = find_stale(session, selected, with_deps=False, done=done)
    seen = RootOutcomes(ex.artifact_path, of_root(records, ex.artifact_path), live, done)
    now, waiting = stages_now(ex.stages, ex.artifact_path, records, live, done, seen)
    why = {s.artifact_id: s.reason for s in stale}
    foreign = [u for s in selected for u in untrusted(s, now[s], done)]
    return StatusReport([stage_status(s, now[s], latest, live, ex.artifact_path, done, why)
                         for s in selected],
                        live.warnings() + unknown_root_warning(records) + stale_warnings,
                        root=ex.artifact_path, other_roots=others, stale=stale,
                        unreachable=bool(live.unreachable), untrusted=foreign,
                        sweeps=sweep_lines(waiting, records, live, selected) + wave_lines(
                            records, lambda r: r.stage in selected and _live(r, live)),
                        relaying=any(is_relay(r) and _live(r, live) for r in records
                                     if r.stage in selected),
                        sweep_rungs=sweeps_now(ex.stages, selected, ex.artifact_path, records,
                                               live, done, seen))


def _live(record: JobRecord, live: Live) -> bool:
    """Whether the (one-task) job ``record`` is queued or running."""
    st = live.get(TaskKey(record.job_id or "", 0))
    return st is not None and st.state.live


def sweep_lines(waiting: Sequence[str], records: Sequence[JobRecord], live: Live,
                selected: Sequence[str]) -> list[str]:
    """Per undecided stage, the rung it waits for and the relay that plans the next one:
    ``sweep: rung 2 of 3 (budget 3); relay job 213 plans the next rung once this one ends``."""
    relays = {r.stage: r.job_id or "?" for r in records if is_relay(r) and _live(r, live)}
    out = []
    for line in waiting:
        if line.split(":")[0] not in selected:
            continue
        job = relays.get(line.split(":")[0]) or next(iter(relays.values()), None)
        out.append(f"{line}; relay job {job} plans the next rung once this one ends" if job else
                   f"{line}; no relay is queued: `launch` to go on")
    return out


def history(session: Session, stages: Sequence[str] | None = None) -> HistoryReport:
    """Every tracked job with per-state task counts (one scheduler query in total)."""
    records = session.records(stages)
    live = session.live(records)
    records = record_endings(session.store, records, live, session.experiment.artifact_path)
    views = what_happened(session, records, live)
    views.sort(key=lambda v: (v.record.submitted_at, v.record.tier))
    wanted = set(session.selected(stages))
    accepted = [a for a in accepted_log(session)
                if not isinstance(a.get("stages"), list) or wanted & set(a["stages"])]
    return HistoryReport(views, live.warnings(), accepted)


def what_happened(session: Session, records: list[JobRecord], live: Live) -> list[JobView]:
    """Each job with what happened to its tasks (recorded ends first), its root, and for a
    task that did not build its artifact, the first later job that did ("rebuilt by")."""
    every = session.records()
    several = len(roots(every)) > 1
    out = []
    for rec in records:
        root = root_of(rec)
        where = root or session.experiment.artifact_path
        out.append(JobView(rec, tuple(task_history(rec, i, live, where)
                                      for i in range(len(rec.tasks))), root, several))
    default = session.experiment.artifact_path
    builds = _builds(every, out, default)
    return [replace(v, tasks=tuple(_rebuilt(v, t, builds, default) for t in v.tasks))
            for v in out]


Builds = dict[tuple[str, str], list[tuple[str, str]]]  # (root, artifact id) -> (when, job id)


def _builds(records: Sequence[JobRecord], views: Sequence[JobView], default_root: str) -> Builds:
    """Who built each artifact, from what happened (not from today's markers, which a later
    rebuild or ``invalidate`` changes): the views' built tasks and every other job's
    recorded ends, oldest first."""
    out: Builds = {}
    shown = {v.record.name for v in views}

    def add(rec: JobRecord, index: int) -> None:
        key = (root_of(rec) or default_root, rec.tasks[index][0])
        out.setdefault(key, []).append((rec.submitted_at, rec.job_id or ""))

    for v in views:
        for t in v.tasks:
            if t.state is ArtifactState.BUILT:
                add(v.record, t.index)
    for rec in records:
        if rec.name not in shown:
            for i, entry in rec.ended.items():
                if entry.get("state") == ArtifactState.BUILT.value and int(i) < len(rec.tasks):
                    add(rec, int(i))
    for found in out.values():
        found.sort()
    return out


def _rebuilt(view: JobView, task: TaskView, builds: Builds, default_root: str) -> TaskView:
    """``task`` with "rebuilt by <job>" when it did not build its artifact and a later job
    (of the same root) did; the first such job."""
    rec = view.record
    if task.state is ArtifactState.BUILT or task.index < 0:
        return task
    key = (view.root or default_root, rec.tasks[task.index][0])
    later = [job for when, job in builds.get(key, [])
             if when >= rec.submitted_at and job and job != rec.job_id]
    return replace(task, note=f"rebuilt by {later[0]}") if later else task


def root_of_path(path: str) -> str:
    """A root as records keep it (normalised)."""
    return os.path.normpath(path)


def tracked_roots(session: Session) -> list[str | None]:
    """The artifact roots the project's jobs built into (None: a job recorded without one)."""
    return roots(session.records())


def find_job(session: Session, job: str) -> tuple[JobRecord, int | None]:
    """The record of ``<job_id>`` (index None), ``<job_id>_<index>`` (Slurm's task id) or
    ``<job_id>_<index>/<relpath>`` (one artifact of a pack), with the artifact's position."""
    record, where = find_tasks(session, job)
    if where is not None and len(where) > 1:
        raise ExperimentsError(f"{job} is a pack's task that builds {len(where)} artifacts; "
                               f"name one as {job}/<relpath> (`cat {job}` lists them)")
    return record, where[0] if where is not None else None


def find_tasks(session: Session, job: str) -> tuple[JobRecord, list[int] | None]:
    """The record of ``<job_id>`` (None: the whole job), or the positions of the artifacts of
    Slurm's task ``<job_id>_<index>`` (several for a pack's), or of ``<job_id>_<index>/<relpath>``
    (one artifact of it)."""
    task, _, relpath = job.partition("/")
    job_id, _, idx = task.partition("_")
    for rec in session.records():
        if rec.job_id != job_id:
            continue
        if not idx:
            return rec, None
        where = rec.positions(int(idx)) if idx.isdigit() else []
        if not where:
            indices = rec.array_indices or [0, len(rec.tasks) - 1]
            raise ExperimentsError(f"job {job_id} has tasks {min(indices)}-{max(indices)}; "
                                   f"{task} is not one of them")
        if relpath:
            where = [i for i in where if rec.tasks[i][1] == relpath.rstrip("/")]
            if not where:
                raise ExperimentsError(f"task {task} does not build {relpath}; `cat {task}` "
                                       "lists what it builds")
        return rec, where
    raise ExperimentsError(f"no job {job_id!r} in project {session.experiment.project!r}; "
                           "`history` lists the tracked jobs")


def job_view(session: Session, record: JobRecord) -> JobView:
    """One job with what happened to each of its tasks (recorded ends first)."""
    live = session.live([record])
    record = record_endings(session.store, [record], live, session.experiment.artifact_path)[0]
    return what_happened(session, [record], live)[0]
