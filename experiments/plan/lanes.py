"""Lay out a plan's groups as arrays whose tasks wait only for their own inputs (pure).

The rule (see docs/cluster.md, "Dependencies between arrays"):

- A task with no dependency still to be built goes into a *free* array (no dependency).
- A task with exactly one dependency still to be built, held by array ``U`` at index ``i``,
  goes into a *lane* of ``U``: an array whose task at index ``i`` waits for task ``i`` of ``U``
  (Slurm's ``aftercorr``). Lane ``k`` holds the ``k``-th dependent of each upstream task, so a
  one-to-many shape such as ``join_product`` with two values gives two lanes; indices are the
  upstream's own (possibly sparse: never padded), so alignment survives chunking and relaunch.
- Everything else (several dependencies still to be built, more lanes than ``max_lanes``, a
  throttled group, whose ``max_parallel`` must keep bounding few arrays, a packed group, or a
  dependency held by a packed array) waits for *all* tasks of exactly the upstream arrays it
  needs (``afterany``), split by that upstream signature; the worker then checks its
  dependencies' done markers itself.
- A packed group (``packs[group_no] > 1``) puts up to that many consecutive tasks of each
  piece at one array index: ``indices`` then repeat (``0,0,0,1,1,…``). Packs never wait task by
  task, and nothing waits task by task on a pack (index ``i`` of a packed array holds several
  artifacts, so ``aftercorr`` would tie a dependent to artifacts it does not need, and a pack
  cut short would take with it dependents whose input was built).

Array references are ``@<n>`` for the ``n``-th array of this launch (in submission order) or a
job id for an array still live from an earlier launch.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .model import Group, Plan, PlannedTask

MAX_LANES = 8  # beyond this many dependents per upstream task, a group waits for whole arrays


class Wait(str, enum.Enum):
    """How an array's tasks wait for their inputs."""

    NONE = "none"        # nothing to wait for
    CORR = "corr"        # task i waits for task i of one upstream array (aftercorr)
    ALL = "all"          # every task waits for every task of some arrays (afterany)


@dataclass(frozen=True)
class Where:
    """Where one artifact is being built: array reference and array index."""

    array: str
    index: int
    packed: bool = False  # the array packs several artifacts per index: wait for all of it


@dataclass(frozen=True)
class ArrayLayout:
    """One array to submit: its tasks at their array indices, and what they wait for."""

    number: int                     # position in the launch; referenced as ``@<number>``
    group_no: int                   # the plan group it belongs to (plan order)
    group: Group
    tasks: tuple[PlannedTask, ...]
    indices: tuple[int, ...]        # array index of each task (ascending)
    wait: Wait = Wait.NONE
    upstream: tuple[str, ...] = ()  # CORR: one reference; ALL: the references waited for
    pack: int = 1                   # at most this many tasks share an array index

    @property
    def ref(self) -> str:
        return f"@{self.number}"

    @property
    def task_count(self) -> int:
        """How many array tasks the scheduler runs (packs count once)."""
        return len(self.tasks) if self.pack == 1 else len(set(self.indices))

    @property
    def dense(self) -> bool:
        """True when the indices are exactly ``0..n-1``."""
        return self.indices == tuple(range(len(self.tasks)))

    def array_spec(self) -> str:
        """Slurm's ``--array`` value without a throttle: ``0-9`` or ``0-3,5,7-8``."""
        return index_ranges(self.indices if self.pack == 1 else sorted(set(self.indices)))


def index_ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` → ``"0-2,5,7-8"``."""
    parts: list[str] = []
    start = prev = None
    for i in indices:
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = i
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ",".join(parts)


def layout_plan(plan: Plan, max_array_size: int, live: Mapping[str, Where] | None = None, *,
                max_lanes: int = MAX_LANES,
                packs: Sequence[int] | None = None) -> list[ArrayLayout]:
    """Every array of ``plan`` in submission order (upstream arrays before their dependents).

    ``live`` says where artifacts held by live jobs of earlier launches are (job id and array
    index); dependencies found nowhere (built meanwhile, or in no known job) are not waited for.
    ``packs`` gives each group's pack size (plan order; default 1: one artifact per task).
    """
    if max_array_size < 1:
        raise ValueError("max_array_size must be at least 1")
    where: dict[str, Where] = dict(live or {})
    out: list[ArrayLayout] = []
    # Nothing in the plan's last tier has a dependent in the plan (a task's tier is above all
    # of its dependencies'): its places are not kept (a million Where objects saved at 1M).
    top = [tier_no == len(plan.tiers) - 1 for tier_no, tier in enumerate(plan.tiers)
           for _group in tier]
    for group_no, group in enumerate(plan.groups):
        pack = packs[group_no] if packs is not None else 1
        for tasks, indices, wait, upstream in layout_group(group, where, max_array_size,
                                                           max_lanes, pack):
            arr = ArrayLayout(len(out), group_no, group, tasks, indices, wait, upstream, pack)
            out.append(arr)
            if not top[group_no]:
                ref, packed = arr.ref, pack > 1
                for t, i in zip(tasks, indices, strict=True):
                    where[t.artifact_id] = Where(ref, i, packed)
    return out


_Piece = tuple[tuple[PlannedTask, ...], tuple[int, ...], Wait, tuple[str, ...]]


def layout_group(group: Group, where: Mapping[str, Where], max_array_size: int,
                 max_lanes: int = MAX_LANES, pack: int = 1) -> list[_Piece]:
    """The arrays of one group: lanes first, then whole-array waits by signature, then free."""
    free: list[PlannedTask] = []
    by_upstream: dict[str, list[tuple[int, PlannedTask]]] = {}
    by_signature: dict[tuple[str, ...], list[PlannedTask]] = {}
    for t in group.tasks:
        places = [where[d] for d in t.dep_ids if d in where]
        if not places:
            free.append(t)
        elif len(places) == 1 and not places[0].packed and pack == 1:
            by_upstream.setdefault(places[0].array, []).append((places[0].index, t))
        else:
            by_signature.setdefault(_signature(p.array for p in places), []).append(t)
    pieces: list[_Piece] = []
    throttled = group.resources.max_parallel is not None
    for upstream, items in by_upstream.items():
        lanes = _lanes(items)
        if throttled or len(lanes) > max_lanes:
            by_signature.setdefault((upstream,), []).extend(t for _, t in items)
            continue
        for lane in lanes:
            pieces.append((tuple(t for _, t in lane), tuple(i for i, _ in lane), Wait.CORR,
                           (upstream,)))
    for sig, tasks in by_signature.items():
        pieces.extend(_dense(tasks, max_array_size, Wait.ALL, sig, pack))
    pieces.extend(_dense(free, max_array_size, Wait.NONE, (), pack))
    return pieces


def _signature(refs: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(refs)))


def _lanes(items: Sequence[tuple[int, PlannedTask]]) -> list[list[tuple[int, PlannedTask]]]:
    """Lane k holds the k-th dependent of each upstream index, in ascending index order."""
    seen: dict[int, int] = {}
    lanes: list[list[tuple[int, PlannedTask]]] = []
    for index, task in items:
        k = seen.get(index, 0)
        seen[index] = k + 1
        if k == len(lanes):
            lanes.append([])
        lanes[k].append((index, task))
    return [sorted(lane, key=lambda it: it[0]) for lane in lanes]


def _dense(tasks: Sequence[PlannedTask], max_size: int, wait: Wait,
           upstream: tuple[str, ...], pack: int = 1) -> list[_Piece]:
    """Consecutive chunks of at most ``max_size`` array indices ``0..n-1``, each holding
    ``pack`` consecutive tasks (the last one maybe fewer)."""
    step = max_size * pack
    return [(tuple(tasks[s:s + step]), tuple(i // pack for i in range(len(tasks[s:s + step]))),
             wait, upstream) for s in range(0, len(tasks), step)]


def sbatch_calls(arrays: Sequence[ArrayLayout]) -> int:
    """One sbatch call per array."""
    return len(arrays)


def describe_wait(arr: ArrayLayout, names: Mapping[str, str]) -> str:
    """``task i waits for task i of <array>`` / ``waits for all of <arrays>`` / ``…nothing``."""
    def name(ref: str) -> str:
        return names.get(ref, f"job {ref}")

    if arr.wait is Wait.CORR:
        return f"task i waits for task i of {name(arr.upstream[0])}"
    if arr.wait is Wait.ALL:
        return "waits for all of " + ", ".join(name(r) for r in arr.upstream)
    return "waits for nothing"


def array_names(arrays: Sequence[ArrayLayout]) -> dict[str, str]:
    """``@n`` → ``array n (<stage>)``, for messages."""
    return {a.ref: f"array {a.number} ({a.group.stage})" for a in arrays}


def describe_arrays(arrays: Sequence[ArrayLayout]) -> list[str]:
    """One line per array: its number, stage, size, indices and what its tasks wait for."""
    names = array_names(arrays)
    lines = []
    for a in arrays:
        what = (f"{len(a.tasks)} task(s)" if a.pack == 1 else
                f"{len(a.tasks)} artifact(s) in {a.task_count} task(s) of up to {a.pack}")
        lines.append(f"array {a.number} ({a.group.stage}, tier {a.group.tier}): "
                     f"{what} at [{a.array_spec()}], {describe_wait(a, names)}")
    return lines
