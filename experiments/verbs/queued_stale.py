"""Queued work planned with other parameters: named at ``drylaunch``/``launch``, replaced by
``launch --rebuild-stale`` when the user says so, never silently.

A task queued (or running) before a default changed builds what its spec says — the old
parameters — and its result is stale the moment it is built; a launch that skips it as
"already queued" lets a leaderboard mix both. So before planning, every live task of this root
whose artifact the selected stages hold is compared with today's experiment: its spec's
``params`` against today's, and its dependencies against what is being replaced or rebuilt
(transitively). What is found is

* named by ``drylaunch`` and by a ``launch`` without ``--rebuild-stale`` (which artifacts,
  which parameter changed);
* with ``--rebuild-stale``: replaced when the user agreed (``replace=True``: its jobs are
  cancelled and their unbuilt artifacts planned again, with today's parameters), left queued
  when the user declined (``replace=False``, said in a warning), and refused with
  :class:`QueuedStaleError` (exit code 2, listing them) while nobody has said either.

Jobs are cancelled whole (the protocol cancels jobs, not tasks), so every live dependent of
any of their artifacts is replaced with them: nothing is left waiting on a cancelled job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from ..errors import ExperimentsError
from ..model.artifact import Artifact, walk
from ..model.identity import encode_params
from ..paths import SPEC_TASKS
from ..session import Session
from ..states import JobState, TaskKey
from ..tracking.staleness import param_diffs
from ..tracking.status import Live
from ..tracking.store import JobRecord
from .cancel import cancel_records

SHOWN = 20  # tasks named in a message before "and N more"


class QueuedStaleError(ExperimentsError):
    """``launch --rebuild-stale`` found queued work planned with other parameters, and nobody
    said whether to replace it (exit code 2: the command line must say)."""

    exit_code = 2

    def __init__(self, message: str, found: Sequence[QueuedStale]) -> None:
        super().__init__(message)
        self.found = list(found)


@dataclass(frozen=True)
class QueuedStale:
    """One live task whose artifact would be built other than the experiment describes today."""

    record: JobRecord
    index: int
    reason: str  # "num_examples was 500, now 4000", or "dependency … is replaced"
    running: bool = False

    @property
    def relpath(self) -> str:
        return self.record.tasks[self.index][1]

    @property
    def task(self) -> str:
        return f"{self.record.job_id}_{self.index}"

    def describe(self) -> str:
        """``Eval/seed=1-… [eval] (job 12_0, queued): num_examples was 500, now 4000``."""
        state = "running" if self.running else "queued"
        return f"{self.relpath} [{self.record.stage}] (job {self.task}, {state}): {self.reason}"


@dataclass
class Settled:
    """What a launch does about queued work planned with other parameters."""

    live: Live  # the scheduler's answer, without the jobs replaced
    found: list[QueuedStale] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # job ids cancelled to resubmit
    warnings: list[str] = field(default_factory=list)


def _spec_tasks(record: JobRecord) -> list[dict[str, object]]:
    """The tasks of a job's spec, in position order ([] when the spec is gone or damaged)."""
    out: list[dict[str, object]] = []
    try:
        with open(os.path.join(record.spec_dir, SPEC_TASKS), encoding="utf-8") as fh:
            for line in fh:
                task = json.loads(line)
                out.append(task if isinstance(task, dict) else {})
    except (OSError, ValueError, RecursionError):
        return []
    return out


def _live_positions(record: JobRecord, live: Live) -> list[tuple[int, bool]]:
    """(position, running?) of each live task of a job."""
    out = []
    for i in range(len(record.tasks)):
        st = live.get(TaskKey(record.job_id or "", i))
        if st is not None and st.state.live:
            out.append((i, st.state is JobState.RUNNING))
    return out


def find(session: Session, stages: Sequence[str] | None, records: Sequence[JobRecord],
         live: Live, rebuild: Collection[str] = ()) -> list[QueuedStale]:
    """Live tasks of ``records`` (of this root) holding an artifact of the selected stages (or
    their dependencies) planned with other parameters than today's, and every live task that
    depends on one of them, on an artifact in ``rebuild``, or on an artifact of the same jobs."""
    held = [(rec, positions) for rec in records if (positions := _live_positions(rec, live))]
    if not held:  # nothing live: nothing can be planned otherwise (and no grid walk needed)
        return []
    ex = session.experiment
    today = {a.artifact_id: a for a in walk(
        [a for s in session.selected(stages) for a in ex.stages[s]])}
    by_relpath = {a.relpath: k for k, a in today.items()}
    entries: list[tuple[JobRecord, int, bool, list[str], str | None]] = []
    for rec, positions in held:
        specs = _spec_tasks(rec)
        for i, running in positions:
            spec = specs[i] if i < len(specs) else {}
            art = today.get(rec.tasks[i][0])
            raw = spec.get("deps")
            deps = [str(d) for d in raw] if isinstance(raw, list) else []
            entries.append((rec, i, running, deps, _own(spec, art)))
    return _closure(entries, by_relpath, set(rebuild))


def _own(spec: dict[str, object], art: Artifact | None) -> str | None:
    """How a task's planned parameters differ from today's (None: the same, or not ours)."""
    if art is None or "params" not in spec:
        return None
    diffs = param_diffs(spec["params"], encode_params(art))
    return f"planned with {diffs}" if diffs else None


def _closure(entries: Sequence[tuple[JobRecord, int, bool, list[str], str | None]],
             by_relpath: dict[str, str], rebuild: set[str]) -> list[QueuedStale]:
    """The tasks planned differently, then (to a fixed point) every live task depending on an
    artifact that is rebuilt or held by a job that will be cancelled."""
    found: dict[tuple[str, int], QueuedStale] = {}
    for rec, i, running, _deps, own in entries:
        if own:
            found[(rec.name, i)] = QueuedStale(rec, i, own, running)
    changed = True
    while changed:
        changed = False
        doomed = {n for n, _ in found}
        gone = set(rebuild) | {r.tasks[i][0] for r, i, *_ in entries if r.name in doomed}
        for rec, i, running, deps, _own_reason in entries:
            if (rec.name, i) in found:
                continue
            hit = next((d for d in deps if by_relpath.get(d) in gone), None)
            if hit is not None or rec.name in doomed:
                why = (f"dependency {hit} is rebuilt or replaced" if hit is not None
                       else "its job holds tasks that are replaced")
                found[(rec.name, i)] = QueuedStale(rec, i, why, running)
                changed = True
    return sorted(found.values(), key=lambda q: (q.record.submitted_at, q.index))


def without(live: Live, jobs: Collection[str]) -> Live:
    """``live`` without the tasks of ``jobs`` (cancelled: their artifacts are planned again)."""
    return Live({k: v for k, v in live.statuses.items() if k.job_id not in jobs},
                dict(live.unreachable))


def listing(found: Sequence[QueuedStale], limit: int | None = SHOWN) -> list[str]:
    """One line per task (the first ``limit``), and how many more."""
    shown = found if limit is None else found[:limit]
    lines = [q.describe() for q in shown]
    if len(found) > len(shown):
        lines.append(f"... and {len(found) - len(shown)} more (`drylaunch -v` lists all)")
    return lines


def settle(session: Session, stages: Sequence[str] | None, records: Sequence[JobRecord],
           live: Live, rebuild: Collection[str], rebuild_stale: bool,
           replace: bool | None) -> Settled:
    """What a launch does about queued work planned with other parameters: nothing to do,
    a warning naming it (no ``--rebuild-stale``, or the user declined), or its jobs cancelled
    and left out of ``live`` so the plan builds their artifacts again (the user agreed).
    Raises :class:`QueuedStaleError` when ``--rebuild-stale`` found some and nobody said."""
    found = find(session, stages, records, live, rebuild if rebuild_stale else ())
    if not found:
        return Settled(live)
    jobs = sorted({q.record.job_id or "" for q in found})
    head = (f"{len(found)} queued or running task(s) in job(s) {', '.join(jobs)} build "
            "other than the experiment describes today")
    if not rebuild_stale or replace is False:
        then = ("`launch --rebuild-stale` replaces them" if not rebuild_stale
                else "left queued as asked (--keep-queued); their results will be stale")
        return Settled(live, found, warnings=[f"{head} ({then}): "
                                              + "; ".join(listing(found, 5))])
    if replace is None:
        raise QueuedStaleError(
            f"{head}: {'; '.join(listing(found, 5))}. Cancel those jobs and resubmit their "
            "artifacts with today's parameters (`launch --rebuild-stale --replace-queued`), or "
            "leave them queued (`--keep-queued`); nothing was submitted", found)
    doomed = [q.record for q in found]
    cancel_records(session, list({r.name: r for r in doomed}.values()))
    return Settled(without(live, jobs), found, jobs)


def for_drylaunch(session: Session, stages: Sequence[str] | None, records: Sequence[JobRecord],
                  live: Live, stale_ids: Collection[str], rebuild_stale: bool
                  ) -> tuple[Live, list[QueuedStale]]:
    """What ``drylaunch`` names, and the scheduler's answer its plan sees: with
    ``--rebuild-stale``, as if the user agreed to replace them (the plan shows them rebuilt)."""
    found = find(session, stages, records, live, stale_ids if rebuild_stale else ())
    if not rebuild_stale or not found:
        return live, found
    return without(live, {q.record.job_id or "" for q in found}), found
