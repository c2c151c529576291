"""Reliability scenarios on the real Slurm test cluster.

The rule under test everywhere: every artifact is built exactly once, and no artifact ever has
two live jobs — whatever crashes, races, fails or is typed in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from experiments.tracking.store import Store
from tests.support.cli import run_cli
from tests.support.experiments import done_markers
from tests.support.slurm import (
    arrays_known_to_slurm,
    cancel_all,
    count_calls,
    my_jobs,
    wait_until_idle,
)
from tests.support.slurm import records as _records
from tests.support.slurm import setup_three_tiers as _setup

pytestmark = pytest.mark.slurm

def _assert_built_once(env: dict[str, str], out: Path, expected: int) -> None:
    wait_until_idle(env["PROJECT"])
    runs = Path(env["RUNS"]).read_text().splitlines() if Path(env["RUNS"]).exists() else []
    dupes = [r for r, n in Counter(runs).items() if n > 1]
    assert not dupes, f"built more than once: {dupes}"
    assert len(runs) == expected and len(done_markers(out)) == expected


def _assert_one_job_per_artifact(project: str) -> None:
    owners = Counter(t[0] for r in _records(project) if r.get("job_id") for t in r["tasks"])
    assert owners and max(owners.values()) == 1, owners
    tracked = {str(r["job_id"]) for r in _records(project) if r.get("job_id")}
    assert arrays_known_to_slurm(project) == tracked  # no untracked twin was submitted


# The sweep over every crash point runs on FakeBackend (tests/reliability/test_crash_sweep_fake.py:
# each journal write; tests/launching/test_launch_context_crashes.py: around each submission).
# Here, the case where Slurm is the point: it accepted the second array (which waits for the
# first) and the launcher died before recording it; the relaunch must find that job by name in
# Slurm and adopt it.
@pytest.mark.parametrize("crash_at", ["after-submit:2"])
def test_crash_sweep_then_relaunch(tmp_path: Path, slurm_cluster: object, crash_at: str) -> None:
    script, env, out, calls = _setup(tmp_path, {"SLEEP_S": "1"})
    try:
        crashed = run_cli(script, "launch", env={**env, "EXPERIMENTS_CRASH_AT": crash_at})
        assert crashed.returncode == -9, crashed.stderr  # SIGKILLed at the crash point
        again = run_cli(script, "launch", env=env)
        assert again.returncode == 0, again.stderr
        _assert_one_job_per_artifact(env["PROJECT"])
        records = {r["job_id"]: r for r in _records(env["PROJECT"])}
        by_artifact = {t[0]: r["job_id"] for r in records.values() for t in r["tasks"]}
        for rec in records.values():  # later tiers depend on the jobs holding their deps
            if rec["tier"] > 0:
                assert rec["depends_on"], rec
                assert set(rec["depends_on"]) <= set(by_artifact.values())
        _assert_built_once(env, out, 6)
    finally:
        cancel_all(env["PROJECT"])


def test_noisy_success_is_recorded_once(tmp_path: Path, slurm_cluster: object) -> None:
    noisy = ('echo "sbatch: Slurm temporarily unable to accept job, sleeping and retrying" >&2; '
             'exit "$rc"')
    script, env, out, calls = _setup(tmp_path, wrappers={"sbatch": noisy})
    try:
        res = run_cli(script, "launch", "a", env=env)
        assert res.returncode == 0, res.stderr
        assert count_calls(calls, "sbatch") == 1
        assert len(_records(env["PROJECT"])) == 1
        _assert_built_once(env, out, 2)
    finally:
        cancel_all(env["PROJECT"])


@pytest.mark.long_wait
def test_requeue_runs_again_never_failed_and_log_keeps_both(tmp_path: Path,
                                                            slurm_cluster: object) -> None:
    script, env, out, _ = _setup(tmp_path, {"SLEEP_S": "6", "N": "1"})
    try:
        assert run_cli(script, "launch", "a", env=env).returncode == 0
        job = _records(env["PROJECT"])[0]["job_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("RUNNING" in r
                                                      for r in my_jobs(env["PROJECT"])):
            time.sleep(0.3)
        time.sleep(1.5)
        # Slurm keeps a requeued job back for about two minutes (starting it earlier fails with
        # "Job credential revoked"), so this test takes that long.
        subprocess.run(["scontrol", "requeue", f"{job}_0"], check=True, timeout=30)
        seen: set[str] = set()
        while my_jobs(env["PROJECT"]) and time.monotonic() < deadline + 120:
            hist = run_cli(script, "history", env=env).stdout
            seen |= {w for w in ("failed", "built", "queued", "running") if w in hist}
            time.sleep(1)
        assert "failed" not in seen
        assert len(done_markers(out)) == 1
        log = next((Path(os.environ["EXPERIMENTS_HOME"]) / "logs").rglob(f"{job}_0.log"))
        text = log.read_text()
        assert text.count("step 1/1") == 2 and "interrupted by SIGTERM" in text
        assert "built A/" in text
    finally:
        cancel_all(env["PROJECT"])


def test_vanished_and_reused_jobs_are_never_built(tmp_path: Path, slurm_cluster: object) -> None:
    script, env, out, _ = _setup(tmp_path, {"SLEEP_S": "60"})
    try:
        assert run_cli(script, "launch", "a", env=env).returncode == 0
        job = _records(env["PROJECT"])[0]["job_id"]
        subprocess.run(["scancel", str(job)], check=True, timeout=30)  # outside the tool
        wait_until_idle(env["PROJECT"], 60)
        status = run_cli(script, "status", "a", env=env)
        assert "built" in status.stdout and "running" not in status.stdout
        row = next(line for line in status.stdout.splitlines() if line.startswith("│ a "))
        assert row.split("│")[2].strip() == "0"  # built column
        # a record pointing at an unrelated job id that completed is still not "built"
        other = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "true"],
                               capture_output=True, text=True, check=True).stdout.strip()
        store = Store(Path(os.environ["EXPERIMENTS_HOME"]), env["PROJECT"])
        store.update("a", store.records("a")[0].name, job_id=other.split(";")[0])
        time.sleep(3)
        hist = run_cli(script, "history", env=env)
        assert "built" not in hist.stdout
        res = run_cli(script, "launch", "a", env={**env, "SLEEP_S": "0"})
        assert res.returncode == 0 and "Nothing to launch" not in res.stdout
        _assert_built_once({**env}, out, 2)
    finally:
        cancel_all(env["PROJECT"])


def test_status_of_10000_tasks_asks_slurm_twice_at_most(tmp_path: Path,
                                                        slurm_cluster: object) -> None:
    script, env, out, calls = _setup(tmp_path, {"N": "10000", "REQS": "begin=now+3600"})
    try:
        res = run_cli(script, "launch", "a", env=env)
        assert res.returncode == 0, res.stderr
        assert count_calls(calls, "sbatch") == 10  # MaxArraySize 1001 -> 10 chunks
        before = {p: count_calls(calls, p) for p in ("squeue", "sacct")}
        status = run_cli(script, "status", "a", env=env)
        assert status.returncode == 3 and "10000" in status.stdout  # 3: still queued
        hist = run_cli(script, "history", "a", env=env)
        assert hist.returncode == 0
        assert count_calls(calls, "squeue") - before["squeue"] <= 2      # one per verb
        assert count_calls(calls, "sacct") - before["sacct"] <= 2
        assert "10000 queued" in status.stdout.replace(" ", "") or "10000" in status.stdout
    finally:
        cancel_all(env["PROJECT"])


def test_watch_backs_off_survives_without_sacct_and_ends_when_nothing_is_live(
        tmp_path: Path, slurm_cluster: object) -> None:
    broken = 'echo "sacct: error: Slurm accounting storage is disabled" >&2; exit 1'
    script, env, out, calls = _setup(tmp_path, {"SLEEP_S": "12"}, wrappers={"sacct": broken})
    assert run_cli(script, "launch", "a", env=env).returncode == 0
    proc = subprocess.Popen([sys.executable, str(script), "status", "a", "--watch",
                             "--interval", "5"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=120)  # ends by itself once nothing is live
    assert "Traceback" not in stderr
    assert proc.returncode == 0, stdout + stderr  # all of stage a built
    refreshes = [line for line in stdout.splitlines() if line.startswith("[")]
    assert refreshes and "next check in" in refreshes[0]  # piped: plain lines with the time
    assert count_calls(calls, "squeue") <= len(refreshes) + 3  # one per refresh


def test_held_tasks_are_shown_with_the_reason_and_how_to_release(
        tmp_path: Path, slurm_cluster: object) -> None:
    script, env, out, _ = _setup(tmp_path, {"REQS": "begin=now+3600"})
    try:
        assert run_cli(script, "launch", "a", env=env).returncode == 0
        job = _records(env["PROJECT"])[0]["job_id"]
        subprocess.run(["scontrol", "hold", str(job)], check=True, timeout=30)
        status = run_cli(script, "status", "a", env=env)
        assert status.returncode == 3  # queued (held)
        assert status.stdout.count("held by the scheduler (JobHeld") == 2  # Admin as root
        assert f"scontrol release {job}_0" in status.stdout
    finally:
        cancel_all(env["PROJECT"])
