"""The local scheduler loop: dependency order, resource fit, GPU placement, time limits.

The main thread decides what starts (in order of readiness, with what is free held back for the
first tasks that do not fit yet, so a 2-GPU task is not starved by a stream of 1-GPU ones) and
hands out GPU indices; one thread per running task talks to a pooled worker process and
enforces the task's time limit, sends the checkpoint signal before it (``checkpoint_before``)
and runs the task again when its worker checkpointed, at most ``max_requeues`` times, as Slurm
requeues it. Only the main thread changes what is free; it also keeps the jobs' task logs
(:mod:`.tasklog`), which say to ``status`` what runs and why the rest waits.
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
from ...launching.launch_context import EventKind, LaunchContext, LaunchEvent, PreparedJob
from ...resources import Resources
from ...states import JobState, TaskKey
from ...tracking.store import now_iso
from ...worker.common import EXIT_REQUEUED, LOCAL_RESTARTS_ENV
from .capacity import Capacity
from .oom import OomWatch
from .pool import Ending, Outcome, PooledWorker
from .tasklog import TaskLog

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
        self.log = TaskLog()
        self.words: dict[tuple[str, int], str] = {}  # the end's word: TIMEOUT, OUT_OF_MEMORY
        self.oom = OomWatch()
        self._said: dict[tuple[str, int], str] = {}  # what the task logs said why a slot waits
        self._rest = ""  # ... and why the slots not looked at wait
        self.spec_dirs: set[str] = set()

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
        self.spec_dirs = {s.job.record.spec_dir for s in slots}
        ready = self._ready([s for s in slots if waiting[s.artifact_id] == 0])
        states: dict[tuple[str, int], JobState] = {}
        running: dict[Future[tuple[JobState, str]], Slot] = {}
        with ThreadPoolExecutor(max(1, self._max_running(len(slots)))) as pool:
            try:
                while ready or running:
                    started = self._startable(ready)
                    if started:
                        chosen = {id(s) for s in started}
                        ready = [s for s in ready if id(s) not in chosen]
                    for s in started:
                        self._take(s)
                        self.log.add(s.job.record.spec_dir, f"start {s.index}")
                        running[pool.submit(self._run_one, s)] = s
                    self.log.flush()
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        s = running.pop(fut)
                        states[s.key] = self._end(s, *fut.result())
                        ready += self._ready([d for d in dependents.get(s.artifact_id, [])
                                              if _count_down(waiting, d.artifact_id)])
            except KeyboardInterrupt:
                self._cancel(list(running.values()), states)
        self.log.flush()
        return states

    def _ready(self, slots: list[Slot]) -> list[Slot]:
        """Slots whose dependencies have ended, noted in their jobs' task logs."""
        for s in slots:
            self.log.add(s.job.record.spec_dir, f"ready {s.index}")
        return slots

    def _end(self, s: Slot, state: JobState, word: str) -> JobState:
        """A slot has ended: free what it held, note it, report it."""
        self._give_back(s)
        self.words[s.key] = word
        self.log.add(s.job.record.spec_dir, f"end {s.index} {state.value} {word}".rstrip())
        self.ctx.progress(LaunchEvent(EventKind.TASK_ENDED, relpath=s.relpath, state=state))
        return state

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
        for it, so later (smaller) slots cannot starve it. Why the others wait goes to the
        task logs (only when it changed)."""
        free = self.free
        room = self.workers - free.running if self.workers else len(ready)
        cpus, gpus = free.cpus, len(free.gpus)
        mem = free.mem_mb
        per_job = dict(free.per_job)
        out: list[Slot] = []
        for s in ready:
            if len(out) >= room or cpus <= 0:
                self._say_rest("workers" if len(out) >= room else "cpus")
                break
            res, name = s.resources, s.job.record.name
            if res.max_parallel is not None and per_job.get(name, 0) >= res.max_parallel:
                self._say_waits(s, "throttle")
                continue
            need_mem = res.mem_mb or 0
            why = ("gpus" if res.gpus and res.gpus > gpus else "cpus" if res.cpus > cpus
                   else "mem" if mem is not None and need_mem and need_mem > mem else "")
            cpus, gpus = cpus - res.cpus, gpus - res.gpus
            mem = None if mem is None else mem - need_mem
            if why:
                self._say_waits(s, why)
            else:
                per_job[name] = per_job.get(name, 0) + 1
                out.append(s)
        return out

    def _say_waits(self, s: Slot, key: str) -> None:
        """Note in its job's task log why a ready slot waits (when that changed)."""
        if self._said.get(s.key) != key:
            self._said[s.key] = key
            self.log.add(s.job.record.spec_dir, f"wait {s.index} {key}")

    def _say_rest(self, key: str) -> None:
        """Note why the ready slots that were not looked at wait: every task log, once per
        change (slots looked at later say their own reason again)."""
        if self._rest != key:
            self._rest = key
            self._said.clear()
            for spec_dir in self.spec_dirs:
                self.log.add(spec_dir, f"rest {key}")

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
    def _run_one(self, s: Slot) -> tuple[JobState, str]:
        """Run one slot's task, again after each checkpoint requeue (a fresh time limit each
        time, as on Slurm); its final state and the scheduler's word for it."""
        log = s.job.record.log_path(s.index)
        log.parent.mkdir(parents=True, exist_ok=True)
        restarts = 0
        while True:
            before = self.oom.count()
            outcome = self._attempt(s, str(log), restarts)
            if outcome is None:
                return JobState.CANCELLED, ""
            if (outcome.ending is Ending.REPLIED and outcome.code == EXIT_REQUEUED
                    and not self.cancelled):
                restarts += 1
                continue
            return self._ended(s, outcome, str(log), before)

    def _attempt(self, s: Slot, log: str, restarts: int) -> Outcome | None:
        """One attempt in a pooled worker; None when cancelled before it started."""
        if self.cancelled:
            return None
        worker = self._worker()
        with self.lock:
            self.busy[s.key] = worker
        if self.cancelled:  # cancelled while this thread got its worker: do not start
            with self.lock:
                self.busy.pop(s.key, None)
                self.idle.append(worker)
            return None
        try:
            outcome = worker.build(self._request(s, log, restarts), s.resources.time_s,
                                   GRACE_S, checkpoint_signal(s.resources))
        finally:
            with self.lock:
                self.busy.pop(s.key, None)
        if worker.alive:
            with self.lock:
                self.idle.append(worker)
        return outcome

    def _request(self, s: Slot, log: str, restarts: int) -> dict[str, object]:
        rec, res = s.job.record, s.resources
        key = str(TaskKey(rec.job_id or "", s.index))
        devices = ",".join(s.gpus)
        env = {**self.ctx.job_env(s.job.group), "EXPERIMENTS_JOB": key,
               "EXPERIMENTS_GPUS": devices, **{var: devices for var in _GPU_VARS},
               LOCAL_RESTARTS_ENV: str(restarts)}
        limit = "none" if res.time_s is None else format_duration(res.time_s)
        mem = "-" if res.mem_mb is None else f"{res.mem_mb}M"
        again = f", restart {restarts} after a checkpoint" if restarts else ""
        gpus = (f"{len(s.gpus)} GPU(s): device {devices} (CUDA_VISIBLE_DEVICES={devices})"
                if s.gpus else "no GPU (CUDA_VISIBLE_DEVICES empty)")
        header = (f"local task {key} on {socket.gethostname()}{again}: cpus={res.cpus} "
                  f"mem={mem} time limit={limit}, {gpus}")
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

    def _ended(self, s: Slot, outcome: Outcome, log: str, oom_before: int | None
               ) -> tuple[JobState, str]:
        """The task's final state and the scheduler's word for it (TIMEOUT, OUT_OF_MEMORY, or
        ""); a timeout, a dead worker or an OOM kill is written to its log and status file,
        where ``status`` and ``cat`` show it."""
        if os.path.exists(paths.done_marker(self.ctx.artifact_path, s.relpath)):
            return JobState.COMPLETED, ""
        if outcome.ending is Ending.TIMEOUT and not self.cancelled:
            limit = format_duration(s.resources.time_s or 0)
            self._record_end(s, log, "timeout",
                             f"TIMEOUT: time limit {limit} reached; raise `time`")
            return JobState.FAILED, "TIMEOUT"
        if self.cancelled:
            return JobState.CANCELLED, ""
        died = outcome.ending is Ending.DIED  # the worker itself, or else its command
        if self.oom.killed(oom_before, outcome.code if died else
                           self._worker_record(s).get("exit_code")):
            self._record_end(s, log, "oom", "OUT_OF_MEMORY: the kernel's OOM killer ended it; "
                             "raise `mem`, so that fewer artifacts share the memory")
            return JobState.FAILED, "OUT_OF_MEMORY"
        if died:
            self._record_end(s, log, "worker_died", f"the worker process died (exit status "
                             f"{outcome.code}) while building this artifact")
        return JobState.FAILED, ""

    def _worker_record(self, s: Slot) -> dict[str, object]:
        """The artifact's status file as the worker left it (empty when unreadable)."""
        try:
            with open(paths.status_file(self.ctx.artifact_path, s.relpath),
                      encoding="utf-8") as fh:
                record = json.load(fh)
        except (OSError, ValueError, RecursionError):
            return {}
        return dict(record) if isinstance(record, dict) else {}

    def _record_end(self, s: Slot, log: str, reason: str, message: str) -> None:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"[experiments {now_iso()}] {message}\n")
        root = self.ctx.artifact_path
        record = self._worker_record(s) or {"artifact": s.relpath}
        record.update(state="failed", reason=reason, error=message, finished_at=now_iso())
        if os.path.isdir(paths.artifact_dir(root, s.relpath)):
            _atomic.write_json(paths.status_file(root, s.relpath), record, durable=False)


def checkpoint_signal(res: Resources) -> tuple[float, int] | None:
    """When (seconds after the start) and which signal to send before the time limit, as
    ``#SBATCH --signal`` asks Slurm to; None without ``checkpoint_before`` or a limit. At least
    a second in, so the worker has set up its handler."""
    if not res.checkpoint_before_s or res.time_s is None:
        return None
    after = max(1.0, float(res.time_s - res.checkpoint_before_s))
    return after, int(getattr(signal, "SIG" + res.checkpoint_signal))


def _count_down(waiting: dict[str, int], artifact_id: str) -> bool:
    """One dependency of ``artifact_id`` has ended; True when that was its last one."""
    waiting[artifact_id] -= 1
    return waiting[artifact_id] == 0
