"""``cancel``: stop every live job of the chosen stages, one call per backend."""

from __future__ import annotations

from collections.abc import Sequence

from ..backends.base import TaskKey, TaskStatus
from ..errors import SchedulerQueryError
from ..session import Session
from ..store import RecordState
from ..tracking import of_root


def cancel(session: Session, stages: Sequence[str] | None = None) -> list[str]:
    """Cancel the live jobs of the stages (all by default) that build into the session's
    artifact root (and jobs of unknown root); returns the cancelled job ids.

    Refuses when a scheduler cannot say which jobs are live: cancelling blind could miss some.
    """
    records = of_root(session.records(session.selected(stages)), session.experiment.artifact_path)
    live = session.live(records)
    if live.unreachable:
        raise SchedulerQueryError(live.warnings()[0])
    targets = [r for r in records
               if any(_live(live.get(TaskKey(r.job_id or "", i))) for i in range(len(r.tasks)))]
    for name, backend in session.backends_for(targets).items():
        backend.cancel([r for r in targets if r.backend == name])
    for stage in {r.stage for r in targets}:
        session.store.update_many(stage, {r.name: {"state": RecordState.CANCELLED}
                                          for r in targets if r.stage == stage})
    return [r.job_id or "" for r in targets]


def _live(status: TaskStatus | None) -> bool:
    return status is not None and status.state.live
