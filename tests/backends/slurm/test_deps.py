"""Ending tasks Slurm reports pending DependencyNeverSatisfied, as dependency failed."""

from __future__ import annotations

import json
from pathlib import Path

from experiments import paths
from experiments.backends.slurm import deps
from experiments.states import JobState, TaskKey, TaskStatus
from experiments.tracking.store import JobRecord
from experiments.worker import specs


class _Client:
    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def cancel(self, ids: list[str]) -> None:
        self.cancelled.extend(ids)


def test_never_satisfied_tasks_are_cancelled_and_recorded(tmp_path: Path) -> None:
    root = tmp_path / "art"
    spec = tmp_path / "spec"
    specs.write_spec(str(spec), specs.SpecHeader("p", "s", "j", str(root), str(root)),
                     [{}, {}])
    rec = JobRecord(name="n", backend="slurm", stage="s", tier=1,
                    tasks=[["a", "D/a"], ["b", "D/b"]], spec_dir=str(spec), job_id="7",
                    array_indices=[2, 5])
    statuses = {TaskKey("7", 0): TaskStatus(JobState.PENDING, "PENDING", "Dependency"),
                TaskKey("7", 1): TaskStatus(JobState.PENDING, "PENDING",
                                            "DependencyNeverSatisfied")}
    client = _Client()
    out = deps.end_never_satisfied(client, [rec], statuses)  # type: ignore[arg-type]
    assert client.cancelled == ["7_5"]  # the array index, not the position
    assert out[TaskKey("7", 0)] == statuses[TaskKey("7", 0)]
    assert out[TaskKey("7", 1)].state is JobState.CANCELLED
    recorded = json.loads((root / "D/b" / paths.STATUS).read_text())
    assert recorded["state"] == "dependency_failed" and recorded["job"] == "7_5"


def test_nothing_to_end_asks_nothing(tmp_path: Path) -> None:
    client = _Client()
    st = {TaskKey("7", 0): TaskStatus(JobState.RUNNING)}
    assert deps.end_never_satisfied(client, [], st) == st  # type: ignore[arg-type]
    assert client.cancelled == []
