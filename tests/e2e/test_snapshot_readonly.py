"""Commands run in the code snapshot, which is read-only to them (issue 24 item 10): a command
writing to a relative path fails loudly, naming the file and where results belong, and the
snapshot every task shares stays as it was taken; relative reads (``python train.py``, an
import beside it) work as before. Locally and once on the real Slurm cluster, as root here
(whom file modes do not stop: the worker's check is what holds)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, wait_until_idle

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, SlurmExecutor, Task

@dataclass(frozen=True)
class Writer(Artifact):
    where: str
    def get_requirements(self):
        return {"partition": "cpu", "time": "5:00", "max_parallel": 1}
    def construct(self, builder: Task):
        out = "metrics.json" if self.where == "relative" \\
            else '"$EXPERIMENTS_ARTIFACT_DIR/metrics.json"'
        builder.run_command(f"python3 train.py > {out}")

# one task at a time: as root, a write is seen in the snapshot, not who made it
if os.environ["BACKEND"] == "slurm":
    ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"])
else:
    ex = LocalExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"], workers=1)
ex.stage("write", ArtifactSet.from_product(cls=Writer, params={"where": ["relative", "artifact"]}))
if __name__ == "__main__":
    ex.auto_cli()
'''
TRAIN = "import helper\nprint(helper.metrics())\n"
HELPER = "import json\n\ndef metrics():\n    return json.dumps({'acc': 0.9})\n"


def _project(tmp_path: Path, backend: str) -> tuple[Path, dict[str, str], Path]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "exp.py").write_text(EXPERIMENT)
    (code / "train.py").write_text(TRAIN)
    (code / "helper.py").write_text(HELPER)
    out = tmp_path / "out"
    return code, {"OUT": str(out), "PROJECT": f"p{uuid.uuid4().hex[:8]}", "BACKEND": backend}, out


def _tree(path: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry of a tree with its mode and content (folders: empty content)."""
    out = {}
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(top, name)
            out[str(p.relative_to(path))] = (p.lstat().st_mode, b"" if p.is_dir()
                                             else p.read_bytes())
    return out


def _check(out: Path, code: Path) -> None:
    folders = {json.loads((d / ".artifact.json").read_text())["params"]["where"]: d
               for d in out.glob("Writer/*") if (d / ".artifact.json").exists()}
    assert set(folders) == {"relative", "artifact"}
    good, bad = folders["artifact"], folders["relative"]
    assert (good / ".done").exists()
    assert json.loads((good / "metrics.json").read_text()) == {"acc": 0.9}
    assert not (bad / ".done").exists()
    error = json.loads((bad / ".status.json").read_text())["error"]
    assert "wrote into the code snapshot" in error and "metrics.json" in error, error
    assert "$EXPERIMENTS_ARTIFACT_DIR" in error and str(bad) in error
    snap = Path(json.loads((good / ".artifact.json").read_text())["provenance"]["code"]["path"])
    assert snap != code and snap.name == "code"
    tree = _tree(snap)
    assert sorted(tree) == ["exp.py", "helper.py", "train.py"]  # no metrics.json, no __pycache__
    assert tree["train.py"][1] == TRAIN.encode()
    assert all(not mode & 0o222 for mode, _ in tree.values()), "the snapshot is writable"
    assert not snap.stat().st_mode & 0o222


def test_a_relative_write_fails_loudly_and_leaves_the_snapshot_as_it_was(tmp_path: Path) -> None:
    code, env, out = _project(tmp_path, "local")
    res = run_cli(code / "exp.py", "launch", env=env)
    assert res.returncode == 1, res.stdout + res.stderr
    _check(out, code)
    logs = run_cli(code / "exp.py", "logs", "--failed", env=env)
    assert "wrote into the code snapshot" in logs.stdout + logs.stderr


@pytest.mark.slurm
def test_a_relative_write_fails_loudly_on_slurm(tmp_path: Path, slurm_cluster: object) -> None:
    code, env, out = _project(tmp_path, "slurm")
    try:
        res = run_cli(code / "exp.py", "launch", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        wait_until_idle(env["PROJECT"])
        _check(out, code)
    finally:
        cancel_all(env["PROJECT"])
