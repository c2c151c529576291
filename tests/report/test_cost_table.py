"""The report's cost table: requested hours as a launch would submit them (config defaults
under each artifact's own requirements), used hours from an accounting pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments import Artifact, ArtifactSet, SlurmExecutor
from experiments.report.cost_table import Usage, stage_costs
from experiments.session import Session
from experiments.verbs.results import grid


@dataclass(frozen=True)
class Train(Artifact):
    lr: float

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "gpu", "gpus": "A100:2"}  # time and CPUs from config.json


@dataclass(frozen=True)
class Prep(Artifact):
    n: int

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "cpu", "cpus": 2, "time": "0:30:00"}


def _session(tmp_path: Path) -> Session:
    ex = SlurmExecutor(project="cost", artifact_path=str(tmp_path / "out"))
    ex.stage("train", ArtifactSet.from_product(cls=Train, params={"lr": [0.1, 0.01, 0.001]}))
    ex.stage("prep", ArtifactSet.from_product(cls=Prep, params={"n": [1, 2]}))
    return Session.open(ex)


def test_requested_hours_use_the_config_defaults_a_launch_would(
        tmp_path: Path, experiments_home: Path) -> None:
    session = _session(tmp_path)
    rows, problems = stage_costs(session, grid(session, None).views, None)
    by = {r.stage: r for r in rows}
    assert not problems
    # 3 artifacts × 24 h (the gpu partition's default time) × 8 CPUs / 2 GPUs
    assert (by["train"].cpu_hours, by["train"].gpu_hours) == (3 * 24 * 8, 3 * 24 * 2)
    assert (by["prep"].cpu_hours, by["prep"].gpu_hours) == (2 * 0.5 * 2, 0)
    assert by["train"].used_cpu_hours is None and by["train"].accounted_tasks == 0


def test_used_hours_come_from_the_accounting_pass(tmp_path: Path,
                                                   experiments_home: Path) -> None:
    session = _session(tmp_path)
    used = Usage({"train": (1.5, 4.0, 2)}, ("the local backend keeps no accounts",))
    rows, _ = stage_costs(session, grid(session, None).views, used)
    by = {r.stage: r for r in rows}
    assert (by["train"].used_cpu_hours, by["train"].used_gpu_hours) == (1.5, 4.0)
    assert by["train"].accounted_tasks == 2
    assert (by["prep"].used_cpu_hours, by["prep"].used_gpu_hours) == (None, None)
