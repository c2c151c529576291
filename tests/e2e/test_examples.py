"""The shipped examples run: the multistage demo with --local, the OLMo grid as a drylaunch."""

from __future__ import annotations

import json
import os
from pathlib import Path

from experiments.config import settings as cfg
from tests.support.cli import run_cli
from tests.support.experiments import done_markers


def _pretend_gpus() -> None:
    """The demo asks for 4 GPUs and 8 CPUs per pretraining: let this machine pretend to have
    them (an artifact that can never fit locally is refused before anything runs)."""
    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    config = {**cfg.DEFAULT_CONFIG, "local": {"cpus": 8, "gpus": 4}}
    (home / "config.json").write_text(json.dumps(config))


def test_multistage_demo_runs_locally_and_twice_builds_nothing(repo_root: Path,
                                                              tmp_path: Path) -> None:
    script = repo_root / "examples" / "multistage_training.py"
    out = tmp_path / "outputs"
    _pretend_gpus()
    res = run_cli(script, "launch", "--local", "--artifact-path", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(done_markers(out)) == 6 + 12
    tuned = next(out.glob("FinetunedModel/*/model.json")).read_text()
    assert '"dataset"' in tuned and '"loss"' in tuned
    again = run_cli(script, "launch", "--local", "--artifact-path", str(out))
    assert again.returncode == 0 and "Nothing to launch" in again.stdout


def test_olmo_grid_drylaunch(repo_root: Path, tmp_path: Path) -> None:
    script = repo_root / "examples" / "olmo" / "gridsearch.py"
    res = run_cli(script, "drylaunch", "--artifact-path", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    assert "1440 artifact(s) to build" in res.stdout
    assert "--gpus=A100:8" in res.stdout and "--gpus=A100:1" in res.stdout
    assert "%64" in res.stdout  # the evaluation arrays are throttled
    assert not (tmp_path / "o").exists()
