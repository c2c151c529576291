"""The seed README's quick-start and multi-stage code, pasted unchanged, run with --local."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from experiments.config import settings as cfg
from tests.support.cli import run_cli
from tests.support.experiments import done_markers
from tests.support.readme_seed import FINETUNE, SEED, TRAIN


@pytest.fixture
def seed_project(tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    script = tmp_path / "my_experiment.py"
    script.write_text(SEED)
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(TRAIN)
    (code / "finetune.py").write_text(FINETUNE)
    out = tmp_path / "outputs"
    # The seed asks for 4 A100s and 8 CPUs per pretraining: this machine pretends to have them
    # (an artifact that can never fit locally is refused before anything runs).
    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    config = {**cfg.DEFAULT_CONFIG, "local": {"cpus": 8, "gpus": 4}}
    (home / "config.json").write_text(json.dumps(config))
    args = ["--local", "--artifact-path", str(out), "--code-path", str(code)]
    return script, args, {"RUNS_LOG": str(tmp_path / "runs.log")}


def test_seed_quickstart_builds_every_artifact_once(seed_project: tuple[Path, list[str],
                                                                         dict[str, str]]
                                                    ) -> None:
    script, args, env = seed_project
    out = Path(args[2])
    first = run_cli(script, "launch", *args, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(done_markers(out)) == 12 + 24
    runs = Path(env["RUNS_LOG"]).read_text().splitlines()
    assert sum(r.startswith("train ") for r in runs) == 12
    assert sum(r.startswith("finetune ") for r in runs) == 24
    assert len(set(runs)) == len(runs) == 36  # each artifact built exactly once
    # config.yaml was written where the seed asked, and the metadata says what the folder is
    model = next(out.glob("PretrainedModel/*"))
    assert "lr:" in (model / "config.yaml").read_text()
    meta = json.loads((model / ".artifact.json").read_text())
    assert meta["class"] == "PretrainedModel" and set(meta["params"]) == {"learning_rate",
                                                                          "num_epochs"}

    second = run_cli(script, "launch", *args, env=env)
    assert second.returncode == 0, second.stderr
    assert "Nothing to launch" in second.stdout
    assert len(Path(env["RUNS_LOG"]).read_text().splitlines()) == 36  # nothing ran again


def test_seed_drylaunch_shows_tiers_and_records_nothing(
        seed_project: tuple[Path, list[str], dict[str, str]], experiments_home: Path) -> None:
    script, args, env = seed_project
    dry = run_cli(script, "drylaunch", *args[1:], env=env)  # default backend: Slurm options
    assert dry.returncode == 0, dry.stderr
    assert "Tier 0" in dry.stdout and "Tier 1" in dry.stdout
    assert "pretrain: 12 task(s)" in dry.stdout and "finetune: 24 task(s)" in dry.stdout
    assert "--gpus=A100:4" in dry.stdout and "--cpus-per-task=8" in dry.stdout
    assert "--requeue" in dry.stdout  # the gpu partition default from config.json
    assert not list((experiments_home / "projects").rglob("jobs.json"))
    assert not Path(args[2]).exists()


def test_launch_only_finetune_needs_pretrain(
        seed_project: tuple[Path, list[str], dict[str, str]]) -> None:
    script, args, env = seed_project
    res = run_cli(script, "launch", "finetune", *args, env=env)
    assert res.returncode == 2  # the command line must name pretrain too (or --with-deps)
    assert "stage 'pretrain'" in res.stderr and "--with-deps" in res.stderr
    assert "Traceback" not in res.stderr
    # one line: the error (beside the test cluster, SLURM_CONF also brings --local's
    # login-node warning, which has its own tests)
    lines = [ln for ln in res.stderr.strip().splitlines()
             if not ln.startswith("warning: running on this machine, which Slurm serves")]
    assert len(lines) == 1, res.stderr
    assert run_cli(script, "launch", "pretrain", *args, env=env).returncode == 0
    res = run_cli(script, "launch", "finetune", *args, env=env)
    assert res.returncode == 0, res.stderr
    assert len(done_markers(Path(args[2]))) == 36
