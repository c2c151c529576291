"""What is built, queued, running, failed or not started: markers first, then the scheduler.

The done marker is the truth about what is built; the store says what was submitted; the
scheduler is asked (once per backend, for all jobs together) only about what may be live.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import paths
from .artifact import Artifact
from .backends.base import JobState
from .store import JobRecord

# Task/artifact states shown to people, in display order.
BUILT, QUEUED, RUNNING, FAILED, DEP_FAILED = "built", "queued", "running", "failed", "dep-failed"
CANCELLED, UNKNOWN, NOT_STARTED, SUBMITTING = "cancelled", "unknown", "not started", "submitting"
ORDER = (BUILT, RUNNING, QUEUED, FAILED, DEP_FAILED, CANCELLED, UNKNOWN, SUBMITTING, NOT_STARTED)


class Querier(Protocol):
    def query(self, records: Sequence[JobRecord]) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class TaskView:
    """One array task: which artifact it builds and the state it is in."""

    job_id: str
    index: int
    relpath: str
    state: str
    detail: str = ""


@dataclass(frozen=True)
class JobView:
    """One tracked job with its tasks and their counts per state."""

    record: JobRecord
    tasks: tuple[TaskView, ...]

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.state] = out.get(t.state, 0) + 1
        return out


@dataclass
class StageStatus:
    """Counts of artifact states in one stage, and the failures with their reasons."""

    stage: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[TaskView] = field(default_factory=list)


class LiveStates(dict[str, JobState]):
    """Task states keyed ``<job_id>_<index>``, with the scheduler's reason for held tasks."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, str] = {}


def live_states(records: Sequence[JobRecord],
                backends: Mapping[str, Querier]) -> LiveStates:
    """Scheduler states of every task of ``records``: one query per backend for all jobs."""
    out = LiveStates()
    by_backend: dict[str, list[JobRecord]] = {}
    for r in records:
        if r.job_id and r.state not in ("finished",):
            by_backend.setdefault(r.backend, []).append(r)
    for name, recs in by_backend.items():
        for key, value in backends[name].query(recs).items():
            out[key] = value if isinstance(value, JobState) else value.state
            reason = str(getattr(value, "reason", ""))
            if out[key] is JobState.PENDING and "held" in reason.lower():
                out.held[key] = reason
    return out


def read_status(root: str, relpath: str) -> dict[str, Any]:
    """The worker's last record for an artifact (empty when it never ran)."""
    try:
        with open(paths.status_file(root, relpath), encoding="utf-8") as fh:
            data = json.load(fh)
            return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def is_built(root: str, relpath: str) -> bool:
    return os.path.exists(paths.done_marker(root, relpath))


def task_state(record: JobRecord, index: int, live: LiveStates, root: str) -> TaskView:
    """The state of one task; never "built" without the artifact's done marker."""
    job_id = record.job_id or "?"
    relpath = record.tasks[index][1]
    if is_built(root, relpath):
        return TaskView(job_id, index, relpath, BUILT)
    st = live.get(f"{job_id}_{index}")
    if st is not None and st.live:
        held = live.held.get(f"{job_id}_{index}")
        detail = (f"held by the scheduler ({held}); it will not start until "
                  f"`scontrol release {job_id}_{index}`") if held else ""
        return TaskView(job_id, index, relpath, RUNNING if st is JobState.RUNNING else QUEUED,
                        detail)
    if record.state == "submitting":
        return TaskView(job_id, index, relpath, SUBMITTING, "submission not confirmed")
    info = read_status(root, relpath)
    worker_state, error = info.get("state"), str(info.get("error") or "")
    if worker_state == "dependency_failed":
        return TaskView(job_id, index, relpath, DEP_FAILED, error)
    cancelled = st is JobState.CANCELLED or record.state == "cancelled"
    if worker_state == "failed" or (worker_state == "interrupted" and not cancelled):
        return TaskView(job_id, index, relpath, FAILED, error)
    if cancelled:
        return TaskView(job_id, index, relpath, CANCELLED, error)
    if st is JobState.FAILED:
        return TaskView(job_id, index, relpath, FAILED, "the scheduler reports the task failed "
                                                        "(time limit, memory, node failure…)")
    if st is JobState.COMPLETED:
        return TaskView(job_id, index, relpath, FAILED, "task ended without a done marker")
    return TaskView(job_id, index, relpath, UNKNOWN, "no longer known to the scheduler and "
                                                     "not built")


def job_views(records: Sequence[JobRecord], live: LiveStates, root: str) -> list[JobView]:
    return [JobView(r, tuple(task_state(r, i, live, root) for i in range(len(r.tasks))))
            for r in records]


def stage_status(stage: str, artifacts: Iterable[Artifact], records: Sequence[JobRecord],
                 live: LiveStates, root: str) -> StageStatus:
    """Per-artifact states of a stage: built, running, queued, failed, …, not started."""
    latest: dict[str, tuple[JobRecord, int]] = {}
    for rec in records:  # later records win: they are the newest attempt
        for i, (artifact_id, _relpath) in enumerate(rec.tasks):
            latest[artifact_id] = (rec, i)
    out = StageStatus(stage)
    for art in artifacts:
        relpath = art.relpath
        held = False
        if art.artifact_id in latest:  # task_state looks at the done marker first
            rec, i = latest[art.artifact_id]
            view = task_state(rec, i, live, root)
            held = f"{rec.job_id}_{i}" in live.held
        elif is_built(root, relpath):
            view = TaskView("", -1, relpath, BUILT)
        else:
            view = TaskView("", -1, relpath, NOT_STARTED)
        out.counts[view.state] = out.counts.get(view.state, 0) + 1
        if view.state in (FAILED, DEP_FAILED, UNKNOWN) or held:
            out.problems.append(view)
    return out
