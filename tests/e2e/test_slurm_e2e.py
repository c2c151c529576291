"""The Slurm backend end to end on the real test cluster, through the real CLI."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from experiments.tracking.store import Store
from tests.support.cli import run_cli
from tests.support.experiments import TWO_TIERS as EXPERIMENT
from tests.support.experiments import done_markers
from tests.support.slurm import cancel_all, count_calls, my_jobs, wait_until_idle, wrap_commands

pytestmark = pytest.mark.slurm



@pytest.fixture
def project(tmp_path: Path, slurm_cluster: object) -> tuple[Path, dict[str, str], Path]:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    name = f"t{uuid.uuid4().hex[:8]}"
    wrapped, calls = wrap_commands(tmp_path)
    env = {"OUT": str(out), "PROJECT": name, **wrapped, "CALLS": str(calls)}
    yield script, env, out
    cancel_all(name)


def _jobs(stage: str, project: str) -> list[dict[str, object]]:
    return [r.to_dict() for r in Store(Path(os.environ["EXPERIMENTS_HOME"]), project)
            .records(stage)]


def test_two_stage_grid_runs_to_completion(project: tuple[Path, dict[str, str], Path]) -> None:
    script, env, out = project
    res = run_cli(script, "launch", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    calls = Path(env["CALLS"])
    assert count_calls(calls, "sbatch") == 3  # pretrain, and one finetune lane per dataset
    pre_job, fine_jobs = _jobs("pretrain", env["PROJECT"])[0], _jobs("finetune",
                                                                     env["PROJECT"])
    assert [f["depends_on"] for f in fine_jobs] == [[pre_job["job_id"]]] * 2
    wait_until_idle(env["PROJECT"])
    assert len(done_markers(out)) == 3 + 6
    status = run_cli(script, "status", env=env)
    assert status.returncode == 0
    rows = {r.split("│")[1].strip(): r.split("│")[2].strip()
            for r in status.stdout.splitlines() if r.startswith("│")}
    assert rows == {"pretrain": "3", "finetune": "6"}  # the built column
    before = count_calls(calls, "squeue"), count_calls(calls, "sacct")
    hist = run_cli(script, "history", env=env)
    assert hist.returncode == 0 and hist.stdout.count("3 built") == 3  # pretrain, two lanes
    after = count_calls(calls, "squeue"), count_calls(calls, "sacct")
    assert after[0] - before[0] <= 1 and after[1] - before[1] <= 1
    log = run_cli(script, "cat", f"{pre_job['job_id']}_1", env=env)
    assert "trained 0.2" in log.stdout
    again = run_cli(script, "launch", env=env)
    assert "Nothing to launch" in again.stdout
    assert count_calls(calls, "sbatch") == 3


def test_one_failed_pretrain_costs_only_its_finetunes(
        project: tuple[Path, dict[str, str], Path]) -> None:
    script, env, out = project
    env = {**env, "FAIL_LR": "0.2"}
    assert run_cli(script, "launch", env=env).returncode == 0
    wait_until_idle(env["PROJECT"])  # nothing left pending forever (DependencyNeverSatisfied)
    built = [p.parent.relative_to(out).as_posix() for p in done_markers(out)]
    assert len(built) == 2 + 4 and not any("0.2" in b for b in built)
    status = run_cli(script, "status", env=env)
    assert "dep-failed" in status.stdout and "command exited with code 7" in status.stdout
    fixed = {**env, "FAIL_LR": ""}
    res = run_cli(script, "launch", env=fixed)
    assert res.returncode == 0, res.stderr
    jobs = _jobs("pretrain", env["PROJECT"]) + _jobs("finetune", env["PROJECT"])
    assert [len(j["tasks"]) for j in jobs] == [3, 1, 3, 3, 1, 1]  # only the failed chain
    wait_until_idle(env["PROJECT"])
    assert len(done_markers(out)) == 9


def test_arrays_above_max_array_size_are_split(tmp_path: Path, small_array_cluster: object
                                               ) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    wrapped, calls = wrap_commands(tmp_path)
    env = {"OUT": str(out), "PROJECT": "split", "N_PRE": "12", **wrapped,
           **small_array_cluster.env}  # type: ignore[attr-defined]
    res = run_cli(script, "launch", "pretrain", env=env)
    assert res.returncode == 0, res.stderr
    assert count_calls(calls, "sbatch") == 3  # MaxArraySize=5: 5 + 5 + 2
    jobs = _jobs("pretrain", "split")
    assert [len(j["tasks"]) for j in jobs] == [5, 5, 2]
    deadline_env = {**os.environ, **env}
    import subprocess
    import time
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(done_markers(out)) < 12:
        time.sleep(0.5)
    assert len(done_markers(out)) == 12
    status = subprocess.run(["python", str(script), "status", "pretrain"], env=deadline_env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "12" in status.stdout  # works without sacct


def test_socket_timeout_after_submission_does_not_duplicate(tmp_path: Path,
                                                            slurm_cluster: object) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    flaky = ('if [ "$rc" = 0 ] && [ ! -e {m} ]; then touch {m}; '
             'echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv '
             'operation" >&2; exit 1; fi; exit "$rc"').format(m=tmp_path / "failed-once")
    wrapped, calls = wrap_commands(tmp_path, {"sbatch": flaky})
    name = f"t{uuid.uuid4().hex[:8]}"
    env = {"OUT": str(out), "PROJECT": name, **wrapped}
    try:
        res = run_cli(script, "launch", "pretrain", env=env)
        assert res.returncode == 0, res.stderr
        assert count_calls(calls, "sbatch") == 1  # found by name, not resubmitted
        jobs = _jobs("pretrain", name)
        assert len(jobs) == 1 and jobs[0]["job_id"]
        arrays = {r.split("|")[0].split("_")[0] for r in my_jobs(name)}
        assert arrays <= {jobs[0]["job_id"]}
        wait_until_idle(name)
        assert len(done_markers(out)) == 3
    finally:
        cancel_all(name)


def test_permanent_rejection_stops_with_slurms_message(
        project: tuple[Path, dict[str, str], Path]) -> None:
    script, env, out = project
    env = {**env, "FINE_PARTITION": "nope"}
    dry = run_cli(script, "drylaunch", "--validate", env=env)
    assert dry.returncode == 1 and "invalid partition" in (dry.stdout + dry.stderr).lower()
    # two --test-only checks, the relay probe job and its own --test-only on the node
    assert count_calls(Path(env["CALLS"]), "sbatch") == 4
    res = run_cli(script, "launch", env=env)
    assert res.returncode == 4  # refused part-way: tier 0 is queued (see test_launch_feedback)
    assert "invalid partition" in res.stderr.lower() and "Traceback" not in res.stderr
    assert "launch stopped part-way" in res.stderr and "Not submitted:" in res.stderr
    assert count_calls(Path(env["CALLS"]), "sbatch") == 6  # tier 0 + one refused: no retries
    jobs = _jobs("pretrain", env["PROJECT"])
    assert len(jobs) == 1 and jobs[0]["state"] == "submitted"  # what went through is tracked
    assert not (Path(os.environ["EXPERIMENTS_HOME"]) / "projects" / env["PROJECT"]
                / "finetune" / "jobs.json").exists() or not _jobs("finetune", env["PROJECT"])
    wait_until_idle(env["PROJECT"])
    assert len(done_markers(out)) == 3
