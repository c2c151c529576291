"""What a launch does about relays around its wave (issue 27): the successor a relay
queues *before* its wave (so a relay killed mid-submission still has one) and the wait it is
given once the wave is submitted; the line saying what Slurm's refusal at the submit limit left
for later; and the part-way refusal raised when no relay can go on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import SchedulerQueryError, SubmissionError
from ..launching.launch_context import LaunchContext, pending_intents
from ..launching.relay import (
    RELAY_ENV,
    SteersRelays,
    SubmitsRelays,
    is_relay,
    limit_reason,
    submit_relay,
)
from ..plan import Plan
from ..session import Session
from ..states import TaskKey
from ..tracking.status import Live
from ..tracking.store import JobRecord, RecordState
from .launch_incomplete import incomplete
from .planning import Prepared


def is_live_record(record: JobRecord, live: Live) -> bool:
    """Whether a task of ``record`` is queued or running."""
    return any((st := live.get(TaskKey(record.job_id or "", i))) is not None and st.state.live
               for i in range(len(record.tasks)))


def queue_ahead(session: Session, stages: Sequence[str] | None, prep: Prepared,
                ctx: LaunchContext, later: Sequence[str], wave: dict[str, int],
                options: Sequence[str]) -> JobRecord | None:
    """In a relay whose wave leaves more for later: queue the next relay *before* the
    wave, waiting for this relay only, so a relay killed while it submits still has a
    successor (which reconciles what it left and plans again). Made to wait for the wave
    once the wave is submitted (:func:`wait_for_wave`)."""
    own, backend, plan = os.environ.get("SLURM_ARRAY_JOB_ID", ""), session.backend(), prep.plan
    if not (own and os.environ.get(RELAY_ENV) and later and plan.groups
            and isinstance(backend, SubmitsRelays) and isinstance(backend, SteersRelays)):
        return None
    if any(is_relay(r) and r.job_id != own and is_live_record(r, prep.live)
           for r in prep.records):
        return None  # another relay is queued already: it plans the next wave
    try:
        got = submit_relay(backend, ctx, later[0].split(":")[0], stages, [own],
                           dict(plan.groups[0].resources.requirements), options, 0, wave)
    except SubmissionError:
        return None  # the usual relay after the wave, then
    return got if isinstance(got, JobRecord) else None


def wait_for_wave(backend: object, ahead: JobRecord, after: list[str]) -> list[str]:
    """Make the relay queued ahead of this relay's wave wait for that wave (and this relay);
    should the controller not take it, it plans again as soon as this relay ends (the
    warning says so)."""
    if not isinstance(backend, SteersRelays):
        return []
    try:
        backend.relay_after(ahead.job_id or "", after)
    except SchedulerQueryError as exc:
        return [f"relay job {ahead.job_id} could not be made to wait for jobs "
                f"{' '.join(after)} ({exc}): it plans again when this relay ends"]
    return []


def refused_line(plan: Plan, submitted: Sequence[JobRecord], refused: SubmissionError
                 ) -> str:
    """What waits for the next wave after Slurm refused part-way at the submit limit."""
    held = {t[0] for r in submitted for t in r.tasks}
    left = [g for g in plan.groups if any(t.artifact_id not in held for t in g.tasks)]
    count = sum(1 for g in left for t in g.tasks if t.artifact_id not in held)
    return (f"{left[0].stage if left else plan.groups[0].stage}: {count} artifact(s) wait for "
            f"a later wave (Slurm refused more at your submit limit: {limit_reason(refused)})")


def part_way(session: Session, plan: Plan, records: Sequence[JobRecord],
             refused: SubmissionError) -> SubmissionError:
    """Slurm refused at the submit limit and no relay can go on: the launch stops part-way
    as before (exit 4, with what is queued and what is not; ``refused`` itself when nothing
    was queued)."""
    queued = [r for r in records if r.state is RecordState.SUBMITTED]
    if not queued:
        return refused
    return incomplete(plan, queued, refused, pending_intents(session.store))
