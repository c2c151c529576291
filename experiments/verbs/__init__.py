"""The verbs (launch, drylaunch, status, history, cat's lookups, cancel) as functions over a
:class:`~experiments.session.Session`. They return data; the CLI renders it. None of them knows
a concrete backend: they speak only the seam in :mod:`experiments.backends.base`.
"""

from __future__ import annotations

from .cancel import cancel
from .inspect import (
    HistoryReport,
    StatusReport,
    find_job,
    history,
    job_view,
    status,
    tracked_roots,
)
from .launch import DryRun, LaunchResult, drylaunch, launch
from .results import artifacts, table

__all__ = ["DryRun", "HistoryReport", "LaunchResult", "StatusReport", "artifacts", "cancel",
           "drylaunch", "find_job", "history", "job_view", "launch", "status", "table",
           "tracked_roots"]
