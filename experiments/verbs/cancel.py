"""``cancel``: stop every live job of the chosen stages, one call per backend.

A launch of the same project may be running while ``cancel`` is typed; cancelling only what is
recorded at that moment would leave the launch submitting behind it. So ``cancel`` first asks
running launches to stop (a stop request they check before each submission); when the project's
launch lock is held, it cancels what is live at once (which also stops a local launch), then
waits for the lock (released by the launch when it has stopped). The final cancel runs under
the lock, when nothing can be submitted any more. If the launch does not
stop within ``wait_s``, ``cancel`` says so and fails: it never reports success with a launch
still running.

Jobs record the experiment file that launched them: when two files use one project name,
``cancel`` from one of them leaves the other's jobs alone and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from filelock import FileLock, Timeout

from .. import paths
from ..config.settings import lock_mode
from ..errors import ExperimentsError
from ..launching.launch_context import clear_stop, request_stop
from ..launching.launch_lock import root_lock
from ..session import Session
from ..states import JobState, TaskKey
from ..tracking.status import Live
from ..tracking.store import JobRecord, RecordState

CANCEL_WAIT_S = 120.0


@dataclass
class CancelResult:
    """What ``cancel`` did: the job ids it cancelled and what the user should know."""

    job_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped_local: bool = False  # a local launcher was asked to stop


def cancel(session: Session, stages: Sequence[str] | None = None) -> list[str]:
    """Cancel the live jobs of the stages (all by default); returns the cancelled job ids."""
    return cancel_jobs(session, stages).job_ids


def cancel_jobs(session: Session, stages: Sequence[str] | None = None, *,
                wait_s: float = CANCEL_WAIT_S) -> CancelResult:
    """Stop a running launch of the project, then cancel the live jobs of the stages.

    Refuses when a scheduler cannot say which jobs are live: cancelling blind could miss some.
    """
    project = session.experiment.project
    result = CancelResult()
    stop = request_stop(session.store.home, project)
    try:
        lock_path = paths.launch_lock(session.store.home, project)
        lock = FileLock(str(lock_path), timeout=0, mode=lock_mode(session.config.umask))
        if not _try_lock(lock):
            result.notes.append(f"a launch of project {project!r} was running: asked it to stop")
            _cancel_live(session, stages, result)  # what is live now (stops local launchers)
            lock.timeout = wait_s
            if not _try_lock(lock):
                raise ExperimentsError(
                    f"a launch of project {project!r} is still running (lock {lock_path}) and "
                    f"did not stop within {wait_s:g} s; cancelled {len(result.job_ids)} job(s) "
                    "so far, but it may submit more: run `cancel` again when it has ended")
        try:
            _cancel_live(session, stages, result)  # nothing can be submitted any more
            if result.stopped_local:  # a local run holds only its root's lock: wait for it
                _wait_for_root(session, wait_s)
        finally:
            lock.release()
    finally:
        clear_stop(stop)
    return result


def _wait_for_root(session: Session, wait_s: float) -> None:
    """Wait until the local run into this root that was asked to stop has ended."""
    ex = session.experiment
    path = root_lock(session.store.home, ex.project, ex.artifact_path)
    lock = FileLock(str(path), timeout=wait_s, mode=lock_mode(session.config.umask))
    if not _try_lock(lock):
        raise ExperimentsError(
            f"a local run of project {ex.project!r} into {ex.artifact_path} was asked to stop "
            f"but is still running after {wait_s:g} s (lock {path}); run `cancel` again")
    lock.release()


def _try_lock(lock: FileLock) -> bool:
    try:
        lock.acquire()
    except Timeout:
        return False
    return True


def _cancel_live(session: Session, stages: Sequence[str] | None, result: CancelResult) -> None:
    """Cancel what is live of the stages' jobs that build into the session's artifact root
    (and jobs of unknown root), leaving other experiment files' jobs alone."""
    tracked = session.tracked(session.selected(stages), strict=True)
    targets, away = elsewhere(tracked.live_records(), tracked.live)
    for r in away:
        note = (f"not cancelled: job {r.job_id} was submitted on cluster {r.cluster!r}, which "
                f"this machine's Slurm does not reach; cancel it there (`scancel {r.job_id}` "
                f"on a login node of {r.cluster}, or this command with its SLURM_CONF)")
        if note not in result.notes:
            result.notes.append(note)
    theirs = foreign(session, targets)
    for path in sorted({r.experiment_file for r in theirs}):
        note = (f"not cancelled: live job(s) "
                f"{' '.join(r.job_id or '?' for r in theirs if r.experiment_file == path)} of "
                f"project {session.experiment.project!r} were launched from another experiment "
                f"file, {path}; cancel them from that file")
        if note not in result.notes:
            result.notes.append(note)
    targets = [r for r in targets if r not in theirs]
    _cancel_records(session, targets)
    result.stopped_local |= any(r.backend == "local" for r in targets)
    result.job_ids.extend(r.job_id or "" for r in targets
                          if (r.job_id or "") not in result.job_ids)


def _cancel_records(session: Session, targets: Sequence[JobRecord]) -> None:
    """Cancel ``targets`` through their backends and record them cancelled."""
    for name, backend in session.backends_for(targets).items():
        backend.cancel([r for r in targets if r.backend == name])
    for stage in {r.stage for r in targets}:
        session.store.update_many(stage, {r.name: {"state": RecordState.CANCELLED}
                                          for r in targets if r.stage == stage})


cancel_records = _cancel_records  # for `launch --rebuild-stale --replace-queued`
def elsewhere(records: Sequence[JobRecord], live: Live
              ) -> tuple[list[JobRecord], list[JobRecord]]:
    """(records this machine's scheduler can cancel, records on another cluster)."""
    away = [r for r in records if r.tasks and (st := live.get(TaskKey(r.job_id or "", 0)))
            is not None and st.state is JobState.ELSEWHERE]
    return [r for r in records if r not in away], away


def foreign(session: Session, records: Sequence[JobRecord]) -> list[JobRecord]:
    """Records launched from another experiment file that uses the same project name."""
    mine = session.experiment.source_file
    return [r for r in records if mine and r.experiment_file and r.experiment_file != mine]


def other_files(session: Session) -> list[str]:
    """Warnings naming other experiment files whose jobs share this file's project name."""
    files = sorted({r.experiment_file for r in foreign(session, session.records())})
    project = session.experiment.project
    return [f"project {project!r} is also used by {path}: both files' jobs are tracked "
            "together (cancel leaves the other file's jobs alone); give each experiment file "
            "its own project name" for path in files]


def cancel_targets(session: Session, stages: Sequence[str] | None = None) -> list[JobRecord]:
    """The jobs ``cancel`` would stop (shown before a bare ``cancel`` asks): those of the
    stages, building into this artifact root, with a live task (one query).

    Refuses when a scheduler cannot say which jobs are live: cancelling blind could miss some.
    """
    tracked = session.tracked(session.selected(stages), strict=True)
    targets = elsewhere(tracked.live_records(), tracked.live)[0]
    return [r for r in targets if r not in foreign(session, targets)]
