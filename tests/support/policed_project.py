"""A project run as an unprivileged test user on the policed cluster, with ``sacctmgr``
wrapped to count its calls (the submit-limit and waves scenarios share it), and what the
waves and relay-fault scenarios share: a two-tier experiment, a factory of projects, and the
check that every artifact was built from exactly one job."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.slurm_cluster import PolicedCluster

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Project:
    cluster: PolicedCluster
    user: str
    dir: Path
    name: str
    python: str
    pythonpath: str

    def cli(self, *args: str, time_limit: str, n: int = 500, env: Sequence[str] = ()
            ) -> subprocess.CompletedProcess[str]:
        """``python exp.py ARGS`` as the user (TIME: each artifact's ``time``; N artifacts;
        ``env``: more ``NAME=value``), with ``sacctmgr`` wrapped to log its calls
        (:meth:`sacctmgr_calls`)."""
        env = [f"EXPERIMENTS_HOME={self.dir}/home", f"PYTHONPATH={self.pythonpath}",
               "COLUMNS=200", f"TIME={time_limit}", f"N={n}",
               f"PATH={self.dir}/bin:{os.environ.get('PATH', '/usr/bin:/bin')}", *env]
        return self.cluster.run_as(self.user, "env", *env, self.python, "exp.py", *args,
                                   check=False, timeout=300, cwd=str(self.dir))

    def sacctmgr_calls(self) -> int:
        """How many times the CLI ran ``sacctmgr`` so far."""
        log = self.dir / "sacctmgr.log"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def live(self) -> list[str]:
        out = self.cluster.run("squeue", "-h", "-r", "-u", self.user, "-o", "%i|%j",
                               check=False).stdout
        return [line for line in out.splitlines() if self.name in line]


TWO_TIERS = '''
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Point(Artifact):
    i: int
    def get_requirements(self):  # 45 minutes: two would exceed the hour, no packing
        return {"account": "physics", "partition": "short", "time": "45"}
    def construct(self, builder: Task):
        builder.run_command(POINT_COMMAND)

@dataclass(frozen=True)
class Sum(Artifact):
    base: Point
    def get_requirements(self):
        return {"account": "physics", "partition": "short", "time": "45"}
    def construct(self, builder: Task):
        builder.run_command("test -f " + builder.artifact_path + "/" + self.base.relpath
                            + "/.done")

points = ArtifactSet.from_product(cls=Point, params={"i": list(range(N_POINTS))})
ex = SlurmExecutor(project=PROJECT, artifact_path=ROOT + "/out", code_path=ROOT + "/code")
ex.stage("points", points)
ex.stage("sums", points.map(lambda p: Sum(base=p)))
if __name__ == "__main__":
    ex.auto_cli()
'''


def two_tiers(points: int, point_command: str) -> str:
    """The two-tier experiment: ``points`` points running ``point_command``, a sum over each
    (45 minutes asked each: no two fit the partition's hour in one pack)."""
    return TWO_TIERS.replace("N_POINTS", str(points)).replace("POINT_COMMAND",
                                                               repr(point_command))


Factory = Callable[[str, dict[str, object]], Project]


@contextlib.contextmanager
def project_factory(policed_cluster: PolicedCluster, user_python: tuple[str, str]
                    ) -> Iterator[Factory]:
    """``make(experiment, config)``: the experiment inside its code folder (so relays
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


def built_once(project: Project, artifacts: int, deadline_s: float = 900,
               sample: Callable[[], int] | None = None) -> int:
    """Wait until ``artifacts`` are built; check each was submitted in exactly one job
    (``history --json``); return the most jobs of the user queued at once meanwhile
    (``sample``: how many now, default :func:`queued`)."""
    out, most = project.dir.parent / "out", 0
    deadline = time.monotonic() + deadline_s
    while len([p for p in out.rglob(".done") if ".relays" not in p.parts]) < artifacts:
        most = max(most, sample() if sample else queued(project))
        assert time.monotonic() < deadline, f"not built in time; queue: {project.live()[:5]}"
        time.sleep(1)
    history = project.cli("history", "--json", time_limit="30")
    assert history.returncode == 0, history.stdout + history.stderr
    jobs = json.loads(history.stdout)["jobs"]
    relpaths = [t["relpath"] for j in jobs if not j["name"].endswith(".relay")
                for t in j["task_states"]]
    assert len(relpaths) == len(set(relpaths)) == artifacts, sorted(relpaths)
    return most


def queued(project: Project) -> int:
    """Every job (array task) of the user, queued or running."""
    return len(project.cluster.run("squeue", "-h", "-r", "-u", project.user, "-o", "%i",
                                   check=False).stdout.split())
