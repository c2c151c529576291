"""The local scheduler loop: dependency order, resource fit, GPU placement, time limits.

The main thread decides what starts (in order of readiness, with what is free held back for the
first tasks that do not fit yet, so a 2-GPU task is not starved by a stream of 1-GPU ones) and
hands out GPU indices; one thread per running task talks to a pooled worker process and
enforces the task's time limit. Only the main thread changes what is free.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ... import _atomic, paths
from ...launching.context import EventKind, LaunchContext, LaunchEvent, PreparedJob
from ...tracking.store import now_iso
from ..base import JobState, Resources, TaskKey
from .capacity import Capacity
from .pool import Ending, Outcome, PooledWorker

GRACE_S = 15.0
_GPU_VARS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


@dataclass
class Slot:
    """One task of one prepared job."""

    job: PreparedJob
    index: int
    gpus: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, int]:
        return (self.job.record.name, self.index)

    @property
    def artifact_id(self) -> str:
        return self.job.tasks[self.index].artifact_id

    @property
    def relpath(self) -> str:
        return self.job.tasks[self.index].relpath

    @property
    def resources(self) -> Resources:
        return self.job.group.resources


def format_duration(seconds: int) -> str:
    """``0:00:05``, ``12:00:00``, ``1-00:00:00``: the way Slurm writes a time limit."""
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


@dataclass
class _Free:
    """What is free right now (memory None: not accounted, the machine's size is unknown)."""

    cpus: int
    mem_mb: int | None
    gpus: list[str]
    running: int = 0
    per_job: dict[str, int] = field(default_factory=dict)


class Runner:
    """Runs slots in dependency order within the machine's capacity and the caps."""

    def __init__(self, capacity: Capacity, workers: int | None, ctx: LaunchContext) -> None:
        self.capacity = capacity
        self.workers = workers
        self.ctx = ctx
        self.free = _Free(capacity.cpus, capacity.mem_mb, list(capacity.gpu_ids))
        self.idle: list[PooledWorker] = []
        self.busy: dict[tuple[str, int], PooledWorker] = {}
        self.lock = threading.Lock()
        self.cancelled = False

    def run(self, slots: list[Slot]) -> dict[tuple[str, int], JobState]:
        """Run every slot; returns the final state of each that ran (others: not started)."""
        old = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            return self._run(slots)
        finally:
            signal.signal(signal.SIGTERM, old)
            for worker in self._take_all_idle():
                worker.close(2.0)

    def _run(self, slots: list[Slot]) -> dict[tuple[str, int], JobState]:
        waiting: dict[str, int] = {}
        dependents: dict[str, list[Slot]] = {}
        in_launch = {s.artifact_id for s in slots}
        for s in slots:
            deps = [d for d in s.job.tasks[s.index].dep_ids if d in in_launch]
            waiting[s.artifact_id] = len(deps)
            for d in deps:
                dependents.setdefault(d, []).append(s)
        ready = [s for s in slots if waiting[s.artifact_id] == 0]
        states: dict[tuple[str, int], JobState] = {}
        running: dict[Future[JobState], Slot] = {}
        with ThreadPoolExecutor(max(1, self._max_running(len(slots)))) as pool:
            try:
                while ready or running:
                    started = self._startable(ready)
                    if started:
                        chosen = {id(s) for s in started}
                        ready = [s for s in ready if id(s) not in chosen]
                    for s in started:
                        self._take(s)
                        running[pool.submit(self._run_one, s)] = s
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        s = running.pop(fut)
                        self._give_back(s)
                        states[s.key] = fut.result()
                        self.ctx.progress(LaunchEvent(EventKind.TASK_ENDED, relpath=s.relpath,
                                                      state=states[s.key]))
                        for dep in dependents.get(s.artifact_id, []):
                            waiting[dep.artifact_id] -= 1
                            if waiting[dep.artifact_id] == 0:
                                ready.append(dep)
            except KeyboardInterrupt:
                self._cancel(list(running.values()), states)
        return states

    def _max_running(self, n_slots: int) -> int:
        """How many tasks can ever run at once (each needs at least one CPU)."""
        return min(n_slots, self.capacity.cpus, self.workers or self.capacity.cpus)

    def _cancel(self, running: Sequence[Slot], states: dict[tuple[str, int], JobState]) -> None:
        self.cancelled = True
        with self.lock:
            busy = list(self.busy.values())
        for worker in busy:
            worker.stop(GRACE_S)
        for s in running:
            states[s.key] = JobState.CANCELLED

    # -- what starts ------------------------------------------------------------------------
    def _startable(self, ready: list[Slot]) -> list[Slot]:
        """Ready slots that fit now, in order; what a slot that does not fit needs is held back
        for it, so later (smaller) slots cannot starve it."""
        free = self.free
        room = self.workers - free.running if self.workers else len(ready)
        cpus, gpus = free.cpus, len(free.gpus)
        mem = free.mem_mb
        per_job = dict(free.per_job)
        out: list[Slot] = []
        for s in ready:
            if len(out) >= room or cpus <= 0:
                break
            res, name = s.resources, s.job.record.name
            if res.max_parallel is not None and per_job.get(name, 0) >= res.max_parallel:
                continue
            need_mem = res.mem_mb or 0
            fits = (res.cpus <= cpus and (not res.gpus or res.gpus <= gpus)
                    and (mem is None or not need_mem or need_mem <= mem))
            cpus, gpus = cpus - res.cpus, gpus - res.gpus
            mem = None if mem is None else mem - need_mem
            if fits:
                per_job[name] = per_job.get(name, 0) + 1
                out.append(s)
        return out

    def _take(self, s: Slot) -> None:
        res, free = s.resources, self.free
        s.gpus = tuple(free.gpus[:res.gpus])
        del free.gpus[:res.gpus]
        free.cpus -= res.cpus
        if free.mem_mb is not None:
            free.mem_mb -= res.mem_mb or 0
        free.running += 1
        free.per_job[s.job.record.name] = free.per_job.get(s.job.record.name, 0) + 1

    def _give_back(self, s: Slot) -> None:
        res, free = s.resources, self.free
        order = {g: i for i, g in enumerate(self.capacity.gpu_ids)}
        free.gpus = sorted([*free.gpus, *s.gpus], key=order.__getitem__)
        free.cpus += res.cpus
        if free.mem_mb is not None:
            free.mem_mb += res.mem_mb or 0
        free.running -= 1
        free.per_job[s.job.record.name] -= 1

    # -- one task ----------------------------------------------------------------------------
    def _run_one(self, s: Slot) -> JobState:
        if self.cancelled:
            return JobState.CANCELLED
        rec = s.job.record
        log = rec.log_path(s.index)
        log.parent.mkdir(parents=True, exist_ok=True)
        worker = self._worker()
        with self.lock:
            self.busy[s.key] = worker
        if self.cancelled:  # cancelled while this thread got its worker: do not start
            with self.lock:
                self.busy.pop(s.key, None)
                self.idle.append(worker)
            return JobState.CANCELLED
        limit = s.resources.time_s
        try:
            outcome = worker.build(self._request(s, str(log)), limit, GRACE_S)
        finally:
            with self.lock:
                self.busy.pop(s.key, None)
        if worker.alive:
            with self.lock:
                self.idle.append(worker)
        return self._ended(s, outcome, str(log))

    def _request(self, s: Slot, log: str) -> dict[str, object]:
        rec, res = s.job.record, s.resources
        key = str(TaskKey(rec.job_id or "", s.index))
        devices = ",".join(s.gpus)
        env = {**self.ctx.job_env(s.job.group), "EXPERIMENTS_JOB": key,
               "EXPERIMENTS_GPUS": devices, **{var: devices for var in _GPU_VARS}}
        limit = "none" if res.time_s is None else format_duration(res.time_s)
        mem = "-" if res.mem_mb is None else f"{res.mem_mb}M"
        gpus = (f"{len(s.gpus)} GPU(s): device {devices} (CUDA_VISIBLE_DEVICES={devices})"
                if s.gpus else "no GPU (CUDA_VISIBLE_DEVICES empty)")
        header = (f"local task {key} on {socket.gethostname()}: cpus={res.cpus} mem={mem} "
                  f"time limit={limit}, {gpus}")
        return {"spec_dir": rec.spec_dir, "index": s.index, "log": log, "env": env,
                "header": header}

    def _worker(self) -> PooledWorker:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return PooledWorker(self.ctx.python)

    def _take_all_idle(self) -> list[PooledWorker]:
        with self.lock:
            idle, self.idle = self.idle, []
        return idle

    def _ended(self, s: Slot, outcome: Outcome, log: str) -> JobState:
        """The task's final state; a timeout or a dead worker is written to its log and
        status file, where ``status`` and ``cat`` show it."""
        if os.path.exists(paths.done_marker(self.ctx.artifact_path, s.relpath)):
            return JobState.COMPLETED
        if outcome.ending is Ending.TIMEOUT and not self.cancelled:
            limit = format_duration(s.resources.time_s or 0)
            self._record_end(s, log, "timeout",
                             f"TIMEOUT: time limit {limit} reached; raise `time`")
            return JobState.FAILED
        if self.cancelled:
            return JobState.CANCELLED
        if outcome.ending is Ending.DIED:
            self._record_end(s, log, "worker_died", f"the worker process died (exit status "
                             f"{outcome.code}) while building this artifact")
        return JobState.FAILED

    def _record_end(self, s: Slot, log: str, reason: str, message: str) -> None:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"[experiments {now_iso()}] {message}\n")
        root = self.ctx.artifact_path
        try:
            with open(paths.status_file(root, s.relpath), encoding="utf-8") as fh:
                record = dict(json.load(fh))
        except (OSError, ValueError, TypeError):
            record = {"artifact": s.relpath}
        record.update(state="failed", reason=reason, error=message, finished_at=now_iso())
        if os.path.isdir(paths.artifact_dir(root, s.relpath)):
            _atomic.write_json(paths.status_file(root, s.relpath), record, durable=False)
