"""Build a Plan: dependency closure, skip reasons, tiers, grouping by requirements, chunking."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..artifact import Artifact
from ..errors import DefinitionError, PlanError
from .model import Group, Plan, PlannedTask, Skipped

Requirements = tuple[tuple[str, Any], ...]


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
        self.status: dict[str, str] = {}         # key -> "build" | "built" | "live"
        self.missing: list[str] = []

    def visit(self, root: Artifact, stage: str) -> None:
        """Classify ``root`` and its dependencies (iteratively: chains may be long)."""
        stack: list[tuple[Artifact, str, bool]] = [(root, stage, False)]
        while stack:
            art, stg, expanded = stack.pop()
            key = art._experiments_key()
            if expanded:
                self.order.append(art)
                continue
            if key in self.status:
                continue
            if self.is_built(art):
                self._skip(art, stg, key, "built", "built")
            elif art.artifact_id in self.live:
                self._skip(art, stg, key, "live", f"already queued/running as job "
                                                  f"{self.live[art.artifact_id]}")
            elif key not in self.selected_keys and not self.with_deps:
                self.status[key] = "missing"
                self.missing.append(_describe_missing(art, self.owner.get(key)))
            else:
                self.status[key] = "build"
                self.stage_of[key] = stg
                stack.append((art, stg, True))
                for dep in reversed(art.dependencies()):
                    dkey = dep._experiments_key()
                    stack.append((dep, self.owner.get(dkey, stg), False))

    def _skip(self, art: Artifact, stage: str, key: str, status: str, reason: str) -> None:
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
    requirements: Callable[[Artifact], Mapping[str, Any]],
    construct: Callable[[Artifact], tuple[Any, ...]],
    with_deps: bool = False,
) -> Plan:
    """Plan the ``selected`` stages: what to build, in which tier and group, and what is skipped.

    ``is_built`` says whether an artifact's done marker exists; ``live`` maps artifact ids to
    the live job holding them; ``requirements`` resolves an artifact's requirements;
    ``construct`` records its steps.
    """
    planner = _Planner(stages, with_deps, is_built, live, selected)
    for name in selected:
        for art in stages[name]:
            planner.visit(art, name)
    if planner.missing:
        shown = "; ".join(sorted(set(planner.missing))[:5])
        more = len(set(planner.missing)) - 5
        raise PlanError(
            f"{len(set(planner.missing))} dependencies are neither built, queued nor selected: "
            f"{shown}{f' and {more} more' if more > 0 else ''}. Launch their stage too "
            "(e.g. `launch pretrain finetune`) or pass --with-deps to build them now"
        )
    tiers = _tiers(planner.order, planner.status)
    groups = _group(planner, tiers, requirements, construct)
    return Plan(tuple(selected), groups, tuple(planner.skipped), dict(live))


def _tiers(order: list[Artifact], status: Mapping[str, str]) -> dict[str, int]:
    """Tier of each artifact to build: 0 without planned deps, else 1 + their highest tier."""
    tier: dict[str, int] = {}
    for art in order:  # dependencies come before dependents in ``order``
        deps = [tier[d._experiments_key()] for d in art.dependencies()
                if status.get(d._experiments_key()) == "build"]
        tier[art._experiments_key()] = 1 + max(deps) if deps else 0
    return tier


def _group(planner: _Planner, tiers: Mapping[str, int],
           requirements: Callable[[Artifact], Mapping[str, Any]],
           construct: Callable[[Artifact], tuple[Any, ...]]) -> tuple[tuple[Group, ...], ...]:
    buckets: dict[tuple[int, str, Requirements], list[PlannedTask]] = {}
    for art in planner.order:
        key = art._experiments_key()
        stage = planner.stage_of[key]
        reqs = _freeze_requirements(requirements(art), art)
        deps = art.dependencies()
        task = PlannedTask(
            artifact_id=art.artifact_id,
            relpath=art.relpath,
            stage=stage,
            class_name=type(art).__qualname__,
            dep_ids=tuple(d.artifact_id for d in deps
                          if planner.status.get(d._experiments_key()) in ("build", "live")),
            dep_relpaths=tuple(d.relpath for d in deps),
            steps=construct(art),
            artifact=art,
        )
        buckets.setdefault((tiers[key], stage, reqs), []).append(task)
    n_tiers = 1 + max(tiers.values()) if tiers else 0
    out: list[list[Group]] = [[] for _ in range(n_tiers)]
    for (tier, stage, reqs), tasks in buckets.items():
        out[tier].append(Group(stage, tier, reqs, tuple(tasks)))
    return tuple(tuple(t) for t in out)


def _freeze_requirements(reqs: Any, art: Artifact) -> Requirements:
    where = f"{type(art).__qualname__} {art.relpath}"
    if not isinstance(reqs, Mapping):
        raise DefinitionError(f"{where}: get_requirements() must return a dict, got "
                              f"{type(reqs).__name__}")
    for k, v in reqs.items():
        if not isinstance(k, str) or not isinstance(v, (str, int, float, bool)):
            raise DefinitionError(f"{where}: requirement {k!r} = {v!r:.60} must be a str key "
                                  "with a str, int, float or bool value")
    return tuple(sorted(reqs.items()))


def chunk(tasks: Sequence[PlannedTask], max_size: int) -> Iterable[tuple[PlannedTask, ...]]:
    """Split tasks into consecutive chunks of at most ``max_size`` (each array indexes 0..n-1)."""
    if max_size < 1:
        raise ValueError("max_size must be at least 1")
    for start in range(0, len(tasks), max_size):
        yield tuple(tasks[start:start + max_size])
