"""``launch --local --detach`` (experiments.backends.local.detach): the parent returns once the
child says its jobs are recorded, or at once with the child's exit code and output when it
ended first; the child runs in its own session with its output in a log."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from experiments.backends.local import detach


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_parent_returns_once_the_child_announces_itself(tmp_path: Path) -> None:
    stop = tmp_path / "stop"  # the child runs on until the test has looked at it
    code = ("import os, sys, time; assert os.environ['EXPERIMENTS_DETACHED'] == '1'; "
            "assert os.getsid(0) == os.getpid(); print('planned'); "
            f"print({detach.announce(1, 3)!r}, flush=True)\n"
            f"for _ in range(600):\n    if os.path.exists({str(stop)!r}): break\n"
            "    time.sleep(0.1)")
    started = detach.start(_python(code), tmp_path, "p", wait_s=600)
    try:
        assert started.running and started.exit_code is None
        assert started.output.splitlines() == ["planned", detach.announce(1, 3)]
        assert started.log.read_text().startswith("planned")
        assert started.log.is_relative_to(tmp_path)
    finally:
        stop.touch()
        _, status = os.waitpid(started.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_child_that_ends_first_gives_its_exit_code_and_what_it_said(tmp_path: Path) -> None:
    code = "import sys; print('error: another launch holds the lock'); sys.exit(3)"
    ended = detach.start(_python(code), tmp_path, "p", wait_s=60)
    assert not ended.running and ended.exit_code == 3
    assert ended.output == "error: another launch holds the lock\n"
