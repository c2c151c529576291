"""Life after ``launch`` on the real Slurm test cluster: wait, setup lines, checkpoints and
requeues across a real time limit, retries with escalation, efficiency from sacct."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.experiments import done_markers
from tests.support.slurm import cancel_all, count_calls, wait_until_idle, wrap_commands

pytestmark = pytest.mark.slurm

# One stage of N artifacts; artifact FAIL (an index) fails; COMMAND overrides the command.
GRID = '''
import json
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

FAIL = int(os.environ.get("FAIL", "-1"))
REQS = json.loads(os.environ.get("REQS", "{}"))
COMMAND = os.environ.get("COMMAND", "")

@dataclass(frozen=True)
class Job(Artifact):
    i: int
    def get_requirements(self):
        return {"partition": "cpu", "time": "5:00", **REQS}
    def construct(self, builder: Task):
        builder.run_command(COMMAND.replace("{i}", str(self.i))
                            or f"sleep 2; test {self.i} != {FAIL}")

n = int(os.environ.get("N", "3"))
ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"], setup=json.loads(os.environ.get("SETUP", "[]")))
ex.stage("jobs", ArtifactSet.from_product(cls=Job, params={"i": list(range(n))}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _setup(tmp_path: Path, **extra: str) -> tuple[Path, dict[str, str], Path, Path]:
    script = tmp_path / "exp.py"
    script.write_text(GRID)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    wrapped, calls = wrap_commands(tmp_path)
    env = {"OUT": str(out), "PROJECT": f"o{uuid.uuid4().hex[:8]}", **wrapped, **extra}
    return script, env, out, calls


def test_wait_exit_codes_with_a_failing_task(tmp_path: Path, slurm_cluster: object) -> None:
    # 15 s per task: `wait --timeout 0` must find them live even when a loaded machine takes
    # seconds to start the CLI (with 2 s they had sometimes ended: exit 1, not 3)
    script, env, out, calls = _setup(tmp_path, COMMAND="sleep 15; test {i} != 1")
    try:
        assert run_cli(script, "launch", env=env).returncode == 0
        early = run_cli(script, "wait", "--timeout", "0", env=env)
        assert early.returncode == 3, early.stdout + early.stderr  # still queued or running
        before = count_calls(calls, "squeue")
        done = run_cli(script, "wait", "--timeout", "200", "--interval", "1", env=env)
        assert done.returncode == 1, done.stdout + done.stderr  # one failed
        assert "2 built, 1 failed" in done.stdout and "command exited with code 1" in done.stdout
        polls = [line for line in done.stdout.splitlines() if line.startswith("[")]
        assert count_calls(calls, "squeue") - before <= len(polls) + 1  # one squeue per poll
        assert count_calls(calls, "sacct") <= count_calls(calls, "squeue")
        assert len(done_markers(out)) == 2
        status = run_cli(script, "status", env=env)
        assert status.returncode == 1
    finally:
        cancel_all(env["PROJECT"])
        wait_until_idle(env["PROJECT"])


def test_setup_lines_run_in_the_batch_script_before_the_worker(
        tmp_path: Path, slurm_cluster: object, experiments_home: Path) -> None:
    experiments_home.mkdir(parents=True, exist_ok=True)  # the home is made on first use
    (experiments_home / "config.json").write_text(json.dumps({
        "setup": ["export A=1"],
        "default_slurm_args": {"cpu": {"setup": ["export B=2"]}}}))
    script, env, out, _ = _setup(tmp_path, N="1", COMMAND='test "$A$B$C" = 123',
                                 SETUP=json.dumps(["export C=3"]))
    try:
        assert run_cli(script, "launch", env=env).returncode == 0
        done = run_cli(script, "wait", "--timeout", "120", "--interval", "1", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        batch = next(experiments_home.rglob("job.sbatch")).read_text()
        lines = batch.splitlines()
        assert lines.index("export A=1") < lines.index("export B=2") < lines.index(
            "export C=3") < next(i for i, x in enumerate(lines) if x.startswith("exec "))
    finally:
        cancel_all(env["PROJECT"])


CHECKPOINTING = r'''
c="$EXPERIMENTS_CHECKPOINT_DIR/count"
if [ -e "$c" ]; then
  r="$EXPERIMENTS_ARTIFACT_DIR/result"
  echo "resumed from $(cat "$c") in attempt $EXPERIMENTS_ATTEMPT" > "$r"
  exit 0
fi
trap 'echo 41 > "$c"; echo "checkpointed in attempt $EXPERIMENTS_ATTEMPT"; exit 1' USR2
echo "working in attempt $EXPERIMENTS_ATTEMPT"
for i in $(seq 300); do sleep 1; done
'''


@pytest.mark.long_wait
def test_checkpoint_signal_before_a_real_time_limit_then_requeue(
        tmp_path: Path, slurm_cluster: object, experiments_home: Path) -> None:
    """Limit 2 min, signal 60 s before (Slurm may send it up to 60 s early): the first attempt
    checkpoints and is requeued, the second resumes from the checkpoint and finishes."""
    reqs = {"time": "0:02:00", "checkpoint_before": 60, "max_requeues": 1}
    script, env, out, _ = _setup(tmp_path, N="1", COMMAND=CHECKPOINTING, REQS=json.dumps(reqs))
    try:
        assert run_cli(script, "launch", env=env).returncode == 0
        done = run_cli(script, "wait", "--timeout", "420", "--interval", "2", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        (result,) = out.rglob("result")
        assert result.read_text().strip() == "resumed from 41 in attempt 2"
        (ckpt,) = out.rglob(".checkpoint")
        assert ckpt.parent == result.parent  # inside the artifact folder, kept across attempts
        logs = run_cli(script, "logs", "jobs", "--where", "i=0", env=env)
        assert "checkpointed in attempt 1" in logs.stdout and "requeued (restart 1" in logs.stdout
        assert "restart 1" in logs.stdout  # the second attempt's banner, in the same log
        batch = next(experiments_home.rglob("job.sbatch")).read_text()
        assert "#SBATCH --signal=B:USR2@60" in batch
    finally:
        cancel_all(env["PROJECT"])


def test_efficiency_from_one_real_sacct_call(tmp_path: Path, slurm_cluster: object) -> None:
    reqs = {"time": "10:00", "cpus": 2, "mem": "500M"}
    script, env, out, calls = _setup(tmp_path, N="2", REQS=json.dumps(reqs),
                                     COMMAND="sleep 4; for i in $(seq 200000); do :; done")
    try:
        assert run_cli(script, "launch", env=env).returncode == 0
        assert run_cli(script, "wait", "--timeout", "200", "--interval", "1",
                       env=env).returncode == 0
        before = count_calls(calls, "sacct")
        res = run_cli(script, "efficiency", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        assert count_calls(calls, "sacct") - before == 1
        row = next(line for line in res.stdout.splitlines() if line.startswith("│ jobs"))
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells[1] == "2" and cells[3] == "0.33h"  # 2 tasks × 10 min requested
        assert cells[4].endswith("%") and 0 < int(cells[4][:-1]) <= 10  # ~5-20 s of 10 min
        assert "jobs: wasting most" in res.stdout and "of 2" in res.stdout
        page = tmp_path / "report.html"  # the report's cost table shows the same accounting
        assert run_cli(script, "report", "-o", str(page), env=env).returncode == 0
        row = re.search(r"<tr><td>jobs</td>(.*?)</tr>", page.read_text())
        assert row, "no cost row for stage jobs"
        cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
        assert cells[:3] == ["2", "0.7", "0.0"], cells  # 2 × 10 min × 2 CPUs, no GPUs
        assert cells[3] != "—" and cells[4] == "0.0", cells  # CPU time used; no GPUs held
    finally:
        cancel_all(env["PROJECT"])


@pytest.mark.long_wait
def test_retry_failed_escalates_time_after_a_real_timeout(
        tmp_path: Path, slurm_cluster: object, experiments_home: Path) -> None:
    experiments_home.mkdir(parents=True, exist_ok=True)  # the home is made on first use
    (experiments_home / "config.json").write_text(json.dumps({
        "escalation": {"TIMEOUT": {"time": 2}, "OUT_OF_MEMORY": {"mem": 2},
                       "caps": {"time": "0:03:00"}}}))
    script, env, out, calls = _setup(tmp_path, N="2", REQS=json.dumps({"time": "1"}),
                                     COMMAND="test {i} != 0 || test -e ok || sleep 600")
    try:
        assert run_cli(script, "launch", env=env).returncode == 0
        first = run_cli(script, "wait", "--timeout", "300", "--interval", "2", env=env)
        assert first.returncode == 1, first.stdout + first.stderr  # i=0 hit its limit
        status = run_cli(script, "status", env=env)
        assert "launch --retry-failed" in status.stdout  # the policy is configured
        job = run_cli(script, "history", "--json", env=env)
        job_id = json.loads(job.stdout)["jobs"][0]["job_id"]
        dry = run_cli(script, "drylaunch", "--retry-failed", env=env)
        assert f"time 0:01:00 → 0:02:00 after TIMEOUT in job {job_id}_0" in dry.stdout
        assert "1 artifact(s) to build" in dry.stdout, dry.stdout
        (out / "ok").touch()
        sbatch_before = count_calls(calls, "sbatch")
        again = run_cli(script, "launch", "--retry-failed", "--json", env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        launched = json.loads(again.stdout)
        assert launched["to_build"] == 1 and len(launched["changes"]) == 1
        assert count_calls(calls, "sbatch") - sbatch_before == 1
        assert run_cli(script, "wait", "--timeout", "200", "--interval", "2",
                       env=env).returncode == 0
        (record,) = [j for j in json.loads(run_cli(script, "history", "--json",
                                                   env=env).stdout)["jobs"]
                     if j["job_id"] == launched["jobs"][0]["job_id"]]
        assert record["tasks"] == 1
        scripts = sorted(experiments_home.rglob("job.sbatch"), key=lambda p: p.stat().st_mtime)
        assert "#SBATCH --time=0:02:00" in scripts[-1].read_text()
    finally:
        cancel_all(env["PROJECT"])
