"""``logs``: every attempt of one artifact by relpath or parameters, and the failed ones."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXP = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, Task

@dataclass(frozen=True)
class Step(Artifact):
    x: int
    def construct(self, builder: Task):
        builder.run_command(f"echo attempt of x={{self.x}}; test {{self.x}} != 3 || test -e fixed")

executor = LocalExecutor(project="logs", artifact_path={out!r}, code_path={code!r})
executor.stage("steps", ArtifactSet.from_product(cls=Step, params={{"x": [1, 2, 3, 30]}}))
if __name__ == "__main__":
    executor.auto_cli()
'''


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "exp.py"
    path.write_text(textwrap.dedent(EXP.format(out=str(tmp_path / "a"), code=str(tmp_path))))
    return path


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, cwd=script.parent)


def test_every_attempt_newest_last_by_relpath_or_parameters(script: Path) -> None:
    assert _run(script, "launch").returncode == 1
    failed = _run(script, "logs", "--failed", "steps")
    assert failed.returncode == 0
    assert "attempt of x=3" in failed.stdout and "attempt of x=1" not in failed.stdout
    assert "command exited with code 1" in failed.stdout and "1 failed artifact(s)" in failed.stdout
    (script.parent / "fixed").touch()
    assert _run(script, "launch").returncode == 0
    res = _run(script, "logs", "steps", "--where", "x=3")
    assert res.returncode == 0, res.stderr
    first, second = res.stdout.index("attempt 1 of 2: job L1_2"), res.stdout.index(
        "attempt 2 of 2: job L2_0")
    assert first < res.stdout.index("FAILED at step 1") < second
    assert res.stdout.rstrip().splitlines()[-2].endswith(f"built {_relpath(res.stdout)}")
    by_path = _run(script, "logs", _relpath(res.stdout)[:14])  # a unique prefix
    assert by_path.returncode == 0 and by_path.stdout.count("==> attempt") == 2
    assert _run(script, "logs", "--failed").stdout.strip().endswith("0 failed artifact(s).")


def _relpath(text: str) -> str:
    line = next(x for x in text.splitlines() if "built Step/" in x)
    return line.split("built ", 1)[1].strip()


def test_selectors_that_match_none_or_many_say_so(script: Path) -> None:
    assert _run(script, "launch").returncode == 1
    many = _run(script, "logs", "Step/")
    assert many.returncode == 1 and "4 artifacts match" in many.stderr
    none = _run(script, "logs", "steps", "--where", "x=9")
    assert none.returncode == 1 and "no artifact matches" in none.stderr
    assert _run(script, "logs").returncode == 2  # no selector: usage
    one = _run(script, "logs", "steps", "--where", "x=30")
    assert one.returncode == 0 and "attempt 1 of 1" in one.stdout and "x=30" in one.stdout
