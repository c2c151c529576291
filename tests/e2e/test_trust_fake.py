"""Tracking per artifact root through the real CLI (in this process), on FakeBackend and the
local backend: queued jobs of one root neither hold nor fail another root, and ``--local``
runs of a project do not mask its scheduler runs (issue 10).

The logic is ours (tracking/ends.py, status, history); tests/e2e/test_trust.py keeps on the
real cluster what Slurm decides: a failed task that Slurm calls COMPLETED, and a real time limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, Executor, Task
from experiments.backends.fake import FakeBackend
from experiments.session import Session
from tests.support.experiments import FakeExecutor


@dataclass(frozen=True)
class Job(Artifact):
    x: int

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "cpu", "time": "10:00"}

    def construct(self, builder: Task) -> None:
        fail = str(self.x) == os.environ.get("FAIL_X", "")
        builder.run_command("exit 7" if fail else f"echo built {self.x}")



@pytest.fixture
def ex(tmp_path: Path) -> FakeExecutor:
    executor = FakeExecutor(project="trust", artifact_path=str(tmp_path / "A"),
                            code_path=str(tmp_path))
    executor.stage("jobs", ArtifactSet.from_product(cls=Job, params={"x": [0, 1]}))
    return executor


def _ok(ex: Executor, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The output of a command that worked (``status``: 0, 1 or 3, its documented codes)."""
    with pytest.raises(SystemExit) as ended:
        ex.auto_cli(list(argv))
    out = capsys.readouterr()
    allowed = (0, 1, 3) if "status" in argv else (0,)
    assert (ended.value.code or 0) in allowed, out.out + out.err
    return out.out


def done_markers(root: Path) -> list[Path]:
    return sorted(root.rglob(".done"))


def _finish_all(fake: FakeBackend) -> None:
    for job_id in list(fake.jobs):
        fake.finish(job_id)


def test_a_queued_root_does_not_hold_another_root(
        ex: FakeExecutor, fake: FakeBackend, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _ok(ex, capsys, "launch")
    other = str(tmp_path / "B")
    second = _ok(ex, capsys, "--artifact-path", other, "launch")
    assert "Nothing to launch" not in second and "Submitted 1 job(s)" in second
    assert fake.calls["launch"] == 2 and len(fake.jobs) == 2
    records = Session.open(ex, backend="fake", instances={"fake": fake}).records()
    assert [r.artifact_path for r in records] == [ex.artifact_path, other]
    _finish_all(fake)
    assert len(done_markers(Path(ex.artifact_path))) == 2
    assert len(done_markers(Path(other))) == 2
    third = _ok(ex, capsys, "--artifact-path", str(tmp_path / "C"), "status")
    assert "failed" not in third and "not started" in third  # A's ended jobs say nothing of C
    assert f"Root {tmp_path / 'C'}" in " ".join(third.split())
    history = " ".join(_ok(ex, capsys, "history").split())
    assert "root" in history and ex.artifact_path in history and other in history


def test_local_and_scheduler_runs_of_one_project_do_not_mask_each_other(
        ex: FakeExecutor, fake: FakeBackend, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _ok(ex, capsys, "launch")  # queued on the scheduler, into A
    smoke = tmp_path / "smoke"
    local = _ok(ex, capsys, "--local", "--artifact-path", str(smoke), "launch")
    assert "Built all 2" in local and len(done_markers(smoke)) == 2
    broken = tmp_path / "broken"
    monkeypatch.setenv("FAIL_X", "0")
    with pytest.raises(SystemExit) as failed:
        ex.auto_cli(["--local", "--artifact-path", str(broken), "launch"])
    assert failed.value.code == 1 and "Built 1 of 2" in capsys.readouterr().out
    monkeypatch.delenv("FAIL_X")
    status = _ok(ex, capsys, "status")  # the scheduler's root A: nothing failed here
    assert "failed" not in status and "queued" in status
    _finish_all(fake)
    assert len(done_markers(Path(ex.artifact_path))) == 2
    assert "failed" not in _ok(ex, capsys, "status")
    smoke_status = " ".join(_ok(ex, capsys, "--local", "--artifact-path", str(broken),
                                "status").split())
    assert "failed" in smoke_status and "command exited with code 7" in smoke_status
