"""``--local`` where Slurm is available (issue 16, item 8): the real test cluster's SLURM_CONF
makes this machine a Slurm client; outside an allocation the CLI warns and caps the workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.experiments import done_markers
from tests.support.slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Step(Artifact):
    i: int
    def construct(self, builder: Task):
        builder.run_command(f"echo {self.i}")

ex = SlurmExecutor(project="login", artifact_path=os.environ["OUT"], code_path=os.environ["OUT"])
ex.stage("steps", ArtifactSet.from_product(cls=Step, params={"i": [0, 1, 2]}))
if __name__ == "__main__":
    ex.auto_cli()
'''
WARNING = "outside an allocation (no SLURM_JOB_ID)"
CAP = "at most 2 tasks run at once"


def _setup(tmp_path: Path, cluster: SlurmCluster) -> tuple[Path, dict[str, str], Path]:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    return script, {"OUT": str(out), "SLURM_CONF": cluster.conf}, out


def test_local_on_a_slurm_client_warns_and_caps_the_workers(
        tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    script, env, out = _setup(tmp_path, slurm_cluster)
    dry = run_cli(script, "drylaunch", "--local", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"SLURM_CONF={slurm_cluster.conf}" in dry.stderr and WARNING in dry.stderr
    assert CAP in dry.stderr and "at most 2 at once" in dry.stdout

    res = run_cli(script, "launch", "--local", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert WARNING in res.stderr and CAP in res.stderr
    assert len(done_markers(out)) == 3  # it still runs, here

    # --workers says how many: the warning stays, without the cap
    dry = run_cli(script, "drylaunch", "--local", "--workers", "3", env=env)
    assert WARNING in dry.stderr and CAP not in dry.stderr


def test_inside_an_allocation_local_runs_without_a_word(
        tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    script, env, out = _setup(tmp_path, slurm_cluster)
    res = run_cli(script, "launch", "--local", env={**env, "SLURM_JOB_ID": "4242"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert WARNING not in res.stderr and len(done_markers(out)) == 3


def test_the_configs_local_cpus_lifts_the_cap(tmp_path: Path, slurm_cluster: SlurmCluster,
                                              experiments_home: Path) -> None:
    experiments_home.mkdir(parents=True, exist_ok=True)  # the home is made on first use
    (experiments_home / "config.json").write_text(json.dumps({"local": {"cpus": 2}}))
    script, env, _ = _setup(tmp_path, slurm_cluster)
    dry = run_cli(script, "drylaunch", "--local", env=env)
    assert WARNING in dry.stderr and CAP not in dry.stderr
