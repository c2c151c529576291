"""What every backend shares when it launches a plan: specs, job records, dependency lookup.

A job's record is written as an *intent* (state ``submitting``) before the scheduler is called
and confirmed with its job id right after, so a crash in between is reconciled on the next
launch by looking the job up by its unique name instead of submitting it twice.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths, specs
from .config import Config
from .plan import Group, Plan, PlannedTask
from .store import JobRecord, Store
from .task import step_to_dict

Progress = Callable[[str, dict[str, Any]], None]


def _no_progress(event: str, data: dict[str, Any]) -> None:
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
    progress: Progress = _no_progress
    python: str = field(default_factory=lambda: sys.executable)
    job_of: dict[str, str] = field(default_factory=dict)  # artifact id -> job id holding it
    submitted: list[JobRecord] = field(default_factory=list)

    @classmethod
    def for_plan(cls, plan: Plan, **kwargs: Any) -> LaunchContext:
        ctx = cls(**kwargs)
        ctx.job_of.update(plan.live_jobs)
        return ctx

    def job_name(self, group: Group, group_no: int, chunk_no: int) -> str:
        """A name unique to this submission and stable across its retries."""
        return (f"{self.project[:40]}.{group.stage[:40]}.{self.launch_id}"
                f".t{group.tier}g{group_no}c{chunk_no}")

    def prepare(self, group: Group, tasks: Sequence[PlannedTask], name: str, backend: str,
                **record_fields: Any) -> PreparedJob:
        """Write the spec of one job and record its intent in the store."""
        spec = paths.spec_dir(self.home, self.project, name)
        header = {"project": self.project, "stage": group.stage, "job_name": name,
                  "artifact_path": self.artifact_path, "code_path": self.code_path,
                  "umask": self.config.umask}
        specs.write_spec(str(spec), header, (_task_json(t) for t in tasks))
        deps = sorted({self.job_of[d] for t in tasks for d in t.dep_ids if d in self.job_of})
        record = JobRecord(
            name=name, backend=backend, stage=group.stage, tier=group.tier,
            tasks=[[t.artifact_id, t.relpath] for t in tasks],
            requirements=group.requirements_dict, depends_on=deps, spec_dir=str(spec),
            log_dir=str(paths.log_dir(self.config.log_directory, self.project, group.stage)),
            host=socket.gethostname(), pid=os.getpid(), **record_fields,
        )
        Path(record.log_dir).mkdir(parents=True, exist_ok=True)
        self.store.add(record)
        return PreparedJob(record, group, tuple(tasks), tuple(deps))

    def confirm(self, job: PreparedJob, job_id: str, **changes: Any) -> JobRecord:
        """Record the scheduler's job id for a prepared job."""
        record = self.store.update(job.record.stage, job.record.name, job_id=job_id,
                                   state=changes.pop("state", "submitted"), **changes)
        for t in job.tasks:
            self.job_of[t.artifact_id] = job_id
        self.submitted.append(record)
        self.progress("submitted", {"record": record})
        return record


def _task_json(task: PlannedTask) -> dict[str, Any]:
    return {"id": task.artifact_id, "relpath": task.relpath, "class": task.class_name,
            "params": task.params, "deps": list(task.dep_relpaths),
            "steps": [step_to_dict(s) for s in task.steps]}


def pending_intents(store: Store) -> list[JobRecord]:
    """Records whose submission was started but never confirmed (a crash in between)."""
    return [r for r in store.all_records() if r.state == "submitting"]
