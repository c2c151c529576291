"""Storage steps through the real worker: stage one uploads a directory, stage two downloads it.

Runs against the local GCS emulator (tests/support/gcs.py), on the local backend and on the real
Slurm test cluster; the error cases end the artifact as failed with the storage error in its log.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.experiments import done_markers
from tests.support.slurm import cancel_all, wait_until_idle

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

BUCKET = os.environ["BUCKET"]

@dataclass(frozen=True)
class Train(Artifact):
    seed: int
    def construct(self, builder: Task):
        builder.create_file("model/weights.bin", bytes(range(256)) * (self.seed + 1))
        builder.create_file("model/meta/info.txt", f"seed {self.seed}")
        builder.upload_to_gs("model", f"{builder.gs_path}/{self.relpath}/model")

@dataclass(frozen=True)
class Evaluate(Artifact):
    model: Train
    def construct(self, builder: Task):
        builder.download_from_gs(f"{builder.gs_path}/{self.model.relpath}/model", "model")
        builder.run_command("test -f " + builder.directory + "/model/meta/info.txt")

@dataclass(frozen=True)
class Broken(Artifact):
    what: str
    def construct(self, builder: Task):
        if self.what == "bucket":
            builder.upload_to_gs("x", "gs://no-such-bucket-" + BUCKET + "/x")
            builder.create_file("x", "data")
        else:
            builder.download_from_gs(f"gs://{BUCKET}/does/not/exist", "y")

train = ArtifactSet.from_product(cls=Train, params={"seed": [0, 1]})
evaluate = train.map(lambda m: Evaluate(model=m))
ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"], gs_path=f"gs://{BUCKET}/mirror")
ex.stage("train", train)
ex.stage("evaluate", evaluate)
ex.stage("broken", ArtifactSet([Broken("bucket"), Broken("object")]))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _setup(tmp_path: Path, gcs: object) -> tuple[Path, dict[str, str], Path]:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    env = {"OUT": str(out), "BUCKET": gcs.bucket,  # type: ignore[attr-defined]
           "PROJECT": f"s{uuid.uuid4().hex[:8]}"}
    return script, env, out


def _check_round_trip(out: Path, gcs: object, project_relpaths: list[str]) -> None:
    objects = gcs.objects()  # type: ignore[attr-defined]
    for seed in (0, 1):
        train = next(out.glob(f"Train/seed={seed}-*"))
        rel = train.relative_to(out).as_posix()
        assert f"mirror/{rel}/model/weights.bin" in objects
        assert f"mirror/{rel}/model/meta/info.txt" in objects
    for ev in out.glob("Evaluate/*"):
        meta = json.loads((ev / ".artifact.json").read_text())
        base = out / meta["params"]["model"]["relpath"]
        assert (ev / "model/weights.bin").read_bytes() == (base / "model/weights.bin").read_bytes()
        assert (ev / "model/meta/info.txt").read_text().startswith("seed ")


def test_upload_then_download_on_the_local_backend(tmp_path: Path, gcs_emulator: object) -> None:
    script, env, out = _setup(tmp_path, gcs_emulator)
    res = run_cli(script, "launch", "train", "evaluate", "--local", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(done_markers(out)) == 4
    _check_round_trip(out, gcs_emulator, [])


def test_storage_errors_fail_the_artifact_with_the_error_in_its_log(
        tmp_path: Path, gcs_emulator: object) -> None:
    script, env, out = _setup(tmp_path, gcs_emulator)
    res = run_cli(script, "launch", "broken", "--local", env=env)
    assert res.returncode == 1
    assert not done_markers(out)
    logs = {p.name: p.read_text() for p in
            (Path(os.environ["EXPERIMENTS_HOME"]) / "logs").rglob("*.log")}
    assert len(logs) == 2
    text = "\n".join(logs.values())
    assert "no-such-bucket" in text and "StorageError" in text
    assert "does/not/exist" in text
    status = run_cli(script, "status", "broken", env=env)
    assert "StorageError" in status.stdout
    assert not (next(out.glob("Broken/what=bucket*")) / "x").exists()  # later steps never ran


def test_missing_gcsfs_is_an_error_at_drylaunch(tmp_path: Path, gcs_emulator: object) -> None:
    script, env, out = _setup(tmp_path, gcs_emulator)
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "gcsfs.py").write_text("raise ImportError('gcsfs is not installed')\n")
    res = run_cli(script, "drylaunch", "train", "--local",
                  env={**env, "PYTHONPATH": str(blocker)})
    assert res.returncode == 2  # a definition the machine cannot run: like any bad input
    assert "slurm-experiments[gcs]" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slurm
def test_upload_then_download_on_slurm(tmp_path: Path, gcs_emulator: object,
                                       slurm_cluster: object) -> None:
    script, env, out = _setup(tmp_path, gcs_emulator)
    try:
        res = run_cli(script, "launch", "train", "evaluate", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        wait_until_idle(env["PROJECT"])
        assert len(done_markers(out)) == 4
        _check_round_trip(out, gcs_emulator, [])
    finally:
        cancel_all(env["PROJECT"])
