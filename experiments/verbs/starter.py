"""The starter experiment that ``experiments init`` writes.

A newcomer's first file should run as is (``python my_experiment.py launch --local``) and show
every idea once: two stages, a dependency, a grid, requirements and a result file. It is kept
here as text, not as a module, so that ``init`` copies exactly what the docs describe and a
test can run it.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DefinitionError

STARTER = '''\
"""My experiment: a small grid of trainings, each evaluated on two splits.

Try it on this machine (no Slurm needed):

    python {name} drylaunch          # what would run, in which order, with which resources
    python {name} launch --local     # build everything here
    python {name} status             # per stage: built / running / queued / failed

On a Slurm cluster, `python {name} launch` submits the same grid as array jobs.
"""

import shlex
import sys
from dataclasses import dataclass

from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

# The interpreter that runs the steps below. A real project calls its own scripts instead,
# e.g. builder.run_command("python train.py", kwargs=...), from its code folder.
PYTHON = shlex.quote(sys.executable)

# A stand-in for a training script: it writes metrics.json into the artifact's folder.
TRAIN = """
import json, os, sys
lr, epochs = float(sys.argv[1]), int(sys.argv[2])
loss = round(1.0 / (1.0 + lr * 1000 * epochs), 4)
with open(os.path.join(os.environ["EXPERIMENTS_ARTIFACT_DIR"], "metrics.json"), "w") as f:
    json.dump({{"loss": loss}}, f)
"""

# A stand-in for an evaluation script: it reads the trained model's metrics.
EVALUATE = """
import json, os, sys
model_dir, split = sys.argv[1], sys.argv[2]
with open(os.path.join(model_dir, "metrics.json")) as f:
    loss = json.load(f)["loss"]
score = round(1.0 - loss + (0.01 if split == "valid" else 0.0), 4)
with open(os.path.join(os.environ["EXPERIMENTS_ARTIFACT_DIR"], "metrics.json"), "w") as f:
    json.dump({{"split": split, "score": score}}, f)
"""


# An artifact is a frozen dataclass: its fields are its parameters, and they decide its
# identity and its folder: artifacts/TrainedModel/learning_rate=0.001,epochs=1-<id>/ here,
# the same on every run and machine.
@dataclass(frozen=True)
class TrainedModel(Artifact):
    learning_rate: float
    epochs: int

    def get_requirements(self):
        # #SBATCH lines on a cluster; --local starts it when a CPU is free and enforces the time.
        return {{"partition": "cpu", "cpus": 1, "time": "0:10:00"}}

    def construct(self, builder: Task):
        # construct() only records steps; they run later, on the building machine. A file step
        # writes into the artifact's own folder (builder.directory); a command runs in the code
        # folder (a read-only snapshot of it) and writes its results under
        # $EXPERIMENTS_ARTIFACT_DIR, that same folder. The done marker is written last.
        builder.create_yaml_file("config.yaml", {{"lr": self.learning_rate,
                                                 "epochs": self.epochs}})
        builder.run_command(f"{{PYTHON}} -c {{shlex.quote(TRAIN)}}",
                            kwargs={{"lr": self.learning_rate, "epochs": self.epochs}},
                            kwformat="{{v}}")


@dataclass(frozen=True)
class Evaluation(Artifact):
    model: TrainedModel  # a field holding an artifact is a dependency: it is built first
    split: str

    def get_requirements(self):
        return {{"partition": "cpu", "cpus": 1, "time": "0:05:00"}}

    def construct(self, builder: Task):
        model_dir = f"{{builder.artifact_path}}/{{self.model.relpath}}"
        builder.run_command(f"{{PYTHON}} -c {{shlex.quote(EVALUATE)}}",
                            kwargs={{"model": model_dir, "split": self.split}},
                            kwformat="{{v}}")


# A grid: every combination of the listed values (2 x 2 = 4 trainings).
models = ArtifactSet.from_product(cls=TrainedModel, params={{
    "learning_rate": [0.001, 0.01],
    "epochs": [1, 5],
}})
# Every model on every split (4 x 2 = 8 evaluations).
evaluations = ArtifactSet.join_product(models, ["valid", "test"]).map(
    lambda model, split: Evaluation(model=model, split=split))

# The project is named after this file; results go to ./artifacts beside it.
executor = SlurmExecutor()
executor.stage("train", models)
executor.stage("evaluate", evaluations)

if __name__ == "__main__":
    executor.auto_cli()
'''


def starter_text(name: str = "my_experiment.py") -> str:
    """The starter experiment's source, with ``name`` (the file's name) in its usage lines."""
    return STARTER.format(name=name)


def write_starter(path: str | Path) -> Path:
    """Write the starter experiment to ``path`` and return it; never overwrite a file.

    Raises ``DefinitionError`` naming the file when something already exists there, so that
    ``experiments init`` cannot destroy a user's experiment.
    """
    target = Path(path)
    text = starter_text(target.name)
    try:
        with open(target, "x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise DefinitionError(f"{target} already exists; choose another name "
                              "(experiments init OTHER.py) or remove it first") from None
    return target
