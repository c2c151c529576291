"""``efficiency``: what finished tasks used against what they asked for, from one accounting
call per backend (for Slurm one ``sacct``), per stage, with the tasks that waste most.

For each task: elapsed time against the time limit, CPU time against elapsed × CPUs (CPU
efficiency), peak memory against the memory asked. Waste is reserved CPU time not used
(elapsed × CPUs − CPU time). A value the scheduler does not gather (no CPU time or memory
accounting on the cluster) is None and left out of the averages.

Every attempt counts: a requeued task's elapsed and CPU time are summed over its attempts, and
it asked for its time limit once per attempt. Its time limit is the scheduler's record of it
(a pack's own limit), else the requirements'. Its state is the scheduler's word, except where
that word hides a failure: a worker exits 0 after an ordinary failure (so that ``aftercorr``
releases the tasks waiting on it), which Slurm records as COMPLETED; the task's recorded end,
or the worker's account of it, says FAILED (or DEP-FAILED).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..backends.base import KeepsAccounts
from ..resources import Resources
from ..session import Session
from ..states import TaskKey, TaskUsage
from ..tracking.status import ArtifactState, worker_account
from ..tracking.store import JobRecord
from ..worker.common import WorkerState

WORST = 5


class _Accounting(Protocol):
    def usage(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskUsage]: ...


@dataclass(frozen=True)
class TaskEfficiency:
    """One task's use of what it asked for (fractions; None where unknown)."""

    task: str
    relpath: str
    state: str
    elapsed_s: int
    time_s: int | None
    cpus: int
    cpu_s: float | None
    max_rss_mb: float | None
    mem_mb: int | None
    gpus: int = 0
    attempts: int = 1

    @property
    def requested_s(self) -> int | None:
        """The time asked for: the time limit, once per attempt."""
        return None if self.time_s is None else self.time_s * self.attempts

    @property
    def time_used(self) -> float | None:
        return self.elapsed_s / self.requested_s if self.requested_s else None

    @property
    def cpu_efficiency(self) -> float | None:
        if not self.cpu_s or not self.elapsed_s:
            return None
        return self.cpu_s / (self.elapsed_s * self.cpus)

    @property
    def mem_used(self) -> float | None:
        return self.max_rss_mb / self.mem_mb if self.max_rss_mb and self.mem_mb else None

    @property
    def wasted_cpu_s(self) -> float | None:
        return None if not self.cpu_s else max(self.elapsed_s * self.cpus - self.cpu_s, 0.0)


@dataclass
class StageEfficiency:
    """The tasks of one stage that accounting knows, and their averages."""

    stage: str
    tasks: list[TaskEfficiency] = field(default_factory=list)

    def mean(self, attr: str) -> float | None:
        values = [v for t in self.tasks if (v := getattr(t, attr)) is not None]
        return sum(values) / len(values) if values else None

    @property
    def elapsed_h(self) -> float:
        return sum(t.elapsed_s for t in self.tasks) / 3600

    @property
    def requested_h(self) -> float | None:
        limits = [t.requested_s for t in self.tasks]
        return None if any(v is None for v in limits) else sum(
            v or 0 for v in limits) / 3600

    @property
    def used_cpu_h(self) -> float | None:
        """CPU time the tasks used (None when accounting gathers no CPU time)."""
        values = [t.cpu_s for t in self.tasks if t.cpu_s is not None]
        return sum(values) / 3600 if values else None

    @property
    def used_gpu_h(self) -> float:
        """GPU-hours held: a task keeps its GPUs for its whole run."""
        return sum(t.elapsed_s * t.gpus for t in self.tasks) / 3600

    @property
    def peak_mem_mb(self) -> float | None:
        values = [t.max_rss_mb for t in self.tasks if t.max_rss_mb is not None]
        return max(values) if values else None

    def worst(self, n: int = WORST) -> list[TaskEfficiency]:
        """The tasks that waste most: unused reserved CPU time, else unused time limit."""
        def waste(t: TaskEfficiency) -> float:
            if t.wasted_cpu_s is not None:
                return t.wasted_cpu_s
            return float((t.requested_s or t.elapsed_s) - t.elapsed_s) * t.cpus
        return sorted(self.tasks, key=waste, reverse=True)[:n]


@dataclass
class EfficiencyReport:
    """Per stage, and the backends that keep no accounts (or could not be asked)."""

    stages: list[StageEfficiency]
    warnings: list[str] = field(default_factory=list)


def efficiency(session: Session, stages: Sequence[str] | None = None) -> EfficiencyReport:
    """Accounting for every tracked task of the stages: one call per backend."""
    selected = session.selected(stages)
    records = session.records(selected)
    report = EfficiencyReport([StageEfficiency(s) for s in selected])
    by_stage = {s.stage: s for s in report.stages}
    for name, backend in session.backends_for(records).items():
        mine = [r for r in records if r.backend == name and r.job_id]
        if not isinstance(backend, KeepsAccounts):
            report.warnings.append(f"the {name} backend keeps no accounts; its "
                                   f"{len(mine)} job(s) are left out")
            continue
        used: dict[TaskKey, TaskUsage] = backend.usage(mine)
        resolved: dict[tuple[Any, ...], Resources] = {}
        for rec in mine:
            key = tuple(sorted(rec.requirements.items()))
            if key not in resolved:
                resolved[key] = backend.resolve(rec.requirements, f"job {rec.job_id}")
            res = resolved[key]
            root = rec.artifact_path or session.experiment.artifact_path
            by_stage[rec.stage].tasks.extend(_tasks(rec, used, res, root))
    if not any(s.tasks for s in report.stages) and not report.warnings:
        report.warnings.append("accounting knows no task of these stages that has run")
    return report


def _tasks(rec: JobRecord, used: Mapping[TaskKey, TaskUsage], res: Resources, root: str
           ) -> list[TaskEfficiency]:
    """One row per scheduler task of a job: per artifact, or per pack (the accounting of a
    task that built several artifacts is the pack's; its time limit is the pack's own)."""
    out: list[TaskEfficiency] = []
    seen: set[int] = set()
    sizes = Counter(rec.array_indices) if rec.packed else Counter[int]()
    for i, (_, relpath) in enumerate(rec.tasks):
        index = rec.array_index(i)
        u = used.get(TaskKey(rec.job_id or "", index))
        if u is None or u.elapsed_s == 0 or index in seen:
            continue
        seen.add(index)
        members = [k for k in range(len(rec.tasks)) if rec.array_index(k) == index] \
            if sizes else [i]
        state = _state(rec, members, u.state, root)
        if sizes:
            n = sizes[index]
            out.append(TaskEfficiency(f"{rec.job_id}_{index}",
                                      f"{relpath} and {n - 1} more (a pack)", state,
                                      u.elapsed_s, u.time_limit_s, res.cpus, u.cpu_s,
                                      u.max_rss_mb, res.mem_mb, res.gpus, u.attempts))
        else:
            out.append(TaskEfficiency(f"{rec.job_id}_{index}", relpath, state, u.elapsed_s,
                                      u.time_limit_s or res.time_s, res.cpus, u.cpu_s,
                                      u.max_rss_mb, res.mem_mb, res.gpus, u.attempts))
    return out


_HIDDEN = {ArtifactState.FAILED.value: "FAILED", ArtifactState.DEP_FAILED.value: "DEP-FAILED",
           WorkerState.FAILED.value: "FAILED",
           WorkerState.DEPENDENCY_FAILED.value: "DEP-FAILED"}


def _state(rec: JobRecord, members: Sequence[int], scheduler: str, root: str) -> str:
    """The scheduler's word for a task's end, unless it says COMPLETED of a task whose own
    record (its recorded end, else the worker's status file) says it failed: a pack failed
    when any of its artifacts did."""
    if scheduler != "COMPLETED":
        return scheduler
    words = []
    for k in members:
        entry = rec.ended.get(str(k))
        said = entry.get("state") if entry else worker_account(rec, k, root).get("state")
        words.append(_HIDDEN.get(str(said), ""))
    return "FAILED" if "FAILED" in words else ("DEP-FAILED" if "DEP-FAILED" in words
                                               else scheduler)
