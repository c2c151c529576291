"""The project's concurrency budget across launches (config.json's ``max_running``).

A launch's own budget (``launch --max-running N``) is split over its arrays' throttles. The
config's ``max_running`` bounds the whole project: the arrays of earlier launches that still
have live tasks hold part of it. :func:`held_slots` says how much each holds, from the records
and the one scheduler query the launch makes anyway (no extra call); the backend then makes the
new arrays wait for the holders of the slots they take (see ``backends/slurm/budget.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..states import TaskKey
from ..tracking.status import Live
from ..tracking.store import JobRecord, RecordState


def held_slots(records: Sequence[JobRecord], live: Live, budget: int) -> list[tuple[str, int]]:
    """(job id, slots) for every array with a live task: its throttle (or ``max_parallel``),
    or its live tasks when fewer, at most ``budget``; in submission order."""
    out: list[tuple[str, int]] = []
    for rec in sorted(records, key=lambda r: r.submitted_at):
        if not rec.job_id or rec.state is not RecordState.SUBMITTED:
            continue
        running = {rec.array_index(i) for i in range(len(rec.tasks))
                   if (st := live.get(TaskKey(rec.job_id, i))) is not None and st.state.live}
        if not running:
            continue
        cap = rec.throttle or _max_parallel(rec)
        out.append((rec.job_id, min(len(running), cap or budget, budget)))
    return out


def _max_parallel(record: JobRecord) -> int | None:
    value = record.requirements.get("max_parallel")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None
