"""Two clusters behind one home (issue 23 item 1), on two real private clusters: the slot's
default cluster A and the *second* cluster B, whose next job id is made to collide with the id
A gave the project's job. One ``EXPERIMENTS_HOME``, ``SLURM_CONF`` switched between them, is a
site with two clusters sharing ``$HOME``.

From B, a job of A is never asked, resubmitted or cancelled ("on another cluster (A): not
asked"); and a record that does not name its cluster (written before clusters were kept) is
name-checked: B's unrelated job with the same id is *not ours*, never shown or cancelled."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments.tracking.store import Store
from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, my_jobs
from tests.support.slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Slow(Artifact):
    i: int = 0
    def get_requirements(self):
        return {"partition": "cpu", "time": "5:00"}
    def construct(self, builder: Task):
        builder.run_command("sleep 240")

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"])
ex.stage("slow", ArtifactSet.from_product(cls=Slow, params={"i": [0, 1]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


@dataclass
class World:
    """The project launched on A, and B holding an unrelated job with the same id."""

    script: Path
    project: str
    job: str            # the project's job on A
    a_name: str         # A's ClusterName
    b: SlurmCluster
    env_b: dict[str, str]

    def on_b(self, *args: str) -> str:
        res = run_cli(self.script, *args, env=self.env_b)
        return res.stdout + res.stderr

    def b_jobs(self) -> list[str]:
        return self.b.run("squeue", "-h", "-o", "%i|%j|%T").stdout.split()


def _world(tmp_path: Path, a: SlurmCluster, second_cluster: object) -> World:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    project = f"c{uuid.uuid4().hex[:8]}"
    env = {"OUT": str(tmp_path / "out"), "PROJECT": project}
    launched = run_cli(script, "launch", env=env)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    job = str(json.loads(run_cli(script, "history", "--json", env=env).stdout)
              ["jobs"][0]["job_id"])
    b = second_cluster(int(job))  # type: ignore[operator]
    unrelated = b.run("sbatch", "--parsable", "-H", "--job-name=unrelated", "-p", "cpu",
                      "--wrap", "true").stdout.strip()
    assert unrelated == job, f"B gave {unrelated}, not A's id {job}: FirstJobId did not apply"
    a_name = a.run("scontrol", "show", "config").stdout.split("ClusterName")[1].split()[1]
    return World(script, project, job, a_name, b, {**env, "SLURM_CONF": b.conf})


def test_from_another_cluster_a_job_is_not_asked_resubmitted_or_cancelled(
        tmp_path: Path, slurm_cluster: SlurmCluster, second_cluster: object) -> None:
    w = _world(tmp_path, slurm_cluster, second_cluster)
    try:
        status = w.on_b("status")
        assert f"on another cluster ({w.a_name}): not asked" in status, status
        assert "unknown" not in status, status
        assert "launch" in w.on_b("launch")  # ran; submitted nothing on B
        assert w.b_jobs() == [f"{w.job}|unrelated|PENDING"]
        cancelled = w.on_b("cancel", "--yes")
        assert f"not cancelled: job {w.job} was submitted on cluster '{w.a_name}'" in cancelled
        assert w.b_jobs() == [f"{w.job}|unrelated|PENDING"]  # B's own job untouched
        assert len({r.split("|")[0].split("_")[0] for r in my_jobs(w.project)}) == 1  # A's
    finally:
        cancel_all(w.project)
        w.b.run("scancel", w.job, check=False)


def test_a_job_id_now_naming_another_job_is_not_ours(
        tmp_path: Path, slurm_cluster: SlurmCluster, second_cluster: object) -> None:
    w = _world(tmp_path, slurm_cluster, second_cluster)
    store = Store(Path(os.environ["EXPERIMENTS_HOME"]), w.project)
    (record,) = store.records("slow")  # as written before records named their cluster
    if record.to_dict().get("cluster"):  # (the code before clusters were kept has no field)
        store.update("slow", record.name, cluster=None)
    try:
        status = w.on_b("status")
        assert f"not ours: job id {w.job} now belongs to another job ('unrelated'" in status, \
            status
        assert "queued" not in status, status  # B's held job is never shown as the project's
        w.on_b("cancel", "--yes")
        assert w.b_jobs() == [f"{w.job}|unrelated|PENDING"]  # never cancelled
        (after,) = store.records("slow")
        assert {e["label"] for e in after.ended.values()} == {"not ours"}  # the record says so
    finally:
        cancel_all(w.project)
        w.b.run("scancel", w.job, check=False)
