"""A small grid with every shape the report shows: built, failed, dependency-failed, not
started, metrics, and hostile strings in a parameter and in a log."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from experiments import Artifact, ArtifactSet, LocalExecutor, Task
from tests.support.hostile import IMG_TAG as HOSTILE_IMG
from tests.support.hostile import SCRIPT_TAG as HOSTILE


@dataclass(frozen=True)
class Pre(Artifact):
    lr: float
    seed: int = 0

    def construct(self, builder: Task) -> None:
        if self.lr == 1.0:
            builder.run_command(f"echo 'boom at lr {self.lr}'; echo '{HOSTILE}'; exit 7")
            return
        builder.run_command(
            f"echo '{{\"loss\": {self.lr * 10 + self.seed}, \"acc\": {1 - self.lr / 2}}}' "
            f"> {builder.directory}/metrics.json")


@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre
    data: str

    def construct(self, builder: Task) -> None:
        builder.run_command(f"echo '{{\"score\": {len(self.data)}}}' > "
                            f"{builder.directory}/metrics.json")


@dataclass(frozen=True)
class Later(Artifact):
    n: int

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def executor(root: Path) -> LocalExecutor:
    pre = ArtifactSet.from_product(cls=Pre, params={"lr": [0.001, 0.01, 0.1, 1.0],
                                                    "seed": [0, 1]})
    fine = ArtifactSet.join_product(pre, ["a", HOSTILE, HOSTILE_IMG]).map(
        lambda m, d: Fine(base=m, data=d))
    ex = LocalExecutor(project="grid", artifact_path=str(root / "out"), code_path=str(root),
                       workers=2)
    ex.stage("pretrain", pre)
    ex.stage("finetune", fine)
    ex.stage("later", ArtifactSet.from_product(cls=Later, params={"n": [1, 2]}))
    return ex


def launched(root: Path, home: Path) -> Iterator[LocalExecutor]:
    """The grid with pretrain and finetune launched (``later`` is left not started)."""
    old = os.environ.get("EXPERIMENTS_HOME")
    os.environ["EXPERIMENTS_HOME"] = str(home)
    try:
        ex = executor(root)
        ex.launch(["pretrain", "finetune"])
        yield ex
    finally:
        if old is None:
            os.environ.pop("EXPERIMENTS_HOME", None)
        else:
            os.environ["EXPERIMENTS_HOME"] = old
