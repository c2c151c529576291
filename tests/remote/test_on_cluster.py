"""``--on``: launch, watch and read results on a cluster over SSH, from another account.

Real parts: OpenSSH's client as the laptop user with its own ~/.ssh/config, Debian's sshd on a
loopback port, the cluster user behind it, and this slot's Slurm test cluster.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.support.readme_seed import FINETUNE, SEED, TRAIN
from tests.support.remote_site import CLUSTER, LAPTOP, Site, commit_all, ours, write_as

pytestmark = pytest.mark.slurm

# The seed README's grid, with code_path left to its default (the file's own folder, which
# --on ships) instead of the placeholder /home/user/code.
README_GRID = SEED.replace("    code_path='/home/user/code',\n", "")


def _readme_project(site: Site) -> None:
    assert README_GRID != SEED
    for name, text in (("exp.py", README_GRID), ("train.py", TRAIN),
                       ("finetune.py", FINETUNE)):
        write_as(site.code / name, text, LAPTOP)
    for i in range(40):  # a realistic package beside the experiment
        write_as(site.code / "lib" / f"mod{i:02d}.py", f"VALUE = {i}\n" + "# pad\n" * 50,
                 LAPTOP)
    commit_all(site, "the README grid")


def _ok(res: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert res.returncode == code, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_readme_grid_on_a_cluster_with_one_login_and_nothing_left_running(site: Site) -> None:
    since = time.time()
    _readme_project(site)
    logins = site.sshd.logins()
    _ok(site.laptop("launch", "--on", "c"))
    _ok(site.laptop("wait", "--on", "c", "--timeout", "600"))
    status = _ok(site.laptop("status", "--on", "c"))
    assert "pretrain" in status and "finetune" in status
    table = _ok(site.laptop("table", "--on", "c", "pretrain", "--format", "csv"))
    assert len(table.strip().splitlines()) == 1 + 12
    logs = _ok(site.laptop("logs", "--on", "c", "pretrain", "--where", "learning_rate=0.001",
                           "--where", "num_epochs=10"))
    assert "attempt 1 of 1" in logs
    assert site.sshd.logins() == logins + 1  # one login for the whole sitting
    markers = list(site.artifacts.rglob(".done"))
    assert len(markers) == 12 + 24  # every artifact built on the cluster
    runs = (site.cluster / "runs.log").read_text().splitlines()
    assert len(runs) == len(set(runs)) == 36
    commit = site.as_laptop("git", "rev-parse", "HEAD").stdout.strip()
    meta = json.loads(next(site.artifacts.glob("PretrainedModel/*/.artifact.json")).read_text())
    assert commit in json.dumps(meta)  # the laptop's commit is the built code's provenance
    assert ours(LAPTOP, since) == [] and ours(CLUSTER, since) == []
    stats = site.stats()
    assert [s["verb"] for s in stats] == ["launch", "wait", "status", "table", "logs"]
    assert stats[0]["round_trips"] == 2  # first contact: the agent says what it lacks
    assert all(s["round_trips"] == 1 for s in stats[1:])


SMALL = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Prep(Artifact):
    n: int

    def get_requirements(self):
        return {"time": "0:10:00", "cpus": 1}

    def construct(self, builder: Task):
        builder.run_command(f"echo prep {self.n} >> $RUNS_LOG")

@dataclass(frozen=True)
class Fit(Artifact):
    prep: Prep

    def get_requirements(self):
        return {"time": "0:10:00", "cpus": 1}

    def construct(self, builder: Task):
        builder.run_command(f"python lib/mod00.py && echo fit {self.prep.n} >> $RUNS_LOG")

preps = ArtifactSet.from_product(cls=Prep, params={"n": [1, 2, 3, 4]})
executor = SlurmExecutor(project=PROJECT)
executor.stage("prep", preps)
executor.stage("fit", preps.map(lambda p: Fit(prep=p)))

if __name__ == "__main__":
    executor.auto_cli()
'''


def _small_project(site: Site) -> str:
    project = f"small{os.getpid()}"
    write_as(site.code / "exp.py", f"PROJECT = {project!r}\n" + SMALL, LAPTOP)
    for i in range(40):
        write_as(site.code / "lib" / f"mod{i:02d}.py", f"VALUE = {i}\n" + "# pad\n" * 50,
                 LAPTOP)
    commit_all(site, "a small grid")
    return project


def test_a_relaunch_after_a_one_file_edit_sends_that_file_only(site: Site) -> None:
    _small_project(site)
    first = site.laptop("launch", "--on", "c")
    assert "Sent 41 of 41 file(s)" in first.stderr, first.stderr
    before = site.objects()
    edited = site.code / "lib" / "mod07.py"
    write_as(edited, edited.read_text() + "VALUE += 1\n", LAPTOP)
    again = site.laptop("launch", "--on", "c")
    _ok(again)
    assert "Sent 1 of 41 file(s)" in again.stderr, again.stderr
    assert site.objects() == before + 1  # the cluster received that one blob
    first_stats, again_stats = site.stats()
    assert again_stats["files_sent"] == again_stats["received"] == 1
    assert again_stats["file_bytes"] == len(edited.read_bytes())
    assert again_stats["round_trips"] == 1
    assert again_stats["sent_bytes"] < first_stats["sent_bytes"] / 2
    assert "also used by" not in again.stderr  # a new tree is still the same file's launch
    bare = subprocess.run(site.argv("experiments", "--file", "exp.py", "--on", "c", "history",
                                    file="-m"), env=site.env(), cwd=site.code, text=True,
                          capture_output=True, timeout=300)  # the bare command's door
    assert "prep" in _ok(bare) and "Sent" not in bare.stderr  # the cluster has this tree


def _until(done, what: str, limit_s: float = 300) -> None:
    """Poll ``done()`` until it holds (the limit only turns a hang into a failure)."""
    deadline = time.monotonic() + limit_s
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def test_killing_the_laptop_mid_launch_then_launching_again_submits_nothing_twice(
        site: Site) -> None:
    _small_project(site)
    (site.hold / "hold").touch()  # sbatch holds after its first submission
    laptop = subprocess.Popen(site.argv("launch", "--on", "c"), env=site.env(), cwd=site.code,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _until(lambda: (site.hold / "submitted-0").exists() or laptop.poll() is not None,
           "the first submission")
    assert laptop.poll() is None, laptop.communicate()
    laptop.send_signal(signal.SIGKILL)
    laptop.wait()
    _until(lambda: not ours(LAPTOP) and not [p for p in ours(CLUSTER) if "experiments" in p],
           "the laptop's and the cluster's processes to end")
    (site.hold / "hold").unlink()
    (site.hold / "release").touch()
    again = site.laptop("launch", "--on", "c")
    _ok(again)
    _ok(site.laptop("wait", "--on", "c", "--timeout", "600"))
    calls = (site.hold / "calls").read_text().splitlines()
    assert len(calls) == 2, calls  # prep once (before the kill), fit once: nothing twice
    history = json.loads(_ok(site.laptop("history", "--on", "c", "--json")))
    jobs = {(j["stage"], j["job_id"]) for j in history["jobs"]}
    assert sorted(stage for stage, _ in jobs) == ["fit", "prep"], history
    runs = (site.cluster / "runs.log").read_text().splitlines()
    assert sorted(runs) == sorted([f"prep {n}" for n in range(1, 5)]
                                  + [f"fit {n}" for n in range(1, 5)])


def test_report_and_serve_on_a_cluster_are_read_here(site: Site) -> None:
    _small_project(site)
    logins = site.sshd.logins()
    written = _ok(site.laptop("report", "--on", "c", "-o", "pages/r.html"))
    assert "Wrote pages/r.html" in written, written
    page = (site.code / "pages" / "r.html").read_text()
    assert "<html" in page and "prep" in page
    server = subprocess.Popen(site.argv("serve", "--on", "c", "--port", "0"), env=site.env(),
                              cwd=site.code, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert server.stdout is not None
    line = server.stdout.readline()
    found = re.search(r"Serving the report of \S+ at (http://127\.0\.0\.1:\d+/)\?token=(\S+)",
                      line)
    assert found, line + server.communicate()[1]
    url, token = found.groups()
    with urllib.request.urlopen(f"{url}?token={token}", timeout=60) as answer:
        assert b"<html" in answer.read()  # served here, built on the cluster
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(url, timeout=60)  # the login node's loopback is shared
    server.send_signal(signal.SIGINT)
    _out, err = server.communicate(timeout=120)
    assert server.returncode == 0, err
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}?token={token}", timeout=60)  # the forward is gone
    _until(lambda: not [p for p in ours(LAPTOP) + ours(CLUSTER) if "experiments" in p],
           "the server to end on the cluster")
    assert site.sshd.logins() == logins + 1
