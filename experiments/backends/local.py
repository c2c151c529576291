"""The local backend: runs a plan's tasks as worker processes on this machine.

Tasks start as soon as their dependencies have ended, at most ``workers`` at a time, and at most
``max_parallel`` of one job at a time (as Slurm's array throttle does). A failed artifact stops
only its dependents (their workers end as "dependency failed" without running). Ctrl-C (or
``cancel``) stops the running workers and records what was cancelled.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from .. import _atomic, _proc, paths
from ..launching import EventKind, LaunchContext, LaunchEvent, PreparedJob
from ..plan import Group, Plan
from ..store import JobRecord, RecordState
from .base import Description, JobState, Resources, Scalar, TaskKey, TaskStatus, common_resources

NAME = "local"
_GRACE_S = 15.0


def process_start(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def launcher_alive(record: JobRecord) -> bool:
    """True when the process that runs a local job is still this very process (not a reuse)."""
    if record.pid is None or record.host != socket.gethostname():
        return False
    return process_start(record.pid) == record.pid_start


@dataclass
class _Slot:
    job: PreparedJob
    index: int

    @property
    def artifact_id(self) -> str:
        return self.job.tasks[self.index].artifact_id

    @property
    def relpath(self) -> str:
        return self.job.tasks[self.index].relpath


class LocalBackend:
    """Runs plans on this machine; the same worker, logs and tracking as on Slurm."""

    name = NAME

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def resolve(self, requirements: Mapping[str, Scalar], where: str) -> Resources:
        """Typed resources; scheduler-only keys (partition, account, …) are accepted and unused."""
        return common_resources(requirements, where)

    def describe(self, group: Group, *, validate: bool) -> Description:
        throttle = group.resources.max_parallel
        limit = min(self.workers, throttle) if throttle else self.workers
        return Description((f"local: {len(group.tasks)} task(s), at most {limit} at once",))

    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]:
        """Record one job per group, then run every task; returns the final records."""
        jobs = [self._prepare(ctx, group, n) for n, group in enumerate(plan.groups)]
        slots = [_Slot(job, i) for job in jobs for i in range(len(job.tasks))]
        ctx.progress(LaunchEvent(EventKind.START, total=len(slots)))
        states = _Runner(self.workers, ctx).run(slots)
        final: dict[str, dict[str, Any]] = {}
        for job in jobs:
            task_states = {str(i): states.get((job.record.name, i), JobState.CANCELLED).value
                           for i in range(len(job.tasks))}
            cancelled = JobState.CANCELLED.value in task_states.values()
            final[job.record.name] = {
                "task_states": task_states,
                "state": RecordState.CANCELLED if cancelled else RecordState.FINISHED}
        out = ctx.finish(final)
        ctx.progress(LaunchEvent(EventKind.END))
        return out

    def _prepare(self, ctx: LaunchContext, group: Group, n: int) -> PreparedJob:
        job = ctx.prepare(group, group.tasks, ctx.job_name(group, n, 0), NAME,
                          pid_start=process_start(os.getpid()), setup_in_worker=True)
        ctx.confirm(job, _next_job_id(ctx))
        return job

    # -- queries --------------------------------------------------------------------------
    def query(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskStatus]:
        """States of the tasks of local jobs: their final state, or running while the
        launcher that runs them is alive."""
        out: dict[TaskKey, TaskStatus] = {}
        for rec in records:
            alive = rec.state is RecordState.SUBMITTED and launcher_alive(rec)
            for i in range(len(rec.tasks)):
                final = rec.task_states.get(str(i))
                if final:
                    out[TaskKey(rec.job_id or "", i)] = TaskStatus(JobState(final))
                elif alive:
                    out[TaskKey(rec.job_id or "", i)] = TaskStatus(JobState.RUNNING)
        return out

    def cancel(self, records: Sequence[JobRecord]) -> None:
        """Ask the launchers of live local jobs to stop (they record the cancellation)."""
        for pid in {r.pid for r in records if r.pid and launcher_alive(r)}:
            os.kill(pid, signal.SIGTERM)

    def find_by_name(self, name: str) -> list[str]:
        return []  # a local job dies with its launcher: an unconfirmed one never ran


def _next_job_id(ctx: LaunchContext) -> str:
    """``L<n>``: short, unique within the project (the launch lock is held)."""
    counter = paths.local_job_counter(ctx.home, ctx.project)
    try:
        n = int(counter.read_text()) + 1
    except (FileNotFoundError, ValueError):
        n = 1
    _atomic.write_bytes(str(counter), str(n).encode(), durable=False)
    return f"L{n}"


class _Runner:
    """Runs worker processes in dependency order with caps on how many run at once."""

    def __init__(self, workers: int, ctx: LaunchContext) -> None:
        self.workers = workers
        self.ctx = ctx
        self.children: dict[tuple[str, int], _proc.Child] = {}
        self.cancelled = False

    def run(self, slots: list[_Slot]) -> dict[tuple[str, int], JobState]:
        waiting: dict[str, int] = {}
        dependents: dict[str, list[_Slot]] = {}
        in_launch = {s.artifact_id for s in slots}
        for s in slots:
            deps = [d for d in s.job.tasks[s.index].dep_ids if d in in_launch]
            waiting[s.artifact_id] = len(deps)
            for d in deps:
                dependents.setdefault(d, []).append(s)
        ready = [s for s in slots if waiting[s.artifact_id] == 0]
        states: dict[tuple[str, int], JobState] = {}
        old = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            with ThreadPoolExecutor(self.workers) as pool:
                running: dict[Future[JobState], _Slot] = {}
                try:
                    while ready or running:
                        for s in self._startable(ready, running.values()):
                            ready.remove(s)
                            running[pool.submit(self._run_one, s)] = s
                        done, _ = wait(running, return_when=FIRST_COMPLETED)
                        for fut in done:
                            s = running.pop(fut)
                            states[(s.job.record.name, s.index)] = fut.result()
                            self.ctx.progress(LaunchEvent(EventKind.TASK_ENDED,
                                                          relpath=s.relpath,
                                                          state=fut.result()))
                            for dep in dependents.get(s.artifact_id, []):
                                waiting[dep.artifact_id] -= 1
                                if waiting[dep.artifact_id] == 0:
                                    ready.append(dep)
                except KeyboardInterrupt:
                    self.cancelled = True
                    for child in list(self.children.values()):
                        child.terminate(_GRACE_S)
                    for s in running.values():
                        states[(s.job.record.name, s.index)] = JobState.CANCELLED
        finally:
            signal.signal(signal.SIGTERM, old)
        return states

    def _startable(self, ready: list[_Slot], running: Iterable[_Slot]) -> list[_Slot]:
        """Ready slots that fit under the worker cap and their job's ``max_parallel``."""
        per_job: dict[str, int] = {}
        for s in running:
            per_job[s.job.record.name] = per_job.get(s.job.record.name, 0) + 1
        free = self.workers - sum(per_job.values())
        out: list[_Slot] = []
        for s in ready:
            if len(out) == free:
                break
            name, throttle = s.job.record.name, s.job.group.resources.max_parallel
            if throttle is None or per_job.get(name, 0) < throttle:
                per_job[name] = per_job.get(name, 0) + 1
                out.append(s)
        return out

    def _run_one(self, slot: _Slot) -> JobState:
        if self.cancelled:
            return JobState.CANCELLED
        rec = slot.job.record
        log = rec.log_path(slot.index)
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.ctx.job_env(slot.job.group),
               "EXPERIMENTS_JOB": str(TaskKey(rec.job_id or "", slot.index))}
        with open(log, "ab") as out:
            child = _proc.spawn([self.ctx.python, "-m", "experiments.worker", rec.spec_dir,
                                 str(slot.index)], stdout=out, env=env)
            self.children[(rec.name, slot.index)] = child
            code = child.wait()
            self.children.pop((rec.name, slot.index), None)
        if os.path.exists(paths.done_marker(self.ctx.artifact_path, slot.relpath)):
            return JobState.COMPLETED
        killed = self.cancelled or (code is not None and code < 0)
        return JobState.CANCELLED if killed else JobState.FAILED

