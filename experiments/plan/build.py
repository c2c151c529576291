"""Build a Plan: dependency closure, skip reasons, tiers, grouping by requirements, chunking."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..artifact import Artifact
from ..backends.base import Resources
from ..errors import PlanError
from .model import Group, Plan, PlannedTask, Skipped


class _Mark(enum.Enum):
    """What the planner decided about one artifact."""

    BUILD = "build"
    BUILT = "built"
    LIVE = "live"
    MISSING = "missing"


class _Planner:
    def __init__(self, stages: Mapping[str, Sequence[Artifact]], with_deps: bool,
                 is_built: Callable[[Artifact], bool], live: Mapping[str, str],
                 selected: Sequence[str]) -> None:
        self.with_deps = with_deps
        self.is_built = is_built
        self.live = live
        self.owner: dict[str, str] = {}
        for name, arts in stages.items():
            for a in arts:
                self.owner.setdefault(a._experiments_key(), name)
        self.selected_keys = {a._experiments_key() for name in selected for a in stages[name]}
        self.stage_of: dict[str, str] = {}      # key -> stage, for artifacts to build
        self.order: list[Artifact] = []          # artifacts to build, dependencies first
        self.skipped: list[Skipped] = []
        self.status: dict[str, _Mark] = {}
        self.missing: list[str] = []
        self.missing_stages: set[str] = set()

    def visit(self, root: Artifact, stage: str) -> None:
        """Classify ``root`` and its dependencies (iteratively: chains may be long).

        An artifact whose dependencies are all classified already (the common case: a
        stage's artifacts after their dependencies' stage) goes straight into ``order``.
        """
        status, order = self.status, self.order
        stack: list[tuple[Artifact, str, bool]] = [(root, stage, False)]
        while stack:
            art, stg, expanded = stack.pop()
            if expanded:
                order.append(art)
                continue
            key = art._experiments_key()
            if key in status:
                continue
            if self.is_built(art):
                self._skip(art, stg, key, _Mark.BUILT, "built")
            elif art.artifact_id in self.live:
                self._skip(art, stg, key, _Mark.LIVE, f"already queued/running as job "
                                                      f"{self.live[art.artifact_id]}")
            elif key not in self.selected_keys and not self.with_deps:
                status[key] = _Mark.MISSING
                owner = self.owner.get(key)
                self.missing.append(_describe_missing(art, owner))
                if owner:
                    self.missing_stages.add(owner)
            else:
                status[key] = _Mark.BUILD
                self.stage_of[key] = stg
                pending = [d for d in art.dependencies() if d._experiments_key() not in status]
                if not pending:
                    order.append(art)
                    continue
                stack.append((art, stg, True))
                for dep in reversed(pending):
                    dkey = dep._experiments_key()
                    stack.append((dep, self.owner.get(dkey, stg), False))

    def _skip(self, art: Artifact, stage: str, key: str, status: _Mark, reason: str) -> None:
        self.status[key] = status
        self.skipped.append(Skipped(art.artifact_id, art.relpath, stage, reason))


def _describe_missing(art: Artifact, stage: str | None) -> str:
    where = f"stage '{stage}'" if stage else "no stage"
    return f"{art.relpath} ({where})"


def build_plan(
    stages: Mapping[str, Sequence[Artifact]],
    selected: Sequence[str],
    *,
    is_built: Callable[[Artifact], bool],
    live: Mapping[str, str],
    resources: Callable[[Artifact], Resources],
    construct: Callable[[Artifact], tuple[Any, ...]],
    with_deps: bool = False,
) -> Plan:
    """Plan the ``selected`` stages: what to build, in which tier and group, and what is skipped.

    ``is_built`` says whether an artifact's done marker exists; ``live`` maps artifact ids to
    the live job holding them; ``resources`` resolves an artifact's requirements (errors name
    the artifact); ``construct`` records its steps.
    """
    planner = _Planner(stages, with_deps, is_built, live, selected)
    for name in selected:
        for art in stages[name]:
            planner.visit(art, name)
    if planner.missing:
        raise _missing_error(planner, selected)
    tiers = _tiers(planner.order, planner.status)
    groups = _group(planner, tiers, resources, construct)
    return Plan(tuple(selected), groups, tuple(planner.skipped), dict(live))


def _missing_error(planner: _Planner, selected: Sequence[str]) -> PlanError:
    """Name the missing dependencies and the user's own stages to launch with them."""
    missing = sorted(set(planner.missing))
    more = len(missing) - 5
    stages = [s for s in _first_seen(planner.owner.values()) if s in planner.missing_stages]
    launch = " ".join([*stages, *[s for s in selected if s not in stages]])
    their = (f"Launch their stage too (`launch {launch}`)" if stages
             else "Put them in a stage and launch it too")
    return PlanError(
        f"{len(missing)} dependencies are neither built, queued nor selected: "
        f"{'; '.join(missing[:5])}{f' and {more} more' if more > 0 else ''}. {their}, "
        "or pass --with-deps to build them now"
    )


def _first_seen(names: Iterable[str]) -> list[str]:
    """Distinct names in first-seen order."""
    return list(dict.fromkeys(names))


def _tiers(order: list[Artifact], status: Mapping[str, _Mark]) -> dict[str, int]:
    """Tier of each artifact to build: 0 without planned deps, else 1 + their highest tier."""
    tier: dict[str, int] = {}
    for art in order:  # dependencies come before dependents in ``order``
        deps = art.dependencies()
        if not deps:
            tier[art._experiments_key()] = 0
            continue
        highest = -1
        for d in deps:
            t = tier.get(d._experiments_key(), -1)  # not planned (built, live): no tier
            if t > highest:
                highest = t
        tier[art._experiments_key()] = highest + 1
    return tier


def _group(planner: _Planner, tiers: Mapping[str, int],
           resources: Callable[[Artifact], Resources],
           construct: Callable[[Artifact], tuple[Any, ...]]) -> tuple[tuple[Group, ...], ...]:
    buckets: dict[tuple[int, str, Resources], list[PlannedTask]] = {}
    status, stage_of = planner.status, planner.stage_of
    pending = (_Mark.BUILD, _Mark.LIVE)
    for art in planner.order:
        key = art._experiments_key()
        stage = stage_of[key]
        res = resources(art)
        deps = art.dependencies()
        task = PlannedTask(
            artifact_id=art.artifact_id,
            relpath=art.relpath,
            stage=stage,
            class_name=type(art).__qualname__,
            dep_ids=tuple([d.artifact_id for d in deps
                           if status.get(d._experiments_key()) in pending]) if deps else (),
            dep_relpaths=tuple([d.relpath for d in deps]) if deps else (),
            steps=construct(art),
            artifact=art,
        )
        bucket = buckets.get((tiers[key], stage, res))
        if bucket is None:
            bucket = buckets[(tiers[key], stage, res)] = []
        bucket.append(task)
    n_tiers = 1 + max(tiers.values()) if tiers else 0
    out: list[list[Group]] = [[] for _ in range(n_tiers)]
    for (tier, stage, res), tasks in buckets.items():
        out[tier].append(Group(stage, tier, res, tuple(tasks)))
    return tuple(tuple(t) for t in out)


def chunk(tasks: Sequence[PlannedTask], max_size: int) -> Iterable[tuple[PlannedTask, ...]]:
    """Split tasks into consecutive chunks of at most ``max_size`` (each array indexes 0..n-1)."""
    if max_size < 1:
        raise ValueError("max_size must be at least 1")
    for start in range(0, len(tasks), max_size):
        yield tuple(tasks[start:start + max_size])
