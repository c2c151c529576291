"""What a sweep decides from: the artifact root's done markers and metrics, and the jobs.

:class:`RootOutcomes` answers :class:`experiments.model.sweeps.Outcomes` for one planning
moment: built (a done marker), live (a queued or running task of the root's jobs), failed
(the newest attempt ended failed, timed out or dependency-failed; a cancelled one is not
failed, so a relaunch after ``cancel`` runs it again) and the metrics file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from ..model.artifact import Artifact
from ..model.sets import ArtifactSet, Sweep, resolve_stages
from ..model.sweep_summary import SweepSummary, summarize
from .ends import of_root
from .markers import DoneIndex
from .status import ArtifactState, Live, latest_tasks, live_artifacts, task_state
from .store import JobRecord
from .views import read_metrics

FAILED = (ArtifactState.FAILED, ArtifactState.DEP_FAILED)


class RootOutcomes:
    """The outcomes of artifacts under ``root`` for the jobs ``records`` (see the module)."""

    def __init__(self, root: str, records: Sequence[JobRecord], live: Live,
                 done: DoneIndex | None = None) -> None:
        self.root = root
        self._done = done or DoneIndex(root)
        self._records = records
        self._records_live = live
        self._failed: dict[str, bool] = {}
        self._metrics: dict[str, Mapping[str, Any]] = {}

    @cached_property
    def _live(self) -> dict[str, str]:
        """Made when a sweep first asks (a status without sweeps never does)."""
        return live_artifacts(self._records, self._records_live)

    @cached_property
    def _latest(self) -> dict[str, tuple[JobRecord, int]]:
        return latest_tasks(self._records)

    def built(self, art: Artifact) -> bool:
        """Its done marker is there."""
        return self._done(art.relpath)

    def live(self, art: Artifact) -> bool:
        """A task of a live job builds it."""
        return art.artifact_id in self._live

    def failed(self, art: Artifact) -> bool:
        """Its newest attempt ended failed (or timed out, or a dependency failed)."""
        key = art.artifact_id
        if key not in self._failed:
            last = self._latest.get(key)
            self._failed[key] = last is not None and task_state(
                last[0], last[1], self._records_live, self.root).state in FAILED
        return self._failed[key]

    def metrics(self, art: Artifact) -> Mapping[str, Any]:
        """Its flattened metrics (empty when it wrote none), read once per planning moment."""
        if art.artifact_id not in self._metrics:
            self._metrics[art.artifact_id] = read_metrics(self.root, art)
        return self._metrics[art.artifact_id]


def stages_now(stages: Mapping[str, ArtifactSet], root: str, records: Sequence[JobRecord],
               live: Live, done: DoneIndex | None = None, outcomes: RootOutcomes | None = None
               ) -> tuple[dict[str, ArtifactSet], list[str]]:
    """The stages as planning sees them now (sweeps resolved against the root) and what the
    undecided ones wait for, for ``status`` and ``table`` (``outcomes``: already read)."""
    return resolve_stages(stages, outcomes or RootOutcomes(root, of_root(records, root), live,
                                                           done))


def sweeps_now(stages: Mapping[str, ArtifactSet], selected: Sequence[str], root: str,
               records: Sequence[JobRecord], live: Live, done: DoneIndex | None = None,
               outcomes: RootOutcomes | None = None) -> list[SweepSummary]:
    """Each selected sweep stage rung by rung (see :mod:`experiments.model.sweep_summary`),
    for ``status``, ``table`` and the report (``outcomes``: already read)."""
    sweeps = [(s, stages[s]) for s in selected if isinstance(stages.get(s), Sweep)]
    if not sweeps:
        return []
    outcomes = outcomes or RootOutcomes(root, of_root(records, root), live, done)
    return [summarize(name, arts.spec, outcomes) for name, arts in sweeps
            if isinstance(arts, Sweep)]
