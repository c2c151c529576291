"""``logs``: every attempt of one artifact (or the last failed attempt of each failed one).

An artifact is chosen by its relpath (or a unique prefix of it), or by a stage and
``key=value`` conditions on its parameters. Its attempts are the tasks of every tracked job
that built it — relaunches are separate jobs, oldest first; Slurm requeues append to the same
log, each starting with the worker's banner line. No scheduler is asked except to say whether
the newest attempt is still live.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ExperimentsError
from ..model.artifact import Artifact
from ..session import Session
from ..tracking.ends import of_root
from ..tracking.status import ArtifactState, TaskView, task_state
from ..tracking.store import JobRecord
from . import results
from .inspect import status
from .stale import finder


@dataclass(frozen=True)
class Attempt:
    """One task that tried to build the artifact: its job record, index, log and state."""

    record: JobRecord
    index: int
    view: TaskView | None = None

    @property
    def task(self) -> str:
        return self.record.address(self.index)

    @property
    def log(self) -> Path:
        return self.record.log_path(self.index)


def _unique(arts: Iterable[Artifact]) -> list[Artifact]:
    seen: dict[str, Artifact] = {}
    for a in arts:
        seen.setdefault(a.artifact_id, a)
    return list(seen.values())


def select(session: Session, selector: str, where: Sequence[str] = ()) -> Artifact:
    """The one artifact named by a relpath (or unique prefix), or by a stage and ``where``
    (chosen as ``table`` chooses: a mistyped key is the same usage error)."""
    ex = session.experiment
    if where:
        found = [a for a, _ in results.select(session, selector, where)]
        what = f"stage {selector!r} with {' '.join(where)}"
    else:
        every = _unique(a for arts in ex.stages.values() for a in arts)
        exact = [a for a in every if a.relpath == selector.rstrip("/")]
        found = exact or [a for a in every if a.relpath.startswith(selector)]
        what = f"relpath {selector!r}"
    found = _unique(found)
    if not found:
        raise ExperimentsError(f"no artifact matches {what}; `status -v` lists the failed ones "
                               "and `drylaunch -v` every artifact")
    if len(found) > 1:
        names = ", ".join(a.relpath for a in found[:5])
        raise ExperimentsError(f"{len(found)} artifacts match {what} ({names}"
                               f"{', …' if len(found) > 5 else ''}); narrow it down")
    return found[0]


def attempts(session: Session, art: Artifact) -> list[Attempt]:
    """Every tracked task of ``art`` that built into the session's artifact root (a run into
    another root is another artifact's attempt), oldest first; the newest carries its current
    state (*stale*, with the reason, when built but stale)."""
    root = session.experiment.artifact_path
    found = [Attempt(r, i) for r in of_root(session.records(), root)
             for i, (artifact_id, _) in enumerate(r.tasks) if artifact_id == art.artifact_id]
    found.sort(key=lambda a: (a.record.submitted_at, a.record.job_id or ""))
    if found:
        last = found[-1]
        view = task_state(last.record, last.index, session.live([last.record]), root)
        if view.state is ArtifactState.BUILT:
            stale, _warnings = finder(session)
            why = stale.reason(art)
            view = replace(view, state=ArtifactState.STALE, detail=why) if why else view
        found[-1] = Attempt(last.record, last.index, view)
    return found


def failed_attempts(session: Session, stages: Sequence[str] | None) -> list[Attempt]:
    """The last attempt of each failed artifact of the stages (one scheduler query)."""
    report = status(session, stages)
    wanted = {(p.job_id, p.index): p for s in report.stages for p in s.problems
              if p.state is ArtifactState.FAILED and p.job_id}
    return [Attempt(r, i, wanted[(r.job_id or "", i)])
            for r in of_root(session.records(), session.experiment.artifact_path)
            for i in range(len(r.tasks)) if (r.job_id or "", i) in wanted]
