"""What every backend shares when it launches a plan: specs, job records, dependency lookup.

A job's record is written as an *intent* (state ``submitting``) before the scheduler is called
and confirmed with its job id right after, so a crash in between is reconciled on the next
launch by looking the job up by its unique name instead of submitting it twice.
"""

from __future__ import annotations

import enum
import json
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _proc, paths
from .._faults import crash_point
from ..config.settings import Config
from ..errors import LaunchStopped
from ..experiment import Experiment
from ..model.identity import encode_params
from ..plan import Group, Plan, PlannedTask
from ..plan.overrides import Overrides
from ..states import JobState
from ..tracking.store import JobRecord, RecordState, Store
from ..worker import specs
from .snapshots import Snapshot
from .waits import SubmitWait


class EventKind(enum.Enum):
    """What a launch reports as it goes."""

    START = "start"          # the local backend is about to run ``total`` tasks
    SUBMITTED = "submitted"  # a job was submitted and recorded
    TASK_ENDED = "task"      # a local task ended in ``state``
    END = "end"              # the local backend has finished
    WAITING = "waiting"      # the scheduler is slow to accept submission ``position``


@dataclass(frozen=True)
class LaunchEvent:
    """One progress report of a launch."""

    kind: EventKind
    total: int = 0
    record: JobRecord | None = None
    relpath: str = ""
    state: JobState | None = None
    wait: SubmitWait | None = None  # WAITING: what the submission waits for, what comes next
    position: int = 0  # WAITING: which submission of the launch (1-based; of ``total``)


Progress = Callable[[LaunchEvent], None]


def _no_progress(event: LaunchEvent) -> None:
    return None


def _nothing() -> None:
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

    experiment: Experiment
    config: Config
    store: Store
    launch_id: str
    python: str  # the interpreter that runs the worker
    progress: Progress = _no_progress
    max_running: int | None = None  # at most this many tasks of the launch at once
    job_of: dict[str, str] = field(default_factory=dict)  # artifact id -> job id holding it
    submitted: list[JobRecord] = field(default_factory=list)
    overrides: Overrides = field(default_factory=Overrides)  # --set, kept in each record
    snapshot: Snapshot | None = None  # the launch's frozen code; None: tasks run in code_path
    # The project's budget (config.json's max_running) across launches: (job id, slots) of the
    # live arrays of earlier launches (see backends/slurm/budget.py); empty for --max-running.
    held: list[tuple[str, int]] = field(default_factory=list)
    # Called by a backend that keeps running after its jobs are recorded (the local one): the
    # launch hands the project's launch lock back and keeps only its artifact root's.
    running: Callable[[], None] = _nothing

    @classmethod
    def for_plan(cls, plan: Plan, experiment: Experiment, config: Config, store: Store, *,
                 progress: Progress | None = None, max_running: int | None = None,
                 overrides: Overrides | None = None,
                 snapshot: Snapshot | None = None) -> LaunchContext:
        """A context for ``plan`` of ``experiment``, knowing which live jobs already hold its
        dependencies; the worker runs on the config's ``python`` (default: this one)."""
        ctx = cls(experiment, config, store, launch_id=os.urandom(4).hex(),
                  python=config.python or sys.executable, progress=progress or _no_progress,
                  max_running=max_running, overrides=overrides or Overrides(),
                  snapshot=snapshot)
        ctx.job_of.update(plan.live_jobs)
        return ctx

    @property
    def project(self) -> str:
        return self.experiment.project

    @property
    def home(self) -> Path:
        """The experiments home the store keeps its records (and specs, and locks) in."""
        return self.store.home

    @property
    def artifact_path(self) -> str:
        return self.experiment.artifact_path

    @property
    def code_path(self) -> str:
        """The experiment's own code folder (tasks run in the snapshot's, when there is one)."""
        return self.experiment.code_path

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
        return [*self.config.setup_for(partition), *self.experiment.setup]

    def prepare(self, group: Group, tasks: Sequence[PlannedTask], name: str, backend: str,
                *, pid_start: int | None = None, indices: Sequence[int] | None = None,
                depends_on: Sequence[str] | None = None,
                setup_in_worker: bool = False, throttle: int | None = None) -> PreparedJob:
        """Write the spec of one job and record its intent in the store.

        ``indices`` are the scheduler's array indices of the tasks when they are not
        ``0..n-1`` (the spec then maps an index to its task; consecutive tasks sharing an index
        form a pack, built by one task); ``depends_on`` overrides the job
        ids waited for (by default every job holding a dependency of a task);
        ``setup_in_worker``: the worker runs the setup lines before each command (for backends
        without a batch script of their own to put them in); ``throttle``: how many of its
        tasks may run at once, kept in the record (a later launch counts it against the
        project's budget). Raises ``LaunchStopped`` (before
        writing anything) when ``cancel`` asked this project's launches to stop: every job
        recorded so far is then cancelled by it.
        """
        who = stop_requested(self.home, self.project)
        if who:
            raise LaunchStopped(
                f"launch stopped by {who} after submitting {len(self.submitted)} job(s), "
                f"before job {name}; `cancel` cancels what was submitted")
        spec = paths.spec_dir(self.home, self.project, name)
        sparse = list(indices) if indices is not None and list(indices) != list(
            range(len(tasks))) else []
        header = self.spec_header(group, name, sparse, setup_in_worker)
        specs.write_spec(str(spec), header, (_task_json(t) for t in tasks))
        deps = sorted(set(depends_on) if depends_on is not None else
                      {self.job_of[d] for t in tasks for d in t.dep_ids if d in self.job_of})
        record = JobRecord(
            name=name, backend=backend, stage=group.stage, tier=group.tier,
            tasks=[[t.artifact_id, t.relpath] for t in tasks],
            requirements=dict(group.resources.requirements), depends_on=deps,
            spec_dir=str(spec),
            log_dir=str(paths.log_dir(self.config.log_directory, self.project, group.stage)),
            host=socket.gethostname(), pid=os.getpid(),
            experiment_file=self.experiment.source_file,
            pid_start=_proc.process_start(os.getpid()) if pid_start is None else pid_start,
            array_indices=sparse,
            artifact_path=self.artifact_path, overrides=self.overrides.for_stage(group.stage),
            snapshot=self.snapshot.id if self.snapshot else None, throttle=throttle,
        )
        Path(record.log_dir).mkdir(parents=True, exist_ok=True)
        self.store.add(record)
        crash_point("before-submit")  # the intent is recorded; the scheduler is not yet asked
        return PreparedJob(record, group, tuple(tasks), tuple(deps))

    def spec_header(self, group: Group, name: str, sparse: Sequence[int],
                    setup_in_worker: bool) -> specs.SpecHeader:
        """The header of job ``name``'s spec: the one place the launcher says what the worker
        reads (``sparse``: the tasks' array indices when they are not ``0..n-1``)."""
        indices, packs = specs.array_layout(sparse) if sparse else ((), ())
        res = group.resources
        checkpoint = None
        if res.checkpoint_before_s:  # the worker requeues after this signal (see worker/build.py)
            checkpoint = specs.Checkpoint(
                res.checkpoint_signal, res.max_requeues,
                dict(res.requirements).get("requeue", True) is not False)
        snap = self.snapshot
        return specs.SpecHeader(
            self.project, group.stage, name, self.artifact_path,
            snap.path if snap else self.code_path, umask=self.config.umask,
            snapshot=None if snap is None else specs.CodeSnapshot(snap.id, snap.path, _git(snap)),
            live_code_path=self.code_path if snap else None,
            trusted_uids=tuple(self.config.trusted_uids),
            trusted_gids=tuple(self.config.trusted_gids), indices=indices, packs=packs,
            setup=tuple(self.setup_lines(group)) if setup_in_worker else (),
            checkpoint=checkpoint)

    def confirm(self, job: PreparedJob, job_id: str, **changes: Any) -> JobRecord:
        """Record the scheduler's job id for a prepared job (with the backend's ``changes``
        to its record, such as how long the scheduler can requeue its ended tasks)."""
        crash_point("after-submit")  # the scheduler accepted the job; its id is not recorded
        # Not fsynced: if a power cut loses it, the intent stays and the next launch finds the
        # job by its name (one fsync per submission, the intent's, instead of two).
        record = self.store.update(job.record.stage, job.record.name, durable=False,
                                   job_id=job_id, state=RecordState.SUBMITTED, **changes)
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


def _git(snapshot: Snapshot) -> dict[str, Any] | None:
    """The git state a snapshot was taken at, as the spec (and provenance) keep it."""
    if snapshot.git is None:
        return None
    return {"commit": snapshot.git.commit, "branch": snapshot.git.branch,
            "dirty": snapshot.git.dirty, "diff_hash": snapshot.git.diff_hash}


def _task_json(task: PlannedTask) -> dict[str, Any]:
    """A task's line of its spec (read by worker/specs.py). The steps' own field dicts are
    given to the encoder as they are (only read, never kept): a million copies saved."""
    art = task.artifact
    return {"id": task.artifact_id, "relpath": task.relpath, "class": task.class_name,
            "params": {} if art is None else encode_params(art),
            "deps": list(task.dep_relpaths), "steps": [vars(s) for s in task.steps]}


def pending_intents(store: Store) -> list[JobRecord]:
    """Records whose submission was started but never confirmed (a crash in between)."""
    return [r for r in store.all_records() if r.state is RecordState.SUBMITTING]


# -- stop requests: how ``cancel`` stops a launch that is running --------------------------------
def request_stop(home: Path, project: str) -> Path:
    """Ask every launch of ``project`` to stop before its next submission; returns the file.

    The request names this process (host, pid, start time), so one left behind by a killed
    ``cancel`` is ignored instead of stopping every later launch. Remove it with
    :func:`clear_stop` when done.
    """
    path = paths.launch_stop_request(home, project)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "start": _proc.process_start(os.getpid())}
    path.write_text(json.dumps(me))
    return path


def clear_stop(path: Path) -> None:
    """Withdraw a stop request (only the one this process wrote)."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def stop_requested(home: Path, project: str) -> str | None:
    """Who asks launches of ``project`` to stop (``"cancel (pid N on host)"``), or None.

    A request whose writer is gone (on this host) is stale and ignored; one from another host
    counts, since its writer cannot be checked from here.
    """
    try:
        data = json.loads(paths.launch_stop_request(home, project).read_text())
        host, pid, start = str(data["host"]), int(data["pid"]), data.get("start")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if host == socket.gethostname() and not _proc.alive(pid, start):
        return None
    return f"`cancel` (pid {pid} on {host})"
