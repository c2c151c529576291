"""Setup lines: config validation, the batch script, and the local worker running them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from experiments.backends.slurm.script import render_script
from experiments.config import settings as config
from experiments.errors import ConfigError, DefinitionError
from experiments.executor import LocalExecutor

SCRIPT_ARGS = dict(job_name="p.s.x.t0g0c0", options=[("time", "10")], array="0-1",
                   output="/logs/%A_%a.log", spec_dir="/spec", python="/usr/bin/python3")


def _config(home: Path, data: dict[str, object]) -> config.Config:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps(data), encoding="utf-8")
    return config.load()


def test_global_then_partition_lines_and_they_are_not_requirements(
        exp_home: Path) -> None:
    cfg = _config(exp_home, {
        "setup": ["module load base"],
        "default_slurm_args": {"gpu": {"time": "1:00:00", "setup": ["module load cuda"]}}})
    assert cfg.setup_for("gpu") == ("module load base", "module load cuda")
    assert cfg.setup_for("cpu") == ("module load base",)
    # the gpu keys the file leaves out come from the built-in defaults (config_layers)
    assert cfg.resolve_requirements({"partition": "gpu"}) == {"partition": "gpu",
                                                              "time": "1:00:00", "cpus": 8,
                                                              "requeue": True}


@pytest.mark.parametrize("data", [{"setup": "module load x"}, {"setup": ["a\nb"]},
                                  {"default_slurm_args": {"gpu": {"setup": [3]}}}])
def test_bad_setup_is_a_config_error(exp_home: Path, data: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="setup"):
        _config(exp_home, data)


def test_executor_setup_is_checked() -> None:
    with pytest.raises(DefinitionError, match="setup"):
        LocalExecutor(project="p", setup="source venv/bin/activate")  # type: ignore[arg-type]


def test_batch_script_runs_setup_lines_before_the_worker_and_checks_each() -> None:
    plain = render_script(**SCRIPT_ARGS)  # type: ignore[arg-type]
    assert "set +u" not in plain
    text = render_script(**SCRIPT_ARGS, setup=["module load cuda", "source v/bin/activate"])  # type: ignore[arg-type]
    lines = text.splitlines()
    at = lines.index("module load cuda")
    assert lines[at - 1] == "set +u" and lines[at + 2] == "source v/bin/activate"
    assert "setup line 1 failed" in lines[at + 1] and "exit 1" in lines[at + 1]
    assert lines.index("set -u", at) < next(i for i, x in enumerate(lines) if "exec" in x)
    with pytest.raises(DefinitionError):
        render_script(**SCRIPT_ARGS, setup=["a\nb"])  # type: ignore[arg-type]
    # a failing line stops the script and names the line
    run = subprocess.run(["bash", "-c", "\n".join(text.splitlines()[:lines.index("set -u", at)])
                          .replace("source v/bin/activate", "false")
                          .replace("module load cuda", "true")],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and "setup line 2 failed: false" in run.stderr


EXP = '''
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, Task

@dataclass(frozen=True)
class S(Artifact):
    x: int
    def get_requirements(self):
        return {{"partition": "cpu"}}
    def construct(self, builder: Task):
        builder.run_command('test "$A$B$C" = 123')
        builder.run_command('test "$A$B$C" = 123 && echo checked twice')

executor = LocalExecutor(project="setup", artifact_path={out!r}, code_path={code!r},
                         setup=["export C=3"])
executor.stage("s", ArtifactSet.from_product(cls=S, params={{"x": [0]}}))
if __name__ == "__main__":
    executor.auto_cli()
'''


def test_local_runs_setup_before_each_command(tmp_path: Path, exp_home: Path) -> None:
    _config(exp_home, {"setup": ["export A=1"],
                               "default_slurm_args": {"cpu": {"setup": ["export B=2"]}}})
    script = tmp_path / "exp.py"
    script.write_text(textwrap.dedent(EXP.format(out=str(tmp_path / "a"), code=str(tmp_path))))
    res = subprocess.run([sys.executable, str(script), "launch"], capture_output=True,
                         text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(list((tmp_path / "a").rglob(".done"))) == 1
    _config(exp_home, {"setup": ["export A=1", "false"]})
    (tmp_path / "exp.py").write_text(script.read_text().replace('"x": [0]', '"x": [1]'))
    res = subprocess.run([sys.executable, str(script), "launch"], capture_output=True,
                         text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    status = json.loads(next((tmp_path / "a").rglob("x=1*/.status.json")).read_text())
    assert status["error"] == "command exited with code 1: test \"$A$B$C\" = 123"
