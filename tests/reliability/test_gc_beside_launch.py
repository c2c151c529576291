"""gc beside a launch (issue 23, item 4): ``gc --older-than 0`` run at many moments of a real
local launch — after its snapshot is taken, while each of its first job records is written —
never removes what the launch uses: every task builds (a removed code snapshot failed them all
with ``code_path … does not exist``). The launch is paused at named points (experiments/_faults.py)
while gc runs to its end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.experiments import done_markers

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, Task

@dataclass(frozen=True)
class Up(Artifact):
    i: int
    def construct(self, builder: Task):
        builder.run_command("test -f exp.py && echo up")

@dataclass(frozen=True)
class Down(Artifact):
    up: Up
    def construct(self, builder: Task):
        builder.run_command("test -f exp.py && echo down")

ex = LocalExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.path.dirname(os.path.abspath(__file__)))
ups = ArtifactSet.from_product(cls=Up, params={"i": [0, 1]})
ex.stage("up", ups)
ex.stage("down", ups.map(lambda u: Down(u)))
if __name__ == "__main__":
    ex.auto_cli()
'''

OFFSETS = ["snapshot-taken", "jobs-json-write:1", "jobs-json-write:2", "jobs-json-write:3",
           "jobs-json-write:4"]


def _paused(proc: subprocess.Popen[str], flag: Path) -> bool:
    """Wait until the launch pauses (True) or ends without pausing (False)."""
    deadline = time.monotonic() + 120
    while not flag.exists():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the launch neither paused nor ended"
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("offset", OFFSETS)
def test_gc_at_any_moment_of_a_launch_removes_nothing_it_uses(tmp_path: Path,
                                                              offset: str) -> None:
    code, out, pause = tmp_path / "code", tmp_path / "out", tmp_path / "pause"
    for d in (code, out, pause):
        d.mkdir()
    script = code / "exp.py"
    script.write_text(EXPERIMENT)
    env = {"OUT": str(out), "PROJECT": f"gl{uuid.uuid4().hex[:8]}"}
    launch = subprocess.Popen(
        [sys.executable, str(script), "launch", "--local"], cwd=code, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, **env, "EXPERIMENTS_PAUSE_AT": offset,
             "EXPERIMENTS_PAUSE_DIR": str(pause)})
    try:
        assert _paused(launch, pause / "paused"), launch.communicate()[0]
        gc = run_cli(script, "gc", "--older-than", "0", env=env)
        assert gc.returncode == 0, gc.stdout + gc.stderr
    finally:
        (pause / "go").touch()
        output = launch.communicate(timeout=300)[0]
    assert launch.returncode == 0, output
    assert "does not exist" not in output
    assert len(done_markers(out)) == 4, output
