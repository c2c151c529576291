"""The local backend: runs a plan's tasks as worker processes on this machine.

Tasks start as soon as their dependencies have ended, at most ``workers`` at a time. A failed
artifact stops only its dependents (their workers end as "dependency failed" without running).
Ctrl-C (or ``cancel``) stops the running workers and records what was cancelled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _atomic, paths
from ..launching import LaunchContext, PreparedJob
from ..plan import Group, Plan
from ..store import JobRecord
from .base import JobState

BACKEND = "local"


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


class LocalBackend:
    """Runs plans on this machine; the same worker, logs and tracking as on Slurm."""

    name = BACKEND

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]:
        """Record one job per group, then run every task; returns the final records."""
        jobs = [self._prepare(ctx, group, n) for n, group in enumerate(plan.groups)]
        slots = [_Slot(job, i) for job in jobs for i in range(len(job.tasks))]
        ctx.progress("start", {"total": len(slots)})
        states = _Runner(self.workers, ctx).run(slots)
        final = {}
        for job in jobs:
            job_states = {str(i): states.get((job.record.name, i), JobState.CANCELLED.value)
                          for i in range(len(job.tasks))}
            cancelled = JobState.CANCELLED.value in job_states.values()
            final[job.record.name] = {"task_states": job_states,
                                      "state": "cancelled" if cancelled else "finished"}
        by_stage: dict[str, dict[str, dict[str, Any]]] = {}
        for job in jobs:
            by_stage.setdefault(job.record.stage, {})[job.record.name] = final[job.record.name]
        out: list[JobRecord] = []
        for stage, changes in by_stage.items():
            out.extend(ctx.store.update_many(stage, changes).values())
        ctx.progress("end", {"records": out})
        return out

    def _prepare(self, ctx: LaunchContext, group: Group, n: int) -> PreparedJob:
        job_id = _next_job_id(ctx)
        name = ctx.job_name(group, n, 0)
        job = ctx.prepare(group, group.tasks, name, BACKEND,
                          pid_start=process_start(os.getpid()))
        record = ctx.confirm(job, job_id)
        job.record = record
        return job

    # -- queries --------------------------------------------------------------------------
    def query(self, records: Sequence[JobRecord]) -> dict[str, JobState]:
        """States of the tasks of local jobs, keyed ``<job_id>_<index>``."""
        out: dict[str, JobState] = {}
        for rec in records:
            alive = rec.state == "submitted" and launcher_alive(rec)
            for i in range(len(rec.tasks)):
                final = rec.task_states.get(str(i))
                if final:
                    out[f"{rec.job_id}_{i}"] = JobState(final)
                elif alive:
                    out[f"{rec.job_id}_{i}"] = JobState.RUNNING
        return out

    def cancel(self, records: Sequence[JobRecord]) -> None:
        """Ask the launchers of live local jobs to stop (they record the cancellation)."""
        for pid in {r.pid for r in records if r.pid and launcher_alive(r)}:
            os.kill(pid, signal.SIGTERM)

    def find_by_name(self, name: str) -> list[str]:
        return []  # a local job dies with its launcher: an unconfirmed one never ran


def _next_job_id(ctx: LaunchContext) -> str:
    """``L<n>``: short, unique within the project (the launch lock is held)."""
    counter = paths.project_dir(ctx.home, ctx.project) / "local_job_counter"
    try:
        n = int(counter.read_text()) + 1
    except (FileNotFoundError, ValueError):
        n = 1
    _atomic.write_bytes(str(counter), str(n).encode(), durable=False)
    return f"L{n}"


class _Runner:
    """Runs worker processes in dependency order with a cap on how many run at once."""

    def __init__(self, workers: int, ctx: LaunchContext) -> None:
        self.workers = workers
        self.ctx = ctx
        self.procs: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
        self.cancelled = False

    def run(self, slots: list[_Slot]) -> dict[tuple[str, int], str]:
        waiting: dict[str, int] = {}
        dependents: dict[str, list[_Slot]] = {}
        in_launch = {s.artifact_id for s in slots}
        for s in slots:
            deps = [d for d in s.job.tasks[s.index].dep_ids if d in in_launch]
            waiting[s.artifact_id] = len(deps)
            for d in deps:
                dependents.setdefault(d, []).append(s)
        ready = [s for s in slots if waiting[s.artifact_id] == 0]
        states: dict[tuple[str, int], str] = {}
        old = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            with ThreadPoolExecutor(self.workers) as pool:
                running: dict[Future[str], _Slot] = {}
                try:
                    while ready or running:
                        while ready and len(running) < self.workers:
                            s = ready.pop(0)
                            running[pool.submit(self._run_one, s)] = s
                        done, _ = wait(running, return_when=FIRST_COMPLETED)
                        for fut in done:
                            s = running.pop(fut)
                            states[(s.job.record.name, s.index)] = fut.result()
                            self.ctx.progress("task", {"relpath": s.job.tasks[s.index].relpath,
                                                       "state": fut.result()})
                            for dep in dependents.get(s.artifact_id, []):
                                waiting[dep.artifact_id] -= 1
                                if waiting[dep.artifact_id] == 0:
                                    ready.append(dep)
                except KeyboardInterrupt:
                    self.cancelled = True
                    for proc in list(self.procs.values()):
                        _terminate(proc)
                    for s in running.values():
                        states[(s.job.record.name, s.index)] = JobState.CANCELLED.value
        finally:
            signal.signal(signal.SIGTERM, old)
        return states

    def _run_one(self, slot: _Slot) -> str:
        if self.cancelled:
            return JobState.CANCELLED.value
        rec = slot.job.record
        log = rec.log_path(slot.index)
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "EXPERIMENTS_JOB": f"{rec.job_id}_{slot.index}"}
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [self.ctx.python, "-m", "experiments.worker", rec.spec_dir, str(slot.index)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )
            self.procs[(rec.name, slot.index)] = proc
            code = proc.wait()
            self.procs.pop((rec.name, slot.index), None)
        built = Path(self.ctx.artifact_path, slot.job.tasks[slot.index].relpath, paths.DONE)
        if built.exists():
            return JobState.COMPLETED.value
        return JobState.CANCELLED.value if self.cancelled or code < 0 else JobState.FAILED.value


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)

