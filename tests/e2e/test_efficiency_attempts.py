"""``efficiency`` on the real Slurm cluster tells what really ran (issue 24 item 5): a task
requeued by ``scontrol requeue`` counts both attempts (sacct ``--duplicates``), a task whose
worker exited 0 after a failure (so that ``aftercorr`` releases its counterparts; sacct says
COMPLETED) shows FAILED, and a pack shows the time limit it asked for."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, wait_until_idle
from tests.support.slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Run(Artifact):
    kind: str
    i: int = 0
    def get_requirements(self):
        reqs = {"partition": "cpu", "time": "4:00"}
        return {**reqs, "pack": 3, "time": "2:00"} if self.kind == "pack" else reqs
    def construct(self, builder: Task):
        builder.run_command("sleep 2" if self.kind != "bad" else "sleep 2; exit 3")

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"])
for kind, n in (("again", 1), ("bad", 1), ("pack", 3)):
    ex.stage(kind, ArtifactSet.from_product(cls=Run, params={"kind": [kind], "i": list(range(n))}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _job(env: dict[str, str], stage: str) -> str:
    jobs = json.loads(run_cli(Path(env["SCRIPT"]), "history", stage, "--json", env=env).stdout)
    return str(jobs["jobs"][0]["job_id"])


def _seconds(elapsed: str) -> int:
    h, m, sec = (int(x) for x in elapsed.split(":"))
    return h * 3600 + m * 60 + sec


def _attempts(cluster: SlurmCluster, task: str) -> int:
    rows = cluster.run("sacct", "-D", "-X", "-P", "-n", "-j", task, "-o", "JobID").stdout
    return len(rows.split())


def test_efficiency_counts_every_attempt_and_tells_failures_and_pack_limits(
        tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    env = {"OUT": str(tmp_path / "out"), "PROJECT": f"p{uuid.uuid4().hex[:8]}",
           "SCRIPT": str(script)}
    try:
        res = run_cli(script, "launch", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        wait_until_idle(env["PROJECT"])
        again = _job(env, "again")
        slurm_cluster.run("scontrol", "requeue", f"{again}_0")  # ended, still held (MinJobAge)
        slurm_cluster.run("scontrol", "update", f"jobid={again}_0", "StartTime=now")  # no hold
        wait_until_idle(env["PROJECT"])
        deadline = time.monotonic() + 60  # accounting records the second end a little later
        while _attempts(slurm_cluster, f"{again}_0") < 2 and time.monotonic() < deadline:
            time.sleep(1)
        eff = run_cli(script, "efficiency", "-v", env=env)
        assert eff.returncode == 0, eff.stdout + eff.stderr
    finally:
        cancel_all(env["PROJECT"])
    lines = {m.group(1): m.group(0) for m in re.finditer(r"^  \S+ Run/kind=(\w+).*$",
                                                          eff.stdout, re.M)}
    assert "of 0:04:00 each, 2 attempts" in lines["again"], eff.stdout
    shown = re.search(r": COMPLETED, (\d+):(\d\d):(\d\d) of", lines["again"])
    assert shown, lines["again"]
    both = sum(_seconds(e) for e in slurm_cluster.run(
        "sacct", "-D", "-X", "-P", "-n", "-j", f"{again}_0", "-o", "Elapsed").stdout.split())
    assert int(shown[1]) * 3600 + int(shown[2]) * 60 + int(shown[3]) == both
    assert lines["bad"].split(": ", 1)[1].startswith("FAILED,"), eff.stdout
    assert "(a pack)" in lines["pack"] and "of 0:06:00 (" in lines["pack"], eff.stdout
    sacct = slurm_cluster.run("sacct", "-X", "-P", "-n", "-j", _job(env, "bad"),
                              "-o", "State").stdout
    assert sacct.split() == ["COMPLETED"]  # what Slurm says of the failed task
