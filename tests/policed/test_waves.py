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
from collections.abc import Callable, Iterator
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


PART_WAY = '''
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Point(Artifact):
    i: int
    def get_requirements(self):  # 45 minutes: two would exceed the hour, no packing
        return {"account": "physics", "partition": "short", "time": "45"}
    def construct(self, builder: Task):  # still queued or running when the sums are sent
        builder.run_command("sleep 10")

@dataclass(frozen=True)
class Sum(Artifact):
    base: Point
    def get_requirements(self):
        return {"account": "physics", "partition": "short", "time": "45"}
    def construct(self, builder: Task):
        builder.run_command("test -f " + builder.artifact_path + "/" + self.base.relpath
                            + "/.done")

points = ArtifactSet.from_product(cls=Point, params={"i": list(range(6))})
ex = SlurmExecutor(project=PROJECT, artifact_path=ROOT + "/out", code_path=ROOT + "/code")
ex.stage("points", points)
ex.stage("sums", points.map(lambda p: Sum(base=p)))
if __name__ == "__main__":
    ex.auto_cli()
'''


Factory = Callable[[str, dict[str, object]], Project]


@pytest.fixture
def make_project(policed_cluster: PolicedCluster, user_python: tuple[str, str]
                 ) -> Iterator[Factory]:
    """``make_project(experiment, config)``: the experiment inside its code folder (so relays
    can run it from the snapshot), run as the first test user with that config.json."""
    made: list[tuple[Project, Path]] = []

    def make(text: str, config: dict[str, object]) -> Project:
        user = policed_cluster.users[0]
        folder = Path(tempfile.mkdtemp(prefix="experiments-waves-"))
        name = f"wav{uuid.uuid4().hex[:8]}"
        code = folder / "code"
        code.mkdir()
        (code / "exp.py").write_text(f"PROJECT = {name!r}\nROOT = {str(folder)!r}\n" + text)
        (code / "home").mkdir()
        (code / "home" / "config.json").write_text(json.dumps(config))
        (code / "home" / "config.json").chmod(0o600)
        subprocess.run(["chown", "-R", user, str(folder)], check=True)
        os.chmod(folder, 0o755)
        python, packages = user_python
        project = Project(policed_cluster, user, code, name, python, f"{packages}:{REPO}")
        made.append((project, folder))
        return project

    yield make
    for project, folder in made:
        ids = sorted({line.split("|")[0].split("_")[0] for line in project.live()})
        if ids:
            policed_cluster.run("scancel", *ids, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def waves(make_project: Factory) -> Project:
    # the limits are read for launches above 100 array tasks (#26)
    return make_project(EXPERIMENT, {"submit_limit_check_above": 100})


def _built_once(project: Project, artifacts: int, deadline_s: float = 900) -> int:
    """Wait until ``artifacts`` are built; check each was submitted in exactly one job
    (``history --json``); return the most jobs of the user queued at once meanwhile."""
    out, most = project.dir.parent / "out", 0
    deadline = time.monotonic() + deadline_s
    while len([p for p in out.rglob(".done") if ".relays" not in p.parts]) < artifacts:
        most = max(most, _queued(project))
        assert time.monotonic() < deadline, f"not built in time; queue: {project.live()[:5]}"
        time.sleep(1)
    history = project.cli("history", "--json", time_limit="30")
    assert history.returncode == 0, history.stdout + history.stderr
    jobs = json.loads(history.stdout)["jobs"]
    relpaths = [t["relpath"] for j in jobs if not j["name"].endswith(".relay")
                for t in j["task_states"]]
    assert len(relpaths) == len(set(relpaths)) == artifacts, sorted(relpaths)
    return most


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
    most = _built_once(waves, 300)
    assert most <= 100  # never more than the QOS lets the user queue
    status = waves.cli("status", time_limit="30")
    assert status.returncode == 0, status.stdout + status.stderr


def test_slurm_refusing_part_way_at_the_limit_leaves_the_rest_to_relays(
        make_project: Factory) -> None:
    """The user's own unrelated held jobs fill 90 of the 100 the QOS allows, and no limits
    are known (a launch this small reads none, #26): Slurm accepts the 6 points and refuses
    the 6 sums (QOSMaxSubmitJobPerUserLimit). The launch reads the limits, submits the 3 sums
    that fit beside a relay and exits 0; the relay submits the rest; each built once."""
    project = make_project(PART_WAY, {})
    held = project.cluster.run_as(
        project.user, "sbatch", "--parsable", "--hold", "--array=0-89", "-A", "physics",
        "-p", "short", "-t", "5", "-J", f"{project.name}-unrelated", "-o", "/dev/null",
        "--wrap", "true", cwd=str(project.dir), check=False)
    assert held.returncode == 0, held.stderr
    try:
        launched = project.cli("launch", time_limit="45")
        assert launched.returncode == 0, launched.stdout + launched.stderr
        said = " ".join(launched.stdout.split())
        assert "Slurm refused more: QOSMaxSubmitJobPerUserLimit" in said, said
        assert "Relay job" in said, said
        assert _built_once(project, 12, deadline_s=300) <= 100
    finally:
        project.cluster.run("scancel", held.stdout.strip().split(";")[0], check=False)
