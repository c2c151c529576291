"""What a plan costs before it is submitted: GPU-hours and CPU-hours requested, per stage.

Requested means array size × time limit × GPUs (or CPUs) per task: what the scheduler
reserves and charges fair-share for, not what the tasks will use (``efficiency`` says that
afterwards). A group without a time limit has no known cost and is counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..plan import Plan


@dataclass
class StageCost:
    """Requested hours of one stage (or of the whole plan: stage ``"total"``)."""

    stage: str
    tasks: int = 0
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    unlimited_tasks: int = 0  # tasks without a time limit: not in the hours

    def add(self, tasks: int, cpus: int, gpus: int, time_s: int | None) -> None:
        self.tasks += tasks
        if time_s is None:
            self.unlimited_tasks += tasks
            return
        self.gpu_hours += tasks * gpus * time_s / 3600
        self.cpu_hours += tasks * cpus * time_s / 3600


def plan_cost(plan: Plan) -> list[StageCost]:
    """Per stage in plan order, then the total."""
    stages: dict[str, StageCost] = {}
    total = StageCost("total")
    for group in plan.groups:
        res = group.resources
        for cost in (stages.setdefault(group.stage, StageCost(group.stage)), total):
            cost.add(len(group.tasks), res.cpus, res.gpus, res.time_s)
    return [*stages.values(), total] if stages else []
