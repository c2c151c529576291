"""A large LLM grid in the style of OLMo sweeps: data mixes x model sizes x learning rates x seeds,
each pretraining run followed by evaluations on several benchmarks.

    python examples/olmo/gridsearch.py drylaunch            # ~1,400 jobs' worth of artifacts
    python examples/olmo/gridsearch.py drylaunch evaluate -v

Requirements differ by model size, so each tier becomes a few array jobs (one per GPU shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

HERE = Path(__file__).resolve().parent
GPUS = {"150M": 1, "1B": 4, "7B": 8}
HOURS = {"150M": 4, "1B": 24, "7B": 72}


@dataclass(frozen=True)
class Pretrain(Artifact):
    """One pretraining run of the OLMo trainer."""

    model_size: str
    data_mix: str
    learning_rate: float
    seed: int
    tokens_b: int = 100  # billions of tokens; a default is left out of the folder name

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "gpu", "gpus": f"A100:{GPUS[self.model_size]}",
                "cpus": 8 * GPUS[self.model_size], "mem": 64 * GPUS[self.model_size],
                "time": f"{HOURS[self.model_size]}:00:00"}

    def construct(self, builder: Task) -> None:
        builder.create_yaml_file("train.yaml", {
            "model": {"size": self.model_size}, "data": {"mix": self.data_mix},
            "optimizer": {"lr": self.learning_rate}, "seed": self.seed,
            "max_tokens": f"{self.tokens_b}B", "save_folder": builder.directory,
        })
        builder.run_command("torchrun --nproc-per-node=$SLURM_GPUS_ON_NODE scripts/train.py",
                            kwargs={"config": f"{builder.directory}/train.yaml"})


@dataclass(frozen=True)
class Evaluate(Artifact):
    """Downstream evaluation of one checkpoint on one benchmark."""

    model: Pretrain
    task: str

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "gpu", "gpus": "A100:1", "time": "2:00:00", "max_parallel": 64}

    def construct(self, builder: Task) -> None:
        builder.run_command("python scripts/eval.py", kwargs={
            "checkpoint": f"{builder.artifact_path}/{self.model.relpath}",
            "task": self.task, "out": f"{builder.directory}/metrics.json"})


models = ArtifactSet.from_product(cls=Pretrain, params={
    "model_size": ["150M", "1B", "7B"],
    "data_mix": ["dolma-v1.7", "dclm-baseline", "fineweb-edu", "mix-a", "mix-b"],
    "learning_rate": [1e-4, 3e-4, 6e-4, 1e-3],
    "seed": [1, 2, 3, 4],
})
evals = ArtifactSet.join_product(
    models, ["arc_easy", "arc_challenge", "hellaswag", "piqa", "mmlu"]
).map(lambda model, task: Evaluate(model=model, task=task))

executor = SlurmExecutor(project="olmo-gridsearch", artifact_path=str(HERE / "outputs"),
                         code_path=str(HERE))
executor.stage("pretrain", models)
executor.stage("evaluate", evals)

if __name__ == "__main__":
    executor.auto_cli()
