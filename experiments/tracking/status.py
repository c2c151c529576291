"""What is built, queued, running, failed or not started: markers first, then the scheduler.

The done marker is the truth about what is built; the store says what was submitted; the
scheduler is asked (once per backend, for all jobs together) only about what may be live.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .. import paths
from ..errors import SchedulerQueryError
from ..states import NOT_OURS, JobState, Outlook, TaskKey, TaskStatus
from ..worker import trust
from ..worker.common import WorkerState
from .logfiles import early_failure
from .markers import DoneIndex
from .outcomes import Verdict, scheduler_reason
from .requeues import needs_asking
from .store import JobRecord, RecordState, now_iso


class AsksScheduler(Protocol):
    """What tracking needs of a backend: the scheduler's states of recorded tasks (every
    backend has it; tracking stays below the backends that implement it)."""

    def query(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskStatus]: ...


class ArtifactState(str, enum.Enum):
    """The state of an artifact (or of the task building it) as people see it."""

    BUILT = "built"
    STALE = "stale"  # built, but the experiment now describes something else (with the reason)
    RUNNING = "running"
    QUEUED = "queued"
    FAILED = "failed"
    DEP_FAILED = "dep-failed"
    CANCELLED = "cancelled"
    MODIFIED = "modified"  # built, but another account could have changed it since
    UNKNOWN = "unknown"
    ELSEWHERE = "other cluster"  # submitted on another cluster: not asked, may be live
    SUBMITTING = "submitting"
    NOT_STARTED = "not started"


ORDER = tuple(ArtifactState)  # display order
#: The version of the JSON documents ``status --json`` and ``table --format json`` print:
#: raised when a key changes meaning or disappears, not when one is added (docs/states.md).
#: Version 2 added the *stale* state; documents without a version are version 1.
JSON_VERSION = 2
NOT_OURS_LABEL = "not ours"  # the reason shown (and recorded) for a job id now another job's
PROBLEMS = (ArtifactState.FAILED, ArtifactState.DEP_FAILED, ArtifactState.MODIFIED,
            ArtifactState.UNKNOWN, ArtifactState.ELSEWHERE)


@dataclass(frozen=True)
class TaskView:
    """One task: which artifact it builds, the state it is in and why."""

    job_id: str
    index: int
    relpath: str
    state: ArtifactState
    detail: str = ""
    held: bool = False
    reason: str = ""    # the scheduler's word for the end ("TIMEOUT") or the wait ("Priority")
    note: str = ""      # history: "rebuilt by 9" when a later job built the artifact
    recorded: bool = False  # history: read from the record's ``ended`` entry
    outlook: Outlook | None = None  # queued with a reason: whether it clears on its own
    slurm_task: str = ""  # the scheduler's task id when it is not ``<job>_<index>`` (lanes, packs)
    in_pack: bool = False  # its task builds several artifacts: name it with its relpath

    @property
    def key(self) -> TaskKey | None:
        return TaskKey(self.job_id, self.index) if self.job_id else None

    @property
    def task_id(self) -> str:
        """The scheduler's id of the task (a pack's id for an artifact in a pack); "" if none."""
        return self.slurm_task or (f"{self.job_id}_{self.index}" if self.job_id else "")

    @property
    def address(self) -> str:
        """How ``cat`` names this artifact's task: the task id, ``/<relpath>`` inside a pack."""
        return f"{self.task_id}/{self.relpath}" if self.in_pack and self.task_id else self.task_id

    @property
    def label(self) -> str:
        """The state with the scheduler's reason: ``failed (TIMEOUT)``."""
        return f"{self.state.value} ({self.reason})" if self.reason else self.state.value


@dataclass(frozen=True)
class JobView:
    """One tracked job with its tasks and their counts per state."""

    record: JobRecord
    tasks: tuple[TaskView, ...]
    root: str | None = None  # the artifact root it built into (None: not recorded)
    show_root: bool = False  # the project has jobs of several roots: say which

    @property
    def counts(self) -> dict[ArtifactState, int]:
        out: dict[ArtifactState, int] = {}
        for t in self.tasks:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    @property
    def label_counts(self) -> dict[str, int]:
        """Counts per :attr:`TaskView.label`, in state order (``1 failed (TIMEOUT)``)."""
        out: dict[str, int] = {}
        for t in sorted(self.tasks, key=lambda t: ORDER.index(t.state)):
            out[t.label] = out.get(t.label, 0) + 1
        return out

    @property
    def notes(self) -> dict[str, int]:
        """Counts per note (``rebuilt by 9``)."""
        out: dict[str, int] = {}
        for t in self.tasks:
            if t.note:
                out[t.note] = out.get(t.note, 0) + 1
        return out


@dataclass
class StageStatus:
    """Counts of artifact states in one stage, and the problems with their reasons."""

    stage: str
    counts: dict[ArtifactState, int] = field(default_factory=dict)
    problems: list[TaskView] = field(default_factory=list)
    waiting: list[TaskView] = field(default_factory=list)  # queued tasks the scheduler explains
    stale: list[TaskView] = field(default_factory=list)  # built but stale, with the reason


@dataclass
class Live:
    """The scheduler's answer for tracked tasks, and the backends that could not be asked."""

    statuses: dict[TaskKey, TaskStatus] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)  # backend name -> why

    def get(self, key: TaskKey) -> TaskStatus | None:
        return self.statuses.get(key)

    def warnings(self) -> list[str]:
        return [f"could not ask the {name} scheduler ({why}); live jobs are unknown"
                for name, why in self.unreachable.items()]


def query_live(records: Sequence[JobRecord], backends: Mapping[str, AsksScheduler]) -> Live:
    """Scheduler states of the tasks of ``records`` that may still be live: one query per
    backend for all such jobs, and none when every task's end is recorded (and none of them
    can have been requeued)."""
    live = Live()
    by_backend: dict[str, list[JobRecord]] = {}
    now = time.time()
    for r in records:
        if needs_asking(r, now):
            by_backend.setdefault(r.backend, []).append(r)
    for name, recs in by_backend.items():
        try:
            live.statuses.update(backends[name].query(recs))
        except SchedulerQueryError as exc:
            live.unreachable[name] = str(exc)
    return live


def live_artifacts(records: Sequence[JobRecord], live: Live) -> dict[str, str]:
    """Artifact id → job id, for artifacts a live task is building."""
    out: dict[str, str] = {}
    for rec in records:
        for i, (artifact_id, _) in enumerate(rec.tasks):
            st = live.get(TaskKey(rec.job_id or "", i))
            if st is not None and st.state.live:
                out[artifact_id] = rec.job_id or ""
    return out


def read_status(root: str, relpath: str) -> dict[str, object]:
    """The worker's last record for an artifact (empty when it never ran)."""
    try:
        with open(paths.status_file(root, relpath), encoding="utf-8") as fh:
            data = json.load(fh)
            return data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):  # nested past any record
        return {}


def is_built(root: str, relpath: str) -> bool:
    """A done marker owned by a trusted account (see :mod:`experiments.worker.trust`)."""
    return trust.marker_built(root, relpath)


def modified_detail(why: str) -> str:
    """What a built artifact that another account could have changed shows as its reason."""
    return (f"built, but not safely yours: {why}; check its files, then rebuild it "
            "(invalidate, then launch) in a folder only you can write")


def _view(record: JobRecord, index: int, state: ArtifactState, detail: str = "",
          held: bool = False, reason: str = "") -> TaskView:
    return TaskView(record.job_id or "?", index, record.tasks[index][1], state, detail, held,
                    reason, **_naming(record, index))


def _naming(record: JobRecord, index: int) -> dict[str, Any]:
    """A view's ``slurm_task`` and ``in_pack`` when its array index is not its position."""
    if not record.array_indices:
        return {}
    return {"slurm_task": record.task_id(index), "in_pack": record.packed}


def live_view(record: JobRecord, index: int, st: TaskStatus, root: str | None = None,
               done: DoneIndex | None = None) -> TaskView:
    """A running or queued task; a queued one with the scheduler's reason, hint and outlook;
    one on another cluster with the cluster's name. An artifact of a running pack is running
    only while the worker builds it (its status file says so); before that it waits behind the
    others (queued), after it, it ended."""
    if st.state is JobState.ELSEWHERE:
        return _view(record, index, ArtifactState.ELSEWHERE, st.hint)
    if st.state is JobState.RUNNING:
        if record.packed and root is not None:
            return _in_pack(record, index, st, root, done)
        return _view(record, index, ArtifactState.RUNNING, st.hint, st.held)
    reason = st.reason if st.outlook is not None else ""
    return replace(_view(record, index, ArtifactState.QUEUED, st.hint, st.held, reason),
                   outlook=st.outlook)


_ENDED_IN_PACK = (WorkerState.FAILED, WorkerState.DEPENDENCY_FAILED, WorkerState.INTERRUPTED)


def _in_pack(record: JobRecord, index: int, st: TaskStatus, root: str,
             done: DoneIndex | None) -> TaskView:
    """One artifact of a running pack, as the worker's status file tells it."""
    info = worker_account(record, index, root, done)
    state = info.get("state")
    if state == WorkerState.RUNNING:
        return _view(record, index, ArtifactState.RUNNING, st.hint, st.held)
    if state in _ENDED_IN_PACK:
        return _ended(record, index, None, Live(), root, done)
    task = f"{record.job_id}_{record.array_index(index)}"
    return _view(record, index, ArtifactState.QUEUED, f"waiting in its pack: array task {task} "
                 "builds the artifacts before it first", st.held)


def built_by(root: str, relpath: str) -> str | None:
    """The job id that wrote the artifact's done marker; "" when the marker does not say;
    None when the artifact is not built."""
    try:
        with open(paths.done_marker(root, relpath), encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError):  # nested past any record
        return ""
    job = str(data.get("job") or "") if isinstance(data, dict) else ""
    key = TaskKey.parse(job)
    return key.job_id if key else job


def worker_account(record: JobRecord, index: int, root: str,
                   done: DoneIndex | None = None) -> dict[str, object]:
    """The worker's status file of the artifact, when it is about this very task (a later
    job's attempt overwrites it; a file that names no job is taken as this task's).

    ``done`` spares the read when its listing shows the artifact has no folder at all."""
    relpath = record.tasks[index][1]
    if done is not None and not done.has_folder(relpath):
        return {}
    info = read_status(root, relpath)
    job = str(info.get("job") or "")
    mine = (f"{record.job_id}_{index}", f"{record.job_id}_{record.array_index(index)}",
            record.job_id)  # the worker names its task by array index (a pack's, a lane's)
    if job and job not in mine:
        return {}
    return info


def task_state(record: JobRecord, index: int, live: Live, root: str,
               done: DoneIndex | None = None) -> TaskView:
    """The state of one task; never "built" without the artifact's done marker.

    ``done`` answers "built?" for many tasks with one listing per folder (default: a stat)."""
    relpath = record.tasks[index][1]
    if done(relpath) if done is not None else is_built(root, relpath):
        why = (done or DoneIndex(root)).problem(relpath)
        if why is not None:
            return _view(record, index, ArtifactState.MODIFIED, modified_detail(why))
        return _view(record, index, ArtifactState.BUILT)
    st = live.get(TaskKey(record.job_id or "?", index))
    if st is not None and st.state.live:
        return live_view(record, index, st, root, done)
    if record.state is RecordState.SUBMITTING:
        return _view(record, index, ArtifactState.SUBMITTING, "submission not confirmed")
    entry = record.ended.get(str(index))
    if st is None and entry:  # not asked (its end is recorded), or the scheduler forgot
        if entry.get("state") != ArtifactState.BUILT.value:
            return from_entry(record, index, entry)
        return _view(record, index, ArtifactState.NOT_STARTED,
                     f"built by job {record.job_id}; its done marker has been moved aside or "
                     "removed since")
    return _ended(record, index, st, live, root, done)


_VERDICT = {Verdict.FAILED: ArtifactState.FAILED, Verdict.CANCELLED: ArtifactState.CANCELLED,
            Verdict.DEP_FAILED: ArtifactState.DEP_FAILED}


def _ended(record: JobRecord, index: int, st: TaskStatus | None, live: Live,
           root: str, done: DoneIndex | None = None) -> TaskView:
    """A task that is neither built nor live: what the worker and the scheduler say.

    The scheduler's own reason (a time limit, memory, a node failure, who cancelled) wins over
    the worker's account of the same end ("interrupted by SIGTERM").
    """
    if st is not None and st.raw == NOT_OURS:  # its id now names another job
        return _view(record, index, ArtifactState.UNKNOWN, st.hint, reason=NOT_OURS_LABEL)
    info = worker_account(record, index, root, done)
    worker_state, error = info.get("state"), str(info.get("error") or "")
    if worker_state == WorkerState.DEPENDENCY_FAILED:
        return _view(record, index, ArtifactState.DEP_FAILED, error)
    why = (scheduler_reason(st.raw, st.reason, record.requirements, record.packed)
           if st is not None else None)
    if why is not None:
        return _view(record, index, _VERDICT[why.verdict], why.text, reason=why.label)
    cancelled = (st is not None and st.state is JobState.CANCELLED) or (
        record.state is RecordState.CANCELLED)
    if worker_state == WorkerState.FAILED or (
            worker_state == WorkerState.INTERRUPTED and not cancelled):
        return _view(record, index, ArtifactState.FAILED, error)
    if cancelled:
        return _view(record, index, ArtifactState.CANCELLED, error)
    if (st is not None and st.state in (JobState.FAILED, JobState.COMPLETED) and not info
            and (early := early_failure(record.log_path(index)))):
        return _view(record, index, ArtifactState.FAILED, early)  # e.g. "python … not found"
    if st is not None and st.state is JobState.FAILED:
        return _view(record, index, ArtifactState.FAILED, "the scheduler reports the task "
                                                          "failed (time limit, memory, node "
                                                          "failure…)")
    if st is not None and st.state is JobState.COMPLETED:
        return _view(record, index, ArtifactState.FAILED, "task ended without a done marker")
    if record.backend in live.unreachable:
        return _view(record, index, ArtifactState.UNKNOWN, "the scheduler could not be asked; "
                                                           "run `status` again later")
    return _view(record, index, ArtifactState.UNKNOWN, "no longer known to the scheduler and "
                                                       "not built")


def job_views(records: Sequence[JobRecord], live: Live, root: str) -> list[JobView]:
    done = DoneIndex(root)
    return [JobView(r, tuple(task_state(r, i, live, root, done) for i in range(len(r.tasks))))
            for r in records]


# -- what happened (history and cat), as opposed to today's truth (status) --------------------
TERMINAL = (ArtifactState.BUILT, ArtifactState.FAILED, ArtifactState.DEP_FAILED,
            ArtifactState.CANCELLED)


def from_entry(record: JobRecord, index: int, entry: Mapping[str, Any]) -> TaskView:
    """The view of a task's recorded end (``JobRecord.ended``)."""
    try:
        state = ArtifactState(entry.get("state"))
    except ValueError:
        state = ArtifactState.UNKNOWN
    return TaskView(record.job_id or "?", index, record.tasks[index][1], state,
                    str(entry.get("detail") or ""), reason=str(entry.get("label") or ""),
                    recorded=True, **_naming(record, index))


def observed(record: JobRecord, index: int, live: Live, root: str,
             done: DoneIndex | None = None) -> TaskView:
    """What this task did, from today's markers and answers: "built" only when this very task
    wrote the done marker (or found the artifact already built and ended well).

    ``done`` spares reading files of artifacts whose folder its listing shows absent."""
    relpath = record.tasks[index][1]
    owner = built_by(root, relpath) if done is None or done.has_folder(relpath) else None
    if owner is not None and owner in ("", record.job_id):
        return _view(record, index, ArtifactState.BUILT)
    st = scheduler_status(record, index, live)
    if st is not None and st.state.live:
        return live_view(record, index, st, root, done)
    if record.state is RecordState.SUBMITTING:
        return _view(record, index, ArtifactState.SUBMITTING, "submission not confirmed")
    if owner is not None and st is not None and st.state is JobState.COMPLETED:
        return _view(record, index, ArtifactState.BUILT, f"found it already built by {owner}")
    return _ended(record, index, st, live, root, done)


def scheduler_status(record: JobRecord, index: int, live: Live) -> TaskStatus | None:
    """The scheduler's answer for a task, or the final state a local run recorded."""
    st = live.get(TaskKey(record.job_id or "?", index))
    final = record.task_states.get(str(index))
    if st is None and final:
        try:
            return TaskStatus(JobState(final), raw=record.task_raw.get(str(index), ""))
        except ValueError:
            return None
    return st


def task_history(record: JobRecord, index: int, live: Live, root: str) -> TaskView:
    """What happened to one task: its recorded end if any, else what can be observed now
    (``verbs.inspect`` adds "rebuilt by <job>" from the later jobs' own records)."""
    entry = record.ended.get(str(index))
    return from_entry(record, index, entry) if entry else observed(record, index, live, root)


def ended_entry(record: JobRecord, index: int, live: Live, root: str,
                done: DoneIndex | None = None) -> dict[str, Any] | None:
    """What to record the first time a task is seen ended (None while it is not, or when the
    scheduler could not be asked): the state shown, the scheduler's words and the worker's."""
    if str(index) in record.ended or record.backend in live.unreachable:
        return None
    st = live.get(TaskKey(record.job_id or "?", index))
    if st is not None and st.state.live:
        return None  # not ended (an artifact of a live pack is recorded when the pack ends)
    view = observed(record, index, live, root, done)
    if view.state not in TERMINAL and view.reason != NOT_OURS_LABEL:  # "not ours" is final
        return None
    st = scheduler_status(record, index, live)
    info = worker_account(record, index, root, done)
    entry = {"state": view.state.value, "label": view.reason, "detail": view.detail,
             "raw": st.raw if st else "", "reason": st.reason if st else "",
             "exit_code": st.exit_code if st else "",
             "worker_state": info.get("state"), "error": info.get("error"),
             "observed_at": now_iso()}
    # Empty words are left out (readers default them): 100,000 recorded ends stay small.
    return {k: v for k, v in entry.items() if v not in ("", None)}


def recorded_raw(record: JobRecord, index: int) -> str:
    """The scheduler's word for a task's end as first recorded ("" when none is)."""
    entry = record.ended.get(str(index))
    return str(entry.get("raw") or "") if entry else ""


def latest_tasks(records: Sequence[JobRecord]) -> dict[str, tuple[JobRecord, int]]:
    """Artifact id → its newest task (later records win: they are the newest attempt)."""
    from itertools import count, repeat

    from .. import _gc

    latest: dict[str, tuple[JobRecord, int]] = {}
    with _gc.paused():  # 100,000 tuples and no cycle: the collector would walk the heap
        for rec in records:
            latest.update(zip([t[0] for t in rec.tasks], zip(repeat(rec), count()),
                              strict=False))
    return latest


# Recorded ends that stand as they are (a recorded "built" without its marker does not).
RECORDED_ENDS = {s.value: s for s in TERMINAL if s is not ArtifactState.BUILT}
