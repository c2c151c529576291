"""``launch --local --detach``: a local launcher that outlives the terminal that started it.

The command re-runs itself (without ``--detach``) as a child in a new session, so closing the
terminal (SIGHUP to its session) or Ctrl-C there does not reach it; its output goes to a log
under the project's folder. The parent waits until the child has recorded its jobs (it prints
:data:`READY` then) or has ended (nothing to do, or an error such as another launch holding
the project's lock), so the user sees an error at once instead of finding it in a log later.
From then on ``status``, ``cat`` and ``cancel`` find the launcher by the pid and process start
time in its job records, as they do for a launcher in the foreground.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ... import _proc, paths

ENV = "EXPERIMENTS_DETACHED"  # set in the child: it announces READY once its jobs are recorded
READY = "experiments: detached launcher is running"


@dataclass(frozen=True)
class Detached:
    """The outcome of starting a detached launcher."""

    pid: int
    log: Path
    running: bool            # True: the jobs are recorded and running in the background
    exit_code: int | None    # set when the child ended before that
    output: str              # what the child printed so far


def start(argv: Sequence[str], home: Path, project: str, *, wait_s: float = 600.0) -> Detached:
    """Start ``argv`` in its own session with its output in a new log; wait until it is
    running (or ended, or ``wait_s`` passed)."""
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    log = paths.detached_log(home, project, stamp)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = _proc.spawn(list(argv), stdout=out, env={**os.environ, ENV: "1"})
    deadline = time.monotonic() + wait_s
    while True:
        code = child.wait(0.1)
        text = log.read_text(encoding="utf-8", errors="replace")
        if READY in text or code is not None or time.monotonic() > deadline:
            running = code is None
            return Detached(child.pid, log, running, code, text)


def announce(pid: int, total: int) -> str:
    """The line the child prints once its jobs are recorded."""
    return f"{READY} (pid {pid}, {total} task(s))"
