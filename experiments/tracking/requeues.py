"""Which tracked jobs the scheduler must be asked about, cheaply.

A task's end is recorded the first time a verb sees it, and never asked about again, so a
project whose jobs have all ended costs no scheduler call. Slurm keeps an ended job for
``MinJobAge`` seconds, though, and meanwhile ``scontrol requeue`` brings a failed task back: a
recorded failure (failed, or unknown; not cancelled or dependency-failed) is asked about
again (in the same one query) until it is older than that window, read at submission and kept in
the record.
"""

from __future__ import annotations

import time
from datetime import datetime

from .store import JobRecord, RecordState

# Recorded ends (ArtifactState values in ``JobRecord.ended``) asked about again while young:
# failures. Not built, cancelled or dependency-failed ends (a status right after a `cancel` or
# an `scancel` of a grid stays free of calls).
AGAIN = frozenset({"failed", "unknown"})


def needs_asking(record: JobRecord, now: float | None = None) -> bool:
    """Whether the scheduler must be asked about a job: it was submitted and some task's end
    is not recorded yet (``JobRecord.ended`` keeps each task's first observed end, so a job
    whose tasks have all ended costs no query, however long the history), or a recorded end
    that left its artifact unbuilt is young enough to have been requeued (:func:`requeuable`)."""
    if not record.job_id or record.state is RecordState.FINISHED:
        return False
    return len(record.ended) < len(record.tasks) or requeuable(record, now)


def requeuable(record: JobRecord, now: float | None = None) -> bool:
    """Whether some task whose end is recorded as a failure may have been requeued since: the
    scheduler keeps an ended job ``requeue_window_s`` after its end (Slurm's MinJobAge, 0 for
    ever) and ``scontrol requeue`` brings it back meanwhile. Records without a window (older
    ones, backends that cannot requeue) never are, nor jobs stopped with ``cancel`` (a status
    right after a cancel stays free)."""
    window = record.requeue_window_s
    if window is None or not record.ended or record.state is RecordState.CANCELLED:
        return False
    seen = {str(e.get("observed_at") or "") for e in record.ended.values()
            if e.get("state") in AGAIN and e.get("label") != "not ours"}
    if not seen or window == 0:
        return bool(seen)
    now = time.time() if now is None else now
    return any(_epoch(text, now) + window > now for text in seen)


def _epoch(text: str, now: float) -> float:
    """Seconds since the epoch of an ISO time (``now`` when it cannot be read: ask again)."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return now
