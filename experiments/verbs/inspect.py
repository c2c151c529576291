"""``status``, ``history`` and the job look-ups behind ``cat``: one scheduler query each."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ExperimentsError
from ..launching.relay import is_relay
from ..session import Session
from ..states import TaskKey
from ..tracking.ends import record_endings, root_of, roots, unknown_root_warning
from ..tracking.markers import DoneIndex
from ..tracking.staleness import Stale
from ..tracking.status import JobView, Live, StageStatus, latest_tasks, stage_status, task_history
from ..tracking.store import JobRecord
from ..tracking.sweep_outcomes import stages_now
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
    sweeps: list[str] = field(default_factory=list)  # undecided sweeps and their next relay
    relaying: bool = False  # a relay is queued or running: more will be submitted


@dataclass
class HistoryReport:
    """Every tracked job with the state of each task, oldest first."""

    jobs: list[JobView]
    warnings: list[str] = field(default_factory=list)


def status(session: Session, stages: Sequence[str] | None = None) -> StatusReport:
    """Per stage: how many artifacts are built, running, queued, failed, not started."""
    selected = session.selected(stages)
    ex = session.experiment
    # every stage (an artifact may belong to several); jobs of other roots hold nothing here
    tracked = session.tracked()
    every, records, live = tracked.every, tracked.records, tracked.live
    # One listing per folder, taken after the scheduler answered (a task it saw end has its
    # marker listed), shared by the endings, the staleness check and the stages.
    done = DoneIndex(ex.artifact_path)
    records = record_endings(session.store, records, live, ex.artifact_path, done)
    latest = latest_tasks(records)
    others = [r for r in roots(every) if r is not None and r != root_of_path(ex.artifact_path)]
    stale, stale_warnings = find_stale(session, selected, with_deps=False, done=done)
    now, waiting = stages_now(ex.stages, ex.artifact_path, records, live, done)
    return StatusReport([stage_status(s, now[s], latest, live, ex.artifact_path, done)
                         for s in selected],
                        live.warnings() + unknown_root_warning(records) + stale_warnings,
                        root=ex.artifact_path, other_roots=others, stale=stale,
                        unreachable=bool(live.unreachable),
                        sweeps=sweep_lines(waiting, records, live, selected),
                        relaying=any(is_relay(r) and _live(r, live) for r in records
                                     if r.stage in selected))


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
