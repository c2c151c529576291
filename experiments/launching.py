"""What every backend shares when it launches a plan: specs, job records, dependency lookup.

A job's record is written as an *intent* (state ``submitting``) before the scheduler is called
and confirmed with its job id right after, so a crash in between is reconciled on the next
launch by looking the job up by its unique name instead of submitting it twice.
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths, specs
from .backends.base import JobState
from .config import Config
from .plan import Group, Plan, PlannedTask
from .store import JobRecord, RecordState, Store
from .task import step_to_dict


class EventKind(enum.Enum):
    """What a launch reports as it goes."""

    START = "start"          # the local backend is about to run ``total`` tasks
    SUBMITTED = "submitted"  # a job was submitted and recorded
    TASK_ENDED = "task"      # a local task ended in ``state``
    END = "end"              # the local backend has finished


@dataclass(frozen=True)
class LaunchEvent:
    """One progress report of a launch."""

    kind: EventKind
    total: int = 0
    record: JobRecord | None = None
    relpath: str = ""
    state: JobState | None = None


Progress = Callable[[LaunchEvent], None]


def _no_progress(event: LaunchEvent) -> None:
    return None


@dataclass
class PreparedJob:
    """A chunk of a group with its spec written and its intent recorded."""

    record: JobRecord
    group: Group
    tasks: tuple[PlannedTask, ...]
    depends_on: tuple[str, ...]  # job ids this job must wait for


@dataclass
class LaunchContext:
    """Everything a backend needs to launch a plan, and the bookkeeping it must do."""

    project: str
    home: Path
    config: Config
    store: Store
    artifact_path: str
    code_path: str
    launch_id: str
    python: str
    progress: Progress = _no_progress
    setup: tuple[str, ...] = ()  # the executor's setup lines (config.json's come first)
    job_of: dict[str, str] = field(default_factory=dict)  # artifact id -> job id holding it
    submitted: list[JobRecord] = field(default_factory=list)

    @classmethod
    def for_plan(cls, plan: Plan, *, project: str, home: Path, config: Config, store: Store,
                 artifact_path: str, code_path: str, python: str,
                 progress: Progress | None = None,
                 setup: Sequence[str] = ()) -> LaunchContext:
        """A context for ``plan``, knowing which live jobs already hold its dependencies."""
        ctx = cls(project, home, config, store, artifact_path, code_path,
                  launch_id=os.urandom(4).hex(), python=python,
                  progress=progress or _no_progress, setup=tuple(setup))
        ctx.job_of.update(plan.live_jobs)
        return ctx

    def job_name(self, group: Group, group_no: int, chunk_no: int) -> str:
        """A name unique to this submission and stable across its retries."""
        return (f"{self.project[:40]}.{group.stage[:40]}.{self.launch_id}"
                f".t{group.tier}g{group_no}c{chunk_no}")

    def job_env(self, group: Group) -> dict[str, str]:
        """Environment every task of the job starts with (before the worker runs)."""
        return {"EXPERIMENTS_PROJECT": self.project, "EXPERIMENTS_STAGE": group.stage}

    def setup_lines(self, group: Group) -> list[str]:
        """Setup lines for the group's tasks: config.json's global and partition lines, then
        the executor's."""
        partition = dict(group.resources.requirements).get("partition")
        return [*self.config.setup_for(partition), *self.setup]

    def prepare(self, group: Group, tasks: Sequence[PlannedTask], name: str, backend: str,
                *, pid_start: int | None = None, setup_in_worker: bool = False) -> PreparedJob:
        """Write the spec of one job and record its intent in the store.

        ``setup_in_worker``: the worker runs the setup lines before each command (for backends
        without a batch script of their own to put them in).
        """
        spec = paths.spec_dir(self.home, self.project, name)
        header: dict[str, Any] = {
            "project": self.project, "stage": group.stage, "job_name": name,
            "artifact_path": self.artifact_path, "code_path": self.code_path,
            "umask": self.config.umask}
        if setup_in_worker and self.setup_lines(group):
            header["setup"] = self.setup_lines(group)
        res = group.resources
        if res.checkpoint_before_s:  # the worker requeues after this signal (see worker.py)
            header["checkpoint"] = {
                "signal": res.checkpoint_signal, "max_requeues": res.max_requeues,
                "requeue": dict(res.requirements).get("requeue", True) is not False}
        specs.write_spec(str(spec), header, (_task_json(t) for t in tasks))
        deps = sorted({self.job_of[d] for t in tasks for d in t.dep_ids if d in self.job_of})
        record = JobRecord(
            name=name, backend=backend, stage=group.stage, tier=group.tier,
            tasks=[[t.artifact_id, t.relpath] for t in tasks],
            requirements=dict(group.resources.requirements), depends_on=deps,
            spec_dir=str(spec),
            log_dir=str(paths.log_dir(self.config.log_directory, self.project, group.stage)),
            host=socket.gethostname(), pid=os.getpid(), pid_start=pid_start,
        )
        Path(record.log_dir).mkdir(parents=True, exist_ok=True)
        self.store.add(record)
        return PreparedJob(record, group, tuple(tasks), tuple(deps))

    def confirm(self, job: PreparedJob, job_id: str) -> JobRecord:
        """Record the scheduler's job id for a prepared job."""
        record = self.store.update(job.record.stage, job.record.name, job_id=job_id,
                                   state=RecordState.SUBMITTED)
        job.record = record
        for t in job.tasks:
            self.job_of[t.artifact_id] = job_id
        self.submitted.append(record)
        self.progress(LaunchEvent(EventKind.SUBMITTED, record=record))
        return record

    def discard(self, job: PreparedJob) -> None:
        """Forget the intent of a job the scheduler certainly refused."""
        self.store.remove(job.record.stage, {job.record.name})

    def finish(self, final: Mapping[str, Mapping[str, Any]]) -> list[JobRecord]:
        """Write ``{record name: changes}`` of jobs that ended during the launch (local runs)."""
        by_stage: dict[str, dict[str, dict[str, Any]]] = {}
        for rec in self.submitted:
            if rec.name in final:
                by_stage.setdefault(rec.stage, {})[rec.name] = dict(final[rec.name])
        out: list[JobRecord] = []
        for stage, changes in by_stage.items():
            out.extend(self.store.update_many(stage, changes).values())
        return out


def _task_json(task: PlannedTask) -> dict[str, Any]:
    return {"id": task.artifact_id, "relpath": task.relpath, "class": task.class_name,
            "params": task.params, "deps": list(task.dep_relpaths),
            "steps": [step_to_dict(s) for s in task.steps]}


def pending_intents(store: Store) -> list[JobRecord]:
    """Records whose submission was started but never confirmed (a crash in between)."""
    return [r for r in store.all_records() if r.state is RecordState.SUBMITTING]
