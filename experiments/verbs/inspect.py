"""``status``, ``history`` and the job look-ups behind ``cat``: one scheduler query each."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ExperimentsError
from ..model.id_cache import prime_stages
from ..session import Session
from ..tracking.ends import of_root, record_endings, root_of, roots, unknown_root_warning
from ..tracking.markers import DoneIndex
from ..tracking.staleness import Stale
from ..tracking.status import JobView, Live, StageStatus, latest_tasks, stage_status, task_history
from ..tracking.store import JobRecord
from .stale import find_stale


@dataclass
class StatusReport:
    """Per stage: counts of artifact states and the problems; plus what could not be asked."""

    stages: list[StageStatus]
    warnings: list[str] = field(default_factory=list)
    root: str = ""                                            # the root shown
    other_roots: list[str] = field(default_factory=list)  # roots of other jobs, not counted
    stale: list[Stale] = field(default_factory=list)  # built, but stale (counted as built)
    unreachable: bool = False  # a scheduler tracking some of them could not be asked


@dataclass
class HistoryReport:
    """Every tracked job with the state of each task, oldest first."""

    jobs: list[JobView]
    warnings: list[str] = field(default_factory=list)


def status(session: Session, stages: Sequence[str] | None = None, *,
           ask: bool = True) -> StatusReport:
    """Per stage: how many artifacts are built, running, queued, failed, not started.

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
    return StatusReport([stage_status(s, ex.stages[s], latest, live, ex.artifact_path, done)
                         for s in selected],
                        live.warnings() + unknown_root_warning(records) + stale_warnings,
                        root=ex.artifact_path, other_roots=others, stale=stale,
                        unreachable=bool(live.unreachable))


def history(session: Session, stages: Sequence[str] | None = None) -> HistoryReport:
    """Every tracked job with per-state task counts (one scheduler query in total)."""
    records = session.records(stages)
    live = session.live(records)
    records = record_endings(session.store, records, live, session.experiment.artifact_path)
    views = what_happened(session, records, live)
    views.sort(key=lambda v: (v.record.submitted_at, v.record.tier))
    return HistoryReport(views, live.warnings())


def what_happened(session: Session, records: list[JobRecord], live: Live) -> list[JobView]:
    """Each job with what happened to its tasks (recorded ends first), and its root."""
    several = len(roots(session.records())) > 1
    out = []
    for rec in records:
        root = root_of(rec)
        where = root or session.experiment.artifact_path
        out.append(JobView(rec, tuple(task_history(rec, i, live, where)
                                      for i in range(len(rec.tasks))), root, several))
    return out


def root_of_path(path: str) -> str:
    """A root as records keep it (normalised)."""
    return os.path.normpath(path)


def tracked_roots(session: Session) -> list[str | None]:
    """The artifact roots the project's jobs built into (None: a job recorded without one)."""
    return roots(session.records())


def find_job(session: Session, job: str) -> tuple[JobRecord, int | None]:
    """The record of ``<job_id>`` or ``<job_id>_<index>``."""
    job_id, _, idx = job.partition("_")
    for rec in session.records():
        if rec.job_id == job_id:
            if idx and (not idx.isdigit() or int(idx) >= len(rec.tasks)):
                raise ExperimentsError(f"job {job_id} has tasks 0-{len(rec.tasks) - 1}; {job} "
                                       "is not one of them")
            return rec, int(idx) if idx else None
    raise ExperimentsError(f"no job {job_id!r} in project {session.experiment.project!r}; "
                           "`history` lists the tracked jobs")


def job_view(session: Session, record: JobRecord) -> JobView:
    """One job with what happened to each of its tasks (recorded ends first)."""
    live = session.live([record])
    record = record_endings(session.store, [record], live, session.experiment.artifact_path)[0]
    return what_happened(session, [record], live)[0]
