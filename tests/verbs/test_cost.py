"""What a plan costs before it is submitted: ``drylaunch``'s requested hours per stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, Task
from experiments.backends.fake import FakeBackend
from experiments.cli import main as cli_main
from tests.support.experiments import FakeExecutor


@dataclass(frozen=True)
class Gpu(Artifact):
    i: int

    def get_requirements(self) -> dict[str, object]:
        return {"gpus": 2, "cpus": 4, "time": "1:30:00"}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class Cpu(Artifact):
    i: int

    def get_requirements(self) -> dict[str, object]:
        return {"cpus": 2, "time": "30"} if self.i else {"cpus": 2}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def test_drylaunch_shows_requested_hours_per_stage_and_total(
        tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    ex = FakeExecutor(project="cost", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("train", ArtifactSet.from_product(cls=Gpu, params={"i": [0, 1, 2]}))
    ex.stage("prep", ArtifactSet.from_product(cls=Cpu, params={"i": [0, 1]}))
    assert cli_main.run(ex, ["drylaunch"]) == 0
    out = capsys.readouterr().out
    assert "Cost of train: 3 artifact(s), 9.0 GPU-hours, 18.0 CPU-hours requested" in out
    assert ("Cost of prep: 2 artifact(s), 0.0 GPU-hours, 1.0 CPU-hours requested "
            "(+1 artifact(s) without a time limit)") in out
    assert "Total: 5 artifact(s), 9.0 GPU-hours, 19.0 CPU-hours requested" in out
