"""``drylaunch --validate`` asks the real test cluster whether a job may submit (issue 27).

The probe is a job of ours that runs ``sbatch --test-only`` on the node; on the default test
cluster jobs inherit ``SLURM_CONF`` and may submit, so the verdict is "relays work here",
kept for the cluster's name, and the probe's folder is removed. The negative
case (a site that strips the job's environment) is tests/policed/test_relay_probe.py.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from experiments.launching import relay_probe
from tests.support.cli import run_cli

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Point(Artifact):
    i: int
    def construct(self, builder: Task):
        builder.run_command("true")

ex = SlurmExecutor(project=PROJECT, artifact_path=ROOT + "/a", code_path=ROOT)
ex.stage("grid", ArtifactSet.from_product(cls=Point, params={"i": [1, 2]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def test_validate_finds_that_relays_work_on_the_default_cluster(
        tmp_path: Path, slurm_cluster: object) -> None:
    project = f"prb{uuid.uuid4().hex[:8]}"
    script = tmp_path / "exp.py"
    script.write_text(f"PROJECT = {project!r}\nROOT = {str(tmp_path)!r}\n" + EXPERIMENT)
    dry = run_cli(script, "drylaunch", "--validate")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    cluster = next(line.split("=", 1)[1].strip() for line in Path(
        os.environ["SLURM_CONF"]).read_text().splitlines() if line.startswith("ClusterName="))
    assert (f"Relays work here: a job on a compute node of cluster {cluster} may submit "
            "(sbatch --test-only accepted it)") in dry.stdout, dry.stdout + dry.stderr
    home = Path(os.environ["EXPERIMENTS_HOME"])
    verdict = relay_probe.read_verdict(home, cluster)
    assert verdict is not None and verdict.ok is True
    assert list((home / "probes").iterdir()) == []  # the probe's folder is removed
