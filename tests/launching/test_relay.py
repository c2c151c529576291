"""The relay's command line and batch script (pure): from the snapshot, with the same root."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from experiments.launching.relay import (
    RelayPlan,
    is_relay,
    launch_options,
    relay_plan,
    relay_script,
)
from experiments.tracking.store import JobRecord


def _ctx(tmp_path: Path, source: str, snapshot: Any = None) -> Any:
    experiment = SimpleNamespace(source_file=source)
    return SimpleNamespace(experiment=experiment, code_path=str(tmp_path / "code"),
                           snapshot=snapshot, python="/usr/bin/python3",
                           artifact_path=str(tmp_path / "root"))


def test_a_relay_runs_the_experiment_file_in_the_snapshot_with_the_launchs_root(
        tmp_path: Path) -> None:
    snap = SimpleNamespace(path=str(tmp_path / "snap"))
    plan = relay_plan(_ctx(tmp_path, str(tmp_path / "code/sub/exp.py"), snap), ["sweep"])
    assert plan.argv == ("/usr/bin/python3", str(tmp_path / "snap/sub/exp.py"), "launch",
                         "sweep", "--artifact-path", str(tmp_path / "root"),
                         "--code-path", str(tmp_path / "snap"))
    assert plan.cwd == str(tmp_path / "snap") and not plan.problem


def test_no_relay_when_the_snapshot_cannot_hold_the_experiment_file(tmp_path: Path) -> None:
    snap = SimpleNamespace(path=str(tmp_path / "snap"))
    assert "outside the code folder" in relay_plan(
        _ctx(tmp_path, "/elsewhere/exp.py", snap), None).problem
    assert "not known" in relay_plan(_ctx(tmp_path, "", snap), None).problem


def test_the_script_marks_the_relay_built_only_when_its_launch_succeeded(tmp_path: Path
                                                                          ) -> None:
    done = tmp_path / "root/.relays/r/.done"
    for code, built in ((3, False), (0, True)):
        plan = RelayPlan(("sh", "-c", f"exit {code}"), str(tmp_path))
        text = relay_script(plan, "p.s.x.relay", str(tmp_path / "logs"), str(done))
        assert "#SBATCH --array=0" in text and shlex.quote(f"{tmp_path}/logs/%A_%a.log") in text
        ran = subprocess.run(["bash", "-c", text], capture_output=True, text=True, check=False)
        assert ran.returncode == code and done.exists() is built, ran.stderr


def test_relays_are_told_apart_by_name() -> None:
    assert is_relay(JobRecord("p.sweep.ab12.relay", "slurm", "sweep", 0, []))
    assert not is_relay(JobRecord("p.sweep.ab12.t0g0c0", "slurm", "sweep", 0, []))


def test_relays_repeat_the_launchs_options_and_its_set_values_read_back_exactly() -> None:
    from experiments.plan.overrides import Overrides, parse_overrides

    sets = Overrides({"time": "4:00:00", "gpus": 2, "mem": "2"}, {"sweep": {"exclusive": True}})
    options = launch_options(True, 5, sets)
    assert options[:2] == ["--with-deps", "--max-running=5"]
    texts = [o.removeprefix("--set=") for o in options[2:]]
    assert parse_overrides(texts, ["sweep"]) == sets  # "2" stays a string, True a bool
    assert launch_options(False, None, Overrides()) == []
