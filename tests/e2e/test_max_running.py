"""``launch --max-running N``: at no moment do more than N tasks of the launch run, across all
its arrays and tiers; proved by sampling ``squeue`` on the real cluster (and, locally, by the
tasks' own start and end times)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.experiments import done_markers
from tests.support.slurm import cancel_all

EXPERIMENT = '''
import os, time
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

N = int(os.environ.get("N_EACH", "4"))
SLEEP = os.environ.get("SLEEP_S", "4")

@dataclass(frozen=True)
class Pre(Artifact):
    i: int
    def get_requirements(self):
        # two requirement groups in tier 0: two arrays
        return {"partition": "cpu", "time": "5:00", "cpus": 1 + self.i % 2}
    def construct(self, builder: Task):
        builder.run_command(f"date +%s.%N > $EXPERIMENTS_ARTIFACT_DIR/start; sleep {SLEEP}; "
                            "date +%s.%N > $EXPERIMENTS_ARTIFACT_DIR/end")

@dataclass(frozen=True)
class Post(Artifact):
    base: Pre
    def get_requirements(self):
        return {"partition": "cpu", "time": "5:00"}
    def construct(self, builder: Task):
        builder.run_command(f"date +%s.%N > $EXPERIMENTS_ARTIFACT_DIR/start; sleep {SLEEP}; "
                            "date +%s.%N > $EXPERIMENTS_ARTIFACT_DIR/end")

pre = ArtifactSet.from_product(cls=Pre, params={"i": list(range(2 * N))})
ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("pre", pre)
ex.stage("post", pre.map(lambda p: Post(base=p)))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _setup(tmp_path: Path, **extra: str) -> tuple[Path, Path, dict[str, str]]:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    return script, out, {"OUT": str(out), "PROJECT": f"m{uuid.uuid4().hex[:8]}", **extra}


def _most_at_once(out: Path) -> int:
    """From the tasks' own start/end times: the most that ran at the same moment."""
    events = []
    for start in out.rglob("start"):
        end = start.with_name("end")
        events += [(float(start.read_text()), 1), (float(end.read_text()), -1)]
    most = now = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at a tie
        now += step
        most = max(most, now)
    return most


class _Sampler(threading.Thread):
    """Counts this project's running tasks in ``squeue`` every 0.2 s."""

    def __init__(self, project: str) -> None:
        super().__init__(daemon=True)
        self.project, self.samples, self.stop = project, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            res = subprocess.run(["squeue", "--me", "-h", "-r", "-t", "RUNNING", "-o", "%j"],
                                 capture_output=True, text=True, timeout=30)
            if res.returncode == 0:
                self.samples.append(sum(self.project in line for line in res.stdout.split()))
            time.sleep(0.2)


@pytest.mark.slurm
@pytest.mark.long_wait
@pytest.mark.parametrize("budget", [3, 1])
def test_slurm_launch_never_runs_more_than_max_running(tmp_path: Path, slurm_cluster: object,
                                                       budget: int) -> None:
    script, out, env = _setup(tmp_path)
    sampler = _Sampler(env["PROJECT"])
    sampler.start()
    try:
        res = run_cli(script, "launch", "--max-running", str(budget), env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        deadline = time.monotonic() + 400
        while len(done_markers(out)) < 16 and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        sampler.stop.set()
        sampler.join()
        cancel_all(env["PROJECT"])
    assert len(done_markers(out)) == 16
    assert max(sampler.samples) <= budget, sampler.samples
    assert _most_at_once(out) <= budget
    if budget > 1:
        assert max(sampler.samples) >= 2  # a budget, not a serialisation


def test_local_launch_never_runs_more_than_max_running(tmp_path: Path) -> None:
    script, out, env = _setup(tmp_path, N_EACH="2", SLEEP_S="1")
    res = run_cli(script, "launch", "--local", "--workers", "4", "--max-running", "2",
                  env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(done_markers(out)) == 8
    assert _most_at_once(out) <= 2


def test_config_max_running_applies_to_its_project(tmp_path: Path) -> None:
    script, out, env = _setup(tmp_path, N_EACH="2", SLEEP_S="1")
    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps({"max_running": {env["PROJECT"]: 1,
                                                                  "other": 50}}))
    res = run_cli(script, "launch", "--local", "--workers", "4", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(done_markers(out)) == 8
    assert _most_at_once(out) == 1


TWO_STAGES = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class A(Artifact):
    i: int
    def get_requirements(self):
        return {"partition": "cpu", "time": "5:00"}
    def construct(self, builder: Task):
        builder.run_command("date +%s.%N > $EXPERIMENTS_ARTIFACT_DIR/start; sleep 4; "
                            "date +%s.%N > $EXPERIMENTS_ARTIFACT_DIR/end")

@dataclass(frozen=True)
class B(A):
    pass

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("a", ArtifactSet.from_product(cls=A, params={"i": [0, 1, 2]}))
ex.stage("b", ArtifactSet.from_product(cls=B, params={"i": [0, 1, 2]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


@pytest.mark.slurm
def test_config_max_running_bounds_the_project_across_launches(tmp_path: Path,
                                                                slurm_cluster: object) -> None:
    """Issue 23, item 6: two launches of one project (independent stages, submitted one after
    the other) never run more than config.json's max_running together: the second launch's
    arrays wait (afterany) for the first's that hold the budget."""
    script, out, env = _setup(tmp_path)
    script.write_text(TWO_STAGES)
    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps({"max_running": {env["PROJECT"]: 2}}))
    try:
        for stage in ("a", "b"):
            res = run_cli(script, "launch", stage, env=env)
            assert res.returncode == 0, res.stdout + res.stderr
        deadline = time.monotonic() + 240
        while len(done_markers(out)) < 6 and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        cancel_all(env["PROJECT"])
    assert len(done_markers(out)) == 6
    assert _most_at_once(out) <= 2
