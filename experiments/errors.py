"""The exception tree of `experiments`.

Every error the package raises on purpose is an ``ExperimentsError``; the CLI prints it as one
line and exits non-zero: with its class's ``exit_code`` (2: the experiment file or the command
line is wrong; 4: a launch refused part-way), else 1. Anything else escaping is a bug.

    ExperimentsError
    ├── DefinitionError      an artifact, field, stage or step is defined wrongly (exit code 2)
    ├── PlanError            the requested stages cannot be planned: an unknown stage, a missing
    │                        dependency, a cycle, a bad --set (exit code 2)
    ├── ConfigError          ~/.experiments/config.json is unreadable or holds bad values
    ├── SubmissionError      the scheduler refused or failed a submission
    │   └── LaunchIncomplete after other jobs of the same launch were queued (exit code 4)
    ├── LaunchStopped        ``cancel`` stopped a running launch before it submitted everything
    ├── SchedulerQueryError  the scheduler could not be asked about jobs
    ├── StoreError           a tracking file is damaged or cannot be written
    ├── StorageError         a cloud-storage transfer failed
    ├── SpecError            a job's spec cannot be read (damaged, or written by a newer version)
    └── SnapshotError        the code cannot be snapshotted (too large, unreadable, git failed)
"""

from __future__ import annotations


class ExperimentsError(Exception):
    """Root of every error raised on purpose by `experiments`."""


class DefinitionError(ExperimentsError, TypeError):
    """An artifact, field, stage, requirement or step is defined in a way we cannot use."""

    exit_code = 2  # the experiment file is wrong (docs: day-to-day.md, "Exit codes")


class PlanError(ExperimentsError):
    """The chosen stages cannot be turned into a plan (an unknown stage, a missing dependency,
    a cycle, a ``--set`` that cannot be read)."""

    exit_code = 2  # the experiment file or the command line is wrong


class ConfigError(ExperimentsError):
    """The configuration file or a configuration value is invalid."""


class SubmissionError(ExperimentsError):
    """The scheduler refused, or failed to confirm, a submission."""

    uncertain = False  # True: the job may exist all the same (keep its intent, look it up)


class LaunchIncomplete(SubmissionError):
    """A submission failed after other jobs of the same launch were queued.

    The message says which jobs are queued, which artifacts are not, and what to run next.
    ``queued``: ``(job id, stage, tier, artifact count)`` per queued job; ``missing``: the
    number of artifacts not submitted, per stage; ``cause``: the scheduler's refusal.
    """

    exit_code = 4

    def __init__(self, message: str, *, queued: tuple[tuple[str, str, int, int], ...] = (),
                 missing: dict[str, int] | None = None, cause: str = "") -> None:
        super().__init__(message)
        self.queued = queued
        self.missing = dict(missing or {})
        self.cause = cause


class LaunchStopped(ExperimentsError):
    """A running launch was asked by ``cancel`` to stop, and stopped before its next job."""


class SchedulerQueryError(ExperimentsError):
    """The scheduler could not be asked about the state of jobs."""


class StoreError(ExperimentsError):
    """A tracking file (jobs.json and friends) is damaged or cannot be written."""


class StorageError(ExperimentsError):
    """A transfer to or from remote storage failed."""


class SpecError(ExperimentsError, ValueError):
    """A job's spec (``job.json``) is damaged, or written in a format this version cannot read.

    A ``ValueError`` too, so that readers which skip an unreadable spec (best-effort lookups of
    a job's root) skip this one the same way.
    """


class SnapshotError(ExperimentsError):
    """The code directory cannot be frozen into a snapshot (too large, unreadable, git failed)."""
