"""``gc`` end to end (issue 16, item 7): what ended goes, a live job's files stay, history keeps
what happened — on the local backend (a detached launch is the live job) and on real Slurm."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from experiments.tracking.store import Store
from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, wait_until_idle

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, {executor}, Task

@dataclass(frozen=True)
class Quick(Artifact):
    i: int
    def get_requirements(self):
        return {{"partition": "cpu", "time": "5:00"}}
    def construct(self, builder: Task):
        builder.run_command(f"echo quick {{self.i}}")

@dataclass(frozen=True)
class Slow(Artifact):
    i: int
    def get_requirements(self):
        return {{"partition": "cpu", "time": "10:00"}}
    def construct(self, builder: Task):
        builder.run_command("echo started; sleep 300")

ex = {executor}(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                code_path=os.environ["CODE"])
ex.stage("quick", ArtifactSet.from_product(cls=Quick, params={{"i": [0, 1]}}))
ex.stage("slow", ArtifactSet.from_product(cls=Slow, params={{"i": [0]}}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _setup(tmp_path: Path, executor: str) -> tuple[Path, dict[str, str], Path]:
    code = tmp_path / "code"
    code.mkdir()
    script = code / "exp.py"
    script.write_text(EXPERIMENT.format(executor=executor))
    out = tmp_path / "out"
    out.mkdir()
    env = {"OUT": str(out), "CODE": str(code), "PROJECT": f"gc{uuid.uuid4().hex[:8]}"}
    return script, env, out


def _ok(res: object) -> str:
    assert res.returncode == 0, res.stdout + res.stderr  # type: ignore[attr-defined]
    return res.stdout  # type: ignore[attr-defined, no-any-return]


def _wait_for(predicate: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        time.sleep(0.3)


def _files(home: Path, project: str, stage: str) -> tuple[list[Path], list[Path]]:
    """The task logs and spec folders of a stage's jobs, as their records name them."""
    records = Store(home, project).records(stage)
    logs = [r.log_path(i) for r in records for i in range(len(r.tasks))]
    return logs, [Path(r.spec_dir) for r in records]


def _prepare(script: Path, env: dict[str, str], out: Path) -> tuple[Path, Path]:
    """quick built by two jobs (i=0 rebuilt after invalidate: one moved-aside marker of a
    rebuilt artifact), then i=1 invalidated and not rebuilt (its marker is the only trace)."""
    _ok(run_cli(script, "launch", "quick", env=env))
    _ok(run_cli(script, "invalidate", "quick", "--where", "i=0", "--yes", env=env))
    _ok(run_cli(script, "launch", "quick", env=env))
    _ok(run_cli(script, "invalidate", "quick", "--where", "i=1", "--yes", env=env))
    rebuilt, = out.glob("Quick/i=0*/.done.invalidated-*")
    only_trace, = out.glob("Quick/i=1*/.done.invalidated-*")
    return rebuilt, only_trace


def _check_gc(script: Path, env: dict[str, str], home: Path, rebuilt: Path,
              only_trace: Path) -> None:
    """The slow job is live: gc keeps its files and removes the quick jobs' once old enough."""
    project = env["PROJECT"]
    quick_logs, quick_specs = _files(home, project, "quick")
    slow_logs, slow_specs = _files(home, project, "slow")
    assert all(p.exists() for p in quick_logs + quick_specs + slow_specs)

    young = json.loads(_ok(run_cli(script, "gc", "--older-than", "1", "--dry-run", "--json",
                                   env=env)))
    assert young["removed"] == []  # everything ended today
    assert "live" in young["kept"].values()
    assert {r.job_id for r in Store(home, project).records("quick")} <= set(young["kept"])

    dry = json.loads(_ok(run_cli(script, "gc", "--older-than", "0", "--dry-run", "--json",
                                 env=env)))
    listed = {r["path"] for r in dry["removed"]}
    assert listed == {str(p) for p in quick_logs + quick_specs} | {str(rebuilt)}
    assert dry["files"] == sum(r["files"] for r in dry["removed"]) >= len(listed)
    assert dry["bytes"] > 0 and "live" in dry["kept"].values()
    assert all(p.exists() for p in quick_logs + quick_specs + [rebuilt])  # dry: nothing gone

    text = _ok(run_cli(script, "gc", "--older-than", "0", env=env))
    assert f"Removed {len(quick_logs)} task log(s), {len(quick_specs)} spec folder(s), " \
           "1 moved-aside done marker(s)" in text, text
    assert "1 job(s) live" in text
    assert not any(p.exists() for p in quick_logs + quick_specs + [rebuilt])
    assert only_trace.exists()  # i=1 not rebuilt: its newest moved-aside marker stays
    assert all(p.exists() for p in slow_specs), "gc touched the live job's spec"
    assert "running" in run_cli(script, "status", "slow", env=env).stdout  # exit 3: live

    history = _ok(run_cli(script, "history", "quick", env=env))
    records = Store(home, project).records("quick")
    assert all(r.collected_at for r in records) and all(r.job_id in history for r in records)
    assert "built" in history
    cat = run_cli(script, "cat", f"{records[0].job_id}_0", env=env)
    assert "removed by gc" in cat.stdout, cat.stdout + cat.stderr
    again = json.loads(_ok(run_cli(script, "gc", "--older-than", "0", "--json", env=env)))
    assert again["removed"] == []
    assert all(p.exists() for p in slow_specs)


def test_gc_on_the_local_backend_keeps_a_detached_live_job(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path, "LocalExecutor")
    home = Path(os.environ["EXPERIMENTS_HOME"])
    rebuilt, only_trace = _prepare(script, env, out)
    try:
        _ok(run_cli(script, "launch", "slow", "--detach", env=env))
        _wait_for(lambda: "running" in run_cli(script, "status", "slow", env=env).stdout)
        _check_gc(script, env, home, rebuilt, only_trace)
        detached = list((home / "projects" / env["PROJECT"] / "detached").glob("*.log"))
        assert detached and all(p.exists() for p in detached)  # its launcher is live
    finally:
        run_cli(script, "cancel", "slow", "--yes", env=env)
    _wait_for(lambda: "running" not in run_cli(script, "status", "slow", env=env).stdout)
    slow_logs, slow_specs = _files(home, env["PROJECT"], "slow")
    _ok(run_cli(script, "gc", "--older-than", "0", env=env))
    assert not any(p.exists() for p in slow_logs + slow_specs)
    assert not list((home / "projects" / env["PROJECT"] / "detached").glob("*.log"))


@pytest.mark.slurm
def test_gc_on_slurm_keeps_a_running_job(tmp_path: Path, slurm_cluster: object) -> None:
    script, env, out = _setup(tmp_path, "SlurmExecutor")
    home = Path(os.environ["EXPERIMENTS_HOME"])
    try:
        _ok(run_cli(script, "launch", "quick", env=env))
        _ok(run_cli(script, "wait", "quick", "--timeout", "200", "--interval", "1", env=env))
        _ok(run_cli(script, "invalidate", "quick", "--where", "i=0", "--yes", env=env))
        _ok(run_cli(script, "launch", "quick", env=env))
        _ok(run_cli(script, "wait", "quick", "--timeout", "200", "--interval", "1", env=env))
        _ok(run_cli(script, "invalidate", "quick", "--where", "i=1", "--yes", env=env))
        rebuilt, = out.glob("Quick/i=0*/.done.invalidated-*")
        only_trace, = out.glob("Quick/i=1*/.done.invalidated-*")
        _ok(run_cli(script, "launch", "slow", env=env))
        _wait_for(lambda: "running" in run_cli(script, "status", "slow", env=env).stdout)
        _check_gc(script, env, home, rebuilt, only_trace)
        slow_logs, _ = _files(home, env["PROJECT"], "slow")
        assert all(p.exists() for p in slow_logs)  # the running task's log
    finally:
        cancel_all(env["PROJECT"])
        wait_until_idle(env["PROJECT"])
