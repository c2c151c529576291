"""The relay's command line and batch script (pure): from the snapshot, with the same root."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from experiments.errors import ExperimentsError, SubmissionError
from experiments.launching import relay
from experiments.launching.relay import (
    RELAY_ENV,
    REQUEUED_EXIT,
    RelayPlan,
    at_submit_limit,
    is_relay,
    launch_options,
    limit_reason,
    relay_plan,
    relay_script,
    requeue_if_busy,
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


def test_the_script_marks_the_relay_built_only_when_its_launch_succeeded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "RELAY_RETRY_S", 0)
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


def _attempts(tmp_path: Path, exits: list[int]) -> tuple[int, int, bool]:
    """Run a relay script whose launch exits with ``exits`` in turn (the last one from then
    on): (the script's exit code, how many times the launch ran, whether it left the done
    marker)."""
    count, done = tmp_path / "count", tmp_path / "root/.relays/r/.done"
    count.write_text("")
    done.unlink(missing_ok=True)
    codes = " ".join(map(str, exits))
    launch = (f"n=$(wc -l < {count}); echo x >> {count}; set -- {codes}; "
              f"shift $(( n < $# ? n : $# - 1 )); exit $1")
    text = relay_script(RelayPlan(("bash", "-c", launch), str(tmp_path)), "p.s.x.relay",
                        str(tmp_path / "logs"), str(done), wave=3)
    assert "#SBATCH --requeue" in text and "#SBATCH --open-mode=append" in text
    assert f"export {RELAY_ENV}=1 EXPERIMENTS_RELAY_WAVE=3" in text
    ran = subprocess.run(["bash", "-c", text], capture_output=True, text=True, check=False)
    return ran.returncode, len(count.read_text().split()), done.exists()


def test_a_relay_whose_launch_was_killed_or_failed_runs_it_again_three_times_at_most(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "RELAY_RETRY_S", 0)
    assert _attempts(tmp_path, [137, 0]) == (0, 2, True)  # SIGKILLed, then went on
    assert _attempts(tmp_path, [4, 1, 137]) == (137, 3, False)  # never more than three
    assert _attempts(tmp_path, [2]) == (2, 1, False)  # a usage error is not retried
    assert _attempts(tmp_path, [REQUEUED_EXIT]) == (REQUEUED_EXIT, 1, False)  # queued again


# What sbatch of Slurm 22.05 prints when the QOS's MaxSubmitJobsPerUser is reached (seen on
# the policed test cluster), as the Slurm backend's refusal carries it.
QOS_REFUSAL = ("Slurm refused job p.s.ab.t0g0c0: sbatch: error: QOSMaxSubmitJobPerUserLimit | "
               "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy "
               "(job submit limit, user's size and/or time limits)")


def test_refusals_at_the_submit_limit_are_told_from_any_other() -> None:
    assert at_submit_limit(SubmissionError(QOS_REFUSAL))
    assert limit_reason(SubmissionError(QOS_REFUSAL)) == "QOSMaxSubmitJobPerUserLimit"
    for reason in ("AssocMaxSubmitJobLimit", "AssocGrpSubmitJobsLimit", "QOSGrpSubmitJobsLimit"):
        assert at_submit_limit(SubmissionError(f"sbatch: error: {reason}"))
    for other in ("sbatch: error: QOSMaxWallDurationPerJobLimit",  # never fits: no wave helps
                  "sbatch: error: Batch job submission failed: Invalid partition name specified",
                  "Slurm temporarily unable to accept job, sleeping and retrying"):
        assert not at_submit_limit(SubmissionError(other))
    uncertain = SubmissionError(QOS_REFUSAL)
    uncertain.uncertain = True  # the job may exist: never a wave's business
    assert not at_submit_limit(uncertain)


def test_a_launch_by_hand_refused_by_the_lock_is_told_so_as_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    busy = ExperimentsError("another launch of project 'p' is running")
    monkeypatch.delenv(RELAY_ENV, raising=False)
    assert requeue_if_busy(object(), busy) is busy
    monkeypatch.setenv(RELAY_ENV, "1")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "812")
    assert requeue_if_busy(object(), busy) is busy  # a backend that cannot requeue it
