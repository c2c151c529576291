"""Run experiment files through their real CLI in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def run_cli(script: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python script.py args...`` with the current environment (EXPERIMENTS_HOME included)."""
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env or {})},
                          cwd=script.parent)


def done_markers(root: Path) -> list[Path]:
    return sorted(root.rglob(".done"))


def sigint_default() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: restore SIGINT's default.

    A shell that runs pytest in the background (``nohup pytest &``, a CI runner) starts it with
    SIGINT ignored, and children inherit that; Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
