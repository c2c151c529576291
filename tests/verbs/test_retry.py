"""``--retry-failed``: only the failed artifacts, escalated by the opt-in policy, each change
shown with its reason; the policy is checked in config.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, Task
from experiments.backends.fake import FakeBackend
from experiments.cli import main as cli_main
from experiments.config import settings as config
from experiments.errors import ConfigError
from experiments.session import Session
from experiments.states import JobState, TaskStatus
from experiments.verbs.retry import format_mem, format_time
from tests.support.experiments import FakeExecutor


@dataclass(frozen=True)
class Big(Artifact):
    i: int

    def get_requirements(self) -> dict[str, object]:
        return {"time": "1:00:00", "mem": "3000M"}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def _config(home: Path, data: object) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps(data), encoding="utf-8")


def test_drylaunch_and_launch_retry_only_failed_with_escalation(
        tmp_path: Path, exp_home: Path, fake: FakeBackend,
        capsys: pytest.CaptureFixture[str]) -> None:
    _config(exp_home, {"escalation": {"TIMEOUT": {"time": 2}, "OUT_OF_MEMORY": {"mem": 2},
                                      "caps": {"time": "1:30:00"}}})
    ex = FakeExecutor(project="retry", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("big", ArtifactSet.from_product(cls=Big, params={"i": [0, 1, 2, 3]}))
    assert cli_main.run(ex, ["launch"]) == 0
    fake.time_out("100", 0)
    fake._set("100", 1, TaskStatus(JobState.FAILED, "OUT_OF_MEMORY", exit_code="0:125"))
    fake.finish("100", 2)  # 100_3 stays queued: not retried
    capsys.readouterr()
    assert cli_main.run(ex, ["drylaunch", "--retry-failed"]) == 0
    out = capsys.readouterr().out
    assert "time 1:00:00 → 1:30:00 (capped) after TIMEOUT in job 100_0" in out
    assert "mem 3000M → 6000M after OUT_OF_MEMORY in job 100_1" in out
    assert "2 artifact(s) to build" in out
    assert cli_main.run(ex, ["launch", "--retry-failed"]) == 0
    # the two escalated artifacts differ in requirements: two new jobs of one task each
    assert sorted(len(j.relpaths) for j in fake.jobs.values()) == [1, 1, 4]
    retried = {j.relpaths[0].split("-")[0] for j in fake.jobs.values() if len(j.relpaths) == 1}
    assert retried == {"Big/i=0", "Big/i=1"}
    asked = sorted((r.requirements["time"], r.requirements["mem"])
                   for r in Session.open(ex).records() if len(r.tasks) == 1)
    assert asked == [("1:00:00", "6000M"), ("1:30:00", "3000M")]


def test_without_a_policy_retry_resubmits_unchanged(
        tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    ex = FakeExecutor(project="retry2", artifact_path=str(tmp_path / "a"),
                      code_path=str(tmp_path))
    ex.stage("big", ArtifactSet.from_product(cls=Big, params={"i": [0, 1]}))
    assert cli_main.run(ex, ["launch"]) == 0
    fake.time_out("100", 0)
    fake.finish("100", 1)
    capsys.readouterr()
    assert cli_main.run(ex, ["drylaunch", "--retry-failed"]) == 0
    out = capsys.readouterr().out
    assert "Escalated" not in out and "1 artifact(s) to build" in out


@pytest.mark.parametrize("policy", [{"TIMEOUT": {"time": 1}}, {"TIMEOUT": {"cpus": 2}},
                                    {"timeout": {"time": 2}}, [1]])
def test_bad_policies_are_config_errors(exp_home: Path, policy: object) -> None:
    _config(exp_home, {"escalation": policy})
    with pytest.raises(ConfigError, match="escalation"):
        config.load()


def test_formats() -> None:
    assert format_time(7200) == "2:00:00" and format_time(90061) == "1-01:01:01"
    assert format_mem(65536) == "64G" and format_mem(6000) == "6000M"
