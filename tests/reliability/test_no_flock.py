"""Builds on Slurm where ``flock`` fails for real: the batch script's worker runs under strace,
which makes every ``flock`` fail with ENOSYS (config.json's ``python`` is a wrapper that execs
strace on the real interpreter; see tests/support/strace.py). The worker falls back to lock files;
one held by a live Slurm job makes its artifact busy, one of an ended job is taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, wait_until_idle
from tests.support.slurm_cluster import SlurmCluster
from tests.support.strace import no_flock, no_flock_python

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class P(Artifact):
    i: int
    @property
    def relpath(self) -> str:
        return f"p/{self.i}"
    def get_requirements(self):
        return {"partition": "cpu", "time": "5:00"}
    def construct(self, builder: Task):
        builder.run_command("echo " + self.relpath + " >> " + os.environ["RUNS"])

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("p", ArtifactSet.from_product(cls=P, params={"i": [0, 1, 2]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _sbatch(*args: str) -> str:
    res = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "-p", "cpu", "-t", "5",
                          *args], capture_output=True, text=True, timeout=60, check=True)
    return res.stdout.strip().split(";")[0]


def _state(job: str) -> str:
    res = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"],
                         capture_output=True, text=True, timeout=30)
    return res.stdout.strip()


def _wait_ended(job: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while _state(job) in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
        assert time.monotonic() < deadline, f"job {job} did not end"
        time.sleep(0.3)


def _plant(out: Path, relpath: str, slurm_job: str) -> Path:
    folder = out / relpath
    folder.mkdir(parents=True)
    path = folder / ".build-lock"
    path.write_text(json.dumps({"job": f"{slurm_job}_0", "slurm_job_id": slurm_job,
                                "host": "node-elsewhere", "pid": 4242, "token": relpath}))
    return path


def _logs() -> str:
    home = Path(os.environ["EXPERIMENTS_HOME"])
    return "\n".join(p.read_text() for p in sorted((home / "logs").rglob("*.log")))


def test_tasks_build_with_lock_files_when_flock_fails_on_the_nodes(
        tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    script, out = tmp_path / "exp.py", tmp_path / "out"
    script.write_text(EXPERIMENT)
    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    wrapper = no_flock_python(str(tmp_path / "python-no-flock"), sys.executable)
    (home / "config.json").write_text(json.dumps({"python": wrapper}))
    project = f"nf{uuid.uuid4().hex[:8]}"
    env = {"OUT": str(out), "PROJECT": project, "RUNS": str(tmp_path / "runs"),
           "EXPERIMENTS_BUSY_WAIT_S": "0"}  # exported to the tasks: busy at once
    holder = _sbatch(f"--job-name={project}-holder", "--wrap", "sleep 300")
    ended = _sbatch(f"--job-name={project}-ended", "--wrap", "true")
    try:
        _wait_ended(ended)
        _plant(out, "p/1", ended)
        live_lock = _plant(out, "p/2", holder)
        first = run_cli(script, "launch", env=env)
        assert first.returncode == 0, first.stderr
        wait_until_idle(f"{project}.")
        logs = _logs()
        assert "with lock file .build-lock (flock is not supported here: ENOSYS)" in logs, logs
        assert f"its Slurm job {ended} ({ended}_0 (pid 4242 on node-elsewhere)) has ended" \
            in logs
        assert f"another worker is building p/2 right now ({holder}_0 (pid 4242 on " \
            "node-elsewhere))" in logs
        assert f"remove {live_lock}" in logs
        assert sorted(p.parent.name for p in out.rglob(".done")) == ["0", "1"]
        assert live_lock.exists()

        subprocess.run(["scancel", holder], check=True, timeout=30)
        _wait_ended(holder)
        again = run_cli(script, "launch", env=env)
        assert again.returncode == 0, again.stderr
        wait_until_idle(f"{project}.")
        assert sorted(p.parent.name for p in out.rglob(".done")) == ["0", "1", "2"]
        assert sorted(Path(env["RUNS"]).read_text().split()) == ["p/0", "p/1", "p/2"]
        assert not list(out.rglob(".build-lock*"))
    finally:
        cancel_all(project)


NS_EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Shared(Artifact):
    i: int
    @property
    def relpath(self) -> str:
        return f"shared/{self.i}"
    def get_requirements(self):
        return {"partition": "cpu", "time": "5:00"}
    def construct(self, builder: Task):
        gate = os.environ["GATE"]
        builder.run_command(f"echo run >> {gate}/runs; touch {gate}/started; "
                            f"while [ ! -e {gate}/go ]; do sleep 0.2; done")

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("s", ArtifactSet.from_product(cls=Shared, params={"i": [0]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _wait_file(path: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.3)


def test_builders_in_separate_pid_namespaces_on_one_host_build_once(
        tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    """Issue 23, item 8: each task's worker runs in a pid namespace (and /proc) of its own,
    as in a container, with flock failing: both are pid 2 there. The second worker judges the
    first's lock file by its Slurm job (running), not by pid 2 in its own namespace."""
    script, out, gate = tmp_path / "exp.py", tmp_path / "out", tmp_path / "gate"
    script.write_text(NS_EXPERIMENT)
    gate.mkdir()
    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    wrapper = tmp_path / "python-ns-no-flock"
    wrapper.write_text("#!/bin/sh\nexec unshare --pid --fork --mount-proc "
                       + " ".join(no_flock()) + f' {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    (home / "config.json").write_text(json.dumps({"python": str(wrapper)}))
    first, second = (f"ns{uuid.uuid4().hex[:8]}" for _ in range(2))
    env = {"OUT": str(out), "GATE": str(gate)}
    try:
        assert run_cli(script, "launch", env={**env, "PROJECT": first}).returncode == 0
        _wait_file(gate / "started")  # the first worker holds the lock file
        owner = json.loads((out / "shared/0/.build-lock").read_text())
        assert owner["pid"] < 10, owner  # pid inside its own namespace
        assert run_cli(script, "launch", env={**env, "PROJECT": second}).returncode == 0
        deadline = time.monotonic() + 120
        while "another worker is building shared/0" not in _logs():
            assert (gate / "runs").read_text() == "run\n", "built twice: the lock was taken over"
            assert time.monotonic() < deadline, _logs()
            time.sleep(0.3)
        (gate / "go").touch()
        wait_until_idle(f"{first}.")
        wait_until_idle(f"{second}.")
        logs = _logs()
        assert "taking over" not in logs, logs
        assert "shared/0 was built by" in logs, logs
        assert (gate / "runs").read_text() == "run\n"
    finally:
        (gate / "go").touch()
        cancel_all(first)
        cancel_all(second)
