"""The verbs (launch, drylaunch, status, wait, history, cat's lookups, cancel) as functions over a
:class:`~experiments.session.Session`. They return data; the CLI renders it. None of them knows
a concrete backend: they speak only the seam in :mod:`experiments.backends.base`.
"""

from __future__ import annotations

from .cancel import cancel, cancel_targets
from .inspect import HistoryReport, StatusReport, find_job, history, job_view, status
from .launch import DryRun, LaunchResult, drylaunch, launch
from .wait import Outcome, WaitResult, outcome, wait

__all__ = ["DryRun", "HistoryReport", "LaunchResult", "Outcome", "StatusReport", "WaitResult",
           "cancel", "cancel_targets", "drylaunch", "find_job", "history", "job_view", "launch",
           "outcome", "status", "wait"]
