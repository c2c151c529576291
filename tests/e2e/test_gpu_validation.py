"""``drylaunch --validate`` reads GPUs where Slurm keeps them, on the real test cluster, whose
accounting does not track ``gres/gpu`` (Slurm's default): the partitions' TRES list no GPU,
the node's GRES has 8, and a GPU job validates clean and starts (issue 24 item 6)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.experiments import done_markers
from tests.support.slurm import cancel_all, wait_until_idle
from tests.support.slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Train(Artifact):
    seed: int
    def get_requirements(self):
        return {"partition": "gpu", "gpus": int(os.environ["GPUS"]), "cpus": 2, "time": "5:00"}
    def construct(self, builder: Task):
        builder.run_command('echo "gpus=$CUDA_VISIBLE_DEVICES" > "$EXPERIMENTS_ARTIFACT_DIR/gpus"')

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"])
ex.stage("train", ArtifactSet.from_product(cls=Train, params={"seed": [0]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def test_a_gpu_job_validates_clean_where_accounting_does_not_track_gpus(
        tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    config = slurm_cluster.run("scontrol", "show", "config").stdout
    tracked = re.search(r"^AccountingStorageTRES\s*=\s*(.*)$", config, re.M)
    assert tracked and "gres/gpu" not in tracked.group(1), "this cluster accounts GPUs"
    partition = slurm_cluster.run("scontrol", "show", "partition", "gpu", "-o").stdout
    assert "TRES=" in partition and "gpu" not in partition.split("TRES=")[1]
    assert "Gres=gpu:A100:8" in slurm_cluster.run("scontrol", "show", "node", "-o").stdout

    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    env = {"OUT": str(out), "PROJECT": f"p{uuid.uuid4().hex[:8]}", "GPUS": "2"}
    try:
        dry = run_cli(script, "drylaunch", "--validate", env=env)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "within the site's limits" in dry.stdout and "0 GPUs" not in dry.stdout
        too_many = run_cli(script, "drylaunch", "--validate", env={**env, "GPUS": "9"})
        assert too_many.returncode == 1, too_many.stdout + too_many.stderr
        assert "nodes have at most 8 GPUs each" in too_many.stdout + too_many.stderr
        res = run_cli(script, "launch", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        wait_until_idle(env["PROJECT"])
        assert len(done_markers(out)) == 1
    finally:
        cancel_all(env["PROJECT"])
