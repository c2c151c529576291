"""Controller faults produced for real on a private test cluster (``faults_cluster``).

Each test stops, freezes (SIGSTOP) or restarts ``slurmctld`` itself, not a wrapper around the
commands, and checks the promise: no artifact ever has two live jobs, nothing is lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.slurm import (
    arrays_known_to_slurm,
    cancel_all,
    count_calls,
    my_jobs,
    wait_until_idle,
)
from tests.support.slurm import records as _records
from tests.support.slurm import setup_three_tiers as _setup
from tests.support.slurm_cluster import FULL_QUEUE, FaultsCluster

pytestmark = pytest.mark.slurm



def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def _live_arrays(project: str) -> set[str]:
    return {r.split("|")[0].split("_")[0] for r in my_jobs(project)}


def _queued_project(tmp_path: Path, n: int = 2, **extra: str
                    ) -> tuple[Path, dict[str, str], Path, Path]:
    """An experiment whose three stages are launched and stay queued (begin in an hour)."""
    script, env, out, calls = _setup(tmp_path, {"REQS": "begin=now+3600", "N": str(n), **extra})
    first = run_cli(script, "launch", env=env)
    assert first.returncode == 0, first.stderr
    assert len(_live_arrays(env["PROJECT"])) == 3
    return script, env, out, calls


def _launch_in_background(script: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(script), "launch"], cwd=script.parent,
                            env={**os.environ, "COLUMNS": "200", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _assert_no_twins(project: str, tracked_before: set[str]) -> None:
    tracked = {str(r["job_id"]) for r in _records(project) if r.get("job_id")}
    assert tracked == tracked_before
    assert _live_arrays(project) == tracked_before
    assert arrays_known_to_slurm(project) == tracked_before


# -- item 1: launch refuses while the scheduler cannot say what is queued ----------------------
def test_launch_refuses_while_the_controller_is_stopped(tmp_path: Path,
                                                        faults: FaultsCluster) -> None:
    """The controller is down when `launch` starts and comes back 12 s later (as in the issue):
    the launch must fail with one line, submit nothing, and leave no twin behind."""
    script, env, _, calls = _queued_project(tmp_path)
    project = env["PROJECT"]
    tracked = {str(r["job_id"]) for r in _records(project)}
    sbatch_before = count_calls(calls, "sbatch")
    try:
        faults.stop_ctld()
        proc = _launch_in_background(script, env)
        time.sleep(12)
        faults.start()
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode != 0
        lines = _error_lines(stderr)
        assert len(lines) == 1 and "cannot launch" in lines[0], stderr
        assert "nothing was submitted" in lines[0]
        assert count_calls(calls, "sbatch") == sbatch_before
        _assert_no_twins(project, tracked)
        again = run_cli(script, "launch", env=env)  # the controller answers: nothing to do
        assert again.returncode == 0, again.stderr
        assert count_calls(calls, "sbatch") == sbatch_before
        _assert_no_twins(project, tracked)
    finally:
        faults.heal()
        cancel_all(project)


def test_launch_refuses_while_the_controller_is_frozen(tmp_path: Path,
                                                       faults: FaultsCluster) -> None:
    """SIGSTOP for longer than MessageTimeout: squeue times out; launch refuses and submits
    nothing, and once the controller is thawed a relaunch finds everything still queued."""
    script, env, _, calls = _queued_project(tmp_path)
    project = env["PROJECT"]
    tracked = {str(r["job_id"]) for r in _records(project)}
    sbatch_before = count_calls(calls, "sbatch")
    try:
        faults.freeze()  # until the launch has given up, however slowly a loaded machine runs
        thaw = threading.Timer(170, faults.thaw)  # should the launch wait for it (a failure)
        thaw.start()
        res = run_cli(script, "launch", env=env, timeout=180)
        thaw.cancel()
        faults.thaw()
        assert res.returncode != 0, res.stdout
        lines = _error_lines(res.stderr)
        assert len(lines) == 1 and "cannot launch" in lines[0], res.stderr
        assert count_calls(calls, "sbatch") == sbatch_before
        again = run_cli(script, "launch", env=env)
        assert again.returncode == 0, again.stderr
        assert count_calls(calls, "sbatch") == sbatch_before
        _assert_no_twins(project, tracked)
    finally:
        faults.heal()
        cancel_all(project)


# -- arrays for the tests below (cancel during a launch is our logic: ------------------------------
# test_cancel_during_launch_fake.py). One stage of N artifacts, each with its own time limit: N
# resource groups, so N arrays.
MANY_ARRAYS = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class M(Artifact):
    i: int
    def get_requirements(self):
        return {"partition": "cpu", "time": f"{10 + self.i}:00", "begin": "now+3600"}
    def construct(self, builder: Task):
        builder.run_command("true")

n = int(os.environ.get("N", "60"))
ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("m", ArtifactSet.from_product(cls=M, params={"i": list(range(n))}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _many_arrays(tmp_path: Path, n: int) -> tuple[Path, dict[str, str], Path]:
    script, env, _, calls = _setup(tmp_path, {"N": str(n)})
    script.write_text(MANY_ARRAYS)
    return script, env, calls


def _wait_for_calls(calls: Path, prog: str, n: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while count_calls(calls, prog) < n:
        assert time.monotonic() < deadline, f"{prog} was not called {n} times"
        time.sleep(0.02)


# -- item 3: an orphaned sbatch ----------------------------------------------------------------
def _sbatch_of(project: str) -> list[int]:
    """Pids of sbatch processes submitting a job of ``project``."""
    out = subprocess.run(["pgrep", "-f", "--", f"--job-name={project}"], capture_output=True,
                         text=True, check=False).stdout
    return [int(p) for p in out.split()]


def test_an_orphaned_sbatch_never_submits_a_twin(tmp_path: Path, faults: FaultsCluster) -> None:
    """The queue is full (sbatch sleeps and retries by itself) when the launcher is SIGKILLed;
    the relaunch runs while the queue is still full, then the queue empties. The killed
    launcher's sbatch must have died with it, and exactly one job per artifact exists."""
    script, env, calls = _many_arrays(tmp_path, 1)
    project = env["PROJECT"]
    ours = f"{project}.m."
    try:
        for _ in range(FULL_QUEUE):  # the controller's table holds FULL_QUEUE jobs: "full"
            faults.run("sbatch", "-J", f"{project}-filler", "--begin=now+3600", "-o",
                       "/dev/null", "--wrap", "true")
        with faults.queue_full():
            launcher = _launch_in_background(script, env)
            _wait_for_calls(calls, "sbatch", 1)
            time.sleep(2)  # sbatch: "temporarily unable to accept job, sleeping and retrying"
            assert _sbatch_of(ours), "sbatch is not retrying"
            launcher.kill()
            launcher.communicate(timeout=30)
            time.sleep(0.5)
            assert not _sbatch_of(ours), "the killed launcher's sbatch lives on"
            relaunch = _launch_in_background(script, env)
            _wait_for_calls(calls, "sbatch", 2, timeout_s=120)
            time.sleep(1)
        _, stderr = relaunch.communicate(timeout=180)
        assert relaunch.returncode == 0, stderr
        time.sleep(20)  # an orphan would retry within 15 s
        tracked = {str(r["job_id"]) for r in _records(project) if r.get("job_id")}
        assert len(tracked) == 1 and not _sbatch_of(ours)
        assert arrays_known_to_slurm(ours) == tracked
    finally:
        cancel_all(project)


# -- item 2: an ambiguous "Socket timed out" ---------------------------------------------------
def test_a_frozen_controller_leaves_no_untracked_twin(tmp_path: Path,
                                                      faults: FaultsCluster) -> None:
    """Freeze the controller for 13 s, 0.5 s into a launch of 30 arrays: the sbatch in flight
    times out ("Socket timed out"), the frozen controller creates the job anyway once it runs
    again, and the first look-up by name may not see it yet. No twin may be left live."""
    script, env, calls = _many_arrays(tmp_path, 30)
    project = env["PROJECT"]
    ours = f"{project}.m."
    try:
        launch = _launch_in_background(script, env)
        _wait_for_calls(calls, "sbatch", 1)
        time.sleep(0.5)
        faults.freeze()
        time.sleep(13)
        faults.thaw()
        _, stderr = launch.communicate(timeout=600)
        time.sleep(3)
        tracked = {str(r["job_id"]) for r in _records(project) if r.get("job_id")}
        assert arrays_known_to_slurm(ours) == tracked, stderr  # no twin, none untracked
        again = run_cli(script, "launch", env=env)  # anything unresolved is reconciled
        assert again.returncode == 0, again.stderr
        tracked = {str(r["job_id"]) for r in _records(project) if r.get("job_id")}
        assert len(tracked) == 30 and _live_arrays(ours) == tracked
    finally:
        faults.heal()
        cancel_all(project)


def test_a_twin_is_cancelled_and_reported_at_the_next_launch(tmp_path: Path,
                                                             faults: FaultsCluster) -> None:
    """A job carrying the unique name of a tracked job (as a twin left by an ambiguous
    failure would) is cancelled by the next launch, which says so."""
    script, env, _, _ = _queued_project(tmp_path)
    project = env["PROJECT"]
    try:
        rec = next(r for r in _records(project) if r["stage"] == "a")
        twin = faults.run("sbatch", "--parsable", "-J", str(rec["name"]), "--begin=now+3600",
                          "-o", "/dev/null", "--wrap", "true").stdout.strip().split(";")[0]
        res = run_cli(script, "launch", env=env)
        assert res.returncode == 0, res.stderr
        assert f"cancelled job {twin}: an untracked twin of job {rec['job_id']}" in res.stderr
        assert twin not in _live_arrays(project)
        assert str(rec["job_id"]) in _live_arrays(project)
    finally:
        cancel_all(project)


# -- item 4: concurrent builders ---------------------------------------------------------------
# Two projects (PROJECT differs) share OUT and the dependency D; each has its own top artifact.
SHARED_DEP = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class D(Artifact):
    n: int
    def get_requirements(self):
        return {"partition": "cpu", "time": "10:00"}
    def construct(self, builder: Task):
        builder.run_command("sleep 8; echo " + self.relpath + " >> " + os.environ["RUNS"])

@dataclass(frozen=True)
class T(Artifact):
    d: D
    who: str
    def get_requirements(self):
        return {"partition": "cpu", "time": "10:00"}
    def construct(self, builder: Task):
        builder.run_command("echo " + self.relpath + " >> " + os.environ["RUNS"])

d = ArtifactSet.from_product(cls=D, params={"n": [0]})
ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("dep", d)
ex.stage("top", d.map(lambda x: T(d=x, who=os.environ["PROJECT"])))
if __name__ == "__main__":
    ex.auto_cli()
'''


def test_a_concurrent_builder_is_waited_for_not_a_failure(tmp_path: Path,
                                                          faults: FaultsCluster) -> None:
    script, env, out, _ = _setup(tmp_path)
    script.write_text(SHARED_DEP)
    env2 = {**env, "PROJECT": env["PROJECT"] + "b"}
    try:
        first = run_cli(script, "launch", env=env)
        assert first.returncode == 0, first.stderr
        time.sleep(2)
        second = run_cli(script, "launch", env=env2)
        assert second.returncode == 0, second.stderr
        assert len(_records(env2["PROJECT"])) == 2  # its own copy of D was submitted too
        wait_until_idle(env["PROJECT"], 180)
        statuses = [json.loads(p.read_text()) for p in out.rglob(".status.json")]
        assert sorted(s["state"] for s in statuses) == ["done"] * 3, statuses
        runs = Path(env["RUNS"]).read_text().splitlines()
        assert len(runs) == 3 and len(set(runs)) == 3  # D built once, each T once
        status = run_cli(script, "status", env=env2)
        assert "dep-failed" not in status.stdout and "failed" not in status.stdout, status.stdout
        d_job = next(r for r in _records(env2["PROJECT"]) if r["stage"] == "dep")
        log = next((Path(os.environ["EXPERIMENTS_HOME"]) / "logs").rglob(
            f"{d_job['job_id']}_0.log")).read_text()
        assert "was built by" in log, log
    finally:
        cancel_all(env["PROJECT"])
