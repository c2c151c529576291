"""Each artifact waits only for its own inputs, on the real Slurm test cluster (issue 15).

Upstream ``Up`` tasks sleep for different times; each ``Down`` needs one ``Up`` (one per
joined value). Lanes wait with ``aftercorr``, so a fast upstream's dependents are built while
the slow upstream tasks still run, and whatever ends an upstream task (failure, time limit, a
kill) ends only its own dependents, as *dependency failed*, with nothing left pending.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.backends.slurm.client import SlurmClient
from experiments.tracking.store import Store
from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, count_calls, my_jobs, wait_until_idle, wrap_commands

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

SLEEPS = [float(s) for s in os.environ["SLEEPS"].split(",")]
FAIL = {int(i) for i in os.environ.get("FAIL", "").split(",") if i}
VALUES = os.environ.get("VALUES", "a").split(",")
TIME = os.environ.get("UP_TIME", "10:00")

@dataclass(frozen=True)
class Up(Artifact):
    i: int
    def get_requirements(self):
        return {"time": TIME}
    def construct(self, builder: Task):
        code = 7 if self.i in FAIL else 0
        builder.run_command(f"sleep {SLEEPS[self.i]}; exit {code}")

@dataclass(frozen=True)
class Down(Artifact):
    up: Up
    value: str
    def get_requirements(self):
        return {"time": "10:00"}
    def construct(self, builder: Task):
        builder.run_command("test -d " + builder.artifact_path + "/" + self.up.relpath)

ups = ArtifactSet.from_product(cls=Up, params={"i": list(range(len(SLEEPS)))})
downs = ArtifactSet.join_product(ups, VALUES).map(lambda u, v: Down(up=u, value=v))
ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("up", ups)
ex.stage("down", downs)
if __name__ == "__main__":
    ex.auto_cli()
'''


class Run:
    """One experiment on the cluster: its files, environment and helpers to observe it."""

    def __init__(self, tmp: Path) -> None:
        self.script = tmp / "exp.py"
        self.script.write_text(EXPERIMENT)
        self.out = tmp / "out"
        self.out.mkdir()
        self.project = f"d{uuid.uuid4().hex[:8]}"
        wrapped, self.calls = wrap_commands(tmp)
        self.env = {"OUT": str(self.out), "PROJECT": self.project, **wrapped}

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run a verb that must work; ``status`` answers with its documented exit codes
        (0 all built, 1 something failed or is not built, 3 something queued or running)."""
        res = run_cli(self.script, *args, env={**self.env, **env})
        allowed = (0, 1, 3) if args and args[0] == "status" else (0,)
        assert res.returncode in allowed, res.stdout + res.stderr
        return res

    def built(self, cls: str) -> set[str]:
        """Relpaths (under ``cls``) with a done marker."""
        return {p.parent.name for p in (self.out / cls).glob("*/.done")}

    def status_of(self, cls: str) -> dict[str, str]:
        """Worker state per artifact folder name, from .status.json."""
        out = {}
        for p in (self.out / cls).glob("*/.status.json"):
            out[p.parent.name] = json.loads(p.read_text())["state"]
        return out

    def jobs(self, stage: str) -> list[dict[str, object]]:
        """The stage's job records, through the store (jobs.json alone lags its journal)."""
        home = Path(os.environ["EXPERIMENTS_HOME"])
        return [r.to_dict() for r in Store(home, self.project).records(stage)]

    def wait_for(self, predicate: object, timeout_s: float = 120) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if predicate():  # type: ignore[operator]
                return time.monotonic() - start
            time.sleep(0.3)
        raise AssertionError(f"not reached in {timeout_s} s; queue: {my_jobs(self.project)}")


@pytest.fixture
def run(tmp_path: Path, slurm_cluster: object) -> Iterator[Run]:
    r = Run(tmp_path)
    yield r
    cancel_all(r.project)


def _up_name(run: Run, i: int) -> str:
    (name,) = [p.name for p in (run.out / "Up").iterdir() if f"i={i}" in p.name]
    return name


def _kill_worker(spec_dir: str, index: int) -> None:
    """SIGKILL the worker of task ``index`` (this machine is the cluster's only node)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # the worker: `python -I -S -c <bootstrap> <package dir> <spec dir> <index>`
        if spec_dir.encode() in argv and argv[-2:] == [str(index).encode(), b""]:
            os.kill(int(pid), signal.SIGKILL)
            return
    raise AssertionError(f"no worker of task {index} of {spec_dir} is running")


@pytest.mark.parametrize("values", ["a", "a,b"])
def test_fast_upstreams_dependents_are_built_before_slow_upstreams_end(
        run: Run, values: str) -> None:
    env = {"SLEEPS": "1,1,25,25", "VALUES": values}
    dry = run.cli("drylaunch", **env)
    lanes = len(values.split(","))
    assert f"Arrays: {1 + lanes} sbatch call(s)" in dry.stdout
    assert "task i waits for task i of array 0 (up)" in dry.stdout
    run.cli("launch", **env)
    assert count_calls(run.calls, "sbatch") == 1 + lanes
    run.wait_for(lambda: len(run.built("Down")) >= 2 * lanes, 60)
    assert len(run.built("Up")) == 2, "dependents of fast tasks waited for slow ones"
    wait_until_idle(run.project, 120)
    assert len(run.built("Up")) == 4 and len(run.built("Down")) == 4 * lanes
    up, *downs = run.jobs("up") + run.jobs("down")
    assert all(d["depends_on"] == [up["job_id"]] for d in downs)


def test_a_failed_upstream_ends_only_its_counterparts_exit_0_and_history_tells(
        run: Run) -> None:
    env = {"SLEEPS": "1,1,1", "FAIL": "1", "VALUES": "a,b"}
    run.cli("launch", **env)
    wait_until_idle(run.project, 120)  # nothing left pending (aftercorr released by exit 0)
    failed = _up_name(run, 1)
    assert run.status_of("Up")[failed] == "failed" and len(run.built("Up")) == 2
    downs = run.status_of("Down")
    assert len(run.built("Down")) == 4
    assert sorted(s for s in downs.values() if s != "done") == ["dependency_failed"] * 2
    up_job = run.jobs("up")[0]["job_id"]
    sacct = subprocess.run(["sacct", "-X", "-P", "-n", "-j", f"{up_job}_1",
                            "--format=JobID,State,ExitCode"], capture_output=True, text=True,
                           timeout=30).stdout
    assert "COMPLETED|0:0" in sacct or not sacct.strip()  # accounting may lag or be off
    status = run.cli("status", **env).stdout
    assert "dep-failed" in status and "command exited with code 7" in status
    hist = run.cli("history", **env).stdout
    assert "1 failed" in hist and "1 dep-failed" in hist  # one per lane


def test_an_upstream_killed_by_the_scheduler_ends_its_counterparts(run: Run) -> None:
    """A kill the worker cannot see (like OOM or a node failure): ``status`` ends the rest."""
    env = {"SLEEPS": "1,300", "VALUES": "a"}
    run.cli("launch", **env)
    up_job = str(run.jobs("up")[0]["job_id"])
    run.wait_for(lambda: len(run.built("Down")) == 1, 60)
    run.wait_for(lambda: any(f"{up_job}_1|" in r and "RUNNING" in r
                             for r in my_jobs(run.project)), 30)
    _kill_worker(str(run.jobs("up")[0]["spec_dir"]), 1)  # SIGKILL: no grace period
    run.wait_for(lambda: any("DependencyNeverSatisfied" in r for r in my_jobs(run.project)), 60)
    status = run.cli("status", **env).stdout
    assert "dep-failed" in status
    wait_until_idle(run.project, 30)
    assert sorted(run.status_of("Down").values()) == ["dependency_failed", "done"]


@pytest.mark.long_wait
def test_an_upstream_timeout_ends_its_counterparts_from_the_dying_worker(run: Run) -> None:
    env = {"SLEEPS": "1,600", "VALUES": "a,b", "UP_TIME": "1"}  # a one-minute time limit
    run.cli("launch", **env)
    wait_until_idle(run.project, 200)  # the timed-out worker cancelled its dependents
    assert len(run.built("Up")) == 1 and len(run.built("Down")) == 2
    slow = _up_name(run, 1)
    assert run.status_of("Up")[slow] == "interrupted"
    assert sorted(s for s in run.status_of("Down").values() if s != "done") == [
        "dependency_failed"] * 2
    status = run.cli("status", **env).stdout
    assert "dep-failed" in status and "interrupted by SIGTERM" in status


def test_alignment_survives_chunking(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {**run.env, "SLEEPS": "1,1,20,1,1", "VALUES": "a"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(SlurmClient, "max_array_size", lambda self: 2)
    ex = runpy.run_path(str(run.script))["ex"]
    ex.launch()
    ups, downs = run.jobs("up"), run.jobs("down")
    assert [len(j["tasks"]) for j in ups] == [2, 2, 1]
    assert [len(j["tasks"]) for j in downs] == [2, 2, 1]
    assert [d["depends_on"] for d in downs] == [[u["job_id"]] for u in ups]
    run.wait_for(lambda: len(run.built("Down")) == 4, 60)
    assert len(run.built("Up")) == 4  # the slow one (index 0 of the second chunk) still runs
    wait_until_idle(run.project, 120)
    assert len(run.built("Down")) == 5


def test_relaunch_after_part_of_the_upstream_was_built(run: Run) -> None:
    env = {"SLEEPS": "1,30,1,30", "VALUES": "a"}
    run.cli("launch", "up", **env)
    up_job = str(run.jobs("up")[0]["job_id"])
    run.wait_for(lambda: len(run.built("Up")) == 2, 60)
    dry = run.cli("drylaunch", "down", **env).stdout
    assert f"[1,3], task i waits for task i of job {up_job}" in dry
    assert "[0-1], waits for nothing" in dry
    run.cli("launch", "down", **env)
    downs = run.jobs("down")
    assert sorted(len(j["tasks"]) for j in downs) == [2, 2]
    lane = next(j for j in downs if j["depends_on"])
    assert lane["depends_on"] == [up_job] and lane["array_indices"] == [1, 3]
    run.wait_for(lambda: len(run.built("Down")) == 2, 60)
    assert len(run.built("Up")) == 2
    wait_until_idle(run.project, 120)
    assert len(run.built("Down")) == 4
    status = run.cli("status", **env).stdout
    rows = {r.split("│")[1].strip(): r.split("│")[2].strip()
            for r in status.splitlines() if r.startswith("│")}
    assert rows == {"up": "4", "down": "4"}
