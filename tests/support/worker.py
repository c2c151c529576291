"""Running the worker as a task does (``python -m experiments.worker SPEC INDEX``) on specs
written by the test, and reading what it left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import Task
from experiments.model.task import step_to_dict
from experiments.worker import specs

REL = "Model/x=1-0123456789ab"
WORKER_TIMEOUT_S = 30


@dataclass
class Spec:
    """A written spec: its folder, the artifact root and the code folder it names."""

    dir: str
    root: Path
    code: Path

    def art(self, relpath: str = REL) -> Path:
        """The folder of the artifact at ``relpath``."""
        return self.root / relpath


def worker_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Slurm job's variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLURM_") and k != "EXPERIMENTS_JOB"}
    env.update(extra)
    return env


def builder(tmp_path: Path, relpath: str = REL) -> Task:
    """A task builder for one artifact under ``tmp_path/artifacts``."""
    return Task(artifact_path=str(tmp_path / "artifacts"), code_path=str(tmp_path / "code"),
                relpath=relpath)


def write_spec(tmp_path: Path, builders: Sequence[Task], deps: Sequence[str] = ()) -> Spec:
    """A spec of one task per builder (task i builds ``builders[i]``), in ``tmp_path/spec``."""
    root, code = tmp_path / "artifacts", tmp_path / "code"
    code.mkdir(exist_ok=True)
    header = specs.SpecHeader("proj", "st", "job", str(root), str(code), umask=0o022)
    tasks = [{"id": f"id{i}", "relpath": b.relpath, "class": "Model", "params": {"x": i},
              "deps": list(deps), "steps": [step_to_dict(s) for s in b.steps]}
             for i, b in enumerate(builders)]
    spec_dir = str(tmp_path / "spec")
    specs.write_spec(spec_dir, header, tasks)
    return Spec(spec_dir, root, code)


def wait_for(path: Path, timeout_s: float = 15.0) -> None:
    """Return once ``path`` exists; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def status_of(spec: Spec, relpath: str = REL) -> dict[str, Any]:
    """The worker's ``.status.json`` of the artifact at ``relpath``."""
    return json.loads((spec.art(relpath) / ".status.json").read_text())  # type: ignore[no-any-return]


def kill(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=WORKER_TIMEOUT_S)


def run(spec: Spec, index: str | None = "0", **env: str) -> subprocess.CompletedProcess[str]:
    """Run the worker on task ``index`` of ``spec`` (None: from ``SLURM_ARRAY_TASK_ID``)."""
    argv = [sys.executable, "-m", "experiments.worker", spec.dir]
    if index is not None:
        argv.append(index)
    return subprocess.run(argv, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S,
                          env=worker_env(**env))
