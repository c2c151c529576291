"""The test clusters of tests/support/slurm_cluster.py really run jobs and enforce their limits."""

from __future__ import annotations

import time

import pytest

from tests.support.slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slurm


def _sbatch(cluster: SlurmCluster, tmp_path, *args: str, check: bool = True):
    return cluster.run("sbatch", "--parsable", f"--chdir={tmp_path}", "-o", "/dev/null",
                       "-e", "/dev/null", *args, "--wrap", "true", check=check)


def _job_id(stdout: str) -> str:
    return stdout.strip().split(";")[0]  # "<jobid>" or "<jobid>;<cluster>"


def _wait_done(cluster: SlurmCluster, job_id: str, n_tasks: int, timeout: float = 60) -> list[str]:
    """Wait until no task of the job is pending/running; return the states of its tasks."""
    deadline = time.monotonic() + timeout
    while True:
        out = cluster.run("squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", "%T").stdout
        states = out.split()
        if len(states) == n_tasks and all(s not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")
                                          for s in states):
            return states
        assert time.monotonic() < deadline, f"job {job_id} not done after {timeout}s: {states}"
        time.sleep(0.2)


def test_array_runs_and_is_accounted(slurm_cluster, tmp_path):
    assert slurm_cluster.max_array_size == 1001
    job = _job_id(_sbatch(slurm_cluster, tmp_path, "--array=0-3").stdout)
    assert _wait_done(slurm_cluster, job, 4) == ["COMPLETED"] * 4
    # sacct lags squeue by a few seconds: until slurmctld has sent every task's record to
    # slurmdbd it shows "<id>_[0-3]|PENDING" or only some tasks. Poll (bounded).
    want = [f"{job}_{i}|COMPLETED|0:0" for i in range(4)]
    deadline = time.monotonic() + 30
    while (rows := sorted(slurm_cluster.run(
            "sacct", "-X", "-n", "-P", "-j", job, "--format=JobID,State,ExitCode").stdout.split())) != want:
        assert time.monotonic() < deadline, f"sacct still shows {rows}, want {want}"
        time.sleep(0.2)


def test_fake_gpus_accepted(slurm_cluster, tmp_path):
    job = _job_id(_sbatch(slurm_cluster, tmp_path, "--gpus", "A100:4", "-c", "8", "-p", "gpu").stdout)
    assert _wait_done(slurm_cluster, job, 1) == ["COMPLETED"]


def test_small_cluster_max_array_size(small_array_cluster, tmp_path):
    c = small_array_cluster
    assert c.max_array_size == 5
    refused = _sbatch(c, tmp_path, "--array=0-5", check=False)
    assert refused.returncode != 0
    assert "Invalid job array specification" in refused.stderr
    job = _job_id(_sbatch(c, tmp_path, "--array=0-4").stdout)
    assert _wait_done(c, job, 5) == ["COMPLETED"] * 5
    no_acct = c.run("sacct", "-j", job, check=False)
    assert "accounting storage is disabled" in (no_acct.stdout + no_acct.stderr).lower()


def test_two_clusters_side_by_side(slurm_cluster, small_array_cluster):
    assert slurm_cluster.conf != small_array_cluster.conf
    names = set()
    for c in (slurm_cluster, small_array_cluster):
        config = c.run("scontrol", "show", "config").stdout
        names.add(next(line.split("=")[1].strip() for line in config.splitlines()
                       if line.startswith("ClusterName")))
        assert set(c.run("sinfo", "-h", "-o", "%P").stdout.split()) == {"cpu*", "gpu"}
    assert len(names) == 2
