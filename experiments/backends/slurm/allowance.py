"""Fitting a launch under the user's submit limit by packing (pure).

Every array task counts against ``MaxSubmitJobsPerUser`` (a QOS's, else the association's
``MaxSubmitJobs``), so a 500-artifact grid under a limit of 100 would be refused half-way. A
launch whose array tasks exceed the user's remaining allowance is packed instead: the smallest
pack size (applied to every group, never beyond what its partition's ``MaxTime`` allows) whose
array tasks fit. :func:`allowance_for` picks the limit from ``sacctmgr``'s rows;
:func:`fit_packs` chooses the pack size; the backend runs the commands and lays out the arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ...plan.packs import smallest_fitting
from .limits import AssocLimits, QosLimits, remaining_submit_allowance


@dataclass(frozen=True)
class Allowance:
    """How many more jobs (array tasks) the user may submit, and which limit says so."""

    remaining: int
    limit: str      # "MaxSubmitJobsPerUser=100 of QOS normal"
    current: int    # the user's jobs (tasks) already pending or running


def allowance_for(assocs: Sequence[AssocLimits], qos: Mapping[str, QosLimits], current: int,
                  account: str | None = None, qos_name: str | None = None) -> Allowance | None:
    """The user's remaining submit allowance for jobs under ``account`` and ``qos_name`` (the
    association's default QOS when None), the strictest when several associations could apply
    (no account named: any of the user's); None when no limit is set or known.

    ``assocs`` are the user's association rows (``sacctmgr show assoc user=$USER``): a limit
    set only on a parent account's row is not seen.
    """
    best: Allowance | None = None
    for a in assocs:
        if not a.user or (account is not None and a.account != account):
            continue
        q = qos.get(qos_name or a.default_qos or (a.qos[0] if len(a.qos) == 1 else "normal"))
        remaining = remaining_submit_allowance([q, a] if q else [a], current)
        if remaining is None:
            continue
        limit = (f"MaxSubmitJobsPerUser={q.max_submit_jobs_per_user} of QOS {q.name}"
                 if q is not None and q.max_submit_jobs_per_user is not None
                 else f"MaxSubmitJobs={a.max_submit_jobs} of account {a.account}")
        if best is None or remaining < best.remaining:
            best = Allowance(remaining, limit, current)
    return best


@dataclass(frozen=True)
class Fit:
    """The pack size that fits the allowance (None: nothing does) and the line saying so."""

    pack: int | None
    tasks: int       # array tasks of the launch with that pack (or with the largest tried)
    note: str


def fit_packs(count: Callable[[int], int], unpacked: int, artifacts: int,
              allowance: Allowance, largest: int) -> Fit:
    """The smallest pack size ``p`` (``count(p)``: the launch's array tasks with every group
    packed by ``p`` as far as its MaxTime allows) whose tasks fit ``allowance``; the search
    starts at ``artifacts / remaining`` (no smaller pack can fit)."""
    why = (f"{unpacked} array task(s) would exceed your remaining submit allowance of "
           f"{allowance.remaining} ({allowance.limit}; {allowance.current} of your jobs "
           "queued or running)")
    if allowance.remaining < 1:
        return Fit(None, unpacked, f"{why}: wait for some of your jobs to end")
    pack = smallest_fitting(count, allowance.remaining, largest,
                            -(-artifacts // allowance.remaining))
    if pack is None:
        return Fit(None, count(largest), f"{why}, even packed as far as the partitions' "
                                         f"MaxTime allows ({count(largest)} task(s)): wait for "
                                         "some of your jobs to end, or launch fewer artifacts "
                                         "at a time")
    tasks = count(pack)
    return Fit(pack, tasks, f"{why}: packed up to {pack} artifact(s) per task, {tasks} "
                            "task(s)")
