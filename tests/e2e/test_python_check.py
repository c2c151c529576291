"""A configured ``python`` that does not exist (issue 23, item 7): ``drylaunch --validate``
says so for ``--local``, and on Slurm the batch script ends the task with that reason, which
``status`` shows instead of "the scheduler reports the task failed (time limit, memory…)"."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, wait_until_idle

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class P(Artifact):
    i: int
    def get_requirements(self):
        return {"partition": "cpu", "time": "5:00"}
    def construct(self, builder: Task):
        builder.run_command("true")

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("p", ArtifactSet.from_product(cls=P, params={"i": [0, 1]}))
if __name__ == "__main__":
    ex.auto_cli()
'''
MISSING = "/nonexistent/bin/python3"


def _setup(tmp_path: Path, python: str) -> tuple[Path, dict[str, str]]:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    (tmp_path / "out").mkdir()
    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps({"python": python}))
    return script, {"OUT": str(tmp_path / "out"), "PROJECT": f"py{uuid.uuid4().hex[:8]}"}


@pytest.mark.parametrize("python, problem", [
    (MISSING, f"python {MISSING} not found on this machine"),
    ("NOT_EXECUTABLE", "is not executable on this machine"),
    (sys.executable, None)])
def test_drylaunch_validate_checks_the_python_locally(tmp_path: Path, python: str,
                                                      problem: str | None) -> None:
    if python == "NOT_EXECUTABLE":
        python = str(tmp_path / "python-not-executable")
        Path(python).write_text("#!/bin/sh\n")
        Path(python).chmod(0o644)
    script, env = _setup(tmp_path, python)
    res = run_cli(script, "drylaunch", "--local", "--validate", env=env)
    text = res.stdout + res.stderr
    if problem is None:
        assert res.returncode == 0, text
        assert "python" not in text.lower().replace("python3", "")  # no python problem
    else:
        assert res.returncode == 1, text
        assert problem in " ".join(text.split()), text


@pytest.mark.slurm
def test_status_says_python_not_found_on_the_node(tmp_path: Path, slurm_cluster: object) -> None:
    script, env = _setup(tmp_path, MISSING)
    try:
        res = run_cli(script, "launch", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        wait_until_idle(f"{env['PROJECT']}.")
        status = run_cli(script, "status", "--json", env=env)
        text = " ".join(status.stdout.split())
        assert f"python {MISSING} not found on" in text, status.stdout + status.stderr
        assert "the scheduler reports the task failed" not in text
        history = run_cli(script, "history", "--json", env=env)
        assert f"python {MISSING} not found on" in " ".join(history.stdout.split())
    finally:
        cancel_all(env["PROJECT"])
