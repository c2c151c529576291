"""The worker's side of Slurm (experiments/worker/slurm.py): who the task is, what it cannot
tell, and that no other module of the package runs Slurm's commands.

The commands themselves (requeue, cancelling dependents, asking about a lock's holder) run on
the real cluster in tests/e2e and tests/reliability.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from experiments.worker import slurm

REPO = Path(__file__).resolve().parents[2]
SLURM_ENV = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT",
             "SLURM_JOB_END_TIME")


@pytest.fixture(autouse=True)
def outside_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SLURM_ENV:
        monkeypatch.delenv(name, raising=False)


def test_outside_slurm_the_task_is_nobody() -> None:
    assert (slurm.job_id(), slurm.task_key(), slurm.restart_count()) == (None, None, 0)
    assert slurm.job_end_time() is None
    with pytest.raises(KeyError):
        slurm.array_index()


def test_an_array_task_is_named_by_its_array_job_and_index(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "913")
    assert slurm.task_key() == "913"  # a plain job
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "900")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "13")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert (slurm.task_key(), slurm.array_index(), slurm.restart_count()) == ("900_13", 13, 2)


def test_the_end_time_slurm_exports_is_read_without_asking(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setenv("SLURM_JOB_END_TIME", "1700000000")
    monkeypatch.setenv("SLURM_JOB_ID", "913")
    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue to ask
    assert slurm.job_end_time() == 1700000000.0


def test_a_holder_slurm_cannot_be_asked_about_is_unknown(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # squeue is not found
    said: list[str] = []
    assert slurm.job_live("913", said.append) is None  # cannot tell: the lock decides
    assert said and "cannot ask Slurm whether job 913 still runs" in said[0]
    assert slurm.job_live("pid 99", said.append) is None  # no Slurm job recorded
    assert slurm.requeue("913")  # not requeued: the reason is given (scontrol not found)


def test_only_the_slurm_folders_run_slurm_commands() -> None:
    """Slurm commands as argv words (``["squeue", ...]``) appear in the Slurm backend and the
    worker's Slurm module, nothing else (a message may still tell the user what to run)."""
    pattern = re.compile(r"[\"'](squeue|scancel|scontrol|sbatch|sacct|sacctmgr)[\"']")
    naming = {str(p.relative_to(REPO)) for p in (REPO / "experiments").rglob("*.py")
              if pattern.search(p.read_text(encoding="utf-8"))}
    assert naming and all(p.startswith("experiments/backends/slurm/") for p in
                          naming - {"experiments/worker/slurm.py"}), sorted(naming)
    assert "experiments/worker/slurm.py" in naming
