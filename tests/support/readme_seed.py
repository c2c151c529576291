"""The seed README's quick-start and multi-stage code, verbatim (the seed README test and the
remote tests run it)."""

# Quick start (sections 1 and 2) and the multi-stage snippet of the seed README, verbatim
# except that `...` placeholders are filled and the datasets list is defined.
SEED = '''
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class PretrainedModel(Artifact):
    learning_rate: float
    num_epochs: int
    
    def get_requirements(self):
        return {
            'partition': 'gpu',
            'gpus': 'A100:4',
            'cpus': 8,
            'time': '24:00:00',
        }
    
    def construct(self, builder: Task):
        # Create config file
        builder.create_yaml_file(
            f'{builder.artifact_path}/{self.relpath}/config.yaml',
            {'lr': self.learning_rate, 'epochs': self.num_epochs}
        )
        # Run training
        builder.run_command(
            f'python train.py --config {builder.artifact_path}/{self.relpath}/config.yaml'
        )

@dataclass(frozen=True)
class FinetunedModel(Artifact):
    base_model: PretrainedModel  # Dependency!
    dataset: str
    
    def construct(self, builder: Task):
        # Access base model path
        base_path = f'{builder.artifact_path}/{self.base_model.relpath}'
        builder.run_command(f'python finetune.py --base {base_path}')

# Create 12 models (3 learning rates × 4 epoch counts)
models = ArtifactSet.from_product(
    cls=PretrainedModel,
    params={
        'learning_rate': [1e-3, 1e-4, 1e-5],
        'num_epochs': [10, 20, 50, 100],
    }
)

datasets = ['squad', 'glue']
pretrained = models
finetuned = ArtifactSet.join_product(pretrained, datasets).map(
    lambda model, dataset: FinetunedModel(base_model=model, dataset=dataset)
)

# Setup executor
executor = SlurmExecutor(
    project='my-experiment',
    artifact_path='/data/outputs',
    code_path='/home/user/code',
)

executor.stage('pretrain', pretrained)
executor.stage('finetune', finetuned)

if __name__ == '__main__':
    executor.auto_cli()
'''

TRAIN = '''
import argparse, os, sys
p = argparse.ArgumentParser(); p.add_argument("--config"); a = p.parse_args()
text = open(a.config).read()
assert "lr:" in text and "epochs:" in text, text
out = os.environ["EXPERIMENTS_ARTIFACT_DIR"]
open(os.path.join(out, "model.txt"), "w").write(text)
with open(os.path.join(os.environ["RUNS_LOG"]), "a") as fh:
    fh.write("train " + out + "\\n")
'''

FINETUNE = '''
import argparse, os
p = argparse.ArgumentParser(); p.add_argument("--base"); a = p.parse_args()
assert os.path.exists(os.path.join(a.base, "model.txt")), a.base
with open(os.environ["RUNS_LOG"], "a") as fh:
    fh.write("finetune " + os.environ["EXPERIMENTS_ARTIFACT_DIR"] + "\\n")
'''
