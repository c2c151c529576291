"""One machine behaves like the cluster (issue 24, item 7), through the real CLI.

The local backend sends the checkpoint signal before a time limit and runs the task again as
Slurm requeues it; ``--retry-failed`` escalates a local TIMEOUT; ``status`` calls waiting
artifacts *queued* and says why; the launch summary says dep-failed; a local run into one
artifact root blocks only launches into that root, and says who it is when it does.
Capacity comes from config.json, so two pretend GPUs work anywhere. Artifacts that must be
running while ``status`` looks wait for a gate file the test creates: no sleeps to race.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from experiments.backends.local.machine import process_start
from experiments.tracking.store import JobRecord, Store
from tests.support.cli import run_cli
from tests.support.experiments import done_markers

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, Task

OUT = os.environ["OUT"]
LOG = os.environ["LOG"]
GATE = os.environ["GATE"]
FAIL = os.environ.get("FAIL", "")

@dataclass(frozen=True)
class Train(Artifact):
    i: int
    def get_requirements(self):
        return {"gpus": 1}
    def construct(self, builder: Task):
        fail = "exit 5" if str(self.i) == FAIL else "true"
        builder.run_command(f'echo "start {self.i}" >> {LOG}; '
                            f'while [ ! -f {GATE} ]; do sleep 0.1; done; {fail}')

@dataclass(frozen=True)
class Eval(Artifact):
    model: Train
    def construct(self, builder: Task):
        builder.run_command("true")

@dataclass(frozen=True)
class Ckpt(Artifact):
    name: str
    done_at: int
    requeues: int
    def get_requirements(self):
        return {"time": "0:06", "checkpoint_before": 3, "max_requeues": self.requeues}
    def construct(self, builder: Task):
        builder.run_command(
            'd=$EXPERIMENTS_CHECKPOINT_DIR; n=$(cat $d/n 2>/dev/null || echo 0); '
            f'echo "{self.name} attempt=$EXPERIMENTS_ATTEMPT n=$n" >> {LOG}; '
            f'if [ $n -ge {self.done_at} ]; then exit 0; fi; '
            "trap 'echo $((n+1)) > $d/n; exit 1' USR2; "
            'while true; do sleep 0.2; done')

@dataclass(frozen=True)
class Slow(Artifact):
    seconds: int
    def get_requirements(self):
        return {"time": "0:02"}
    def construct(self, builder: Task):
        builder.run_command(f"sleep {self.seconds}")

@dataclass(frozen=True)
class Quick(Artifact):
    n: int
    def construct(self, builder: Task):
        builder.run_command("true")

train = ArtifactSet.from_product(cls=Train, params={"i": list(range(6))})
ex = LocalExecutor(project="truth", artifact_path=OUT, code_path=OUT)
ex.stage("train", train)
ex.stage("eval", train.map(lambda m: Eval(model=m)))
ex.stage("ckpt", ArtifactSet([Ckpt("resumes", done_at=2, requeues=2),
                              Ckpt("never", done_at=99, requeues=1)]))
ex.stage("slow", ArtifactSet([Slow(4)]))
ex.stage("quick", ArtifactSet([Quick(1)]))
ex.stage("gated", ArtifactSet([Train(0)]))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _setup(tmp_path: Path, config: dict[str, object] | None = None
           ) -> tuple[Path, dict[str, str], Path]:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps(config or {"local": {"cpus": 8, "gpus": 2}}))
    env = {"OUT": str(out), "LOG": str(tmp_path / "log.txt"), "GATE": str(tmp_path / "gate")}
    return script, env, out


def _wait_for(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {predicate}")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _records() -> list[JobRecord]:
    return Store(Path(os.environ["EXPERIMENTS_HOME"]), "truth").all_records()


def _launchers_ended() -> bool:
    return all(process_start(r.pid) != r.pid_start for r in _records() if r.pid)


@contextmanager
def _detached(script: Path, env: dict[str, str], *stages: str) -> Iterator[None]:
    """A detached launch of ``stages``; however the test ends, the gate is opened and the
    launcher is waited for, so that no run is left behind."""
    res = run_cli(script, "launch", *stages, "--detach", env=env)
    try:
        assert res.returncode == 0 and "Running in the background" in res.stdout, res.stderr
        yield
    finally:
        Path(env["GATE"]).write_text("")
        _wait_for(_launchers_ended)


def test_waiting_artifacts_are_queued_with_why_and_dep_failed_is_said(tmp_path: Path) -> None:
    """Six one-GPU trainings on two GPUs, each with an evaluation after it: while two train,
    four are queued "waiting for GPUs" and six "waiting for its dependencies" (not twelve
    running); the summary then says dep-failed for the evaluation of the failed training."""
    script, env, out = _setup(tmp_path)
    env["FAIL"] = "0"
    with _detached(script, env, "train", "eval"):  # the gate opens when the block ends
        log = Path(env["LOG"])
        _wait_for(lambda: len(_lines(log)) == 2)  # two have started; the gate holds them
        status = run_cli(script, "status", "train", "eval", "--json", env=env)
        report = json.loads(status.stdout)
        counts = {s["stage"]: s["counts"] for s in report["stages"]}
        assert counts == {"train": {"running": 2, "queued": 4}, "eval": {"queued": 6}}, counts
        waits = {(w["stage"], w["reason"]): w["count"] for w in report["waiting"]}
        assert waits == {("train", "waiting for GPUs"): 4,
                         ("eval", "waiting for its dependencies"): 6}, report["waiting"]
        text = run_cli(script, "status", "train", "eval", env=env).stdout
        assert "4 queued: waiting for GPUs" in text, text
        assert "6 queued: waiting for its dependencies" in text, text
    summary = next(Path(os.environ["EXPERIMENTS_HOME"]).glob(
        "projects/truth/detached/*.log")).read_text()
    assert "job L1 [train, tier 0]: 1 failed, 5 built" in summary, summary
    assert "job L2 [eval, tier 1] after L1: 1 dep-failed, 5 built" in summary, summary
    assert len(done_markers(out)) == 10


def test_checkpoint_before_the_limit_restarts_the_artifact_as_slurm_requeues_it(
        tmp_path: Path) -> None:
    """``checkpoint_before``: the signal comes 3 s before the 6 s limit, the command saves its
    count in the kept checkpoint folder and exits; the artifact runs again with the next
    EXPERIMENTS_ATTEMPT, and is built on the third; one allowed a single requeue fails after
    its second attempt (not TIMEOUT)."""
    script, env, out = _setup(tmp_path)
    res = run_cli(script, "launch", "ckpt", env=env)
    assert res.returncode == 1, res.stdout + res.stderr  # "never" fails
    attempts = sorted(_lines(Path(env["LOG"])))
    assert attempts == ["never attempt=1 n=0", "never attempt=2 n=1",
                        "resumes attempt=1 n=0", "resumes attempt=2 n=1",
                        "resumes attempt=3 n=2"], attempts
    built = [p.parent for p in done_markers(out)]
    assert len(built) == 1 and "name=resumes" in built[0].name
    assert (built[0] / ".checkpoint" / "n").read_text().strip() == "2"
    assert json.loads((built[0] / ".status.json").read_text())["attempt"] == 3
    logs = "".join(p.read_text() for p in Path(os.environ["EXPERIMENTS_HOME"]).glob(
        "logs/truth/ckpt/*.log"))  # both attempts' lines, as `logs` shows them
    assert "requeued on this machine (restart 1 of at most 2)" in logs
    assert "restart 2 after a checkpoint" in logs
    assert "already requeued 1 time(s) (max_requeues); not again" in logs
    status = run_cli(script, "status", env=env).stdout
    assert "TIMEOUT" not in status, status
    never = next(out.glob("Ckpt/name=never*/.status.json"))
    record = json.loads(never.read_text())
    assert record["state"] == "failed" and record.get("reason") != "timeout", record


def test_retry_failed_escalates_a_local_timeout(tmp_path: Path) -> None:
    """A local TIMEOUT is recorded as the scheduler's TIMEOUT, so ``--retry-failed`` escalates
    ``time`` by the config's policy, as on Slurm, and the retry is built."""
    script, env, out = _setup(tmp_path, {"local": {"cpus": 2},
                                         "escalation": {"TIMEOUT": {"time": 4}}})
    first = run_cli(script, "launch", "slow", env=env)
    assert first.returncode == 1 and not done_markers(out), first.stdout + first.stderr
    assert "job L1 [slow, tier 0]: 1 failed (TIMEOUT)" in first.stdout, first.stdout
    status = run_cli(script, "status", "slow", env=env).stdout
    assert "failed (TIMEOUT)" in status and "at its time limit (time=0:02" in status, status
    dry = run_cli(script, "drylaunch", "slow", "--retry-failed", env=env)
    assert "time 0:00:02 → 0:00:08 after TIMEOUT in job L1_0" in dry.stdout, dry.stdout
    again = run_cli(script, "launch", "slow", "--retry-failed", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(done_markers(out)) == 1


def test_a_local_run_blocks_only_launches_into_its_own_root_and_names_itself(
        tmp_path: Path) -> None:
    """A detached local run into root B: a launch of the same project into root A goes ahead;
    one into root B is refused with a message that says it is a local run, into B, by which
    pid."""
    script, env_b, root_b = _setup(tmp_path)
    root_a = tmp_path / "root_a"
    root_a.mkdir()
    env_a = {**env_b, "OUT": str(root_a)}
    with _detached(script, env_b, "gated"):
        _wait_for(lambda: len(_lines(Path(env_b["LOG"]))) == 1)
        pid = next(r.pid for r in _records() if r.pid)

        other = run_cli(script, "launch", "quick", env=env_a)
        assert other.returncode == 0, other.stdout + other.stderr
        assert len(done_markers(root_a)) == 1

        same = run_cli(script, "launch", "quick", env=env_b)
        assert same.returncode != 0
        assert "a local run" in same.stderr and f"pid {pid}" in same.stderr, same.stderr
        assert str(root_b) in same.stderr, same.stderr
        assert not done_markers(root_b)
    again = run_cli(script, "launch", "quick", env=env_b)  # the run has ended: free again
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(done_markers(root_b)) == 2


def test_cancel_waits_for_a_local_run_that_handed_the_project_lock_back(tmp_path: Path
                                                                         ) -> None:
    """``cancel`` stops a running local run and returns only once the run has recorded its
    end, although the run no longer holds the project's launch lock."""
    script, env, out = _setup(tmp_path)
    with _detached(script, env, "gated"):
        _wait_for(lambda: len(_lines(Path(env["LOG"]))) == 1)
        cancel = subprocess.run([sys.executable, str(script), "cancel", "gated"],
                                capture_output=True, text=True, timeout=120,
                                env={**os.environ, **env}, cwd=tmp_path)
        assert cancel.returncode == 0, cancel.stderr
        job = next(r for r in _records() if r.pid)  # the launcher's own account is written
        assert job.task_states == {"0": "cancelled"}, job
    assert not done_markers(out)
