"""A launch larger than the user's submit allowance packs itself to fit (issue 16, item 3).

On the policed cluster (QOS normal: MaxSubmitJobsPerUser=100, MaxJobsPerUser=20; partition
``short``: MaxTime 1 hour), as the unprivileged ``expuser1`` (``runuser``, a clean environment,
the system Python with copies of the CLI's third-party packages): a 500-artifact grid is
packed 5 per task into 100 array tasks, says so in ``drylaunch``, and builds; a grid that
cannot fit even packed as far as MaxTime allows is refused before anything is submitted.

Reading the limits asks the accounting database (``sacctmgr``), so only a launch with more
array tasks than ``submit_limit_check_above`` does (issue 26): these projects set it to 100,
as a site with this limit would; a small launch asks nothing, and a launch the default lets
through is refused at the limit, after which the next launch packs itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.policed_project import REPO, Project
from tests.support.slurm_cluster import PolicedCluster

pytestmark = pytest.mark.slurm


EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Point(Artifact):
    i: int
    def get_requirements(self):
        return {"account": "physics", "partition": "short", "time": os.environ["TIME"]}
    def construct(self, builder: Task):
        builder.run_command("true")

ex = SlurmExecutor(project=PROJECT, artifact_path=ROOT + "/out", code_path=ROOT + "/code")
N = int(os.environ.get("N", "500"))
ex.stage("grid", ArtifactSet.from_product(cls=Point, params={"i": list(range(N))}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _setup(folder: Path, config: dict[str, int] | None) -> None:
    """The user's config (None: none, the defaults) and a wrapped sacctmgr that logs calls."""
    (folder / "home").mkdir()
    if config is not None:
        (folder / "home" / "config.json").write_text(json.dumps(config))
        (folder / "home" / "config.json").chmod(0o600)
    (folder / "bin").mkdir()
    real = shutil.which("sacctmgr")
    assert real, "sacctmgr is not installed"
    wrapper = folder / "bin" / "sacctmgr"
    wrapper.write_text(f'#!/bin/bash\necho "$*" >> {folder}/sacctmgr.log\nexec {real} "$@"\n')
    wrapper.chmod(0o755)


@pytest.fixture(params=[{"submit_limit_check_above": 100}])
def project(request: pytest.FixtureRequest, policed_cluster: PolicedCluster,
            user_python: tuple[str, str]) -> Iterator[Project]:
    """The experiment in a folder of expuser1's own (its config: the fixture's parameter);
    its jobs are cancelled afterwards."""
    user = policed_cluster.users[0]
    folder = Path(tempfile.mkdtemp(prefix="experiments-submit-limit-"))
    name = f"fit{uuid.uuid4().hex[:8]}"
    (folder / "exp.py").write_text(f"PROJECT = {name!r}\nROOT = {str(folder)!r}\n" + EXPERIMENT)
    (folder / "code").mkdir()
    _setup(folder, request.param)
    subprocess.run(["chown", "-R", user, str(folder)], check=True)
    os.chmod(folder, 0o755)
    python, packages = user_python
    yield Project(policed_cluster, user, folder, name, python, f"{packages}:{REPO}")
    ids = sorted({line.split("|")[0].split("_")[0] for line in
                  Project(policed_cluster, user, folder, name, python, "").live()})
    if ids:
        policed_cluster.run("scancel", *ids, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_500_artifact_grid_packs_itself_under_a_limit_of_100_and_builds(
        project: Project) -> None:
    queued = len(project.cluster.run_as(project.user, "squeue", "--me", "-h", "-r",
                                        "-o", "%i").stdout.split())
    dry = project.cli("drylaunch", time_limit="2")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    remaining = 100 - queued
    pack = -(-500 // remaining)
    tasks = -(-500 // pack)
    assert (f"500 array task(s) would exceed your remaining submit allowance of {remaining} "
            f"(MaxSubmitJobsPerUser=100 of QOS normal; {queued} of your jobs queued or "
            f"running): packed up to {pack} artifact(s) per task, {tasks} task(s)") in dry.stdout
    assert f"Arrays: 1 sbatch call(s), {tasks} array task(s)" in dry.stdout
    launched = project.cli("launch", time_limit="2")
    assert launched.returncode == 0, launched.stdout + launched.stderr
    job = project.live()[0].split("|")[0].split("_")[0]
    limit = project.cluster.run("squeue", "-h", "-j", job, "-o", "%l").stdout.split()[0]
    assert limit == f"{2 * pack}:00", limit  # the pack's time: pack × 2 minutes
    deadline = time.monotonic() + 600
    while len(list((project.dir / "out").rglob(".done"))) < 500:
        assert time.monotonic() < deadline, f"not built in time; queue: {project.live()[:5]}"
        time.sleep(2)
    status = project.cli("status", time_limit="2")
    assert status.returncode == 0, status.stdout + status.stderr


def test_a_grid_that_cannot_fit_is_refused_before_anything_is_submitted(
        project: Project) -> None:
    # 30 minutes each under short's MaxTime of 1 hour: at most 2 per task, 250 tasks > 100
    dry = project.cli("drylaunch", time_limit="30")
    assert "even packed as far as the partitions' MaxTime allows (250 task(s))" in (
        dry.stdout + dry.stderr)
    launched = project.cli("launch", time_limit="30")
    assert launched.returncode != 0
    assert re.search(r"cannot launch: 500 array task\(s\) would exceed your remaining submit "
                     r"allowance of \d+ .*nothing was submitted", launched.stdout
                     + launched.stderr), launched.stdout + launched.stderr
    assert project.live() == []


def test_validate_checks_the_packed_arrays_launch_submits(project: Project) -> None:
    """``drylaunch --validate`` asks Slurm about the arrays ``launch`` submits (packed to fit
    the allowance), not the unpacked 500-task array Slurm would refuse (issue 24 item 12)."""
    dry = project.cli("drylaunch", "--validate", time_limit="2")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "packed up to" in dry.stdout and "slurm --test-only: accepted" in dry.stdout
    assert "problem:" not in dry.stderr, dry.stderr
def test_a_small_launch_asks_the_accounting_database_nothing(project: Project) -> None:
    dry = project.cli("drylaunch", time_limit="2", n=20)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    launched = project.cli("launch", time_limit="2", n=20)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert project.sacctmgr_calls() == 0
    assert "Submitted 1 job(s) for 20 artifact(s)" in launched.stdout, launched.stdout


@pytest.mark.parametrize("project", [None], indirect=True)
def test_a_launch_refused_at_the_limit_teaches_the_next_one_to_fit(project: Project) -> None:
    # the default threshold (1000) lets 500 tasks through unchecked; Slurm refuses the array
    refused = project.cli("launch", time_limit="2")
    assert refused.returncode != 0
    assert "MaxSubmitJob" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert project.live() == []
    asked = project.sacctmgr_calls()
    assert asked == 2  # the limits, read once the refusal showed they matter
    again = project.cli("launch", time_limit="2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert project.sacctmgr_calls() == asked  # from the cache
    assert 0 < len(project.live()) <= 100
