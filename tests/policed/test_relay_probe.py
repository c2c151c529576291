"""Where compute nodes cannot submit, the probe says so and launch falls back (issue 27).

A site that strips the job's environment: on the policed cluster (``SLURM_CONF`` is not the
default path) as ``expuser1``, with an ``sbatch`` first on the user's PATH that runs the real
one without ``SLURM_CONF`` inside a job, as a TaskProlog's ``unset SLURM_CONF`` would (Slurm
22.05 keeps ``SLURM_CONF`` in the job under ``--export=NONE``: checked). ``drylaunch
--validate`` queues the probe, which gets sbatch's real error on the node; the verdict is
kept, and a launch past the submit limit (QOS ``high``: MaxSubmitJobsPerUser=20; 12 + 12
tasks) stops half-way as before relays, saying relays are unavailable here and how to check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.launching import relay_probe
from tests.support.policed_project import REPO, Project
from tests.support.slurm_cluster import PolicedCluster

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

ASK = {"account": "physics", "qos": "high", "partition": "short", "time": "40"}

@dataclass(frozen=True)
class Point(Artifact):
    i: int
    def get_requirements(self):
        return ASK
    def construct(self, builder: Task):
        builder.run_command("sleep 30")

@dataclass(frozen=True)
class Sum(Artifact):
    base: Point
    def get_requirements(self):
        return ASK
    def construct(self, builder: Task):
        builder.run_command("true")

points = ArtifactSet.from_product(cls=Point, params={"i": list(range(12))})
ex = SlurmExecutor(project=PROJECT, artifact_path=ROOT + "/out", code_path=ROOT + "/code")
ex.stage("points", points)
ex.stage("sums", points.map(lambda p: Sum(base=p)))
if __name__ == "__main__":
    ex.auto_cli()
'''
# On a compute node (inside a job) the site's environment lacks SLURM_CONF.
STRIPPING_SBATCH = '''#!/bin/bash
if [ -n "${SLURM_JOB_ID:-}" ]; then exec env -u SLURM_CONF REAL "$@"; fi
exec REAL "$@"
'''


@pytest.fixture
def stripped(policed_cluster: PolicedCluster, user_python: tuple[str, str]
             ) -> Iterator[Project]:
    user = policed_cluster.users[0]
    folder = Path(tempfile.mkdtemp(prefix="experiments-probe-"))
    name = f"prb{uuid.uuid4().hex[:8]}"
    (folder / "code").mkdir()
    (folder / "code" / "exp.py").write_text(
        f"PROJECT = {name!r}\nROOT = {str(folder)!r}\n" + EXPERIMENT)
    (folder / "code" / "home").mkdir()
    (folder / "code" / "bin").mkdir()
    real = shutil.which("sbatch")
    assert real, "sbatch is not installed"
    wrapper = folder / "code" / "bin" / "sbatch"
    wrapper.write_text(STRIPPING_SBATCH.replace("REAL", real))
    wrapper.chmod(0o755)
    subprocess.run(["chown", "-R", user, str(folder)], check=True)
    os.chmod(folder, 0o755)
    python, packages = user_python
    project = Project(policed_cluster, user, folder / "code", name, python,
                      f"{packages}:{REPO}")
    yield project
    ids = sorted({line.split("|")[0].split("_")[0] for line in project.live()})
    if ids:
        policed_cluster.run("scancel", *ids, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_site_that_strips_the_job_environment_gets_the_fallback_and_says_why(
        stripped: Project) -> None:
    dry = stripped.cli("drylaunch", "--validate", time_limit="40")
    said = dry.stdout + dry.stderr
    assert "Compute nodes of cluster " in said and " cannot submit: sbatch: " in said, said
    assert ("a launch past the submit limit will stop half-way, and sweeps need `--local` "
            "or a launch per rung") in said
    home = stripped.dir / "home"
    cached = json.loads(relay_probe.cache_path(home).read_text())
    assert [v["ok"] for v in cached.values()] == [False]  # kept for this cluster
    for limits in (home / "cache").glob("slurm-limits-*"):
        limits.unlink()  # unknown limits: Slurm refuses part-way, as a first launch sees it
    launched = stripped.cli("launch", time_limit="40")
    said = launched.stdout + launched.stderr
    assert launched.returncode == 4, said
    assert "launch stopped part-way" in said and "QOSMaxSubmitJobPerUserLimit" in said, said
    assert "Waves would carry the rest, but relays are unavailable here (compute nodes of " \
           "cluster " in said
    assert "`drylaunch --validate` checks whether compute nodes may submit" in said
    assert not any(".relay" in line for line in stripped.live())
