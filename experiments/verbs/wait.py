"""``wait`` and the outcome shared with ``status``: is the grid built, failed, or still live?

Waiting is polling ``status``: one scheduler query per backend per poll (for Slurm one queue
query and at most one accounting query), with an interval that grows while nothing changes, so
a long wait costs the scheduler little. Between polls it looks at the disk every ``tick_s``
(:mod:`.wait_disk`): once the done markers and status files show every selected artifact
ended, it returns at once, with a report read from the files alone. The verb returns data;
the CLI turns the outcome into an exit code and decides how to show each poll.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..session import Session
from ..tracking.status import ArtifactState, StageStatus
from .inspect import StatusReport, status
from .wait_disk import DiskWatch

LIVE_STATES = (ArtifactState.RUNNING, ArtifactState.QUEUED, ArtifactState.SUBMITTING,
               ArtifactState.ELSEWHERE)
FAILED_STATES = (ArtifactState.FAILED, ArtifactState.DEP_FAILED, ArtifactState.CANCELLED,
                 ArtifactState.MODIFIED, ArtifactState.UNKNOWN)
MAX_INTERVAL_S = 120.0
TICK_S = 1.0  # how often the disk is looked at between two scheduler polls
GROWTH = 1.5


class Outcome(str, enum.Enum):
    """Where the selected artifacts stand, from the most final to the least."""

    BUILT = "built"  # every selected artifact is built and current
    STALE = "stale"  # every selected artifact is built, some are stale (see docs/states.md)
    FAILED = "failed"  # nothing is live and something failed, was cancelled or never ran
    LIVE = "live"  # something is queued or running (or the scheduler could not be asked)
    TIMED_OUT = "timed out"  # ``wait`` gave up while something was still live


def is_live(stages: Sequence[StageStatus], unreachable: bool = False) -> bool:
    """True while any artifact is queued, running or being submitted, or a scheduler that
    tracks some of them could not be asked (then nothing can be called final). Other
    warnings (a job of unknown root, code that cannot be compared) do not keep it live:
    ``status --watch`` and ``wait`` end when nothing is."""
    return unreachable or any(s.counts.get(k) for s in stages for k in LIVE_STATES)


def outcome(report: StatusReport, allow_stale: bool = False) -> Outcome:
    """The outcome of a status report: live beats failed (the verdict is not in yet; a queued
    relay will submit more: a sweep's next rung, a wave), failed beats stale; ``allow_stale``
    takes stale results as built (``--allow-stale``)."""
    if is_live(report.stages, report.unreachable) or report.relaying:
        return Outcome.LIVE
    done = {ArtifactState.BUILT, ArtifactState.STALE}
    if not all(set(s.counts) <= done for s in report.stages):
        return Outcome.FAILED
    stale = any(s.counts.get(ArtifactState.STALE) for s in report.stages)
    return Outcome.STALE if stale and not allow_stale else Outcome.BUILT


@dataclass
class WaitResult:
    """The last status seen, how the wait ended, and what it cost."""

    report: StatusReport
    outcome: Outcome
    elapsed_s: float
    polls: int


Poll = Callable[[StatusReport, float, float], None]  # report, elapsed s, next interval s


def next_interval(current: float, changed: bool, first: float) -> float:
    """Back to ``first`` after a change, else ``GROWTH`` times longer (at most 2 minutes)."""
    return first if changed else min(current * GROWTH, max(MAX_INTERVAL_S, first))


def wait(session: Session, stages: Sequence[str] | None = None, *,
         timeout_s: float | None = None, interval_s: float = 5.0,
         on_poll: Poll | None = None, allow_stale: bool = False,
         sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic,
         tick_s: float | None = TICK_S) -> WaitResult:
    """Poll ``status`` until nothing selected is live, or until ``timeout_s`` has passed.

    ``on_poll`` sees every report with the elapsed time and the interval before the next poll;
    ``allow_stale`` ends "built" when the only thing wrong is stale results.
    ``tick_s``: how often the disk is looked at between polls (None: never).
    """
    selected = session.selected(stages)  # a typo fails before the first poll
    disk: DiskWatch | None = None  # made after the first poll, from its primed identities
    start = clock()
    interval, last, polls = interval_s, None, 0
    while True:
        report = status(session, selected)
        polls += 1
        elapsed = clock() - start
        result = outcome(report, allow_stale)
        if result is not Outcome.LIVE:
            return WaitResult(report, result, elapsed, polls)
        snapshot = [s.counts for s in report.stages]
        if last is not None:
            interval = next_interval(interval, snapshot != last, interval_s)
        last = snapshot
        if timeout_s is not None and elapsed + 0.01 >= timeout_s:
            return WaitResult(report, Outcome.TIMED_OUT, elapsed, polls)
        if timeout_s is not None:
            interval = min(interval, max(timeout_s - elapsed, 0.01))
        if on_poll is not None:
            on_poll(report, elapsed, interval)
        if tick_s and disk is None:
            disk = DiskWatch(session, selected)
        if disk is None or not tick_s:
            sleep(interval)
        elif _ended_while_sleeping(disk, interval, tick_s, sleep, clock):
            report = status(session, selected, ask=False)  # the files say it all
            if (result := outcome(report)) is not Outcome.LIVE and not report.sweeps:
                return WaitResult(report, result, clock() - start, polls)
            if report.sweeps:  # an undecided sweep: only the scheduler knows if a relay
                tick_s = None  # will decide it; poll it at the interval from now on


def _ended_while_sleeping(disk: DiskWatch, interval: float, tick_s: float,
                          sleep: Callable[[float], None], clock: Callable[[], float]) -> bool:
    """Sleep ``interval`` in ticks, looking at the disk after each; True as soon as it shows
    every end. A look that takes long stretches the tick (a big grid is not re-read often)."""
    until = clock() + interval
    while (left := until - clock()) > 0:
        sleep(min(tick_s, left))
        began = clock()
        if disk.all_ended():
            return True
        tick_s = max(tick_s, 10 * (clock() - began))
    return False
