"""What the report shows, as plain data: progress per stage, the stage graph, failures with
their logs, the results tables, provenance and cost. One scheduler query for the states, one
accounting call for the hours used.

Everything here is data for a template or for JSON; nothing is escaped here and nothing is
HTML: the renderer escapes every string it writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model.sets import Sweep
from ..model.sweep_summary import SweepSummary
from ..session import Session
from ..tracking import logfiles as logs
from ..tracking.ends import root_of, root_text
from ..tracking.meaning import MEANING
from ..tracking.status import ORDER, ArtifactState, read_status
from ..tracking.store import JobRecord, now_iso
from ..tracking.sweep_outcomes import sweeps_now
from ..tracking.views import ArtifactView, make_table
from ..verbs.results import grid
from .cost_table import StageCost, Usage, stage_costs, usage

TAIL_LINES = 20
FULL_LOG_BYTES = 200_000  # the end of a long log; the report says it was cut
MAX_FAILURES = 100  # with logs; the rest are counted and named by `status`
MAX_JOBS = 50


@dataclass(frozen=True)
class StageProgress:
    """One stage's counts per state, in display order, and its place in the graph."""

    name: str
    counts: dict[str, int]
    total: int
    level: int = 0


@dataclass(frozen=True)
class Failure:
    """A failed (or dependency-failed) artifact: why, where, and the end of its last log."""

    stage: str
    relpath: str
    state: str
    reason: str
    job: str
    step: str
    exit_code: Any
    tail: str
    log: str
    log_cut: bool
    log_found: bool


@dataclass
class ReportData:
    """Everything one page shows; ``tables`` is JSON-ready for the page's script."""

    project: str
    generated_at: str
    stages: list[StageProgress]
    edges: list[tuple[str, str]]
    failures: list[Failure]
    more_failures: int
    tables: list[dict[str, Any]]
    provenance: list[dict[str, Any]]
    cost: list[StageCost]
    jobs: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    cost_notes: list[str] = field(default_factory=list)  # why used hours are missing
    waiting: list[dict[str, Any]] = field(default_factory=list)  # why queued tasks wait
    sweeps: list[dict[str, Any]] = field(default_factory=list)  # each sweep rung by rung

    @property
    def states(self) -> list[str]:
        return [s.value for s in ORDER]

    @property
    def meanings(self) -> dict[str, str]:
        """State → what it means (the legend; docs/states.md says the same)."""
        return {s.value: MEANING[s] for s in ORDER}


def collect(session: Session, stages: Sequence[str] | None = None, *,
            used: Usage | None = None, accounting: bool = True) -> ReportData:
    """The report's data for ``stages`` (all by default): one scheduler query for the states,
    and (``accounting``, unless ``used`` is given) one accounting call for the hours used."""
    g = grid(session, stages)
    sweeps = {s.stage: s for s in _sweeps(session, list(g.views))}
    if used is None and accounting:
        used = usage(session, list(g.views))
    cost, cost_problems = stage_costs(session, g.views, used)
    edges = _edges(session, list(g.views))
    progress = [_progress(name, views) for name, views in g.views.items()]
    levels = _levels(list(g.views), edges)
    progress = [StageProgress(p.name, p.counts, p.total, levels[p.name]) for p in progress]
    failures = [v for views in g.views.values() for v in views
                if v.state in (ArtifactState.FAILED, ArtifactState.DEP_FAILED,
                               ArtifactState.MODIFIED)]
    return ReportData(
        project=session.experiment.project, generated_at=now_iso(), stages=progress,
        edges=edges,
        failures=[_failure(session.experiment.artifact_path, v, g.latest)
                  for v in failures[:MAX_FAILURES]],
        more_failures=max(0, len(failures) - MAX_FAILURES),
        tables=[table_json(name, views, sweeps.get(name)) for name, views in g.views.items()],
        provenance=_provenance(g.views), cost=cost,
        jobs=_jobs(session.records(list(g.views))),
        warnings=[*g.warnings, *cost_problems],
        cost_notes=list(used.warnings) if used else ["accounting was not asked"],
        waiting=[{**w.as_dict(), "text": w.text} for w in g.waiting],
        sweeps=[s.as_dict() for s in sweeps.values()])


def _sweeps(session: Session, stages: Sequence[str]) -> list[SweepSummary]:
    """The sweep stages rung by rung (a scheduler query only when there is one)."""
    ex = session.experiment
    if not any(isinstance(ex.stages[s], Sweep) for s in stages):
        return []
    tracked = session.tracked()
    return sweeps_now(ex.stages, stages, ex.artifact_path, tracked.records, tracked.live)


def _progress(stage: str, views: Sequence[ArtifactView]) -> StageProgress:
    counts = {s.value: 0 for s in ORDER}
    for v in views:
        counts[v.state.value] += 1
    return StageProgress(stage, counts, len(views))


def _edges(session: Session, stages: Sequence[str]) -> list[tuple[str, str]]:
    """(earlier, later) when an artifact of ``later`` depends on one of ``earlier``."""
    owner: dict[str, str] = {}
    for s in stages:
        for a in session.experiment.stages[s]:
            owner.setdefault(a.artifact_id, s)
    edges: dict[tuple[str, str], None] = {}
    for s in stages:
        for a in session.experiment.stages[s]:
            for d in a.dependencies():
                src = owner.get(d.artifact_id)
                if src is not None and src != s:
                    edges[(src, s)] = None
    return list(edges)


def _levels(stages: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each stage's column in the graph: the longest chain of stages before it."""
    level = dict.fromkeys(stages, 0)
    for _ in stages:  # relax; stage graphs are small and acyclic
        for a, b in edges:
            level[b] = max(level[b], level[a] + 1)
    return level


def _read_end(path: Path, limit: int) -> tuple[str, bool]:
    """The last ``limit`` bytes of a text file and whether it was cut."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - limit))
        raw = fh.read()
    return raw.decode("utf-8", errors="replace"), size > limit


def _failure(root: str, view: ArtifactView, latest: Mapping[str, tuple[JobRecord, int]]
             ) -> Failure:
    info = read_status(root, view.relpath)
    step = ""
    if info.get("step"):
        step = f"step {info['step']}: {info.get('step_description') or ''}".strip()
    text, cut, found = "", False, False
    if view.artifact_id in latest:
        record, index = latest[view.artifact_id]
        try:
            section = record.log_section(index)
            if section is None:
                text, cut = _read_end(record.log_path(index), FULL_LOG_BYTES)
            else:  # a pack's log: this artifact's part of it
                raw, cut = logs.section_bytes(record.log_path(index), section, FULL_LOG_BYTES)
                text = raw.decode("utf-8", errors="replace")
            found = True
        except OSError:
            pass
    tail = "\n".join(text.rstrip("\n").splitlines()[-TAIL_LINES:])
    return Failure(view.stage, view.relpath, view.state.value, view.detail or "no reason "
                   "recorded", view.job, step, info.get("exit_code"), tail, text, cut, found)


def table_json(stage: str, views: Sequence[ArtifactView], sweep: SweepSummary | None = None
               ) -> dict[str, Any]:
    """A stage's results table for the page's script, with the sweep's axes and relpaths."""
    table = make_table(stage, views, sweep)
    swept = []
    for i, col in enumerate(table.param_columns):
        values = {_key(r[i]) for r in table.rows}
        if len(values) > 1:
            swept.append(col)
    return {"stage": stage, "columns": list(table.columns), "params": list(table.param_columns),
            "metrics": list(table.metric_columns), "swept": swept,
            "rows": [list(r) for r in table.rows], "relpaths": [v.relpath for v in views],
            "states": [v.state.value for v in views],
            "changed_at": len(table.columns) - 2,  # the tool's `changed` column
            "details": [v.detail if v.state is ArtifactState.STALE else "" for v in views]}


def _key(value: Any) -> Any:
    """A hashable stand-in for a cell (lists and dicts as their JSON)."""
    if value is None or isinstance(value, (str, int, float)):
        return (type(value).__name__, value)
    import json

    return json.dumps(value, sort_keys=True, default=str)


def code_of(meta: Mapping[str, Any]) -> str:
    """Which code made a result, from its ``.artifact.json``: the snapshot the worker recorded
    under ``provenance.code`` and the git commit it was taken from ("dirty" when the tree
    differed from it), or the live folder when snapshots were off; "not recorded" otherwise."""
    prov = meta.get("provenance")
    code = prov.get("code") if isinstance(prov, Mapping) else None
    if not isinstance(code, Mapping):
        return "not recorded"
    parts = []
    if code.get("snapshot"):
        parts.append(f"snapshot {code['snapshot']}")
    git = code.get("git")
    if isinstance(git, Mapping) and git.get("commit"):
        dirty = " (dirty)" if git.get("dirty") else ""
        branch = f" on {git['branch']}" if git.get("branch") else ""
        parts.append(f"git {str(git['commit'])[:12]}{branch}{dirty}")
    if not parts and code.get("path"):
        parts.append(f"live code in {code['path']} (no snapshot)")
    return ", ".join(parts) or "not recorded"


def _provenance(views: Mapping[str, Sequence[ArtifactView]]) -> list[dict[str, Any]]:
    """How many results each (code, class, stage) made, how many of them are stale and how many
    were accepted on purpose; "code" is the snapshot and commit the worker recorded in
    ``.artifact.json`` (see :func:`code_of`)."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    made = (ArtifactState.BUILT, ArtifactState.STALE)
    for stage, vs in views.items():
        for v in vs:
            if not v.provenance or v.state not in made:
                continue
            key = (code_of(v.provenance),
                   str(v.provenance.get("class", type(v.artifact).__qualname__)), stage)
            counts = groups.setdefault(key, [0, 0, 0])
            counts[0] += 1
            counts[1] += v.state is ArtifactState.STALE
            counts[2] += bool(v.provenance.get("accepted"))
    return [{"code": c, "class": k, "stage": s, "artifacts": n[0], "stale": n[1],
             "accepted": n[2]} for (c, k, s), n in sorted(groups.items())]


def _jobs(records: Sequence[JobRecord]) -> list[dict[str, Any]]:
    """The newest tracked jobs with what each asked for and the root it built into (a job of
    another root builds other artifacts than the ones this page counts)."""
    newest = sorted(records, key=lambda r: r.submitted_at)[-MAX_JOBS:]
    return [{"job": r.job_id or "(unconfirmed)", "stage": r.stage, "tier": r.tier,
             "backend": r.backend, "tasks": len(r.tasks), "submitted": r.submitted_at,
             "root": root_text(root_of(r)),
             "requirements": ", ".join(f"{k}={v}" for k, v in sorted(r.requirements.items()))}
            for r in reversed(newest)]
