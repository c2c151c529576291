"""Why queued tasks wait, end to end on the policed cluster, as an unprivileged user.

The experiment's CLI runs as ``expuser1`` (``runuser``, a clean environment, the system Python
with copies of the CLI's third-party packages) against the policed cluster, so every reason is
the one Slurm 22.05 gives that user, and every limit is read with that user's rights:

* ``long``: a GPU artifact with no ``time`` gets config.json's 24:00:00, over the gpu
  partition's 12 h MaxTime; with EnforcePartLimits=NO Slurm accepts it (``--test-only`` too)
  and it pends PartitionTimeLimit forever;
* ``maint``: 11 hours reach into the maintenance reservation 5-6 h ahead (ReqNodeNotAvail,
  Reserved for maintenance);
* ``greedy``: 5 GPUs under QOS normal's GrpTRES=gres/gpu=4 (QOSGrpGRES, never on its own);
* ``later``: ``begin=now+1hour`` through the requirement passthrough (BeginTime);
* ``wide``: 20 CPUs where the gpu partition allows 16 per node (PartitionConfig).
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
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.slurm_cluster import PolicedCluster

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]

EXPERIMENT = '''
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

REQS = {
    "long": {"partition": "gpu", "gpus": 1},
    "maint": {"partition": "gpu", "time": "11:00:00"},
    "greedy": {"partition": "gpu", "gpus": "A100:5", "time": "10"},
    "later": {"partition": "short", "time": "10", "begin": "now+1hour"},
    "wide": {"partition": "gpu", "cpus": 20, "time": "10"},
}

@dataclass(frozen=True)
class Job(Artifact):
    kind: str
    i: int
    def get_requirements(self):
        return {"account": "physics", **REQS[self.kind]}
    def construct(self, builder: Task):
        builder.run_command("true")

ex = SlurmExecutor(project=PROJECT, artifact_path=ROOT + "/out", code_path=ROOT + "/code")
for kind in REQS:
    ex.stage(kind, ArtifactSet.from_product(cls=Job, params={"kind": [kind], "i": [0, 1]}))
if __name__ == "__main__":
    ex.auto_cli()
'''

LONG = ("2 queued: PartitionTimeLimit — the gpu partition allows 12:00:00, the artifact asks "
        "24:00:00; lower `time` (never clears on its own) [long]")
GREEDY = ("2 queued: QOSGrpGRES — QOS normal allows 4 GPUs, the artifact asks 5; lower `gpus` "
          "(never clears on its own) [greedy]")
MAINT = ("2 queued: ReqNodeNotAvail, Reserved for maintenance — a maintenance reservation "
         "starts before the job would end; lower `time` so it ends before the window, or wait "
         "until the maintenance is over [maint]")
LATER = "2 queued: BeginTime — waiting for its start time"
REASONS = {"long": "PartitionTimeLimit", "maint": "ReqNodeNotAvail, Reserved for maintenance",
           "greedy": "QOSGrpGRES", "later": "BeginTime", "wide": "PartitionConfig"}
WIDE = ("2 queued: PartitionConfig — the gpu partition allows 16 CPUs per node, the artifact "
        "asks 20; lower `cpus` (never clears on its own) [wide]")


@dataclass
class Project:
    cluster: PolicedCluster
    user: str
    dir: Path
    name: str
    python: str
    pythonpath: str

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python exp.py ARGS`` as the user, piped (plain lines, no terminal)."""
        env = [f"EXPERIMENTS_HOME={self.dir}/home", f"PYTHONPATH={self.pythonpath}",
               "COLUMNS=200"]
        return self.cluster.run_as(self.user, "env", *env, self.python, "exp.py", *args,
                                   check=False, timeout=120, cwd=str(self.dir))


@pytest.fixture
def project(policed_cluster: PolicedCluster, user_python: tuple[str, str]
            ) -> Iterator[Project]:
    """The experiment in a folder of expuser1's own; its jobs are cancelled afterwards."""
    user = policed_cluster.users[0]
    folder = Path(tempfile.mkdtemp(prefix="experiments-reasons-"))
    name = f"reasons{uuid.uuid4().hex[:8]}"
    (folder / "exp.py").write_text(f"PROJECT = {name!r}\nROOT = {str(folder)!r}\n" + EXPERIMENT)
    (folder / "code").mkdir()
    subprocess.run(["chown", "-R", user, str(folder)], check=True)
    os.chmod(folder, 0o755)
    python, packages = user_python
    yield Project(policed_cluster, user, folder, name, python, f"{packages}:{REPO}")
    jobs = policed_cluster.run("squeue", "-h", "-u", user, "-o", "%F|%j", check=False).stdout
    ids = sorted({j for j, _, n in (ln.partition("|") for ln in jobs.splitlines())
                  if n.startswith(name)})
    if ids:
        policed_cluster.run("scancel", *ids, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def _explained(project: Project, timeout_s: float = 90) -> dict[str, object]:
    """``status --json`` once every stage's queued tasks carry Slurm's reason (a job's reason
    is ``None`` until the scheduler's first pass over it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = project.cli("status", "--json")
        assert r.returncode == 3, r.stdout + r.stderr  # something is queued
        data = json.loads(r.stdout)
        got = {s["stage"]: {t["reason"] for t in s["queued"]} for s in data["stages"]}
        if all(got.get(stage) == {reason} for stage, reason in REASONS.items()):
            return data
        assert time.monotonic() < deadline, f"reasons after {timeout_s:.0f} s: {got}"
        time.sleep(1)


def test_drylaunch_validate_names_each_artifact_over_a_limit_and_the_fix(project):
    r = project.cli("drylaunch", "--validate")
    assert r.returncode == 1, r.stdout + r.stderr
    problems = [ln for ln in r.stderr.splitlines() if ln.startswith("problem:")]
    # maint and later are within every limit; --test-only accepts long and greedy (limits not
    # enforced) but refuses wide, though sbatch accepts it and it pends PartitionConfig
    assert len(problems) == 4, r.stderr
    never = "Slurm would accept it and leave it queued, which never clears on its own"
    assert re.fullmatch(r"problem: stage 'long', artifact Job/kind=long,i=0-\w+ and 1 more like "
                        r"it: the gpu partition allows 12:00:00, it asks 24:00:00; lower `time` "
                        r"\(Slurm: PartitionTimeLimit\); " + never, problems[0]), problems[0]
    assert re.fullmatch(r"problem: stage 'greedy', artifact Job/kind=greedy,i=0-\w+ and 1 more "
                        r"like it: QOS normal allows 4 GPUs for all its jobs together, it asks "
                        r"5; lower `gpus` \(it would pend forever, Slurm: QOS…GRES Grp\); "
                        + never, problems[1]), problems[1]
    assert re.fullmatch(r"problem: stage 'wide', artifact Job/kind=wide,i=0-\w+ and 1 more like "
                        r"it: the gpu partition allows 16 CPUs per node, it asks 20; lower "
                        r"`cpus` \(Slurm: PartitionConfig\); " + never, problems[2]), problems[2]
    assert problems[3].startswith("problem: stage 'wide' account=physics cpus=20") and (
        "Requested node configuration is not available" in problems[3])
    assert r.stdout.count("slurm --test-only: accepted, but over the site's limits") == 2
    assert r.stdout.count("slurm --test-only: accepted; within the site's limits") == 2
    assert project.cli("history").stdout.strip() == "No jobs submitted yet."


def test_status_wait_history_and_report_say_why_tasks_wait(project):
    launched = project.cli("launch")
    assert launched.returncode == 0, launched.stdout + launched.stderr
    data = _explained(project)
    queued = {s["stage"]: s["queued"] for s in data["stages"]}
    assert {t["outlook"] for t in queued["long"] + queued["greedy"] + queued["wide"]} == {
        "never clears on its own"}
    assert {t["outlook"] for t in queued["maint"] + queued["later"]} == {"clears on its own"}
    assert all(t["task"] and t["relpath"] for ts in queued.values() for t in ts)
    groups = {g["stage"]: g for g in data["waiting"]}
    assert groups["long"]["never_clears"] and groups["long"]["count"] == 2
    assert [g["never_clears"] for g in data["waiting"]] == [True, True, True, False, False]

    status = project.cli("status")
    assert status.returncode == 3, status.stdout + status.stderr
    lines = [ln.strip() for ln in status.stdout.splitlines()]
    for line in (LONG, GREEDY, WIDE, MAINT):
        assert line in lines, status.stdout
    later = next(ln for ln in lines if ln.startswith(LATER))
    assert later.endswith("[later]") and "never" not in later
    assert max(lines.index(LONG), lines.index(GREEDY), lines.index(WIDE)) < min(
        lines.index(MAINT), lines.index(later))
    assert "6 queued task(s) will never start on their own" in status.stdout

    waited = project.cli("wait", "--timeout", "3", "--interval", "1")
    assert waited.returncode == 3, waited.stdout + waited.stderr
    poll = next(ln for ln in waited.stdout.splitlines() if ln.startswith("["))
    assert ("why: 2 PartitionConfig (never clears on its own), 2 PartitionTimeLimit (never "
            "clears on its own), 2 QOSGrpGRES (never clears on its own), 2 BeginTime, "
            "2 ReqNodeNotAvail, Reserved for maintenance") in poll
    assert LONG in waited.stdout

    history = project.cli("history")
    assert history.returncode == 0, history.stdout + history.stderr
    for reason in REASONS.values():
        assert f"2 queued ({reason})" in history.stdout
    assert LONG in history.stdout and GREEDY in history.stdout
    tasks = [t for job in json.loads(project.cli("history", "--json").stdout)["jobs"]
             for t in job["task_states"]]
    assert sorted(t["reason"] for t in tasks) == sorted(2 * list(REASONS.values()))

    report = project.cli("report", "-o", "report.html")
    assert report.returncode == 0, report.stdout + report.stderr
    page = (project.dir / "report.html").read_text()
    script = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                       page, re.S)
    assert script, "no page data"
    shown = {w["stage"]: w for w in json.loads(script.group(1))["waiting"]}
    assert shown["long"]["reason"] == "PartitionTimeLimit" and shown["long"]["never_clears"]
    assert shown["maint"]["reason"] == "ReqNodeNotAvail, Reserved for maintenance"
    assert "PartitionTimeLimit — the gpu partition allows 12:00:00" in page.split(
        'id="report-data"')[0]  # in the page's visible part too, not only its data
