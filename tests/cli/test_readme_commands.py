"""README's two set-up commands stay true: the first one runs here as written (its
`pip install -e .` aside, which the test run itself needs), the second names the test script."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _setup_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md has no bash block with the set-up commands"
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_the_first_command_installs_and_runs_the_demo_locally(tmp_path: Path) -> None:
    first = _setup_commands()[0]
    steps = [s.strip() for s in first.split("&&")]
    assert steps[0] == "pip install -e ."
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    for step in steps[1:]:
        argv = shlex.split(step)
        if argv[0] == "python":
            argv[0] = sys.executable
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"{step}\n{done.stdout}\n{done.stderr}"
    assert list(tmp_path.rglob(".done")), "the demo built nothing"


def test_the_second_command_is_the_test_script() -> None:
    assert _setup_commands()[1] == "bash scripts/run-tests.sh"
    assert (ROOT / "scripts" / "run-tests.sh").is_file()
