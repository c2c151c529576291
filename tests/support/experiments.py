"""Experiments the tests share: a one-stage grid on FakeBackend, the standard two- and
three-tier experiment files for the Slurm scenarios, and the README's grid, already built.

Nothing here runs anything; tests and fixtures build on these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from experiments import Artifact, ArtifactSet, Executor, SlurmExecutor, Task, paths


@dataclass(frozen=True)
class Node(Artifact):
    """One artifact of a flat grid: runs ``true``."""

    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class Up(Artifact):
    """The upstream artifact of the standard two-tier pair."""

    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command(f"echo {self.i}")


@dataclass(frozen=True)
class Down(Artifact):
    """The artifact that depends on one :class:`Up`."""

    up: Up

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


class FakeExecutor(Executor):
    """An executor whose jobs go to the "fake" backend (the ``fake`` fixture of conftest.py)."""

    default_backend = "fake"


def fake_executor(tmp_path: Path, project: str, n: int = 3, stage: str = "nodes") -> FakeExecutor:
    """One stage of ``n`` :class:`Node` artifacts under ``tmp_path``, on FakeBackend."""
    executor = FakeExecutor(project=project, artifact_path=str(tmp_path / "a"),
                            code_path=str(tmp_path))
    executor.stage(stage, ArtifactSet.from_product(cls=Node, params={"i": list(range(n))}))
    return executor


def done_markers(root: Path) -> list[Path]:
    """Every ``.done`` marker under ``root``, sorted: the artifacts built there."""
    return sorted(root.rglob(".done"))


# Two tiers on Slurm, pretrain (gpu) -> finetune (cpu): N_PRE x 2 artifacts. The environment
# says where (OUT), which project (PROJECT) and what goes wrong (FAIL_LR, SLEEP_S).
TWO_TIERS = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

FAIL = os.environ.get("FAIL_LR", "")
SLEEP = os.environ.get("SLEEP_S", "0")
N_PRE = int(os.environ.get("N_PRE", "3"))
FINE_PARTITION = os.environ.get("FINE_PARTITION", "cpu")

@dataclass(frozen=True)
class Pre(Artifact):
    lr: float
    def get_requirements(self):
        return {"partition": "gpu", "gpus": "A100:4", "cpus": 8, "time": "10:00"}
    def construct(self, builder: Task):
        builder.create_yaml_file("config.yaml", {"lr": self.lr})
        cmd = "exit 7" if str(self.lr) == FAIL else f"sleep {SLEEP}; echo trained {self.lr}"
        builder.run_command(cmd)

@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre
    data: str
    def get_requirements(self):
        return {"partition": FINE_PARTITION, "time": "10:00"}
    def construct(self, builder: Task):
        builder.run_command("test -f " + builder.artifact_path + "/" + self.base.relpath
                            + "/config.yaml && echo tuned", kwargs={"data": self.data})

pre = ArtifactSet.from_product(cls=Pre, params={"lr": [round(0.1 * (i + 1), 1)
                                                       for i in range(N_PRE)]})
fine = ArtifactSet.join_product(pre, ["a", "b"]).map(lambda m, d: Fine(base=m, data=d))
ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("pretrain", pre)
ex.stage("finetune", fine)
if __name__ == "__main__":
    ex.auto_cli()
'''

# Three tiers on Slurm: A -> B -> C, N artifacts each; every build appends its relpath to RUNS.
THREE_TIERS = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

SLEEP = os.environ.get("SLEEP_S", "0")
EXTRA = {k: v for k, v in [kv.split("=") for kv in os.environ.get("REQS", "").split(",") if kv]}

def _run(builder, self):
    builder.run_command(f"sleep {SLEEP}; echo " + self.relpath + " >> " + os.environ["RUNS"])

@dataclass(frozen=True)
class A(Artifact):
    i: int
    def get_requirements(self):
        return {"partition": "gpu", "time": "10:00", **EXTRA}
    def construct(self, builder: Task):
        _run(builder, self)

@dataclass(frozen=True)
class B(Artifact):
    a: A
    def get_requirements(self):
        return {"partition": "cpu", "time": "10:00"}
    def construct(self, builder: Task):
        _run(builder, self)

@dataclass(frozen=True)
class C(Artifact):
    b: B
    def construct(self, builder: Task):
        _run(builder, self)

n = int(os.environ.get("N", "2"))
a = ArtifactSet.from_product(cls=A, params={"i": list(range(n))})
b = a.map(lambda x: B(a=x))
c = b.map(lambda x: C(b=x))
ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("a", a)
ex.stage("b", b)
ex.stage("c", c)
if __name__ == "__main__":
    ex.auto_cli()
'''


# -- the README's 36-artifact grid --------------------------------------------------------------
@dataclass(frozen=True)
class PretrainedModel(Artifact):
    """The README's first stage (only its shape: nothing is built here)."""

    learning_rate: float
    num_epochs: int

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "gpu", "gpus": "A100:4", "cpus": 8, "time": "24:00:00"}


@dataclass(frozen=True)
class FinetunedModel(Artifact):
    """The README's second stage, one per pretrained model and dataset."""

    base_model: PretrainedModel
    dataset: str


def readme_grid(root: Path, factor: int = 1) -> SlurmExecutor:
    """The README's quick start (12 pretrained, 24 finetuned), every artifact built with
    metrics; ``factor`` multiplies the learning rates swept."""
    lrs = [10 ** -(1 + i / factor) for i in range(3 * factor)]
    pre = ArtifactSet.from_product(cls=PretrainedModel, params={
        "learning_rate": lrs, "num_epochs": [10, 20, 50, 100]})
    fine = ArtifactSet.join_product(pre, ["squad", "glue"]).map(
        lambda m, d: FinetunedModel(base_model=m, dataset=d))
    ex = SlurmExecutor(project="readme", artifact_path=str(root / "out"), code_path=str(root))
    ex.stage("pretrain", pre)
    ex.stage("finetune", fine)
    for i, art in enumerate([*pre, *fine]):
        folder = Path(paths.artifact_dir(ex.artifact_path, art.relpath))
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"loss": 1 / (i + 1), "acc": i % 7}))
        (folder / ".done").write_text("{}")
    return ex
