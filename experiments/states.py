"""The words for job and task state that every layer shares (imports nothing of the package).

A backend answers ``query`` with a :class:`TaskStatus` per :class:`TaskKey`; status, waiting,
the verbs and the CLI read them; ``JobState`` is also what a local run records per task. These
records sit below the planner, the backends and the launch path, so each of them can use the
words without importing the others.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

# The raw word of a task whose job id the scheduler now gives to a job of another name (see
# experiments/backends/slurm/clusters.py): not ours, never shown or cancelled as ours.
NOT_OURS = "NOT_OURS"


class JobState(str, enum.Enum):
    """The state of one task as the scheduler (or the local runner) reports it.

    UNKNOWN means "the scheduler could not tell"; it never means built. Whether an artifact is
    built is decided by its done marker alone.
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"
    # Submitted to another cluster than the one this machine's scheduler commands reach: not
    # asked, so it may still run (never resubmitted, never cancelled from here).
    ELSEWHERE = "elsewhere"

    @property
    def live(self) -> bool:
        """True while the task may still run (queued, running, requeued, or elsewhere)."""
        return self in (JobState.PENDING, JobState.RUNNING, JobState.ELSEWHERE)


class TaskKey(NamedTuple):
    """One task of one job: ``(job id, index)``; written ``<job id>_<index>``.

    A named tuple, not a dataclass: ``status`` of 100,000 tracked tasks builds and hashes one
    per task, and a tuple does both several times faster."""

    job_id: str
    index: int  # type: ignore[assignment]  # the field shadows tuple.index, on purpose

    def __str__(self) -> str:
        return f"{self.job_id}_{self.index}"

    @classmethod
    def parse(cls, text: str) -> TaskKey | None:
        """``"12_3"`` → ``TaskKey("12", 3)``; None for anything else."""
        job_id, sep, index = text.rpartition("_")
        return cls(job_id, int(index)) if sep and job_id and index.isdigit() else None


class Outlook(str, enum.Enum):
    """Whether the reason a queued task waits for goes away without anyone doing anything."""

    CLEARS = "clears on its own"
    NEVER = "never clears on its own"
    UNKNOWN = "may not clear on its own"


@dataclass(frozen=True)
class TaskStatus:
    """What a backend knows about one task.

    ``raw`` is the scheduler's own word for the state (``TIMEOUT``, ``CANCELLED by 0``),
    ``reason`` its explanation (a pending reason), ``exit_code`` ``"<code>:<signal>"``.
    ``held`` marks a task that will not start until someone releases it. For a queued task,
    ``hint`` says in plain words why it waits and what to change, and ``outlook`` whether that
    reason clears on its own (None when the backend gives no reason).
    """

    state: JobState
    raw: str = ""
    reason: str = ""
    exit_code: str = ""
    held: bool = False
    hint: str = ""
    outlook: Outlook | None = None


@dataclass(frozen=True)
class TaskUsage:
    """What accounting says one task used (a backend that keeps accounts offers
    ``usage(records) -> {TaskKey: TaskUsage}``, one call for any number of jobs).

    ``cpu_s`` and ``max_rss_mb`` are None when the scheduler does not gather them. A task run
    several times (requeued) sums ``elapsed_s`` and ``cpu_s`` over its ``attempts``; ``state``
    and ``time_limit_s`` (None: not known, or no limit) are its last attempt's.
    """

    state: str
    elapsed_s: int
    cpu_s: float | None = None
    max_rss_mb: float | None = None
    attempts: int = 1
    time_limit_s: int | None = None
