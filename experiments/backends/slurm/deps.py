"""Keeping ``aftercorr`` from leaving anything pending forever.

``aftercorr`` releases task ``i`` only when upstream task ``i`` *succeeded* in Slurm's eyes.
Workers therefore exit 0 after an ordinary failure (:data:`.script.WORKER_ENV`). For what the
scheduler kills (time limit, memory, node failure, cancellation) the counterparts pend with
reason ``DependencyNeverSatisfied``; two parties end them as "dependency failed", whoever comes
first:

- the dying worker, in its grace period: ``write_dependents`` leaves, in the upstream job's spec
  directory, one small file per array waiting on it task by task (written right after that
  array is submitted), which :func:`experiments.worker.common.cancel_dependents` reads;
- the next ``status``/``launch``/``wait``: ``end_never_satisfied`` cancels every tracked task
  Slurm reports pending ``DependencyNeverSatisfied`` and records it as dependency failed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ... import _atomic, paths
from ...errors import SchedulerQueryError
from ...states import JobState, TaskKey, TaskStatus
from ...tracking.store import JobRecord
from ...worker import specs
from ...worker.common import record_dependency_failed
from .client import SlurmClient

NEVER = "DependencyNeverSatisfied"
DEP_FAILED_REASON = "dependency failed: cancelled because a dependency ended without being built"


def write_dependents(upstream: JobRecord, dependent: JobRecord) -> None:
    """Tell ``upstream``'s workers which task of ``dependent`` waits for each of theirs."""
    if not upstream.spec_dir or not dependent.job_id:
        return
    try:
        header = specs.read_header(dependent.spec_dir)
        info = {"job": dependent.job_id, "spec_dir": dependent.spec_dir,
                "artifact_path": header.artifact_path,
                "tasks": {str(dependent.array_index(i)): relpath
                          for i, (_, relpath) in enumerate(dependent.tasks)}}
        folder = os.path.join(upstream.spec_dir, paths.DEPENDENTS)
        os.makedirs(folder, exist_ok=True)
        _atomic.write_json(os.path.join(folder, f"{dependent.job_id}.json"), info,
                           durable=False)
    except (OSError, KeyError, ValueError):
        pass  # best effort: the next status cancels what this would have let the worker cancel


def mark_cancel_requested(record: JobRecord) -> None:
    """Mark a job the user is cancelling, so that its tasks show as cancelled, not as
    dependency failed (a dying upstream worker skips the dependents of a marked job)."""
    if record.spec_dir and os.path.isdir(record.spec_dir):
        try:
            _atomic.write_bytes(os.path.join(record.spec_dir, paths.CANCEL_REQUESTED), b"",
                                durable=False)
        except OSError:
            pass


def never_satisfied(status: TaskStatus) -> bool:
    return status.state is JobState.PENDING and status.reason.startswith(NEVER)


def end_never_satisfied(client: SlurmClient, records: Sequence[JobRecord],
                        statuses: Mapping[TaskKey, TaskStatus]) -> dict[TaskKey, TaskStatus]:
    """Cancel tracked tasks pending ``DependencyNeverSatisfied`` (they would never start) and
    record them as dependency failed; return the statuses with those tasks cancelled."""
    out = dict(statuses)
    pending = JobState.PENDING  # inlined test of never_satisfied: one pass over every task
    stuck = [k for k, st in statuses.items()
             if st.state is pending and st.reason.startswith(NEVER)]
    if not stuck:
        return out
    by_id = {r.job_id: r for r in records if r.job_id}
    targets = [(k, by_id[k.job_id]) for k in stuck if k.job_id in by_id
               and k.index < len(by_id[k.job_id].tasks)]
    try:
        client.cancel([f"{k.job_id}_{rec.array_index(k.index)}" for k, rec in targets])
    except SchedulerQueryError:
        return out  # still pending: the next query tries again
    for key, rec in targets:
        try:
            root = specs.read_header(rec.spec_dir).artifact_path
            record_dependency_failed(root, rec.tasks[key.index][1],
                                     f"{key.job_id}_{rec.array_index(key.index)}",
                                     DEP_FAILED_REASON)
        except (OSError, KeyError, ValueError):
            pass
        out[key] = TaskStatus(JobState.CANCELLED, "CANCELLED", DEP_FAILED_REASON,
                              statuses[key].exit_code)
    return out
