"""``gc`` end to end (issue 16, item 7): what ended goes, a live job's files stay, history keeps
what happened — on the local backend, whose detached launch is the live job (the same checks run
on FakeBackend in test_gc_fake.py, with a running task as the live job)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.gc_checks import check_gc, job_files

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


def _cli(script: Path, env: dict[str, str]) -> Callable[..., tuple[int, str]]:
    """The experiment's command line in a subprocess: (exit code, stdout)."""
    def cli(*argv: str) -> tuple[int, str]:
        res = run_cli(script, *argv, env=env)
        return res.returncode, res.stdout + (res.stderr if res.returncode else "")
    return cli


def _wait_for(predicate: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        time.sleep(0.3)


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


def test_gc_on_the_local_backend_keeps_a_detached_live_job(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path, "LocalExecutor")
    home = Path(os.environ["EXPERIMENTS_HOME"])
    rebuilt, only_trace = _prepare(script, env, out)
    try:
        _ok(run_cli(script, "launch", "slow", "--detach", env=env))
        _wait_for(lambda: "running" in run_cli(script, "status", "slow", env=env).stdout)
        check_gc(_cli(script, env), home, env["PROJECT"], rebuilt, only_trace)
        detached = list((home / "projects" / env["PROJECT"] / "detached").glob("*.log"))
        assert detached and all(p.exists() for p in detached)  # its launcher is live
    finally:
        run_cli(script, "cancel", "slow", "--yes", env=env)
    _wait_for(lambda: "running" not in run_cli(script, "status", "slow", env=env).stdout)
    slow_logs, slow_specs = job_files(home, env["PROJECT"], "slow")
    _ok(run_cli(script, "gc", "--older-than", "0", env=env))
    assert not any(p.exists() for p in slow_logs + slow_specs)
    assert not list((home / "projects" / env["PROJECT"] / "detached").glob("*.log"))
