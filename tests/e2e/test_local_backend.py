"""The local backend end to end through the real CLI: failures, relaunch, bad input, cancel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.tracking.store import Store
from tests.support.cli import run_cli, sigint_default
from tests.support.experiments import done_markers

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, Task

FAIL = os.environ.get("FAIL_LR", "")
SLEEP = os.environ.get("SLEEP_S", "0")

@dataclass(frozen=True)
class Pre(Artifact):
    lr: float
    def construct(self, builder: Task):
        builder.create_file("params.txt", str(self.lr))
        cmd = "exit 7" if str(self.lr) == FAIL else f"sleep {SLEEP}; echo trained {self.lr}"
        builder.run_command(cmd)

@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre
    data: str
    def construct(self, builder: Task):
        builder.run_command("echo tuned", kwargs={"data": self.data})

pre = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2, 0.3]})
fine = ArtifactSet.join_product(pre, ["a", "b"]).map(lambda m, d: Fine(base=m, data=d))
ex = LocalExecutor(project="proj", artifact_path=os.environ["OUT"], code_path=os.environ["OUT"],
                   workers=2)
ex.stage("pretrain", pre)
ex.stage("finetune", fine)
if __name__ == "__main__":
    ex.auto_cli()
'''


def _setup(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    return script, {"OUT": str(out)}, out


def test_failure_costs_only_its_dependents_and_relaunch_rebuilds_that_chain(tmp_path: Path
                                                                            ) -> None:
    script, env, out = _setup(tmp_path)
    res = run_cli(script, "launch", env={**env, "FAIL_LR": "0.2"})
    assert res.returncode == 1  # something failed: non-zero exit
    built = {p.parent.relative_to(out).as_posix() for p in done_markers(out)}
    assert len(built) == 2 + 4  # two pretrains and the four finetunes of the healthy ones
    assert not any("lr=0.2" in b for b in built)

    status = run_cli(script, "status", env=env)
    assert status.returncode == 1  # some failed
    assert "command exited with code 7" in status.stdout
    assert "dependency" in status.stdout and "is not built" in status.stdout
    failed_status = json.loads(next(out.glob("Pre/lr=0.2-*/.status.json")).read_text())
    assert failed_status["state"] == "failed" and failed_status["exit_code"] == 7
    assert failed_status["step"] == 2

    again = run_cli(script, "launch", env=env)  # the failure is fixed
    assert again.returncode == 0, again.stderr
    assert len(done_markers(out)) == 9
    hist = run_cli(script, "history", env=env)
    # the second launch submitted exactly the failed chain: 1 pretrain + 2 finetunes
    assert "L3" in hist.stdout and "L4" in hist.stdout
    jobs = [r.to_dict() for r in Store(Path(os.environ["EXPERIMENTS_HOME"]), "proj")
            .records("pretrain")]
    assert [len(j["tasks"]) for j in jobs] == [3, 1]


def test_cat_shows_a_task_log_and_the_array_summary(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    assert run_cli(script, "launch", "pretrain", env=env).returncode == 0
    one = run_cli(script, "cat", "L1_1", env=env)
    assert one.returncode == 0 and "trained 0.2" in one.stdout
    summary = run_cli(script, "cat", "L1", env=env)
    assert summary.returncode == 0 and summary.stdout.count("built") == 3
    bad = run_cli(script, "cat", "L1_9", env=env)
    assert bad.returncode == 1 and "tasks 0-2" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_unknown_stage_bad_config_and_bad_parameter_are_one_line_errors(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    res = run_cli(script, "launch", "nope", env=env)
    assert res.returncode == 2  # a usage error, as the docs say (issue 24 item 12)
    assert "unknown stage 'nope'" in res.stderr and "pretrain, finetune" in res.stderr
    assert "Traceback" not in res.stderr

    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text('{"log_directory": "~/.experiments/logs",')
    res = run_cli(script, "drylaunch", env=env)
    assert res.returncode == 1 and "config.json is not valid JSON" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    (home / "config.json").unlink()

    bad = tmp_path / "bad.py"
    bad.write_text(EXPERIMENT.replace('params={"lr": [0.1, 0.2, 0.3]}',
                                      'params={"lr": [object()]}'))
    res = run_cli(bad, "drylaunch", env=env)
    assert res.returncode == 2, res.stderr  # a definition error
    assert "Pre.lr" in res.stderr and "object" in res.stderr
    assert "Traceback" not in res.stderr


def test_console_script_runs_an_experiment_file(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    exe = Path(sys.executable).with_name("experiments")
    res = subprocess.run([str(exe), "--file", str(script), "launch", "pretrain"],
                         capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert res.returncode == 0, res.stderr
    assert len(done_markers(out)) == 3
    res = subprocess.run([str(exe), "status"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--file" in res.stderr


def test_interrupt_stops_cleanly_and_records_cancelled(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    proc = subprocess.Popen([sys.executable, str(script), "launch", "pretrain"],
                            env={**os.environ, **env, "SLEEP_S": "30"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    status_file = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and status_file is None:
        found = list(out.glob("Pre/*/.status.json"))
        status_file = found[0] if found else None
        time.sleep(0.2)
    assert status_file is not None, "no task started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert not done_markers(out)
    jobs = [r.to_dict() for r in Store(Path(os.environ["EXPERIMENTS_HOME"]), "proj")
            .records("pretrain")]
    assert jobs[0]["state"] == "cancelled"
    assert set(jobs[0]["task_states"].values()) == {"cancelled"}
    hist = run_cli(script, "history", env=env)
    assert "3 cancelled" in hist.stdout


THROTTLED = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, Task

@dataclass(frozen=True)
class Slow(Artifact):
    i: int
    def get_requirements(self):
        return {"max_parallel": 1}
    def construct(self, builder: Task):
        log = f"{os.environ['OUT']}/spans.txt"
        builder.run_command(f"echo start {self.i} >> {log}; sleep 0.4; echo end {self.i} >> {log}")

ex = LocalExecutor(project="throttled", artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"], workers=4)
ex.stage("slow", ArtifactSet.from_product(cls=Slow, params={"i": [0, 1, 2, 3]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def test_max_parallel_throttles_local_tasks_as_slurm_does(tmp_path: Path) -> None:
    """Four workers, max_parallel=1: the four tasks never overlap (each records its span)."""
    script = tmp_path / "throttled.py"
    script.write_text(THROTTLED)
    out = tmp_path / "out"
    out.mkdir()
    res = run_cli(script, "launch", env={"OUT": str(out)})
    assert res.returncode == 0, res.stderr
    assert len(done_markers(out)) == 4
    lines = (out / "spans.txt").read_text().splitlines()
    assert len(lines) == 8
    for start, end in zip(lines[::2], lines[1::2], strict=True):  # no start between them
        assert start.split()[0] == "start" and end == f"end {start.split()[1]}"
