"""Named crash points for the reliability tests (never set in normal use).

``EXPERIMENTS_CRASH_AT=<label>[:<n>]`` makes the process SIGKILL itself the n-th time (default
the first) it reaches ``crash_point(<label>)``, so tests can kill a launcher at exact moments.
The labels: ``before-submit`` (a job's intent is recorded, the scheduler not yet asked) and
``after-submit`` (the scheduler accepted the job, its id not yet recorded), which every backend
passes through in :class:`~experiments.launching.context.LaunchContext`; ``jobs-json-write``
(a store file half written) and the labels given to ``_atomic`` writes.
"""

from __future__ import annotations

import os
import signal

_seen: dict[str, int] = {}


def crash_point(label: str) -> None:
    """Die here if the test asked for it; a no-op otherwise."""
    spec = os.environ.get("EXPERIMENTS_CRASH_AT")
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != label:
        return
    _seen[label] = _seen.get(label, 0) + 1
    if _seen[label] == int(nth or 1):
        _die()


def _die() -> None:
    """SIGKILL this process: nothing after this point runs, as after a power cut (in-process
    tests on the fake backend replace it with an exception)."""
    os.kill(os.getpid(), signal.SIGKILL)
