"""Checkpoints: the requirement keys, the worker's requeue after the signal (at most N times),
and the environment a command sees. The real time limit is tested in tests/e2e."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import Task
from experiments.backends.slurm.sbatch_options import slurm_options
from experiments.backends.slurm.script import render_script
from experiments.errors import DefinitionError
from experiments.model.task import step_to_dict
from experiments.resources import common_resources
from experiments.worker import specs

REL = "Model/x=1-0123456789ab"
# Signals its worker as Slurm would, then dies of the forwarded signal (exit 140: not built).
COMMAND = ('echo "attempt=$EXPERIMENTS_ATTEMPT dir=$EXPERIMENTS_CHECKPOINT_DIR"; '
           'kill -USR2 $PPID; sleep 5; exit 0')


def test_checkpoint_requirements_are_typed_and_never_sbatch_options() -> None:
    reqs = {"time": "1:00:00", "checkpoint_before": "5:00", "max_requeues": 2}
    res = common_resources(reqs, "A x", slurm_options(reqs, where="A x"))
    assert (res.checkpoint_before_s, res.checkpoint_signal, res.max_requeues) == (300, "USR2", 2)
    assert [o[0] for o in res.options] == ["time"]
    assert common_resources({"checkpoint_signal": "SIGURG"}, "A x").checkpoint_signal == "URG"
    for bad in ({"checkpoint_before": 0}, {"checkpoint_signal": "KILL"},
                {"max_requeues": -1}):
        with pytest.raises(DefinitionError):
            common_resources(bad, "A x")
    with pytest.raises(DefinitionError, match="checkpoint_before"):
        slurm_options({"signal": "B:USR2@60"}, where="A x")


def test_signal_directive_only_when_asked() -> None:
    args = dict(job_name="p.s.x.t0g0c0", options=[], array="0-1", output="/l/%A_%a.log",
                spec_dir="/s", python="/usr/bin/python3")
    assert "--signal" not in render_script(**args)  # type: ignore[arg-type]
    assert "#SBATCH --signal=B:USR2@300\n" in render_script(**args, signal="B:USR2@300")  # type: ignore[arg-type]
    with pytest.raises(DefinitionError):
        render_script(**args, signal="USR2@300; rm -rf /")  # type: ignore[arg-type]


def _spec(tmp_path: Path, max_requeues: int = 1, requeue: bool = True) -> tuple[str, Path]:
    root, code = tmp_path / "artifacts", tmp_path / "code"
    code.mkdir(exist_ok=True)
    builder = Task(artifact_path=str(root), code_path=str(code), relpath=REL)
    builder.run_command(COMMAND)
    header = specs.SpecHeader("p", "s", "j", str(root), str(code), umask=0o022,
                              checkpoint=specs.Checkpoint("USR2", max_requeues, requeue))
    task = {"id": "id0", "relpath": REL, "class": "Model", "params": {"x": 1}, "deps": [],
            "steps": [step_to_dict(s) for s in builder.steps]}
    specs.write_spec(str(tmp_path / "spec"), header, [task])
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> {tmp_path}/scontrol.calls\n')
    (bindir / "scontrol").chmod(0o755)
    return str(tmp_path / "spec"), root


def _worker(tmp_path: Path, spec: str, restarts: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(SLURM_JOB_ID="77", SLURM_RESTART_COUNT=str(restarts),
               PATH=f"{tmp_path / 'bin'}:{env['PATH']}")
    return subprocess.run([sys.executable, "-m", "experiments.worker", spec, "0"],
                          capture_output=True, text=True, timeout=60, env=env)


def _state(root: Path) -> dict[str, object]:
    return json.loads((root / REL / ".status.json").read_text())  # type: ignore[no-any-return]


def test_after_the_signal_the_worker_requeues_then_gives_up_after_max(tmp_path: Path) -> None:
    spec, root = _spec(tmp_path, max_requeues=1)
    first = _worker(tmp_path, spec, restarts=0)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"attempt=1 dir={root / REL / '.checkpoint'}" in first.stdout
    assert (root / REL / ".checkpoint").is_dir() and not (root / REL / ".done").exists()
    assert _state(root)["state"] == "requeued"
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 77\n"
    second = _worker(tmp_path, spec, restarts=1)  # the requeued run, signalled again
    assert second.returncode == 1 and "attempt=2" in second.stdout
    assert "already requeued 1 time(s)" in second.stdout and _state(root)["state"] == "failed"
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 77\n"  # not again


def test_no_requeue_when_requeue_is_off(tmp_path: Path) -> None:
    spec, root = _spec(tmp_path, requeue=False)
    assert _worker(tmp_path, spec, restarts=0).returncode == 1
    assert _state(root)["state"] == "failed" and not (tmp_path / "scontrol.calls").exists()
