"""Past the submit limit, relays carry a launch in waves (issue 27, item 1).

On the policed cluster (QOS normal: MaxSubmitJobsPerUser=100; partition ``short``: MaxTime 1
hour), as ``expuser1``: a two-tier grid of 250 points (30 minutes asked each, so at most 2 per
pack: 125 tasks do not fit) and 50 sums over them cannot be queued at once even packed. One
``launch`` submits the first wave and a relay and exits 0; relays submit the rest; every
artifact is built exactly once and the user never has more than 100 jobs queued.
"""

from __future__ import annotations

import json
import os
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

pytestmark = [pytest.mark.slurm, pytest.mark.long_wait]

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Point(Artifact):
    i: int
    def get_requirements(self):
        return {"account": "physics", "partition": "short", "time": "30"}
    def construct(self, builder: Task):
        builder.run_command("true")

@dataclass(frozen=True)
class Sum(Artifact):
    base: Point
    def get_requirements(self):
        return {"account": "physics", "partition": "short", "time": "30"}
    def construct(self, builder: Task):
        builder.run_command("test -f " + builder.artifact_path + "/" + self.base.relpath
                            + "/.done")

points = ArtifactSet.from_product(cls=Point, params={"i": list(range(250))})
ex = SlurmExecutor(project=PROJECT, artifact_path=ROOT + "/out", code_path=ROOT + "/code")
ex.stage("points", points)
ex.stage("sums", points[:50].map(lambda p: Sum(base=p)))
if __name__ == "__main__":
    ex.auto_cli()
'''


@pytest.fixture
def waves(policed_cluster: PolicedCluster, user_python: tuple[str, str]) -> Iterator[Project]:
    """The experiment inside its code folder (so relays can run it from the snapshot)."""
    user = policed_cluster.users[0]
    folder = Path(tempfile.mkdtemp(prefix="experiments-waves-"))
    name = f"wav{uuid.uuid4().hex[:8]}"
    code = folder / "code"
    code.mkdir()
    (code / "exp.py").write_text(f"PROJECT = {name!r}\nROOT = {str(folder)!r}\n" + EXPERIMENT)
    (code / "home").mkdir()  # the limits are read for launches above 100 array tasks (#26)
    (code / "home" / "config.json").write_text(json.dumps({"submit_limit_check_above": 100}))
    (code / "home" / "config.json").chmod(0o600)
    subprocess.run(["chown", "-R", user, str(folder)], check=True)
    os.chmod(folder, 0o755)
    python, packages = user_python
    project = Project(policed_cluster, user, code, name, python, f"{packages}:{REPO}")
    yield project
    ids = sorted({line.split("|")[0].split("_")[0] for line in project.live()})
    if ids:
        policed_cluster.run("scancel", *ids, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def _queued(project: Project) -> int:
    """Every job (array task) of the user, queued or running."""
    return len(project.cluster.run("squeue", "-h", "-r", "-u", project.user, "-o", "%i",
                                   check=False).stdout.split())


def test_a_grid_past_the_submit_limit_completes_from_one_launch_in_waves(waves: Project
                                                                         ) -> None:
    dry = waves.cli("drylaunch", time_limit="30")
    assert "Waves: " in dry.stdout and "a relay" in dry.stdout, dry.stdout + dry.stderr
    launched = waves.cli("launch", time_limit="30")
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert "past your submit allowance, wave 1 of" in launched.stdout, launched.stdout
    out, most = waves.dir.parent / "out", 0
    deadline = time.monotonic() + 900
    while len([p for p in out.rglob(".done") if ".relays" not in p.parts]) < 300:
        most = max(most, _queued(waves))
        assert time.monotonic() < deadline, f"not built in time; queue: {waves.live()[:5]}"
        time.sleep(1)
    assert most <= 100  # never more than the QOS lets the user queue
    runs: dict[str, int] = {}
    for line in subprocess.run(["find", str(out), "-name", ".artifact.json"],
                               capture_output=True, text=True, check=True).stdout.split():
        runs[line] = runs.get(line, 0) + 1
    assert len(runs) == 300
    status = waves.cli("status", time_limit="30")
    assert status.returncode == 0, status.stdout + status.stderr
