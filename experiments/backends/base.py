"""The Backend protocol and the states a job or task can be in, shared by every backend."""

from __future__ import annotations

import enum


class JobState(str, enum.Enum):
    """The state of one task of a job as the scheduler (or the local runner) reports it.

    UNKNOWN means "the scheduler could not tell"; it never means built. Whether an artifact is
    built is decided by its done marker alone.
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def live(self) -> bool:
        """True while the task may still run (queued, running or requeued)."""
        return self in (JobState.PENDING, JobState.RUNNING)
