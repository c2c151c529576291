"""Multi-stage ML pipeline: a pretraining grid, then fine-tuning every model on every dataset.

    python examples/multistage_training.py drylaunch
    python examples/multistage_training.py launch --local     # on this machine, in seconds
                                  # (it needs 4 GPUs and 8 CPUs, or a machine pretending to:
                                  #  "local": {"cpus": 8, "gpus": 4} in config.json)
    python examples/multistage_training.py status
    python examples/multistage_training.py launch             # on a Slurm cluster
"""

from dataclasses import dataclass
from pathlib import Path

from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PretrainedModel(Artifact):
    learning_rate: float
    num_epochs: int

    def get_requirements(self):
        return {"partition": "gpu", "gpus": "A100:4", "cpus": 8, "time": "24:00:00"}

    def construct(self, builder: Task):
        builder.create_yaml_file("config.yaml", {"lr": self.learning_rate,
                                                 "epochs": self.num_epochs})
        out = f"{builder.artifact_path}/{self.relpath}"
        builder.run_command("python train.py", kwargs={"config": f"{out}/config.yaml",
                                                        "out": out})


@dataclass(frozen=True)
class FinetunedModel(Artifact):
    base_model: PretrainedModel  # a dependency: built first, in an earlier tier
    dataset: str

    def get_requirements(self):
        return {"partition": "gpu", "gpus": "A100:1", "time": "2:00:00"}

    def construct(self, builder: Task):
        base_path = f"{builder.artifact_path}/{self.base_model.relpath}"
        builder.run_command("python finetune.py", kwargs={
            "base": base_path, "dataset": self.dataset, "out": builder.directory})


pretrained = ArtifactSet.from_product(
    cls=PretrainedModel,
    params={"learning_rate": [1e-3, 1e-4, 1e-5], "num_epochs": [10, 20]},
)
finetuned = ArtifactSet.join_product(pretrained, ["squad", "glue"]).map(
    lambda model, dataset: FinetunedModel(base_model=model, dataset=dataset)
)

executor = SlurmExecutor(
    project="multistage-demo",
    artifact_path=str(HERE / "outputs"),
    code_path=str(HERE),
)
executor.stage("pretrain", pretrained)
executor.stage("finetune", finetuned)

if __name__ == "__main__":
    executor.auto_cli()
