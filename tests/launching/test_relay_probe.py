"""The relay probe (may compute nodes submit?) and how launch honours its verdict.

The probe's batch script runs here, in bash, with an ``sbatch`` of the test's on PATH that
accepts or refuses as a node would: what the script writes, how the verdict is read, kept per
cluster and cleaned up. The launch fallback runs on FakeBackend with a submit allowance that
refuses like Slurm (``QOSMaxSubmitJobPerUserLimit``). The real probe runs on the test clusters
(tests/e2e/test_relay_probe.py, tests/policed/test_relay_probe.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, _proc, verbs
from experiments.backends.fake import FakeBackend
from experiments.errors import LaunchIncomplete
from experiments.launching import relay_probe
from experiments.launching.relay import RELAY_REQUIREMENTS
from experiments.plan import Plan
from experiments.resources import Resources, common_resources
from experiments.session import Session
from experiments.states import JobState, TaskKey, TaskStatus
from experiments.tracking.store import JobRecord
from tests.support.experiments import Down, Up

ACCEPT = 'echo "sbatch: Job 7 to start at 2026-12-07T04:00:00 using 1 processors" >&2\n'
REFUSE = ('echo "sbatch: error: fetch_config: DNS SRV lookup failed" >&2\n'
          'echo "sbatch: fatal: Could not establish a configuration source" >&2\nexit 1\n')


class NodeFake:
    """Runs a submitted probe's script at once, in bash, with ``bin`` first on PATH (or
    never, with ``runs=False``: a probe that stays queued)."""

    name = "fake"

    def __init__(self, bin_dir: Path, runs: bool = True) -> None:
        self.bin, self.runs = bin_dir, runs
        self.argv: list[str] = []
        self.cancelled: list[str] = []

    def cluster_name(self) -> str:
        return "lab1"

    def relay_resources(self, like: Mapping[str, Any]) -> Resources:
        return common_resources({**like, **RELAY_REQUIREMENTS}, "relay")

    def wave_room(self, plan: Plan, records: Sequence[JobRecord]) -> int | None:
        return None

    def submit_relay(self, script: str, name: str, after: Sequence[str],
                     resources: Resources, begin_minutes: int = 0) -> str:
        self.argv = [script, name]
        if self.runs:
            env = {"PATH": f"{self.bin}:{os.environ['PATH']}", "SLURM_JOB_ID": "7"}
            _proc.run(["bash", script], timeout_s=30, env=env)
        return "7"

    def query(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskStatus]:
        return {TaskKey("7", 0): TaskStatus(JobState.PENDING, "PENDING", "Priority")}

    def cancel(self, records: Sequence[JobRecord]) -> None:
        self.cancelled += [r.job_id or "" for r in records]


def _node(tmp_path: Path, sbatch: str, runs: bool = True) -> NodeFake:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/bash\n" + sbatch)
    (bin_dir / "sbatch").chmod(0o755)
    return NodeFake(bin_dir, runs)


def test_the_probe_says_relays_work_where_a_job_may_submit(tmp_path: Path) -> None:
    node = _node(tmp_path, ACCEPT)
    verdict = relay_probe.probe(node, {"account": "physics", "mem": "9G"}, "proj", tmp_path)
    assert verdict.ok is True and verdict.cluster == "lab1"
    assert verdict.line().startswith("Relays work here: a job on a compute node of cluster lab1")
    assert node.argv[1].startswith("proj.relay-probe.")
    assert relay_probe.read_verdict(tmp_path, "lab1") == verdict  # kept, with its date
    assert list((tmp_path / "probes").iterdir()) == []  # its folder is gone
    assert relay_probe.refusal(True, node, tmp_path) == ""


def test_the_probe_reports_sbatchs_error_on_the_node_and_launch_reads_it(tmp_path: Path
                                                                         ) -> None:
    node = _node(tmp_path, REFUSE)
    verdict = relay_probe.probe(node, {}, "proj", tmp_path)
    assert verdict.ok is False
    assert verdict.line() == (
        "Compute nodes of cluster lab1 cannot submit: sbatch: fatal: Could not establish a "
        "configuration source; a launch past the submit limit will stop half-way, and sweeps "
        "need `--local` or a launch per rung")
    why = relay_probe.refusal(True, node, tmp_path)
    assert why.startswith(f"compute nodes of cluster lab1 cannot submit (probe of "
                          f"{verdict.at[:10]}: sbatch: fatal: Could not establish")
    assert relay_probe.refusal(False, node, tmp_path) == relay_probe.OFF


def test_the_probe_script_asks_test_only_with_the_relays_options(tmp_path: Path) -> None:
    text = relay_probe.probe_script(tmp_path / "it's", ["--account=a b", "--time=10:00"])
    assert "sbatch --test-only '--account=a b' --time=10:00 " in text
    assert "#SBATCH --array=0" in text  # submitted as a relay is: one task
    assert f"'{tmp_path}/it'\"'\"'s/result.tmp'" in text  # quoted


def test_a_probe_still_queued_at_the_deadline_is_cancelled_and_gives_no_verdict(
        tmp_path: Path) -> None:
    node = _node(tmp_path, ACCEPT, runs=False)
    verdict = relay_probe.probe(node, {}, "proj", tmp_path, wait_s=0.3)
    assert verdict.ok is None and "was cancelled" in verdict.said
    assert node.cancelled == ["7"]
    assert not relay_probe.cache_path(tmp_path).exists()  # nothing learned: nothing kept
    assert list((tmp_path / "probes").iterdir()) == []


def test_verdicts_are_kept_per_cluster_and_a_damaged_or_foreign_cache_is_ignored(
        tmp_path: Path) -> None:
    no = relay_probe.Verdict("lab1", False, "sbatch: command not found", "2026-12-07T04:00Z")
    relay_probe.remember(tmp_path, no)
    relay_probe.remember(tmp_path, relay_probe.Verdict("lab2", True, "", "2026-12-07T04:01Z"))
    assert relay_probe.read_verdict(tmp_path, "lab1") == no
    assert relay_probe.read_verdict(tmp_path, "lab2").ok is True  # type: ignore[union-attr]
    assert relay_probe.read_verdict(tmp_path, "lab3") is None
    path = relay_probe.cache_path(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    os.chown(path, 65534, -1)  # another account's file (the tests run as root)
    assert relay_probe.read_verdict(tmp_path, "lab1") is None
    os.chown(path, os.getuid(), -1)
    path.write_text("{not json")
    assert relay_probe.read_verdict(tmp_path, "lab1") is None


# -- launch honours the verdict ---------------------------------------------------------------
class LimitedFake(FakeBackend):
    """FakeBackend with relays and a submit allowance Slurm's way: a job past it is refused."""

    def __init__(self, allowance: int) -> None:
        super().__init__()
        self.allowance = allowance
        self.relays: list[str] = []

    def cluster_name(self) -> str:
        return "lab1"

    def _queued(self) -> int:
        return sum(t.state.live for j in self.jobs.values() for t in j.tasks)

    def wave_room(self, plan: Plan, records: Sequence[JobRecord]) -> int | None:
        room = self.allowance - self._queued()
        return None if plan.task_count <= room else max(0, room)

    def relay_resources(self, like: Mapping[str, Any]) -> Resources:
        return common_resources({**like, **RELAY_REQUIREMENTS}, "relay")

    def submit_relay(self, script: str, name: str, after: Sequence[str],
                     resources: Resources, begin_minutes: int = 0) -> str:
        job_id = super()._submit(name, [f".relays/{name}"], self.root)
        assert job_id is not None
        self.relays.append(job_id)
        return job_id

    def _submit(self, name: str, relpaths: list[str], root: str) -> str | None:
        if self._queued() + len(relpaths) > self.allowance:
            self.refuse_next("QOSMaxSubmitJobPerUserLimit")
        return super()._submit(name, relpaths, root)


def _session(tmp_path: Path) -> tuple[Session, LimitedFake]:
    ex = LocalExecutor(project="fallback", artifact_path=str(tmp_path / "a"),
                       code_path=str(tmp_path), snapshot_code=False)
    ups = ArtifactSet.from_product(cls=Up, params={"i": list(range(6))})
    ex.stage("up", ups)
    ex.stage("down", ups.map(lambda u: Down(up=u)))
    fake = LimitedFake(allowance=8)
    fake.root = ex.artifact_path
    return Session.open(ex, backend="fake", instances={"fake": fake}), fake


def test_where_relays_work_a_launch_past_the_allowance_goes_in_waves(tmp_path: Path) -> None:
    session, fake = _session(tmp_path)
    result = verbs.launch(session)
    assert result.relay is not None and fake.relays


@pytest.mark.parametrize("site", ["probe", "config"])
def test_where_relays_cannot_run_a_launch_past_the_allowance_stops_half_way_saying_why(
        tmp_path: Path, exp_home: Path, site: str) -> None:
    if site == "probe":
        relay_probe.remember(exp_home, relay_probe.Verdict(
            "lab1", False, "sbatch: fatal: Could not establish a configuration source",
            "2026-12-07T04:00:00Z"))
    else:
        exp_home.mkdir(parents=True, exist_ok=True)
        (exp_home / "config.json").write_text(json.dumps({"relays": False}))
        (exp_home / "config.json").chmod(0o600)
    session, fake = _session(tmp_path)
    with pytest.raises(LaunchIncomplete) as info:
        verbs.launch(session)
    said = str(info.value)
    assert said.startswith("launch stopped part-way: the fake scheduler refused job")
    assert "QOSMaxSubmitJobPerUserLimit. Waves would carry the rest, but relays are " \
           "unavailable here (" in said
    assert ("compute nodes of cluster lab1 cannot submit (probe of 2026-12-07: sbatch: fatal"
            if site == "probe" else '"relays": false') in said
    assert "`drylaunch --validate` checks whether compute nodes may submit" in said
    assert info.value.queued and not fake.relays  # the first wave went, and no relay


@dataclass(frozen=True)
class Trial(Artifact):
    lr: int
    epochs: int = 1

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def test_where_compute_nodes_cannot_submit_a_sweep_queues_no_relay_and_says_so(
        tmp_path: Path, exp_home: Path) -> None:
    relay_probe.remember(exp_home, relay_probe.Verdict(
        "lab1", False, "sbatch: command not found", "2026-12-07T04:00:00Z"))
    ex = LocalExecutor(project="sweepfallback", artifact_path=str(tmp_path / "a"),
                       code_path=str(tmp_path), snapshot_code=False)
    ex.stage("sweep", ArtifactSet.from_product(cls=Trial, params={"lr": [1, 2, 3]})
             .successive_halving(budget="epochs", budgets=[1, 3], eta=3, metric="loss"))
    fake = LimitedFake(allowance=100)
    fake.root = ex.artifact_path
    result = verbs.launch(Session.open(ex, backend="fake", instances={"fake": fake}))
    assert [len(r.tasks) for r in result.records] == [3] and result.relay is None
    assert not fake.relays
    assert any(w.startswith("no relay can be queued (compute nodes of cluster lab1 cannot "
                            "submit (probe of 2026-12-07: sbatch: command not found)): launch "
                            "again when jobs") for w in result.warnings), result.warnings
