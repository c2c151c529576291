"""experiments: define experiments as artifacts, run grids as Slurm array jobs or locally.

The public API is ``__all__``; everything else is private and may change.
Imports are lazy so that the worker, which runs once per task, starts fast.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not from typing: importing it costs every task's worker a few ms
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Artifact",
    "ArtifactSet",
    "ConfigError",
    "DefinitionError",
    "Executor",
    "ExperimentsError",
    "LocalExecutor",
    "PlanError",
    "SchedulerQueryError",
    "StorageError",
    "StoreError",
    "SubmissionError",
    "SlurmExecutor",
    "Task",
]
__version__ = "0.1.0"

_WHERE = {
    "Artifact": "model.artifact", "ArtifactSet": "model.sets", "Task": "model.task",
    "Executor": "executor", "SlurmExecutor": "executor", "LocalExecutor": "executor",
    "ExperimentsError": "errors", "DefinitionError": "errors", "PlanError": "errors",
    "ConfigError": "errors", "SubmissionError": "errors", "SchedulerQueryError": "errors",
    "StoreError": "errors", "StorageError": "errors",
}

if TYPE_CHECKING:
    from .errors import (
        ConfigError,
        DefinitionError,
        ExperimentsError,
        PlanError,
        SchedulerQueryError,
        StorageError,
        StoreError,
        SubmissionError,
    )
    from .executor import Executor, LocalExecutor, SlurmExecutor
    from .model.artifact import Artifact
    from .model.sets import ArtifactSet
    from .model.task import Task


def _excepthook(tp: type[BaseException], value: BaseException, tb: Any) -> None:
    """An ExperimentsError escaping an experiment file is bad input: one line, no traceback,
    and the CLI's exit code for it (2 for a definition error, as ``auto_cli`` would give)."""
    from .errors import ExperimentsError

    if issubclass(tp, ExperimentsError) and not os.environ.get("EXPERIMENTS_TRACEBACK"):
        sys.stderr.write(f"error: {value}\n")
        code = getattr(value, "exit_code", 1)
        if code != 1:  # Python would exit 1 after any hook: end here with the documented code
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    else:
        _previous_hook(tp, value, tb)


_previous_hook = sys.excepthook
if sys.excepthook is sys.__excepthook__:
    sys.excepthook = _excepthook


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'experiments' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
