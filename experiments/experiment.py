"""The experiment as the verbs see it: a frozen record of what the experiment file said.

An :class:`~experiments.executor.Executor` is the user's mutable builder (stages are added one
by one); every verb, the session and the CLI work on the :class:`Experiment` it describes, so
none of them needs to import the executor (which hands over to the CLI). Imports nothing of
the package but the artifact model, for typing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .model.sets import ArtifactSet


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Project, paths, stages and task setup of one experiment file, frozen."""

    project: str
    artifact_path: str
    code_path: str
    stages: Mapping[str, ArtifactSet]
    gs_path: str | None = None
    setup: tuple[str, ...] = ()
    snapshot_code: bool = True
    source_file: str = ""  # the experiment file that owns its jobs ("" when unknown)
    default_backend: str = "slurm"
    workers: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.stages, MappingProxyType):
            object.__setattr__(self, "stages", MappingProxyType(dict(self.stages)))

    def with_paths(self, artifact_path: str | None = None,
                   code_path: str | None = None) -> Experiment:
        """The same experiment with another artifact root and/or code folder (CLI overrides)."""
        return dataclasses.replace(
            self,
            artifact_path=absolute(artifact_path) if artifact_path else self.artifact_path,
            code_path=absolute(code_path) if code_path else self.code_path)


class DescribesExperiment(Protocol):
    """Anything that can say which experiment it is (an ``Executor``)."""

    def experiment(self) -> Experiment: ...


def as_experiment(source: Experiment | DescribesExperiment) -> Experiment:
    """The record itself, or the record ``source`` describes (an executor passed by a script)."""
    return source if isinstance(source, Experiment) else source.experiment()


def absolute(path: str | Path) -> str:
    """``path`` with ``~`` expanded, made absolute against the working folder."""
    return str(Path(path).expanduser().absolute())
