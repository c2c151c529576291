"""Past the submit limit, relays carry a launch in waves (issue 27, item 1).

On the policed cluster (QOS normal: MaxSubmitJobsPerUser=100; partition ``short``: MaxTime 1
hour), as ``expuser1``. The Done-when grid: with the QOS limit set to 10 and packing off (45
minutes asked per artifact), 100 points and 100 sums over them come from one ``launch`` in
waves of at most 9 tasks and a relay; every artifact is built exactly once, the user never has
more than 10 jobs queued, and no process of ours runs outside Slurm between waves. And a
refusal learned from Slurm part-way (no limits known, the user's own held jobs filling the
allowance) still ends with every artifact built once from one launch.
"""

from __future__ import annotations

import json
import os
import pwd
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


# The Done-when grid: 100 points and a sum over each (two tiers, 200 artifacts), 45
# minutes asked each so no two fit the partition's hour in one pack (packing off).
DONE_WHEN = PART_WAY.replace("sleep 10", "true").replace("range(6)", "range(100)")

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


def _built_once(project: Project, artifacts: int, deadline_s: float = 900,
                sample: Callable[[], int] | None = None) -> int:
    """Wait until ``artifacts`` are built; check each was submitted in exactly one job
    (``history --json``); return the most jobs of the user queued at once meanwhile
    (``sample``: how many now, default :func:`_queued`)."""
    out, most = project.dir.parent / "out", 0
    deadline = time.monotonic() + deadline_s
    while len([p for p in out.rglob(".done") if ".relays" not in p.parts]) < artifacts:
        most = max(most, sample() if sample else _queued(project))
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


@pytest.fixture
def qos_limit_10(policed_cluster: PolicedCluster) -> Iterator[None]:
    """QOS normal's MaxSubmitJobsPerUser set to 10 for the test (100 again afterwards)."""
    def limit(n: int) -> None:
        policed_cluster.run("sacctmgr", "-i", "modify", "qos", "where", "name=normal", "set",
                            f"MaxSubmitJobsPerUser={n}")
    limit(10)
    try:
        yield
    finally:
        limit(100)


def _outside_slurm(project: Project) -> list[str]:
    """Processes of the project's user running its experiment file (from its folder or a
    snapshot of it) with no slurmstepd above them."""
    found, folder = [], str(project.dir.parent)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != pwd.getpwnam(project.user).pw_uid:
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "exp.py" not in cmd or (folder not in cmd
                                       and not os.readlink(proc / "cwd").startswith(folder)):
                continue
            pid, stepd = proc.name, False
            while pid not in ("0", "1") and not stepd:
                stat = Path(f"/proc/{pid}/stat").read_text()
                stepd = stat.split("(")[1].split(")")[0].startswith("slurmstepd")
                pid = stat.rsplit(")", 1)[1].split()[1]
            if not stepd:
                found.append(cmd)
        except (OSError, IndexError):
            continue
    return found


def test_done_when_200_artifacts_at_a_submit_limit_of_10_complete_from_one_launch(
        make_project: Factory, qos_limit_10: None) -> None:
    """Issue 27's Done-when: MaxSubmitJobsPerUser=10, packing off, a 200-artifact two-tier
    grid: one launch, every artifact built exactly once, never more than 10 of the user's
    jobs queued, nothing of ours running outside Slurm between waves; drylaunch and status
    say the waves."""
    # the limits are read for launches above 100 array tasks (#26), as such a site would
    project = make_project(DONE_WHEN, {"submit_limit_check_above": 100})
    dry = project.cli("drylaunch", time_limit="45")
    assert "Waves: " in dry.stdout and "a relay" in dry.stdout, dry.stdout + dry.stderr
    launched = project.cli("launch", time_limit="45")
    assert launched.returncode == 0, launched.stdout + launched.stderr
    said = " ".join(launched.stdout.split())
    assert "past your submit allowance, wave 1 of" in said and "Relay job" in said, said
    status = project.cli("status", time_limit="45")
    said = " ".join(status.stdout.split())
    assert status.returncode == 3 and "artifact(s) not yet submitted; relay job" in said, said
    outside: list[str] = []

    def watch() -> int:
        outside.extend(_outside_slurm(project))
        return _queued(project)

    assert _built_once(project, 200, deadline_s=600, sample=watch) <= 10
    assert outside == []
    status = project.cli("status", time_limit="45")
    assert status.returncode == 0, status.stdout + status.stderr
