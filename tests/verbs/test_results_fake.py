"""``table`` over a scheduler's jobs, on FakeBackend through the real CLI (in this process):
states come from one query for every job together, and none at all when the rows asked for
are built (their done markers say so without the scheduler).

The states are ours (tracking/status.py); the dependency-failed cascade on a real cluster is
tested in tests/e2e (test_slurm_e2e.py, test_dependency_precision.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, Executor, Task
from experiments.backends.fake import FakeBackend, WorkerState  # the worker's, as the fake has it
from tests.support.experiments import FakeExecutor


@dataclass(frozen=True)
class Pre(Artifact):
    lr: float

    def construct(self, builder: Task) -> None:
        builder.run_command(f"echo trained {self.lr}")


@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre
    data: str

    def construct(self, builder: Task) -> None:
        builder.run_command("echo tuned")



def _rows(ex: Executor, capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    """``table ... --format json`` run here, parsed."""
    with pytest.raises(SystemExit) as ended:
        ex.auto_cli(["table", *argv, "--format", "json"])
    said = capsys.readouterr()
    assert not ended.value.code, said.out + said.err
    rows: list[dict[str, object]] = json.loads(said.out)["rows"]
    return rows


def test_table_states_come_from_one_query_and_none_when_built(
        tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    ex = FakeExecutor(project="table", artifact_path=str(tmp_path / "out"),
                      code_path=str(tmp_path))
    pre = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2, 0.3]})
    ex.stage("pretrain", pre)
    ex.stage("finetune", ArtifactSet.join_product(pre, ["a", "b"]).map(
        lambda m, d: Fine(base=m, data=d)))
    with pytest.raises(SystemExit):
        ex.auto_cli(["launch"])
    capsys.readouterr()
    pre_job, fine_job = sorted(fake.jobs, key=int)
    lr_of = {a.relpath: a.lr for a in ex.stages["pretrain"]}
    lr_of.update({a.relpath: a.base.lr for a in ex.stages["finetune"]})
    for job_id in (pre_job, fine_job):
        for i, relpath in enumerate(fake.jobs[job_id].relpaths):
            if lr_of[relpath] != 0.2:
                fake.finish(job_id, i)
            elif job_id == pre_job:
                fake.fail(job_id, i, error="exit 7")
            else:
                fake.fail(job_id, i, error="dependency failed",
                          worker_state=WorkerState.DEPENDENCY_FAILED)
    before = fake.calls["query"]
    rows = _rows(ex, capsys, "finetune")
    assert sorted((r["base.lr"], r["data"], r["state"]) for r in rows) == [
        (0.1, "a", "built"), (0.1, "b", "built"), (0.2, "a", "dep-failed"),
        (0.2, "b", "dep-failed"), (0.3, "a", "built"), (0.3, "b", "built")]
    assert fake.calls["query"] - before == 1  # every job together
    rows = _rows(ex, capsys, "pretrain", "--where", "lr=0.1")
    assert [r["state"] for r in rows] == ["built"]
    assert fake.calls["query"] - before == 1  # built rows need no scheduler
