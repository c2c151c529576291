"""One concurrency budget for a launch: ``launch --max-running N`` over all its array jobs.

Slurm's array throttle (``--array=0-99%k``) bounds one array; a launch has many arrays (tiers,
requirement groups, chunks of MaxArraySize), and Slurm has no per-user cross-job limit a user
can set (``GrpJobs`` and the like are the administrator's). So the budget is split statically,
at submission, into the arrays' own throttles:

* as many arrays as the budget or fewer: every array gets a throttle of at least 1 and the
  throttles sum to at most N, shared in proportion to what each array could run at once (its
  size, or its own ``max_parallel``); an array that cannot use its share leaves it to others.
* more arrays than the budget: every array gets throttle 1 and array ``i`` also waits
  (``afterany``) for array ``i - N``, so of the arrays ``i, i+N, i+2N, …`` at most one runs at
  a time: at most N arrays run, one task each.

Either way, at no moment do more than N tasks of the launch run, whatever the order in which
Slurm starts them.

``max_running`` in config.json is the *project's* budget, across launches: arrays of earlier
launches still live hold slots (their throttle, or their live tasks when fewer), and
:func:`waits` gives each new array, besides the earlier array of its own launch it may wait for,
the earlier launches' arrays that hold the slots it takes (``afterany``). Slots are N places
that one array at a time occupies; an array takes as many as its throttle and starts only after
every earlier occupant of them ended, so the project's running tasks never exceed N (nothing of
ours has to run meanwhile: Slurm's dependencies do it). ``launch --max-running N`` keeps its
per-launch meaning (no slots held by earlier launches).

The price is idle budget: a throttle stays with its array while the array waits for its
dependencies or after it ended. Rebalancing as arrays finish (``scontrol update
ArrayTaskThrottle``) would need a process that outlives the launch command to watch the queue;
this is the simple, always-correct first step (see docs/cluster.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Share:
    """An array's part of the budget: its throttle and the array (by position) it waits for."""

    throttle: int | None
    after: int | None = None


def split(sizes: Sequence[int], caps: Sequence[int | None], budget: int | None) -> list[Share]:
    """The throttle of each array (in submission order) so that their tasks never exceed
    ``budget`` together; ``caps`` are the arrays' own ``max_parallel`` (None: none)."""
    if budget is None:
        return [Share(cap) for cap in caps]
    if budget < 1:
        raise ValueError("the budget must be at least 1")
    if len(sizes) > budget:
        return [Share(1, i - budget if i >= budget else None) for i in range(len(sizes))]
    demand = [max(1, min(n, cap) if cap else n) for n, cap in zip(sizes, caps, strict=True)]
    total = sum(demand)
    if total <= budget:
        return [Share(d) for d in demand]
    shares = [max(1, budget * d // total) for d in demand]
    # floors may leave budget unused: give it to the arrays that can still use more
    spare = budget - sum(shares)
    for i in sorted(range(len(shares)), key=lambda j: demand[j] - shares[j], reverse=True):
        if spare <= 0:
            break
        extra = min(spare, demand[i] - shares[i])
        shares[i] += extra
        spare -= extra
    while sum(shares) > budget:  # the minimum of 1 each may overshoot: take from the largest
        largest = max(range(len(shares)), key=shares.__getitem__)
        shares[largest] -= 1
    return [Share(s) for s in shares]


Wait = str | int  # an earlier launch's job id, or the position of an array of this launch


def waits(throttles: Sequence[int | None], held: Sequence[tuple[str, int]],
          budget: int | None) -> list[list[Wait]]:
    """What each array (in submission order, with its throttle from :func:`split`) must wait
    for so that at most ``budget`` tasks run at once, counting ``held``: (job id, slots) of the
    arrays of earlier launches that are still live. Slots no earlier array holds are taken
    first; with nothing held this is exactly :func:`split`'s ``after``."""
    if budget is None:
        return [[] for _ in throttles]
    occupants: list[list[Wait]] = [[] for _ in range(budget)]
    filled = 0
    for job, slots in held:  # more held than the budget (another launch's own --max-running):
        for _ in range(slots):  # a slot then has several occupants, all waited for
            occupants[filled % budget].append(job)
            filled += 1
    order = ([s for s in range(budget) if not occupants[s]]
             + [s for s in range(budget) if occupants[s]])
    out: list[list[Wait]] = []
    cursor = 0
    for position, throttle in enumerate(throttles):
        chosen = [order[(cursor + j) % budget] for j in range(min(throttle or budget, budget))]
        cursor += len(chosen)
        deps = [w for s in chosen for w in occupants[s]]
        out.append(list(dict.fromkeys(deps)))
        for s in chosen:
            occupants[s] = [position]
    return out
