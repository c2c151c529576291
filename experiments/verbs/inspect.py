"""``status``, ``history`` and the job look-ups behind ``cat``: one scheduler query each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ExperimentsError
from ..markers import DoneIndex
from ..session import Session
from ..status import JobView, StageStatus, job_views, latest_tasks, stage_status
from ..store import JobRecord


@dataclass
class StatusReport:
    """Per stage: counts of artifact states and the problems; plus what could not be asked."""

    stages: list[StageStatus]
    warnings: list[str] = field(default_factory=list)


@dataclass
class HistoryReport:
    """Every tracked job with the state of each task, oldest first."""

    jobs: list[JobView]
    warnings: list[str] = field(default_factory=list)


def status(session: Session, stages: Sequence[str] | None = None) -> StatusReport:
    """Per stage: how many artifacts are built, running, queued, failed, not started."""
    selected = session.selected(stages)
    records = session.records()  # every stage: an artifact may belong to several
    live = session.live(records)
    latest = latest_tasks(records)
    ex = session.experiment
    done = DoneIndex(ex.artifact_path)  # one listing per folder, shared by the stages
    return StatusReport([stage_status(s, ex.stages[s], latest, live, ex.artifact_path, done)
                         for s in selected], live.warnings())


def history(session: Session, stages: Sequence[str] | None = None) -> HistoryReport:
    """Every tracked job with per-state task counts (one scheduler query in total)."""
    records = session.records(stages)
    live = session.live(records)
    views = job_views(records, live, session.experiment.artifact_path)
    views.sort(key=lambda v: (v.record.submitted_at, v.record.tier))
    return HistoryReport(views, live.warnings())


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
    """One job with the state of each of its tasks."""
    live = session.live([record])
    return job_views([record], live, session.experiment.artifact_path)[0]
