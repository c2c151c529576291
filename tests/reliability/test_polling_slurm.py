"""Polite polling on the real Slurm cluster, counted through wrappers of the real commands:
``sacct`` is asked only about jobs with a task whose end is not recorded and that ``squeue``
does not show live; a project whose jobs have all ended costs neither command."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from experiments.tracking.store import Store
from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, my_jobs, wait_until_idle, wrap_commands

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Quick(Artifact):
    i: int
    def get_requirements(self):
        return {"time": "5:00"}
    def construct(self, builder: Task):
        builder.run_command("true")

@dataclass(frozen=True)
class Later(Artifact):
    i: int
    def get_requirements(self):
        return {"time": "5:00", "begin": "now+3600"}  # stays pending
    def construct(self, builder: Task):
        builder.run_command("true")

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("quick", ArtifactSet.from_product(cls=Quick, params={"i": [0, 1]}))
ex.stage("later", ArtifactSet.from_product(cls=Later, params={"i": [0]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


class Calls:
    """The Slurm commands run since the last ``take()``, from the wrappers' log."""

    def __init__(self, log: Path) -> None:
        self.log, self.seen = log, 0

    def take(self) -> list[list[str]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        new, self.seen = lines[self.seen:], len(lines)
        return [line.split() for line in new if line.split()[0] in ("squeue", "sacct")]


def _job_arg(argv: list[str]) -> str:
    return argv[argv.index("-j") + 1]


def test_ended_jobs_are_not_asked_about_again(tmp_path: Path, slurm_cluster: object) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    wrapped, log = wrap_commands(tmp_path)
    env = {**wrapped, "OUT": str(tmp_path / "out"), "PROJECT": f"p{uuid.uuid4().hex[:8]}"}
    calls = Calls(log)
    try:
        assert run_cli(script, "launch", env=env).returncode == 0
        wait_until_idle(f"{env['PROJECT']}.quick")
        store = Store(Path(os.environ["EXPERIMENTS_HOME"]), env["PROJECT"])
        quick, later = (str(store.records(stage)[0].job_id) for stage in ("quick", "later"))
        calls.take()

        # quick ended (not recorded yet), later pending: sacct only about quick
        assert run_cli(script, "status", env=env).returncode == 3
        seen = calls.take()
        assert [c[0] for c in seen] == ["squeue", "sacct"]
        assert set(_job_arg(seen[0]).split(",")) == {quick, later}
        assert _job_arg(seen[1]) == quick

        # quick's ends are recorded: only later is asked, and only squeue (it is live)
        res = run_cli(script, "status", env=env)
        assert res.returncode == 3 and "built" in res.stdout
        seen = calls.take()
        assert [(c[0], _job_arg(c)) for c in seen] == [("squeue", later)]

        # later ends (cancelled): squeue no longer shows it live, so sacct is asked once
        subprocess.run(["scancel", later], check=True, timeout=30)
        _wait_not_live(env["PROJECT"])
        calls.take()
        assert run_cli(script, "status", env=env).returncode == 1
        seen = calls.take()
        assert [(c[0], _job_arg(c)) for c in seen] == [("squeue", later), ("sacct", later)]
        assert "cancelled" in run_cli(script, "status", env=env).stdout
        # that everything ended and recorded costs no query at all: test_polling_fake.py
    finally:
        cancel_all(env["PROJECT"])


def _wait_not_live(name: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while any("PENDING" in r or "RUNNING" in r for r in my_jobs(name)):
        assert time.monotonic() < deadline, my_jobs(name)
        time.sleep(0.5)
