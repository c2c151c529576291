"""Cost before (drylaunch's requested hours) and after (sacct parsing for ``efficiency``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, Task
from experiments.backends.fake import FakeBackend
from experiments.backends.slurm.client import parse_usage
from experiments.cli import main as cli_main

from .test_cli import FakeExecutor


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


def test_sacct_usage_rows_are_parsed_per_task() -> None:
    rows = ["12_0|COMPLETED|00:10:00|00:35:00|", "12_0.batch|COMPLETED|00:10:00|00:35:00|2048K",
            "12_0.extern|COMPLETED|00:10:00|00:00:00|1G", "12_1|TIMEOUT|1-00:00:01|10:00.500|",
            "12_2|CANCELLED by 0|00:00:00|00:00:00|"]
    used = parse_usage(rows)
    assert used["12_0"].elapsed_s == 600 and used["12_0"].cpu_s == 2100
    assert used["12_0"].max_rss_mb == 1024  # the largest step
    assert used["12_1"].elapsed_s == 86401 and used["12_1"].cpu_s == 600.5
    assert used["12_1"].max_rss_mb is None and used["12_2"].state == "CANCELLED"


def test_efficiency_math_and_who_wastes_most() -> None:
    from experiments.verbs.efficiency import StageEfficiency, TaskEfficiency

    busy = TaskEfficiency("1_0", "A/busy", "COMPLETED", 3600, 7200, 4, 4 * 3600 * 0.9,
                          3000.0, 4000)
    idle = TaskEfficiency("1_1", "A/idle", "COMPLETED", 3600, 7200, 4, 3600.0, None, 4000)
    assert busy.time_used == 0.5 and busy.cpu_efficiency == pytest.approx(0.9)
    assert busy.mem_used == 0.75 and idle.cpu_efficiency == 0.25 and idle.mem_used is None
    stage = StageEfficiency("a", [busy, idle])
    assert [t.relpath for t in stage.worst(1)] == ["A/idle"]  # 3 CPU-hours unused
    assert stage.requested_h == 4.0 and stage.peak_mem_mb == 3000.0
    assert stage.mean("cpu_efficiency") == pytest.approx(0.575)
