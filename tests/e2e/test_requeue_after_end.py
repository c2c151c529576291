"""A task whose failure is recorded, then requeued by ``scontrol requeue`` (issue 23 item 2):
``status``, ``wait``, ``launch`` and ``cancel`` all see it live again, on the real cluster.

The requeued task stays PENDING with reason BeginTime (Slurm's requeue hold, about two
minutes), which is all this test needs: it never waits for the hold to pass."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, my_jobs, wait_until_idle
from tests.support.slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Flaky(Artifact):
    i: int = 0
    def get_requirements(self):
        return {"partition": "cpu", "time": "2:00"}
    def construct(self, builder: Task):
        builder.run_command("exit 3")

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"])
ex.stage("flaky", ArtifactSet.from_product(cls=Flaky, params={"i": [0]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def test_a_task_requeued_after_its_recorded_failure_is_live_again(
        tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    project = f"q{uuid.uuid4().hex[:8]}"
    env = {"OUT": str(tmp_path / "out"), "PROJECT": project}
    try:
        assert run_cli(script, "launch", env=env).returncode == 0
        wait_until_idle(project)
        first = run_cli(script, "status", env=env)
        assert "failed" in first.stdout, first.stdout  # the end is recorded now
        job = str(json.loads(run_cli(script, "history", "--json", env=env).stdout)
                  ["jobs"][0]["job_id"])
        slurm_cluster.run("scontrol", "requeue", f"{job}_0")  # ended, still held (MinJobAge)
        assert [r for r in my_jobs(project) if "PENDING" in r], my_jobs(project)

        status = run_cli(script, "status", env=env)
        assert "queued" in status.stdout and "failed" not in status.stdout, status.stdout
        waited = run_cli(script, "wait", "--timeout", "0", env=env)
        assert waited.returncode == 3, waited.stdout + waited.stderr  # still live: timed out
        relaunch = run_cli(script, "launch", env=env)
        assert relaunch.returncode == 0, relaunch.stdout + relaunch.stderr
        ids = {r.split("|")[0].split("_")[0] for r in my_jobs(project)}
        assert ids == {job}, my_jobs(project)  # no second job beside the requeued task
        cancelled = run_cli(script, "cancel", "--yes", env=env)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert job in cancelled.stdout, cancelled.stdout
        assert not my_jobs(project), my_jobs(project)
    finally:
        cancel_all(project)
