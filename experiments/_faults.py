"""Named crash and pause points for the reliability tests (never set in normal use).

``EXPERIMENTS_CRASH_AT=<label>[:<n>]`` makes the process SIGKILL itself the n-th time (default
the first) it reaches ``crash_point(<label>)``, so tests can kill a launcher at exact moments.
``EXPERIMENTS_PAUSE_AT=<label>[:<n>]`` with ``EXPERIMENTS_PAUSE_DIR=<dir>`` makes it stop there
instead: it creates ``<dir>/paused`` and waits until ``<dir>/go`` exists (at most 10 minutes),
so a test can run another command at that exact moment of this one.
The labels: ``before-submit`` (a job's intent is recorded, the scheduler not yet asked) and
``after-submit`` (the scheduler accepted the job, its id not yet recorded), which every backend
passes through in :class:`~experiments.launching.launch_context.LaunchContext`; ``jobs-json-write``
(a store file half written) and the labels given to ``_atomic`` writes.
"""

from __future__ import annotations

import os
import signal
import time

_seen: dict[str, int] = {}
PAUSE_MAX_S = 600.0


def _reached(variable: str, label: str) -> bool:
    """Whether ``label`` is the one (and this the time) that ``variable`` names."""
    spec = os.environ.get(variable)
    if not spec:
        return False
    name, _, nth = spec.partition(":")
    if name != label:
        return False
    key = f"{variable}:{label}"
    _seen[key] = _seen.get(key, 0) + 1
    return _seen[key] == int(nth or 1)


def crash_point(label: str) -> None:
    """Die (or pause) here if the test asked for it; a no-op otherwise."""
    if _reached("EXPERIMENTS_CRASH_AT", label):
        _die()
    if _reached("EXPERIMENTS_PAUSE_AT", label):
        _pause(os.environ.get("EXPERIMENTS_PAUSE_DIR", "."))


def _die() -> None:
    """SIGKILL this process: nothing after this point runs, as after a power cut (in-process
    tests on the fake backend replace it with an exception)."""
    os.kill(os.getpid(), signal.SIGKILL)


def _pause(folder: str) -> None:
    """Say so in ``<folder>/paused`` and wait until ``<folder>/go`` exists (or ten minutes)."""
    with open(os.path.join(folder, "paused"), "w", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + PAUSE_MAX_S
    while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < deadline:
        time.sleep(0.05)
