"""What a backend reports while the scheduler is slow to accept a submission.

A full or frozen controller can keep one ``sbatch`` busy for minutes (it sleeps and retries by
itself while the queue is full; our timeout then stops it, the job is looked up by name and
submitted again). The client reports each of those waits as a :class:`SubmitWait`; the launch
adds which submission it is and the CLI prints it, so a slow launch is never silent.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class WaitPhase(enum.Enum):
    """What a submission is waiting for."""

    SUBMITTING = "submitting"  # sbatch has not answered yet; it is stopped at our timeout
    RETRY = "retry"            # sbatch failed transiently: look the job up by name, resubmit
    LOOKUP = "lookup"          # nothing found by name yet: look again before resubmitting


@dataclass(frozen=True)
class SubmitWait:
    """One report about a slow submission: how long it has waited and what comes next."""

    phase: WaitPhase
    job_name: str
    waited_s: float   # since this job's submission began
    attempt: int      # the sbatch attempt this is about (RETRY: the attempt that comes next)
    attempts: int     # attempts allowed before the submission gives up
    next_in_s: float  # SUBMITTING: until sbatch is stopped; RETRY, LOOKUP: until the next step
    said: str = ""    # the scheduler's last words (sbatch's stderr, or the transient error)

    @property
    def last_attempt(self) -> bool:
        """No sbatch attempt comes after this one."""
        return self.attempt >= self.attempts

    @property
    def lookup_only(self) -> bool:
        """Every attempt failed: one last look-up by name, then the submission gives up."""
        return self.attempt > self.attempts


OnWait = Callable[[SubmitWait], None]
