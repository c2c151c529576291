"""``artifacts`` and ``table``: a stage's results with today's states.

Built artifacts are known from their done markers; the scheduler is asked (once, for all the
jobs concerned) only when a selected artifact is not built and was submitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import paths
from ..model import selection
from ..model.artifact import Artifact
from ..model.sets import ArtifactSet, Deferred
from ..session import Session
from ..tracking import waiting
from ..tracking.status import (
    ArtifactState,
    Live,
    TaskView,
    is_built,
    latest_tasks,
    modified_detail,
    task_state,
)
from ..tracking.store import JobRecord
from ..tracking.sweep_outcomes import stages_now
from ..tracking.views import (
    ArtifactView,
    ResultTable,
    flatten_params,
    make_table,
    read_json_noted,
    read_metrics_noted,
)
from ..worker import folders, trust

Where = Iterable[str] | Mapping[str, Any] | None


def _state(art: Artifact, latest: Mapping[str, tuple[JobRecord, int]], live: Live,
           root: str) -> TaskView:
    """As ``status`` counts it: the done marker first, then the artifact's newest task."""
    if art.artifact_id in latest:
        return task_state(*latest[art.artifact_id], live, root)
    if is_built(root, art.relpath):
        return TaskView("", -1, art.relpath, ArtifactState.BUILT)
    return TaskView("", -1, art.relpath, ArtifactState.NOT_STARTED)


def select(session: Session, stage: str, where: Where = None
           ) -> list[tuple[Artifact, dict[str, Any]]]:
    """The artifacts of ``stage`` matching ``where``, with their flattened parameters."""
    session.selected([stage])
    conditions = selection.parse_where(where)
    arts = [(a, flatten_params(a)) for a in _stage_now(session, stage)]
    for c in conditions:
        if arts and not any(selection.known(p, c.key) for _, p in arts):
            names = sorted({k for _, p in arts for k in p})
            raise selection.SelectionError(
                f"--where {c}: stage {stage!r} has no parameter {c.key!r}; its parameters are: "
                f"{', '.join(names)}")
    return [(a, p) for a, p in arts if selection.matches(p, conditions)]


@dataclass
class Grid:
    """The views of several stages from one look at the scheduler, and where each artifact's
    newest task is (for its log)."""

    views: dict[str, list[ArtifactView]]
    latest: dict[str, tuple[JobRecord, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    waiting: list[waiting.WaitGroup] = field(default_factory=list)  # why queued tasks wait


def states(session: Session, artifacts: Sequence[Artifact]
           ) -> tuple[list[TaskView], dict[str, tuple[JobRecord, int]], Live]:
    """Today's state of each artifact: one scheduler query at most, none if all are built."""
    root = session.experiment.artifact_path
    unbuilt = [a for a in artifacts if not is_built(root, a.relpath)]
    latest: dict[str, tuple[JobRecord, int]] = {}
    live = Live()
    if unbuilt:
        records = session.records()
        latest = latest_tasks(records)
        wanted = {latest[a.artifact_id][0].name for a in unbuilt if a.artifact_id in latest}
        live = session.live([r for r in records if r.name in wanted])
    return [_state(a, latest, live, root) for a in artifacts], latest, live


def _checked(root: str, view: TaskView, who: folders.Trust) -> TaskView:
    """A built artifact shown as "modified" when a file in it belongs to another account or
    changed after its done marker (``table`` and the report look at what they show)."""
    if view.state is not ArtifactState.BUILT:
        return view
    why = folders.built_problem(root, view.relpath, who)
    if why is None:
        return view
    return TaskView(view.job_id, view.index, view.relpath, ArtifactState.MODIFIED,
                    modified_detail(why))


def _views(session: Session, stage: str, chosen: Sequence[tuple[Artifact, dict[str, Any]]],
           views: Sequence[TaskView]) -> list[ArtifactView]:
    root = session.experiment.artifact_path
    who = folders.Trust(*trust.trusted_ids())
    out = []
    for (art, params), view in zip(chosen, [_checked(root, v, who) for v in views],
                                   strict=True):
        meta, meta_note = read_json_noted(paths.meta_file(root, art.relpath))
        metrics, note = read_metrics_noted(root, art)  # also a running one's partial metrics
        job = f"{view.job_id}_{view.index}" if view.job_id else ""
        out.append(ArtifactView(art, stage, params, paths.artifact_dir(root, art.relpath),
                                view.state, meta or {}, metrics, view.detail, job,
                                "; ".join(n for n in (note, meta_note) if n)))
    return out


def artifacts(session: Session, stage: str, where: Where = None) -> list[ArtifactView]:
    """One view per artifact of ``stage`` (matching ``where``), in the stage's order."""
    chosen = select(session, stage, where)
    views, _latest, _live = states(session, [a for a, _ in chosen])
    return _views(session, stage, chosen, views)


def grid(session: Session, stages: Sequence[str] | None = None) -> Grid:
    """Every artifact of ``stages`` (all by default), with one scheduler query in total."""
    chosen = {s: select(session, s) for s in session.selected(stages)}
    flat = [a for c in chosen.values() for a, _ in c]
    views, latest, live = states(session, flat)
    out: dict[str, list[ArtifactView]] = {}
    start, queued = 0, []
    for stage, arts in chosen.items():
        out[stage] = _views(session, stage, arts, views[start:start + len(arts)])
        queued += [(stage, v) for v in views[start:start + len(arts)]]
        start += len(arts)
    notes = [f"{v.relpath}: {v.note}" for vs in out.values() for v in vs if v.note]
    return Grid(out, latest, [*live.warnings(), *notes], waiting.group(queued))


def table(session: Session, stage: str, where: Where = None,
          columns: Sequence[str] | None = None, sort: str | None = None) -> ResultTable:
    """The results table of ``stage``: parameters, metrics, state and folder per artifact."""
    result = make_table(stage, artifacts(session, stage, where))
    if sort:
        result = result.sort(sort)
    if columns:
        result = result.select(columns)
    return result


def _stage_now(session: Session, stage: str) -> ArtifactSet:
    """The stage's artifacts; a sweep's are every trial decided so far (from the root)."""
    arts = session.experiment.stages[stage]
    if not isinstance(arts, Deferred):
        return arts
    tracked = session.tracked()
    root = session.experiment.artifact_path
    return stages_now({stage: arts}, root, tracked.records, tracked.live)[0][stage]
