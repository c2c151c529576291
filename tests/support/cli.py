"""Running the CLI from a test: in-process over an executor, or an experiment file as a process.

In-process runs go through ``experiments.cli.main.run``, the same entry ``auto_cli`` uses, so a
test sees the exit code and everything printed; a subprocess run is what a user's shell does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.cli import main as cli_main
from experiments.experiment import DescribesExperiment, Experiment


def run_in_process(ex: Experiment | DescribesExperiment, *args: str,
                   capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``args`` as a command line over ``ex``: the exit code and stdout + stderr together."""
    code = cli_main.run(ex, list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def run_cli(script: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python script.py args...`` with the current environment (EXPERIMENTS_HOME included)."""
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env or {})},
                          cwd=script.parent)


def sigint_default() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: restore SIGINT's default.

    A shell that runs pytest in the background (``nohup pytest &``, a CI runner) starts it with
    SIGINT ignored, and children inherit that; Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
