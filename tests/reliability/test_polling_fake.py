"""A project whose jobs have all ended, and whose ends are recorded, costs no scheduler query:
``status``, ``history``, ``wait`` and ``status --watch`` answer from the records. On FakeBackend
through the real CLI (in this process), counting the backend's queries.

Which queries are made while jobs are live (squeue for all, sacct only for the ended ones) is
Slurm's part: tests/reliability/test_polling_slurm.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, Executor, Task
from experiments.backends.fake import FakeBackend
from tests.support.cli import run_in_process
from tests.support.experiments import FakeExecutor


@dataclass(frozen=True)
class Quick(Artifact):
    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command("true")



def _cli(ex: Executor, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the experiment's command line here; (exit code, stdout and stderr)."""
    return run_in_process(ex, *argv, capsys=capsys)


def test_ended_and_recorded_jobs_are_not_asked_about_again(
        tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    ex = FakeExecutor(project="polling", artifact_path=str(tmp_path / "out"),
                      code_path=str(tmp_path))
    ex.stage("quick", ArtifactSet.from_product(cls=Quick, params={"i": [0, 1]}))
    ex.stage("later", ArtifactSet.from_product(cls=Quick, params={"i": [2]}))
    assert _cli(ex, capsys, "launch")[0] == 0
    quick, later = sorted(fake.jobs, key=int)
    fake.finish(quick)
    assert _cli(ex, capsys, "cancel", "later", "--yes")[0] == 0
    code, said = _cli(ex, capsys, "status")  # records every end
    assert code == 1 and "cancelled" in said, said
    asked = fake.calls["query"]
    for verb in (["status"], ["history"], ["wait"], ["status", "--watch"]):
        code, said = _cli(ex, capsys, *verb)
        assert code in (0, 1), (verb, said)
        assert fake.calls["query"] == asked, verb
    assert "cancelled" in _cli(ex, capsys, "status")[1]
