"""What ``launch`` says when Slurm is slow or refuses part-way, on real test clusters.

Slow: the faults cluster's queue is full (``MaxJobCount=1``: sbatch sleeps and retries by itself)
or its controller is frozen (SIGSTOP); the launch prints waiting lines (which submission, how
long, what next) before it finishes. Refused part-way: the user's submit allowance (a QOS limit of
the policed cluster) runs out after the first stage was queued; the launch says what is queued
and what is not, exits 4, and the same launch run again (once there is room) submits only what
was missing. What the message says for any refusal is tested on FakeBackend in
test_launch_feedback_fake.py; an invalid partition refused part-way in tests/e2e/test_slurm_e2e.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO

import pytest

from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, count_calls, wrap
from tests.support.slurm import records as _records
from tests.support.slurm_cluster import FULL_QUEUE, FaultsCluster, PolicedCluster

pytestmark = pytest.mark.slurm

TWO_STAGES = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class A(Artifact):
    i: int
    def get_requirements(self):
        return {"partition": os.environ.get("PARTITION", "cpu"), "time": "5:00",
                "begin": "now+3600"}  # stays queued
    def construct(self, builder: Task):
        builder.run_command("true")

@dataclass(frozen=True)
class B(Artifact):
    a: A
    def get_requirements(self):
        return {"partition": os.environ.get("B_PARTITION", os.environ.get("PARTITION", "cpu")),
                "time": "5:00"}
    def construct(self, builder: Task):
        builder.run_command("true")

a = ArtifactSet.from_product(cls=A, params={"i": list(range(int(os.environ.get("N", "3"))))})
ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("a", a)
ex.stage("b", a.map(lambda x: B(a=x)))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _project(tmp_path: Path, sbatch: str = 'exec "$REAL" "$@"', **extra: str
             ) -> tuple[Path, dict[str, str], Path]:
    """The experiment, with Slurm's commands wrapped to count calls (``sbatch``: its body)."""
    script = tmp_path / "exp.py"
    script.write_text(TWO_STAGES)
    wrapped = wrap(tmp_path, {}, {"sbatch": sbatch})
    env = {"OUT": str(tmp_path / "out"), "PROJECT": f"f{uuid.uuid4().hex[:8]}", **wrapped.env,
           **extra}
    return script, env, wrapped.log


# -- refused part-way --------------------------------------------------------------------------
# The second sbatch of the launch finds the user's submit allowance (QOS MaxSubmitJobsPerUser=100
# on the policed cluster) used up by another submission of the same user made just before it:
# a race no planning can foresee. The wrapper makes that submission, then runs the real sbatch.
FILL_BEFORE_SECOND = '''if [ "$(grep -c '^sbatch ' {log})" = 2 ]; then
  n=$(squeue --me -h -r | wc -l)
  "$REAL" --parsable -J {project}-filler --begin=now+3600 -o /dev/null -t 5 \\
      --array=0-$((99 - n)) --wrap true >/dev/null
fi
exec "$REAL" "$@"'''


def test_a_launch_refused_at_the_submit_limit_part_way_can_be_completed_later(
        tmp_path: Path, policed_cluster: PolicedCluster, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    monkeypatch.setenv("SLURM_CONF", policed_cluster.conf)
    project = f"f{uuid.uuid4().hex[:8]}"
    body = FILL_BEFORE_SECOND.replace("{log}", str(tmp_path / "calls.log")).replace(
        "{project}", project)
    script, env, calls = _project(tmp_path, sbatch=body, PROJECT=project, PARTITION="short")
    try:
        refused = run_cli(script, "launch", env=env)
        assert refused.returncode == 4, refused.stdout + refused.stderr
        text = " ".join(refused.stderr.split())
        assert "QOSMaxSubmitJobPerUserLimit" in text
        [a_job] = _records(project)
        assert f"job {a_job['job_id']} [stage a, tier 0]: 3 artifact(s)" in text
        assert "Not submitted: 3 artifact(s) of stage b (tier 1)." in text
        policed_cluster.run("scancel", f"--name={project}-filler")
        deadline = time.monotonic() + 60
        while policed_cluster.run("squeue", "-h", "-n", f"{project}-filler").stdout.strip():
            assert time.monotonic() < deadline, "the filler jobs stay"
            time.sleep(0.3)
        again = run_cli(script, "launch", env=env)
        assert again.returncode == 0, again.stderr
        records = {r["stage"]: r for r in _records(project)}
        assert len(records) == 2 and records["a"]["job_id"] == a_job["job_id"]
        assert records["b"]["depends_on"] == [str(a_job["job_id"])]
        assert count_calls(calls, "sbatch") == 3  # a, the refused b, and b again: no twin
    finally:
        policed_cluster.run("scancel", f"--name={project}-filler", check=False)
        cancel_all(project)


# -- slow to accept ----------------------------------------------------------------------------

class _Lines:
    """A launcher in the background whose output lines are collected as they come (the
    waiting lines: stdout, or stderr with ``--json``)."""

    def __init__(self, script: Path, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(script), "launch", "a", *args],
                                     cwd=script.parent, text=True,
                                     env={**os.environ, "COLUMNS": "300", **env},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(pipe, into), daemon=True)
                         for pipe, into in ((self.proc.stdout, self.lines),
                                            (self.proc.stderr, self.errors))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe: IO[str] | None, into: list[str]) -> None:
        assert pipe is not None
        for line in pipe:
            into.append(line.rstrip("\n"))

    def waiting(self) -> list[str]:
        return [ln for ln in self.lines + self.errors
                if ln.startswith("Slurm is slow to accept")]

    def wait_for_waiting(self, n: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.waiting()) < n:
            assert self.proc.poll() is None, f"launch ended first: {self.lines}"
            assert time.monotonic() < deadline, f"no waiting line: {self.lines}"
            time.sleep(0.2)

    def finish(self, timeout_s: float = 300) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout_s)
        for reader in self._readers:
            reader.join(timeout=10)
        return code, "\n".join(self.errors)


@pytest.mark.parametrize("as_json", [False, True])
def test_launch_prints_what_it_waits_for_while_the_queue_is_full(
        tmp_path: Path, faults: FaultsCluster, as_json: bool) -> None:
    script, env, _ = _project(tmp_path)
    project = env["PROJECT"]
    try:
        for _ in range(FULL_QUEUE):  # the controller's table holds FULL_QUEUE jobs: "full"
            faults.run("sbatch", "-J", f"{project}-filler", "--begin=now+3600", "-o",
                       "/dev/null", "--wrap", "true")
        with faults.queue_full():
            launch = _Lines(script, env, *(["--json"] if as_json else []))
            launch.wait_for_waiting(2)  # sbatch retries by itself; we report it as it goes
        code, stderr = launch.finish()
        assert code == 0, stderr
        first = launch.waiting()[0]
        assert f"job {project}.a." in first and "(stage a, tier 0, 3 artifact(s); " \
            "submission 1 of 1)" in first, first
        assert 'Slurm says "sbatch: error: Slurm temporarily unable to accept job, sleeping ' \
            'and retrying"' in first
        assert "Next: sbatch is stopped at " in first
        assert "then the job is looked up by name and submitted again (attempt 2 of 4)" in first
        if as_json:  # the waits went to stderr; stdout is the JSON document alone
            assert first in launch.errors
            assert len(json.loads("\n".join(launch.lines))["jobs"]) == 1
        else:
            assert any("Submitted 1 job(s) for 3 artifact(s)" in ln for ln in launch.lines)
        assert len(_records(project)) == 1
    finally:
        cancel_all(project)


def test_launch_prints_what_it_waits_for_while_the_controller_is_frozen(
        tmp_path: Path, faults: FaultsCluster) -> None:
    """Frozen during the launch's sbatch (its wrapper waits 2 s before the real sbatch, so the
    freeze lands after the launch's own queries): first "slow to accept" lines while sbatch
    waits, then, once sbatch gives up ("Socket timed out"), the retry and when it comes."""
    script, env, calls = _project(tmp_path, sbatch='sleep 2\nexec "$REAL" "$@"')
    project = env["PROJECT"]
    try:
        launch = _Lines(script, env)
        deadline = time.monotonic() + 120
        while count_calls(calls, "sbatch") < 1:
            assert launch.proc.poll() is None and time.monotonic() < deadline, launch.lines
            time.sleep(0.05)
        faults.freeze()
        try:
            launch.wait_for_waiting(1)
            deadline = time.monotonic() + 120
            while not any("Next: look the job up by name" in ln for ln in launch.waiting()):
                assert launch.proc.poll() is None, launch.lines
                assert time.monotonic() < deadline, launch.lines
                time.sleep(0.2)
        finally:
            faults.thaw()
        code, stderr = launch.finish()
        assert code == 0, stderr
        retry = next(ln for ln in launch.waiting() if "Next: look the job up by name" in ln)
        assert "attempt 2 of 4" in retry and "timed out" in retry.lower(), retry
        assert len(_records(project)) == 1  # found by name or submitted once: never twice
    finally:
        faults.heal()
        cancel_all(project)
