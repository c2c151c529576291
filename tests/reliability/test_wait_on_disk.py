"""``wait`` learns of ends from the disk (issue 26), on a real cluster whose controller is
frozen (SIGSTOP): the workers' done markers end the wait long before its next poll, and the
frozen controller is not needed for the verdict. But the disk cannot show a task Slurm ended
before its worker wrote a word: a queued task cancelled while its neighbour builds ends the
wait as cancelled (from the scheduler's poll), never as built."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.slurm import cancel_all, my_jobs, wrap_commands
from tests.support.slurm_cluster import FaultsCluster

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Gate(Artifact):
    i: int
    def get_requirements(self):
        return {"time": "5:00"}
    def construct(self, builder: Task):
        builder.run_command(f"while [ ! -e {os.environ['GO']} ]; do sleep 0.2; done")

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("gate", ArtifactSet.from_product(cls=Gate, params={"i": [0, 1]}))
if __name__ == "__main__":
    ex.auto_cli()
'''



def _cli(script: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(script), *args], cwd=script.parent,
                            env={**os.environ, "COLUMNS": "200", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_wait_returns_on_the_markers_while_the_controller_is_frozen(
        tmp_path: Path, faults: FaultsCluster) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    go = tmp_path / "go"
    env = {"OUT": str(tmp_path / "out"), "PROJECT": f"w{uuid.uuid4().hex[:8]}", "GO": str(go)}
    try:
        launched = _cli(script, env, "launch")
        assert launched.wait(timeout=120) == 0, launched.communicate()[1]
        deadline = time.monotonic() + 120
        while sum("RUNNING" in r for r in my_jobs(env["PROJECT"])) < 2:
            assert time.monotonic() < deadline, my_jobs(env["PROJECT"])
            time.sleep(0.3)
        # the first poll sees them running; the next would come 300 s later
        waiting = _cli(script, env, "wait", "--interval", "300")
        time.sleep(3)
        faults.freeze()
        go.touch()  # the workers end and write their markers; the controller hears nothing
        out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, out + err
        assert "All built" in out, out
        assert faults.ctld_pid() is not None  # still frozen, never asked
    finally:
        faults.heal()
        cancel_all(env["PROJECT"])


# -- but the disk cannot show a task Slurm ended before its worker wrote a word: a queued task
# cancelled while its neighbour builds ends the wait as cancelled (from the scheduler's poll).
def _rows(project: str, state: str) -> list[str]:
    return [r for r in my_jobs(project) if f"|{state}|" in r]


def test_wait_does_not_call_built_a_task_slurm_cancelled_before_it_wrote_anything(
        tmp_path: Path, slurm_cluster: object) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    go = tmp_path / "go"
    env = {"OUT": str(tmp_path / "out"), "PROJECT": f"k{uuid.uuid4().hex[:8]}", "GO": str(go)}
    try:
        launched = _cli(script, env, "launch", "--max-running", "1")
        out, err = launched.communicate(timeout=120)
        assert launched.returncode == 0, out + err
        deadline = time.monotonic() + 120  # one task builds, the other waits for its slot
        while not (_rows(env["PROJECT"], "RUNNING") and _rows(env["PROJECT"], "PENDING")):
            assert time.monotonic() < deadline, my_jobs(env["PROJECT"])
            time.sleep(0.3)
        queued = _rows(env["PROJECT"], "PENDING")[0].split("|")[0]
        polled = tmp_path / "polled"  # touched when wait's first squeue has answered
        wrapped, _log = wrap_commands(tmp_path, {"squeue": f"touch {polled}; exit $rc"})
        waiting = _cli(script, {**env, "PATH": wrapped["PATH"]}, "wait", "--interval", "15")
        while not polled.exists():  # its first poll saw both tasks live
            assert waiting.poll() is None and time.monotonic() < deadline, waiting.stderr
            time.sleep(0.1)
        subprocess.run(["scancel", queued], check=True, timeout=30)  # it never started
        go.touch()  # the running task ends and writes its marker; only a poll sees the cancel
        out, err = waiting.communicate(timeout=180)
        assert waiting.returncode == 1, out + err  # not 0: one artifact is not built
        assert "All built" not in out and "cancelled" in out, out
        assert not list((tmp_path / "out").rglob(".done"))[1:], "only one artifact was built"
        status = _cli(script, env, "status")
        text, err = status.communicate(timeout=120)
        assert status.returncode == 1 and "cancelled" in text, text + err
    finally:
        cancel_all(env["PROJECT"])
