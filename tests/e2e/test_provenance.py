"""Code snapshots on the real Slurm test cluster: queued tasks never see later edits."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.experiments import done_markers
from tests.support.slurm import cancel_all, wait_until_idle

pytestmark = pytest.mark.slurm

N_TASKS = 4
EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Reader(Artifact):
    i: int
    def get_requirements(self):
        return {"partition": "cpu", "time": "5:00", "max_parallel": 1}
    def construct(self, builder: Task):
        builder.run_command('sleep 2; cat line.txt > "$EXPERIMENTS_ARTIFACT_DIR/line.txt"; '
                            'echo "$EXPERIMENTS_CODE_PATH" > "$EXPERIMENTS_ARTIFACT_DIR/code.txt"')

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"])
ex.stage("read", ArtifactSet.from_product(cls=Reader, params={"i": list(range(N_TASKS))}))
if __name__ == "__main__":
    ex.auto_cli()
'''.replace("N_TASKS", str(N_TASKS))


def _git(code: Path, *args: str) -> str:
    res = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                         cwd=code, capture_output=True, text=True, check=True, timeout=60)
    return res.stdout.strip()


@pytest.fixture
def project(tmp_path: Path, slurm_cluster: object) -> tuple[Path, dict[str, str], Path]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "exp.py").write_text(EXPERIMENT)
    (code / "line.txt").write_text("old line\n")
    _git(code, "init", "-q", "-b", "main")
    _git(code, "add", "-A")
    _git(code, "commit", "-q", "-m", "first")
    out = tmp_path / "out"
    out.mkdir()
    name = f"p{uuid.uuid4().hex[:8]}"
    yield code, {"OUT": str(out), "PROJECT": name}, out
    cancel_all(name)


def test_edit_after_launch_is_not_seen_by_queued_tasks(
        project: tuple[Path, dict[str, str], Path]) -> None:
    code, env, out = project
    commit = _git(code, "rev-parse", "HEAD")
    res = run_cli(code / "exp.py", "launch", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    (code / "line.txt").write_text("new line\n")  # edited while tasks wait their turn
    started = len(done_markers(out))
    assert started < N_TASKS, "every task finished before the edit; the test proved nothing"
    wait_until_idle(env["PROJECT"])
    deadline = time.monotonic() + 30
    while len(done_markers(out)) < N_TASKS and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(done_markers(out)) == N_TASKS, run_cli(code / "exp.py", "status", env=env).stdout

    metas = [json.loads(p.with_name(".artifact.json").read_text()) for p in done_markers(out)]
    lines = {(p.parent / "line.txt").read_text() for p in done_markers(out)}
    assert lines == {"old line\n"}
    codes = {m["provenance"]["code"]["snapshot"] for m in metas}
    gits = {json.dumps(m["provenance"]["code"]["git"], sort_keys=True) for m in metas}
    assert len(codes) == 1 and None not in codes
    assert [json.loads(g) for g in gits] == [
        {"commit": commit, "branch": "main", "dirty": False, "diff_hash": None}]
    snap_path = metas[0]["provenance"]["code"]["path"]
    assert {(p.parent / "code.txt").read_text().strip() for p in done_markers(out)} == {snap_path}
    assert {m["provenance"]["job"].split("_")[0] for m in metas} != {""}
    jobs = {json.loads(p.read_text())["job"].split("_")[0] for p in done_markers(out)}
    assert len(jobs) == 1  # one throttled array ran them all

    status = run_cli(code / "exp.py", "status", env=env)  # editing code is not staleness
    assert "stale" not in status.stdout, status.stdout
