"""An experiment whose results are hostile to the views: parameter values and metric names that
are also names of JavaScript's Object members or of the table's own columns, a 600 kB
metrics.json nested far deeper than any summary, and a failed artifact whose metrics claim
``"state": "built"``. Run as a script by the CLI tests; imported by the in-process ones."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from experiments import Artifact, ArtifactSet, LocalExecutor, Task
from tests.support.hostile import HOSTILE_NO_NUL

OBJECT_NAMES = ["__proto__", "constructor", "hasOwnProperty", "toString", "valueOf"]
NAMES = [*OBJECT_NAMES, "deep", "fail", *HOSTILE_NO_NUL[:4], "<script>alert(1)</script>"]
# 600 kB: under the 4 MB cap, nested far deeper than Python's recursion limit
DEEP = '{"a": ' + "[" * 300_000 + "]" * 300_000 + "}"
METRICS = {"acc": 0.5, "state": "built", "folder": "/elsewhere", **dict.fromkeys(OBJECT_NAMES, 7)}


@dataclass(frozen=True)
class Odd(Artifact):
    name: str
    x: int

    def construct(self, builder: Task) -> None:
        metrics = {**METRICS, "acc": self.x + len(self.name) / 100}
        content = DEEP if self.name == "deep" else json.dumps(metrics)
        builder.create_file(f"{builder.directory}/metrics.json", content)
        if self.name == "fail":
            builder.run_command("exit 3")


@dataclass(frozen=True)
class Later(Artifact):
    n: int

    def construct(self, builder: Task) -> None:
        builder.create_file(f"{builder.directory}/metrics.json", json.dumps({"n2": self.n ** 2}))


def executor(root: Path) -> LocalExecutor:
    ex = LocalExecutor(project="hostile", artifact_path=str(root / "out"), code_path=str(root),
                       workers=2)
    ex.stage("odd", ArtifactSet.from_product(cls=Odd, params={"name": NAMES, "x": [1, 2]}))
    ex.stage("later", ArtifactSet.from_product(cls=Later, params={"n": [1, 2, 3]}))
    return ex


if __name__ == "__main__":
    executor(Path(os.environ["HOSTILE_ROOT"])).auto_cli()
