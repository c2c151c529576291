"""The immutable plan objects shared by drylaunch and every backend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..model.identity import encode_params
from ..model.task import Step
from ..resources import Resources


@dataclass(frozen=True, slots=True)  # slots: a million of them must fit in memory
class PlannedTask:
    """One artifact to build: who it is, what it needs, and the steps that build it."""

    artifact_id: str
    relpath: str
    stage: str
    class_name: str
    dep_ids: tuple[str, ...]       # artifact ids of dependencies not yet built
    dep_relpaths: tuple[str, ...]  # every dependency, checked by the worker before it runs
    steps: tuple[Step, ...] = ()
    artifact: Any = field(default=None, compare=False, repr=False)

    @property
    def params(self) -> Mapping[str, Any]:
        """The artifact's parameters as JSON-friendly data (encoded only when a spec needs it)."""
        return encode_params(self.artifact) if self.artifact is not None else {}


_NEW = object.__new__
_SETTERS = tuple(PlannedTask.__dict__[name].__set__ for name in PlannedTask.__slots__)


def new_task(artifact_id: str, relpath: str, stage: str, class_name: str,
             dep_ids: tuple[str, ...], dep_relpaths: tuple[str, ...], steps: tuple[Step, ...],
             artifact: Any) -> PlannedTask:
    """``PlannedTask(...)`` for the planner's loop: the same object, made without the frozen
    dataclass's ``__init__``, which goes through ``object.__setattr__`` once per field (half
    the cost of planning a task at a million of them)."""
    task = _NEW(PlannedTask)
    s0, s1, s2, s3, s4, s5, s6, s7 = _SETTERS
    s0(task, artifact_id)
    s1(task, relpath)
    s2(task, stage)
    s3(task, class_name)
    s4(task, dep_ids)
    s5(task, dep_relpaths)
    s6(task, steps)
    s7(task, artifact)
    return task


@dataclass(frozen=True)
class Group:
    """Tasks of one stage and tier with identical resolved resources: one array job."""

    stage: str
    tier: int
    resources: Resources
    tasks: tuple[PlannedTask, ...]


@dataclass(frozen=True)
class Skipped:
    """An artifact that will not be submitted, and why (built, or already queued/running)."""

    artifact_id: str
    relpath: str
    stage: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """Tiers of groups in dependency order, what is skipped, and live jobs depended upon."""

    stages: tuple[str, ...]
    tiers: tuple[tuple[Group, ...], ...]
    skipped: tuple[Skipped, ...] = ()
    live_jobs: Mapping[str, str] = field(default_factory=dict)  # artifact id -> job id
    waiting: tuple[str, ...] = ()  # sweeps not decided yet: "<stage>: rung 2 of 3 (budget 3)"

    @property
    def groups(self) -> list[Group]:
        return [g for tier in self.tiers for g in tier]

    @property
    def task_count(self) -> int:
        return sum(len(g.tasks) for g in self.groups)
