"""``artifacts`` and ``table``: a stage's results with today's states.

Built artifacts are known from their done markers (and whether they are stale from their
records); the scheduler is asked (once, for all the jobs concerned) only when a selected
artifact is not built and was submitted. Only jobs building into the session's artifact root
are attempts of its artifacts: a run into another root never shows here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .. import paths
from ..model import selection
from ..model.artifact import Artifact
from ..model.sets import ArtifactSet, Deferred, Sweep
from ..model.sweep_summary import SweepSummary
from ..session import Session, Tracked
from ..tracking import waiting
from ..tracking.ends import of_root
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
from ..tracking.sweep_outcomes import RootOutcomes, stages_now, sweeps_now
from ..tracking.views import (
    ArtifactView,
    ResultTable,
    built_with,
    flatten_params,
    make_table,
    read_json_noted,
    read_metrics_noted,
)
from ..worker import folders, trust
from .stale import finder

Where = Iterable[str] | Mapping[str, Any] | None


def _state(art: Artifact, latest: Mapping[str, tuple[JobRecord, int]], live: Live,
           root: str) -> TaskView:
    """As ``status`` counts it: the done marker first, then the artifact's newest task."""
    if art.artifact_id in latest:
        return task_state(*latest[art.artifact_id], live, root)
    if is_built(root, art.relpath):
        return TaskView("", -1, art.relpath, ArtifactState.BUILT)
    return TaskView("", -1, art.relpath, ArtifactState.NOT_STARTED)


def select(session: Session, stage: str, where: Where = None, tracked: Tracked | None = None
           ) -> list[tuple[Artifact, dict[str, Any]]]:
    """The artifacts of ``stage`` matching ``where``, with their flattened parameters."""
    session.selected([stage])
    conditions = selection.parse_where(where)
    arts = [(a, flatten_params(a)) for a in _stage_now(session, stage, tracked)]
    selection.check_keys(conditions, (p for _, p in arts), f"stage {stage!r}")
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
    """Today's state of each artifact (built ones stale with the reason when they are): one
    scheduler query at most, none if all are built. Only jobs of the session's root count."""
    root = session.experiment.artifact_path
    unbuilt = [a for a in artifacts if not is_built(root, a.relpath)]
    latest: dict[str, tuple[JobRecord, int]] = {}
    live = Live()
    if unbuilt:
        records = of_root(session.records(), root)  # another root's run is not an attempt
        latest = latest_tasks(records)
        wanted = {latest[a.artifact_id][0].name for a in unbuilt if a.artifact_id in latest}
        live = session.live([r for r in records if r.name in wanted])
    views = [_state(a, latest, live, root) for a in artifacts]
    return _stale(session, artifacts, views), latest, live


def _stale(session: Session, artifacts: Sequence[Artifact], views: list[TaskView]
           ) -> list[TaskView]:
    """``views`` with every built artifact that is stale turned *stale*, its reason the detail."""
    if not any(v.state is ArtifactState.BUILT for v in views):
        return views
    found, _warnings = finder(session)  # the warnings reach the user through `status`
    out = []
    for art, view in zip(artifacts, views, strict=True):
        why = found.reason(art) if view.state is ArtifactState.BUILT else None
        out.append(replace(view, state=ArtifactState.STALE, detail=why) if why else view)
    found.save()
    return out


def _checked(root: str, view: TaskView, who: folders.Trust) -> TaskView:
    """A built artifact shown as "modified" when a file in it belongs to another account or
    changed after its done marker (``table`` and the report look at what they show)."""
    if view.state is not ArtifactState.BUILT:
        return view
    why = folders.built_problem(root, view.relpath, who)
    if why is None:
        return view
    return replace(view, state=ArtifactState.MODIFIED, detail=modified_detail(why),
                   reason="")


def _views(session: Session, stage: str, chosen: Sequence[tuple[Artifact, dict[str, Any]]],
           views: Sequence[TaskView]) -> list[ArtifactView]:
    root = session.experiment.artifact_path
    who = folders.Trust(*trust.trusted_ids())
    out = []
    metas: dict[str, dict[str, Any]] = {}  # dependencies' records, read once
    for (art, params), view in zip(chosen, [_checked(root, v, who) for v in views],
                                   strict=True):
        meta, meta_note = read_json_noted(paths.meta_file(root, art.relpath))
        metrics, note = read_metrics_noted(root, art)  # also a running one's partial metrics
        job = view.task_id
        made = view.state in (ArtifactState.BUILT, ArtifactState.STALE)
        out.append(ArtifactView(art, stage, params, paths.artifact_dir(root, art.relpath),
                                view.state, meta or {}, metrics, view.detail, job,
                                "; ".join(n for n in (note, meta_note) if n),
                                built_with(root, art, meta, metas) if made and meta else None))
    return out


def artifacts(session: Session, stage: str, where: Where = None,
              tracked: Tracked | None = None) -> list[ArtifactView]:
    """One view per artifact of ``stage`` (matching ``where``), in the stage's order."""
    chosen = select(session, stage, where, tracked)
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
    """The results table of ``stage``: parameters (as built), metrics, state, changed and
    folder per artifact."""
    sweep = isinstance(session.experiment.stages.get(stage), Sweep)
    tracked = session.tracked() if sweep else None  # one scheduler query for both
    result = make_table(stage, artifacts(session, stage, where, tracked),
                        sweep_of(session, stage, tracked) if tracked else None)
    if sort:
        result = result.sort(sort)
    if columns:
        result = result.select(columns)
    return result


def sweep_of(session: Session, stage: str, tracked: Tracked | None = None
             ) -> SweepSummary | None:
    """The stage rung by rung when it is a sweep (None otherwise)."""
    if not isinstance(session.experiment.stages[stage], Sweep):
        return None
    tracked, ex = tracked or session.tracked(), session.experiment
    got = sweeps_now(ex.stages, [stage], ex.artifact_path, tracked.records, tracked.live)
    return got[0] if got else None


def _stage_now(session: Session, stage: str, tracked: Tracked | None = None) -> ArtifactSet:
    """The stage's artifacts; a sweep's are every trial decided so far (from the root)."""
    arts = session.experiment.stages[stage]
    if not isinstance(arts, Deferred):
        return arts
    tracked = tracked or session.tracked()
    root = session.experiment.artifact_path
    if isinstance(arts, Sweep):  # its failed trials too, as failed
        return arts.shown(RootOutcomes(root, of_root(tracked.records, root), tracked.live))
    return stages_now({stage: arts}, root, tracked.records, tracked.live)[0][stage]
