"""The verbs (launch, drylaunch, status, wait, history, cat's lookups, cancel, invalidate,
accept, gc of code snapshots, results) as functions over a
:class:`~experiments.session.Session`. They return data; the CLI renders it. None of them knows
a concrete backend: they speak only the seam in :mod:`experiments.backends.base`.

Each name is imported from its module when first asked for (``verbs.launch``, ``from
experiments.verbs import status``): a command loads only the verbs it runs. As before, a
name that is both a module and its verb (``launch``, ``wait``, ...) is the verb.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# name -> (module, its name there)
_WHERE: dict[str, tuple[str, str]] = {
    **{n: ("accept", n) for n in ("Acceptance", "accept")},
    **{n: ("cancel", n) for n in ("CancelResult", "cancel", "cancel_jobs", "cancel_targets")},
    "gc_snapshots": ("code_snapshots", "gc"),
    **{n: ("inspect", n) for n in ("HistoryReport", "StatusReport", "find_job", "history",
                                   "job_view", "status", "tracked_roots")},
    **{n: ("invalidate", n) for n in ("Invalidation", "invalidate")},
    "apply_invalidation": ("invalidate", "apply"),
    "select_invalidation": ("invalidate", "select"),
    **{n: ("launch", n) for n in ("DryRun", "LaunchResult", "drylaunch", "launch")},
    **{n: ("results", n) for n in ("artifacts", "table")},
    **{n: ("wait", n) for n in ("Outcome", "WaitResult", "outcome", "wait")},
}

__all__ = ["Acceptance", "CancelResult", "DryRun", "HistoryReport", "Invalidation",
           "LaunchResult", "Outcome", "StatusReport", "WaitResult", "accept",
           "apply_invalidation", "artifacts", "cancel", "cancel_jobs", "cancel_targets",
           "drylaunch", "find_job", "gc_snapshots", "history", "invalidate", "job_view",
           "launch", "outcome", "select_invalidation", "status", "table", "tracked_roots",
           "wait"]


class _Verbs(types.ModuleType):
    """This package: its names load on first use, and a module named like its verb is
    bound as the verb (as ``from .launch import launch`` bound it when imports were eager)."""

    def __getattr__(self, name: str) -> Any:
        """Import the module that holds ``name`` and keep what it says."""
        where = _WHERE.get(name)
        if where is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{where[0]}"), where[1])
        super().__setattr__(name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        """The import system binds each loaded submodule here: ``launch`` stays the verb."""
        if isinstance(value, types.ModuleType) and _WHERE.get(name) == (name, name):
            value = getattr(value, name)
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        """Every verb, loaded or not."""
        return sorted(set(super().__dir__()) | set(__all__))


sys.modules[__name__].__class__ = _Verbs
