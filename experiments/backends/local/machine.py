"""The local backend: runs a plan's tasks on this machine as a resource-aware scheduler.

Tasks start as soon as their dependencies have ended and their ``cpus``, ``gpus`` and ``mem``
fit in what the machine has free (its :class:`~.local_capacity.Capacity`); ``--workers`` is an
extra cap on how many run at once and ``max_parallel`` caps one job, as Slurm's array throttle
does. Each GPU task gets GPU indices no running task holds, in ``CUDA_VISIBLE_DEVICES`` (and the
ROCm variables). A task that outlives its ``time`` is terminated and ends *timeout*; with
``checkpoint_before`` it is signalled first and run again after a checkpoint, as Slurm requeues
it. While it runs, each job's task log (:mod:`.tasklog`) tells ``status`` what runs and why
the rest waits; its project's launch lock is handed back once the jobs are recorded, so only
launches into the same artifact root wait for it. Tasks are
built by long-lived pooled worker processes (:mod:`.local_pool`), one artifact at a time each.
A failed artifact stops only its dependents (their workers end as "dependency failed" without
running). Ctrl-C (or ``cancel``, a SIGTERM) stops the running tasks and records the
cancellation.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from ... import _atomic, paths
from ...config.settings import Config
from ...errors import DefinitionError
from ...launching.launch_context import EventKind, LaunchContext, LaunchEvent, PreparedJob
from ...plan import Group, Plan
from ...resources import Resources, Scalar, common_resources
from ...states import JobState, TaskKey, TaskStatus
from ...tracking.store import JobRecord, RecordState
from ..base import Description
from . import tasklog
from .capacity import LOGIN_NODE_WORKERS, Capacity, capacity, login_node
from .runner import Runner, Slot, format_duration

NAME = "local"


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


class LocalBackend:
    """Runs plans on this machine; the same worker, logs and tracking as on Slurm."""

    name = NAME

    def __init__(self, workers: int | None = None, config: Config | None = None,
                 machine: Capacity | None = None, login: str | None = "?") -> None:
        self._workers = workers if workers and workers > 0 else None
        self._config = config
        self._machine = machine
        self._login = login  # "?": not looked at yet

    @property
    def login(self) -> str | None:
        """Why this machine looks like a Slurm login node (None: it does not)."""
        if self._login == "?":
            self._login = login_node()
        return self._login

    @property
    def workers(self) -> int | None:
        """The cap on tasks at once: ``--workers``; else a modest one on a Slurm login node,
        unless the config's ``local.cpus`` says how much of the machine is ours."""
        if self._workers is not None:
            return self._workers
        told = self._config is not None and "cpus" in self._config.local
        return LOGIN_NODE_WORKERS if not told and self.login else None

    def site_warning(self) -> str | None:
        """A warning when running here means running on a shared Slurm login node."""
        if not self.login:
            return None
        capped = self._workers is None and self.workers == LOGIN_NODE_WORKERS
        cap = (f"; at most {LOGIN_NODE_WORKERS} tasks run at once (--workers N, or "
               '"local": {"cpus": N} in config.json, to choose)' if capped else "")
        return (f"running on this machine, which Slurm serves ({self.login}), outside an "
                f"allocation (no SLURM_JOB_ID): on a login node this shares it with every "
                f"user{cap}. Drop --local to submit to Slurm, or run inside salloc/srun")

    @property
    def capacity(self) -> Capacity:
        """The machine's capacity (config over detection), found once on first use."""
        if self._machine is None:
            self._machine = capacity(self._config.local if self._config else {})
        return self._machine

    def resolve(self, requirements: Mapping[str, Scalar], where: str) -> Resources:
        """Typed resources, refused when they can never fit on this machine; scheduler-only
        keys (partition, account, …) are accepted and unused."""
        res = common_resources(requirements, where)
        misfit = self.capacity.misfit(res)
        if misfit:
            raise DefinitionError(
                f"{where} {misfit}, more than this machine has ({self.capacity.describe()}); "
                "lower its requirements, or set the capacity in config.json, e.g. "
                '"local": {"cpus": 64, "gpus": 8, "mem_gb": 512}')
        return res

    def describe(self, group: Group, *, validate: bool) -> Description:
        res, cap = group.resources, self.capacity
        fit = [cap.cpus // res.cpus]
        if res.gpus:
            fit.append(cap.gpus // res.gpus)
        if res.mem_mb and cap.mem_mb is not None:
            fit.append(cap.mem_mb // res.mem_mb)
        for extra in (self.workers, res.max_parallel):
            if extra:
                fit.append(extra)
        limit = "none" if res.time_s is None else format_duration(res.time_s)
        return Description((f"local: {len(group.tasks)} task(s), at most {min(fit)} at once "
                            f"(each cpus={res.cpus} gpus={res.gpus} time limit={limit}; "
                            f"machine: {cap.describe()})",))

    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]:
        """Record one job per group, then run every task; returns the final records."""
        jobs = [self._prepare(ctx, group, n) for n, group in enumerate(plan.groups)]
        slots = [Slot(job, i) for job in jobs for i in range(len(job.tasks))]
        ctx.progress(LaunchEvent(EventKind.START, total=len(slots)))
        workers = self.workers
        if ctx.max_running:  # the launch's budget caps the workers too
            workers = min(workers or ctx.max_running, ctx.max_running)
        ctx.running()  # every job is recorded: launches into other roots may go ahead
        runner = Runner(self.capacity, workers, ctx)
        states = runner.run(slots)
        final: dict[str, dict[str, Any]] = {}
        for job in jobs:
            name = job.record.name
            task_states = {str(i): states.get((name, i), JobState.CANCELLED).value
                           for i in range(len(job.tasks))}
            cancelled = JobState.CANCELLED.value in task_states.values()
            final[name] = {
                "task_states": task_states,
                "task_raw": {str(i): runner.words[(name, i)] for i in range(len(job.tasks))
                             if runner.words.get((name, i))},
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
        """States of the tasks of local jobs: their final state; while the launcher that runs
        them is alive, what its task log says (running, ended, or queued and why)."""
        out: dict[TaskKey, TaskStatus] = {}
        for rec in records:
            alive = rec.state is RecordState.SUBMITTED and launcher_alive(rec)
            now = tasklog.read(rec.spec_dir, len(rec.tasks)) if alive else {}
            for i in range(len(rec.tasks)):
                final = rec.task_states.get(str(i))
                if final:
                    out[TaskKey(rec.job_id or "", i)] = TaskStatus(
                        JobState(final), raw=rec.task_raw.get(str(i), ""))
                elif i in now:
                    out[TaskKey(rec.job_id or "", i)] = now[i]
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
