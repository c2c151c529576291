"""A 60-artifact sweep for the day-to-day loop: launch, wait, table, plot.

    python examples/sweep/experiment.py launch --local
    python examples/sweep/experiment.py wait
    python examples/sweep/experiment.py table sweep --sort -accuracy
    python examples/sweep/plot.py sweep.png          # a plot from executor.table(...).to_pandas()

Each artifact "trains" for a moment and writes ``metrics.json``; the table joins every
parameter with every metric, and the plot shows accuracy against the learning rate, one line
per width.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from experiments import Artifact, ArtifactSet, LocalExecutor, Task

HERE = Path(__file__).resolve().parent

TRAIN = """
import json, math, os, sys
lr, width, seed = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
accuracy = 0.7 - 0.05 * abs(math.log10(lr) + 2.5) + 0.015 * math.log2(width / 64) + 0.002 * seed
out = os.path.join(os.environ["EXPERIMENTS_ARTIFACT_DIR"], "metrics.json")
with open(out, "w") as fh:
    json.dump({"accuracy": round(accuracy, 4), "loss": round(1 - accuracy, 4)}, fh)
"""


@dataclass(frozen=True)
class Run(Artifact):
    learning_rate: float
    width: int
    seed: int

    def construct(self, builder: Task) -> None:
        args = f"{self.learning_rate} {self.width} {self.seed}"
        builder.run_command(f"{shlex.quote(sys.executable)} -c {shlex.quote(TRAIN)} {args}")


sweep = ArtifactSet.from_product(cls=Run, params={
    "learning_rate": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
    "width": [64, 256, 1024, 4096],
    "seed": [0, 1, 2],
})

executor = LocalExecutor(project="sweep", artifact_path=str(HERE / "outputs"),
                         code_path=str(HERE))
executor.stage("sweep", sweep)

if __name__ == "__main__":
    executor.auto_cli()
