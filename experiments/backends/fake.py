"""``FakeBackend``: jobs kept in memory, for unit tests of everything above the seam.

It submits nothing and runs nothing. A test launches a plan through it, then says what happened
to each task (``finish``, ``fail``, ``time_out``, ``hold``, ``lose``), or makes the scheduler
misbehave (``unreachable``, ``refuse_next``, ``uncertain_next``). ``finish`` writes the done
marker and ``fail`` the worker's status file, exactly where the real worker would, so status
and history read the same files as on a real cluster. ``calls`` counts every method called.

It is not proof that anything works on a scheduler: the Slurm and local backends are tested
for real.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import _atomic, paths
from ..errors import SchedulerQueryError, SubmissionError
from ..plan import Group, Plan, chunk
from ..resources import Resources, Scalar, common_resources
from ..states import JobState, Outlook, TaskKey, TaskStatus
from ..tracking.store import JobRecord
from ..worker.common import WorkerState
from .base import Description

if TYPE_CHECKING:
    from ..launching.launch_context import LaunchContext

NAME = "fake"


class SubmissionLost(SubmissionError):
    """The fake's stand-in for an ambiguous submission: the job may exist (it does)."""

    uncertain = True


@dataclass
class _Job:
    name: str
    relpaths: list[str]
    root: str
    tasks: list[TaskStatus] = field(default_factory=list)


class FakeBackend:
    """An in-memory backend whose tasks change state only when a test says so."""

    name = NAME

    def __init__(self, max_array_size: int = 1000) -> None:
        self.max_array_size = max_array_size
        self.jobs: dict[str, _Job] = {}
        self.calls: Counter[str] = Counter()
        self.unreachable = False
        self._refuse: list[str] = []
        self._uncertain = 0
        self._next_id = 100

    # -- the seam ---------------------------------------------------------------------------
    def resolve(self, requirements: Mapping[str, Scalar], where: str) -> Resources:
        self.calls["resolve"] += 1
        return common_resources(requirements, where)

    def describe(self, group: Group, *, validate: bool) -> Description:
        self.calls["describe"] += 1
        return Description((f"fake array of {len(group.tasks)} task(s): "
                            f"{group.resources.summary()}",))

    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]:
        self.calls["launch"] += 1
        group_no = 0
        for tier in plan.tiers:
            for group in tier:
                for chunk_no, tasks in enumerate(chunk(group.tasks, self.max_array_size)):
                    job = ctx.prepare(group, tasks, ctx.job_name(group, group_no, chunk_no),
                                      NAME)
                    job_id = self._submit(job.record.name, [t.relpath for t in tasks],
                                          ctx.artifact_path)
                    if job_id is None:
                        ctx.discard(job)
                        raise SubmissionError(f"the fake scheduler refused job "
                                              f"{job.record.name}: {self._refuse.pop(0)}")
                    ctx.confirm(job, job_id)
                group_no += 1
        return ctx.submitted

    def query(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskStatus]:
        self.calls["query"] += 1
        if self.unreachable:
            raise SchedulerQueryError("the fake scheduler is unreachable")
        out: dict[TaskKey, TaskStatus] = {}
        for rec in records:
            job = self.jobs.get(rec.job_id or "")
            if job is not None:
                for i, status in enumerate(job.tasks):
                    if status.state is not JobState.UNKNOWN:  # a lost task is simply absent
                        out[TaskKey(rec.job_id or "", i)] = status
        return out

    def cancel(self, records: Sequence[JobRecord]) -> None:
        self.calls["cancel"] += 1
        if self.unreachable:
            raise SchedulerQueryError("the fake scheduler is unreachable")
        for job in (self.jobs.get(rec.job_id or "") for rec in records):
            for i, status in enumerate(job.tasks if job else []):
                if job and status.state.live:
                    job.tasks[i] = TaskStatus(JobState.CANCELLED, "CANCELLED")

    def find_by_name(self, name: str) -> list[str]:
        self.calls["find_by_name"] += 1
        if self.unreachable:
            raise SchedulerQueryError("the fake scheduler is unreachable")
        return sorted(i for i, job in self.jobs.items() if job.name == name)

    # -- what a test says happened ----------------------------------------------------------
    def refuse_next(self, message: str = "invalid partition") -> None:
        """The next submission is refused for sure (nothing is created)."""
        self._refuse.append(message)

    def uncertain_next(self) -> None:
        """The next submission creates the job but the launcher never hears back."""
        self._uncertain += 1

    def finish(self, job_id: str, index: int | None = None) -> None:
        """Tasks end COMPLETED, with the done marker written as the worker would."""
        for i in self._indices(job_id, index):
            job = self.jobs[job_id]
            _atomic.write_json(paths.done_marker(job.root, job.relpaths[i]),
                               {"job": f"{job_id}_{i}"}, durable=False)  # as the worker does
            job.tasks[i] = TaskStatus(JobState.COMPLETED, "COMPLETED", exit_code="0:0")

    def fail(self, job_id: str, index: int | None = None, *, error: str = "exit 1",
             worker_state: WorkerState = WorkerState.FAILED) -> None:
        """Tasks end FAILED, with the worker's status file saying why."""
        for i in self._indices(job_id, index):
            job = self.jobs[job_id]
            _atomic.write_json(paths.status_file(job.root, job.relpaths[i]),
                               {"state": worker_state.value, "error": error}, durable=False)
            job.tasks[i] = TaskStatus(JobState.FAILED, "FAILED", exit_code="1:0")

    def time_out(self, job_id: str, index: int | None = None) -> None:
        """Tasks are killed by the scheduler at their time limit (no worker account)."""
        self._set(job_id, index, TaskStatus(JobState.FAILED, "TIMEOUT", exit_code="0:15"))

    def end(self, job_id: str, index: int | None = None, *, raw: str, reason: str = "",
            state: JobState = JobState.FAILED) -> None:
        """Tasks end as the scheduler words it (``OUT_OF_MEMORY``, ``CANCELLED by 0`` …),
        with no worker account unless the test writes one."""
        self._set(job_id, index, TaskStatus(state, raw, reason))

    def hold(self, job_id: str, index: int | None = None, reason: str = "JobHeldUser") -> None:
        """Tasks stay pending until released."""
        for i in self._indices(job_id, index):
            self.jobs[job_id].tasks[i] = TaskStatus(
                JobState.PENDING, "PENDING", reason, held=True,
                hint=f"release it with `fake-release {job_id}_{i}`")

    def pend(self, job_id: str, index: int | None = None, *, reason: str, hint: str = "",
             outlook: Outlook = Outlook.CLEARS) -> None:
        """Tasks stay queued for ``reason``, explained as a real backend explains it."""
        self._set(job_id, index, TaskStatus(JobState.PENDING, "PENDING", reason, hint=hint,
                                            outlook=outlook))

    def start(self, job_id: str, index: int | None = None) -> None:
        self._set(job_id, index, TaskStatus(JobState.RUNNING, "RUNNING"))

    def lose(self, job_id: str, index: int | None = None) -> None:
        """The scheduler forgets tasks (they vanish from every answer)."""
        self._set(job_id, index, TaskStatus(JobState.UNKNOWN))

    # -- internals --------------------------------------------------------------------------
    def _submit(self, name: str, relpaths: list[str], root: str) -> str | None:
        if self._refuse:
            return None
        job_id = str(self._next_id)
        self._next_id += 1
        self.jobs[job_id] = _Job(name, relpaths, root,
                                 [TaskStatus(JobState.PENDING, "PENDING", "Priority")
                                  for _ in relpaths])
        if self._uncertain:
            self._uncertain -= 1
            raise SubmissionLost(f"no answer for job {name}; it may exist")
        return job_id

    def _indices(self, job_id: str, index: int | None) -> range | list[int]:
        return range(len(self.jobs[job_id].tasks)) if index is None else [index]

    def _set(self, job_id: str, index: int | None, status: TaskStatus) -> None:
        for i in self._indices(job_id, index):
            self.jobs[job_id].tasks[i] = status
