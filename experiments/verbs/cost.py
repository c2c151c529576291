"""What a plan costs before it is submitted: GPU-hours and CPU-hours requested, per stage.

Requested means array size × time limit × GPUs (or CPUs) per task: what the scheduler
reserves and charges fair-share for, not what the tasks will use (``efficiency`` says that
afterwards). A group without a time limit has no known cost and is counted apart. Each task is
counted once: a task that checkpoints (``checkpoint_before``) may be requeued up to
``max_requeues`` times, each time asking its time limit again; the cost says so, with the most
those requeues could add.
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
    requeue_gpu_hours: float = 0.0  # the most checkpoint requeues could add (not in the hours)
    max_requeues: int = 0  # the largest max_requeues of a checkpointing group

    def add(self, tasks: int, cpus: int, gpus: int, time_s: int | None,
            requeues: int = 0) -> None:
        """``requeues``: how often each task may be requeued after a checkpoint (0: never)."""
        self.tasks += tasks
        if time_s is None:
            self.unlimited_tasks += tasks
            return
        self.gpu_hours += tasks * gpus * time_s / 3600
        self.cpu_hours += tasks * cpus * time_s / 3600
        self.requeue_gpu_hours += requeues * tasks * gpus * time_s / 3600
        self.max_requeues = max(self.max_requeues, requeues)

    def requeue_note(self) -> str:
        """What the hours assume about requeues, when a group may be requeued ("" if none)."""
        if not self.max_requeues:
            return ""
        return (f"; each artifact counted once: checkpoint requeues (max_requeues="
                f"{self.max_requeues}) could add up to {self.requeue_gpu_hours:,.1f} GPU-hours")


def plan_cost(plan: Plan) -> list[StageCost]:
    """Per stage in plan order, then the total."""
    stages: dict[str, StageCost] = {}
    total = StageCost("total")
    for group in plan.groups:
        res = group.resources
        for cost in (stages.setdefault(group.stage, StageCost(group.stage)), total):
            cost.add(len(group.tasks), res.cpus, res.gpus, res.time_s,
                     res.max_requeues if res.checkpoint_before_s else 0)
    return [*stages.values(), total] if stages else []
