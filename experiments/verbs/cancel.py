"""``cancel``: stop every live job of the chosen stages, one call per backend."""

from __future__ import annotations

from collections.abc import Sequence

from ..backends.base import TaskKey, TaskStatus
from ..errors import SchedulerQueryError
from ..session import Session
from ..store import JobRecord, RecordState


def cancel_targets(session: Session, stages: Sequence[str] | None = None) -> list[JobRecord]:
    """The jobs ``cancel`` would stop: those of the stages with a live task (one query).

    Refuses when a scheduler cannot say which jobs are live: cancelling blind could miss some.
    """
    records = session.records(session.selected(stages))
    live = session.live(records)
    if live.unreachable:
        raise SchedulerQueryError(live.warnings()[0])
    return [r for r in records
            if any(_live(live.get(TaskKey(r.job_id or "", i))) for i in range(len(r.tasks)))]


def cancel(session: Session, stages: Sequence[str] | None = None, *,
           targets: Sequence[JobRecord] | None = None) -> list[str]:
    """Cancel the live jobs of the stages (all by default); returns the cancelled job ids.

    ``targets`` are jobs already chosen by :func:`cancel_targets` (say, shown and confirmed).
    """
    if targets is None:
        targets = cancel_targets(session, stages)
    for name, backend in session.backends_for(targets).items():
        backend.cancel([r for r in targets if r.backend == name])
    for stage in {r.stage for r in targets}:
        session.store.update_many(stage, {r.name: {"state": RecordState.CANCELLED}
                                          for r in targets if r.stage == stage})
    return [r.job_id or "" for r in targets]


def _live(status: TaskStatus | None) -> bool:
    return status is not None and status.state.live
