"""Build a Plan: dependency closure, skip reasons, tiers, grouping by requirements, chunking."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import PlanError
from ..model.artifact import Artifact
from ..resources import Resources
from .model import Group, Plan, PlannedTask, Skipped, new_task


class _Mark(enum.Enum):
    """What the planner decided about one artifact."""

    BUILD = "build"
    BUILT = "built"
    LIVE = "live"
    MISSING = "missing"


class _Planner:
    """Classifies artifacts, dependencies first, into ``order`` with their stage and tier.

    Which stage owns a dependency and which keys are selected are needed only for a dependency
    not classified yet (its stage is listed after its dependents', or in no selected stage),
    so those maps are built on first use: a grid whose stages come in dependency order never
    pays for them.
    """

    def __init__(self, stages: Mapping[str, Sequence[Artifact]], with_deps: bool,
                 is_built: Callable[[Artifact], bool], live: Mapping[str, str],
                 selected: Sequence[str]) -> None:
        self.stages = stages
        self.selected = selected
        self.with_deps = with_deps
        self.is_built = is_built
        self.live = live
        self._owner: dict[str, str] | None = None
        self._selected_keys: set[str] | None = None
        self.stage_of: dict[str, str] = {}      # key -> stage, for artifacts to build
        self.tier: dict[str, int] = {}          # key -> tier, for artifacts to build
        self.order: list[tuple[Artifact, str, int]] = []  # (art, stage, tier) to build,
        # dependencies first
        self.skipped: list[Skipped] = []
        self.status: dict[str, _Mark] = {}
        self.missing: list[str] = []
        self.missing_stages: set[str] = set()

    @property
    def owner(self) -> dict[str, str]:
        """Key -> the first stage listing the artifact."""
        if self._owner is None:
            self._owner = {}
            for name, arts in self.stages.items():
                for a in arts:
                    self._owner.setdefault(a._experiments_key(), name)
        return self._owner

    def _selected(self, key: str) -> bool:
        if self._selected_keys is None:
            self._selected_keys = {a._experiments_key() for name in self.selected
                                   for a in self.stages[name]}
        return key in self._selected_keys

    def visit(self, root: Artifact, stage: str) -> None:
        """Classify ``root`` and its dependencies (iteratively: chains may be long).

        An artifact whose dependencies are all classified already (the common case: a
        stage's artifacts after their dependencies' stage) goes straight into ``order``.
        """
        status = self.status
        stack: list[tuple[Artifact, str, bool]] = [(root, stage, False)]
        while stack:
            art, stg, expanded = stack.pop()
            if expanded:
                self._planned(art)
                continue
            key = art._experiments_key()
            if key in status:
                continue
            if self.is_built(art):
                self._skip(art, stg, key, _Mark.BUILT, "built")
            elif self.live and art.artifact_id in self.live:
                self._skip(art, stg, key, _Mark.LIVE, f"already queued/running as job "
                                                      f"{self.live[art.artifact_id]}")
            elif art is not root and not self.with_deps and not self._selected(key):
                status[key] = _Mark.MISSING
                owner = self.owner.get(key)
                self.missing.append(_describe_missing(art, owner))
                if owner:
                    self.missing_stages.add(owner)
            else:
                status[key] = _Mark.BUILD
                self.stage_of[key] = stg
                deps = art.dependencies()
                pending = [d for d in deps if d._experiments_key() not in status] if deps else ()
                if not pending:
                    self._planned(art)
                    continue
                stack.append((art, stg, True))
                for dep in reversed(pending):
                    stack.append((dep, self.owner.get(dep._experiments_key(), stg), False))

    def visit_stage(self, arts: Sequence[Artifact], stage: str) -> None:
        """``visit`` each of a stage's artifacts, taking the common case inline: an artifact
        that is neither built nor live and whose dependencies are all classified goes into
        ``order`` here (the same decision ``visit`` makes, without its stack per artifact)."""
        status, is_built, live = self.status, self.is_built, self.live
        tier, order, stage_of = self.tier, self.order, self.stage_of
        build = _Mark.BUILD
        for art in arts:
            key = art._experiments_key()
            if key in status:
                continue
            if is_built(art):
                self._skip(art, stage, key, _Mark.BUILT, "built")
                continue
            if live and art.artifact_id in live:
                self._skip(art, stage, key, _Mark.LIVE,
                           f"already queued/running as job {live[art.artifact_id]}")
                continue
            t = 0
            for dep in art.dependencies():
                dep_key = dep._experiments_key()
                if dep_key not in status:
                    self.visit(art, stage)  # a dependency to classify first
                    break
                above = tier.get(dep_key, -1) + 1
                if above > t:
                    t = above
            else:
                status[key] = build
                stage_of[key] = stage
                tier[key] = t
                order.append((art, stage, t))

    def _planned(self, art: Artifact) -> None:
        """Put ``art`` (its dependencies classified) in ``order``, one tier above the highest
        of its dependencies to build (built and live ones have no tier)."""
        tier = self.tier
        t = 0
        for d in art.dependencies():
            above = tier.get(d._experiments_key(), -1) + 1
            if above > t:
                t = above
        key = art._experiments_key()
        tier[key] = t
        self.order.append((art, self.stage_of[key], t))

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
        planner.visit_stage(stages[name], name)
    if planner.missing:
        raise _missing_error(planner, selected)
    groups = _group(planner, resources, construct)
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


def _group(planner: _Planner, resources: Callable[[Artifact], Resources],
           construct: Callable[[Artifact], tuple[Any, ...]]) -> tuple[tuple[Group, ...], ...]:
    """One PlannedTask per artifact to build, bucketed by tier, stage and resources.

    Consecutive artifacts usually share their bucket (and the very same ``Resources``
    object, resolved once per distinct requirement set), so the bucket is looked up by
    identity first and hashed only when it changes.
    """
    buckets: dict[tuple[int, str, Resources], list[PlannedTask]] = {}
    status, tiers = planner.status, planner.tier
    last: tuple[int, str, Resources] | None = None
    bucket: list[PlannedTask] = []
    for art, stage, tier in planner.order:
        res = resources(art)
        deps = art.dependencies()
        if not deps:
            dep_ids: tuple[str, ...] = ()
            dep_relpaths: tuple[str, ...] = ()
        else:
            dep_ids = tuple([d.artifact_id for d in deps
                             if status.get(d._experiments_key()) in _PENDING])
            dep_relpaths = tuple([d.relpath for d in deps])
        task = new_task(art.artifact_id, art.relpath, stage, type(art).__qualname__, dep_ids,
                        dep_relpaths, construct(art), art)
        if last is None or last[0] != tier or last[1] is not stage or last[2] is not res:
            last = (tier, stage, res)
            bucket = buckets.setdefault(last, [])
        bucket.append(task)
    n_tiers = 1 + max(tiers.values()) if tiers else 0
    out: list[list[Group]] = [[] for _ in range(n_tiers)]
    for (tier, stage, res), tasks in buckets.items():
        out[tier].append(Group(stage, tier, res, tuple(tasks)))
    return tuple(tuple(t) for t in out)


_PENDING = (_Mark.BUILD, _Mark.LIVE)


def chunk(tasks: Sequence[PlannedTask], max_size: int) -> Iterable[tuple[PlannedTask, ...]]:
    """Split tasks into consecutive chunks of at most ``max_size`` (each array indexes 0..n-1)."""
    if max_size < 1:
        raise ValueError("max_size must be at least 1")
    for start in range(0, len(tasks), max_size):
        yield tuple(tasks[start:start + max_size])
