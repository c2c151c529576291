"""The verbs (launch, drylaunch, status, history, cat's lookups, cancel) as functions over a
:class:`~experiments.session.Session`. They return data; the CLI renders it. None of them knows
a concrete backend: they speak only the seam in :mod:`experiments.backends.base`.
"""

from __future__ import annotations

from .cancel import CancelResult, cancel, cancel_jobs
from .inspect import HistoryReport, StatusReport, find_job, history, job_view, status
from .launch import DryRun, LaunchResult, drylaunch, launch

__all__ = ["CancelResult", "DryRun", "HistoryReport", "LaunchResult", "StatusReport", "cancel",
           "cancel_jobs", "drylaunch",
           "find_job", "history", "job_view", "launch", "status"]
