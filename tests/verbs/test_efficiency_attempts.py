"""Costs count every attempt (issue 24 item 5): ``sacct --duplicates`` rows of a requeued task
are summed, its last attempt's state and time limit kept; drylaunch's hours say what they
assume about checkpoint requeues."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, Task
from experiments.backends.fake import FakeBackend
from experiments.backends.slurm.client import parse_usage
from experiments.cli import main as cli_main
from tests.support.experiments import FakeExecutor

# sacct -D -P -n --format=JobID,State,Elapsed,TotalCPU,MaxRSS,Timelimit,Start on the test
# cluster, after `scontrol requeue 2_0` of a finished task that then ran again
REQUEUED = """\
2_0|REQUEUED|00:00:06|00:00:00||00:05:00|2026-12-07T01:36:23
2_0.batch|COMPLETED|00:00:02|00:00:00|||2026-12-07T01:36:23
2_1|COMPLETED|00:00:02|00:00:00||00:05:00|2026-12-07T01:36:23
2_1.batch|COMPLETED|00:00:02|00:00:00|||2026-12-07T01:36:23
2_0|COMPLETED|00:00:02|00:00:01|3M|00:05:00|2026-12-07T01:36:30
2_0.batch|COMPLETED|00:00:02|00:00:00|||2026-12-07T01:36:30
""".splitlines()


def test_every_attempt_of_a_requeued_task_counts() -> None:
    used = parse_usage(REQUEUED)
    assert used["2_0"].attempts == 2 and used["2_0"].elapsed_s == 8
    assert used["2_0"].state == "COMPLETED" and used["2_0"].time_limit_s == 300
    assert used["2_0"].cpu_s == 1 and used["2_0"].max_rss_mb == 3
    assert used["2_1"].attempts == 1 and used["2_1"].elapsed_s == 2
    # listed out of order, or a last attempt not started yet: the latest start decides
    pending = [REQUEUED[4], REQUEUED[0], "2_0|PENDING|00:00:00|00:00:00||01:00:00|Unknown"]
    again = parse_usage(pending)["2_0"]
    assert again.attempts == 3 and again.elapsed_s == 8 and again.state == "PENDING"
    assert again.time_limit_s == 3600


def test_requested_time_is_once_per_attempt() -> None:
    from experiments.verbs.efficiency import StageEfficiency, TaskEfficiency

    t = TaskEfficiency("1_0", "A/x", "COMPLETED", 5400, 3600, 1, None, None, None, 2, 3)
    assert t.requested_s == 3 * 3600 and t.time_used == 0.5
    assert StageEfficiency("a", [t]).used_gpu_h == 3.0


@dataclass(frozen=True)
class Ckpt(Artifact):
    i: int

    def get_requirements(self) -> dict[str, object]:
        return {"gpus": 2, "time": "1:00:00", "checkpoint_before": "5:00", "max_requeues": 6}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def test_drylaunch_says_what_it_assumes_about_requeues(
        tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    ex = FakeExecutor(project="cost", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("train", ArtifactSet.from_product(cls=Ckpt, params={"i": [0, 1]}))
    assert cli_main.run(ex, ["drylaunch"]) == 0
    out = capsys.readouterr().out
    assert ("Cost of train: 2 artifact(s), 4.0 GPU-hours, 2.0 CPU-hours requested; each artifact "
            "counted once: checkpoint requeues (max_requeues=6) could add up to 24.0 "
            "GPU-hours") in out
