"""``reconcile``: resolve the intents an interrupted launch left behind, without making twins.

An intent (a record in state ``submitting``) means a submission was started and never
confirmed. It is adopted when the scheduler knows a job by its unique name. It is dropped only
when no submission can still be in flight:

* its launcher (pid and start time, on this machine) is gone, and no process on this machine
  still submits it (an ``sbatch`` orphaned by a SIGKILLed launcher, say): such processes are
  waited for, for ``wait_s``, then the launch is refused;
* an intent written on another machine, where neither can be checked, is trusted as gone only
  once it is older than ``OTHER_HOST_IN_FLIGHT_S``;
* a look-up that finds nothing is repeated after the backend's settle time (for Slurm, the
  controller's MessageTimeout): a submission held by a frozen controller appears only once it
  has processed it.

Live jobs that appear anyway (a twin: a job carrying the name of a tracked record but another
job id) are cancelled and reported (``cancel_twins``, one query per backend).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from datetime import datetime

from .. import _proc
from ..backends.base import Backend, SubmissionTracking
from ..errors import ExperimentsError, SchedulerQueryError
from ..launching.launch_context import pending_intents
from ..session import Session
from ..tracking.store import JobRecord, RecordState

IN_FLIGHT_WAIT_S = 30.0
OTHER_HOST_IN_FLIGHT_S = 600.0


class SubmissionInFlight(ExperimentsError):
    """A submission of an interrupted launch may still be going on: launching now could twin it."""


def reconcile_intents(session: Session, *, wait_s: float = IN_FLIGHT_WAIT_S,
                      sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Adopt or drop every pending intent (see the module doc); returns warnings to show."""
    warnings: list[str] = []
    unresolved: list[JobRecord] = []
    for rec in pending_intents(session.store):
        _check_not_in_flight(session, rec, wait_s, sleep)
        if not _adopt(session, rec, warnings):
            unresolved.append(rec)
    recent = [r for r in unresolved if (_age_s(r) or 0.0) < OTHER_HOST_IN_FLIGHT_S]
    settle = max((_settle_s(session.backend(r.backend)) for r in recent), default=0.0)
    if settle:
        sleep(settle)
    for rec in unresolved:
        if not _adopt(session, rec, warnings):
            session.store.remove(rec.stage, {rec.name})
    warnings.extend(cancel_twins(session))
    return warnings


def cancel_twins(session: Session) -> list[str]:
    """Cancel live jobs that carry the unique name of a tracked job but another job id.

    Such a twin is a submission a scheduler accepted although it reported a failure (a frozen
    controller processing a request its client had given up on). One query per backend.
    """
    records = [r for r in session.records() if r.job_id]
    out: list[str] = []
    for name, backend in session.backends_for(records).items():
        if not isinstance(backend, SubmissionTracking):
            continue
        try:
            named = backend.live_jobs_by_name()
        except SchedulerQueryError as exc:  # the live jobs are unknown: refuse, as launch does
            raise SchedulerQueryError(
                f"cannot launch: the {name} scheduler could not say which jobs are already "
                f"queued ({exc}); nothing was submitted. Try again when it answers") from None
        twins = [_as_job(r, j) for r in records if r.backend == name
                 for j in named.get(r.name, []) if j != r.job_id]
        if twins:
            backend.cancel(twins)
            out.extend(f"cancelled job {t.job_id}: an untracked twin of job "
                       f"{next(r.job_id for r in records if r.name == t.name)} ({t.name})"
                       for t in twins)
    return out


def _adopt(session: Session, rec: JobRecord, warnings: list[str]) -> bool:
    found = session.backend(rec.backend).find_by_name(rec.name)
    if not found:
        return False
    session.store.update(rec.stage, rec.name, job_id=found[0], state=RecordState.SUBMITTED)
    warnings.append(f"adopted job {found[0]} submitted by an interrupted launch")
    if len(found) > 1:  # one name, several jobs: all but the adopted one are untracked twins
        session.backend(rec.backend).cancel([_as_job(rec, j) for j in found[1:]])
        warnings.append(f"cancelled untracked twin job(s) {' '.join(found[1:])} of {rec.name}")
    return True


def _as_job(rec: JobRecord, job_id: str) -> JobRecord:
    return JobRecord(name=rec.name, backend=rec.backend, stage=rec.stage, tier=rec.tier,
                     tasks=rec.tasks, job_id=job_id, state=RecordState.SUBMITTED)


def _settle_s(backend: Backend) -> float:
    return backend.lookup_settle_s() if isinstance(backend, SubmissionTracking) else 0.0


def _check_not_in_flight(session: Session, rec: JobRecord, wait_s: float,
                         sleep: Callable[[float], None]) -> None:
    """Raise ``SubmissionInFlight`` while a submission of ``rec`` may still be under way."""
    why = _in_flight(session.backend(rec.backend), rec)
    deadline = time.monotonic() + wait_s
    while why and time.monotonic() < deadline:
        sleep(0.5)
        why = _in_flight(session.backend(rec.backend), rec)
    if why:
        raise SubmissionInFlight(
            f"cannot launch: job {rec.name} of an interrupted launch may still be being "
            f"submitted ({why}); nothing was submitted. Wait for it to end (or stop it), then "
            "launch again")


def _in_flight(backend: Backend, rec: JobRecord) -> str:
    """Why a submission of ``rec`` may still be under way, or "" when none can be."""
    if rec.host != socket.gethostname():
        age = _age_s(rec)
        if age is not None and age < OTHER_HOST_IN_FLIGHT_S:
            return (f"it was started {age:.0f} s ago on {rec.host}, where this launch cannot "
                    f"see whether it still runs; it is trusted to be over after "
                    f"{OTHER_HOST_IN_FLIGHT_S:.0f} s")
        return ""
    if rec.pid not in (None, os.getpid()) and _proc.alive(rec.pid, rec.pid_start):
        return f"its launcher, pid {rec.pid}, is still running"
    if isinstance(backend, SubmissionTracking):
        pids = backend.submissions_in_flight(rec.name)
        if pids:
            return f"process(es) {' '.join(map(str, pids))} still submit it"
    return ""


def _age_s(rec: JobRecord) -> float | None:
    try:
        return time.time() - datetime.fromisoformat(rec.submitted_at).timestamp()
    except ValueError:
        return None
