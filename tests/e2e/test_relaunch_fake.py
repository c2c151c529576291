"""A launch run again while its jobs are queued submits nothing, ``drylaunch`` says they are
queued, and ``cancel`` clears them in one call: on FakeBackend through the real CLI (in this
process), with the two-stage grid of tests/e2e/test_slurm_e2e.py.

That the Slurm backend cancels every job with one scancel is
tests/backends/slurm/test_backend_stubbed.py; the grid itself runs on the real cluster in
test_slurm_e2e.py.
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
class Pre(Artifact):
    lr: float

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "gpu", "gpus": "A100:4", "cpus": 8, "time": "10:00"}

    def construct(self, builder: Task) -> None:
        builder.run_command(f"echo trained {self.lr}")


@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre
    data: str

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "cpu", "time": "10:00"}

    def construct(self, builder: Task) -> None:
        builder.run_command("echo tuned")



def _cli(ex: Executor, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the experiment's command line here; (exit code, stdout and stderr)."""
    return run_in_process(ex, *argv, capsys=capsys)


def test_relaunch_while_queued_submits_nothing_and_cancel_clears(
        tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    ex = FakeExecutor(project="queued", artifact_path=str(tmp_path / "out"),
                      code_path=str(tmp_path))
    pre = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2, 0.3]})
    ex.stage("pretrain", pre)
    ex.stage("finetune", ArtifactSet.join_product(pre, ["a", "b"]).map(
        lambda m, d: Fine(base=m, data=d)))
    code, out = _cli(ex, capsys, "launch")
    assert code == 0 and "Submitted 2 job(s) for 9 artifact(s)" in out, out
    code, again = _cli(ex, capsys, "launch")
    assert code == 0 and "Nothing to launch" in again, again
    assert fake.calls["launch"] == 1 and len(fake.jobs) == 2
    code, dry = _cli(ex, capsys, "drylaunch")
    assert code == 0 and "9 already queued/running" in dry, dry
    code, cancelled = _cli(ex, capsys, "cancel", "--yes")
    assert code == 0 and "Cancelled 2 job(s)" in cancelled, cancelled
    assert fake.calls["cancel"] == 1  # one call for every live job
    assert not [t for job in fake.jobs.values() for t in job.tasks if t.state.live]
    code, history = _cli(ex, capsys, "history")
    assert "cancelled" in history and "built" not in history, history
