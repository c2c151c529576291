"""The verbs (launch, drylaunch, status, wait, history, cat's lookups, cancel, invalidate,
accept, gc of code snapshots, results) as functions over a
:class:`~experiments.session.Session`. They return data; the CLI renders it. None of them knows
a concrete backend: they speak only the seam in :mod:`experiments.backends.base`.
"""

from __future__ import annotations

from .accept import Acceptance, accept
from .cancel import CancelResult, cancel, cancel_jobs, cancel_targets
from .code_snapshots import gc as gc_snapshots
from .inspect import (
    HistoryReport,
    StatusReport,
    find_job,
    history,
    job_view,
    status,
    tracked_roots,
)
from .invalidate import Invalidation, invalidate
from .invalidate import apply as apply_invalidation
from .invalidate import select as select_invalidation
from .launch import DryRun, LaunchResult, drylaunch, launch
from .results import artifacts, table
from .wait import Outcome, WaitResult, outcome, wait

__all__ = ["Acceptance", "CancelResult", "DryRun", "HistoryReport", "Invalidation",
           "LaunchResult", "Outcome", "StatusReport", "WaitResult", "accept",
           "apply_invalidation", "artifacts", "cancel", "cancel_jobs", "cancel_targets",
           "drylaunch", "find_job", "gc_snapshots", "history", "invalidate", "job_view",
           "launch", "outcome", "select_invalidation", "status", "table", "tracked_roots",
           "wait"]
