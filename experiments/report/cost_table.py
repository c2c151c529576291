"""The report's cost table: hours requested (counted as ``drylaunch`` counts them) and hours
used (from the scheduler's accounting, as ``efficiency`` reads it), per stage.

Requested is every artifact of the stage × its time limit × its CPUs or GPUs, from the same
resolved requirements a launch would submit (planning's ``RequirementResolver``: config
defaults under the artifact's own, once per distinct set).
Used is what accounting recorded for the stage's finished tasks: CPU time for CPU-hours,
elapsed × GPUs for GPU-hours (a GPU is held for the whole run). Backends that keep no accounts
(the local one) leave used hours empty and say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ExperimentsError, SchedulerQueryError
from ..resources import Resources
from ..session import Session
from ..tracking.views import ArtifactView
from ..verbs.efficiency import efficiency
from ..verbs.planning import RequirementResolver


@dataclass(frozen=True)
class StageCost:
    """Hours one stage requests and (once tasks ran) used; None where not known."""

    stage: str
    artifacts: int
    cpu_hours: float | None
    gpu_hours: float | None
    used_cpu_hours: float | None = None
    used_gpu_hours: float | None = None
    accounted_tasks: int = 0  # tasks the used hours are summed over


@dataclass(frozen=True)
class Usage:
    """Used hours per stage from one accounting pass, and what could not be accounted."""

    by_stage: Mapping[str, tuple[float | None, float, int]]  # cpu h, gpu h, tasks
    warnings: tuple[str, ...] = ()


def usage(session: Session, stages: Sequence[str]) -> Usage:
    """Used hours of ``stages`` from the scheduler's accounting (one call per backend); a
    scheduler that does not answer leaves them unknown (the report is written regardless)."""
    try:
        report = efficiency(session, stages)
    except SchedulerQueryError as e:
        return Usage({}, (f"accounting could not be asked: {e}",))
    by_stage = {s.stage: (s.used_cpu_h, s.used_gpu_h, len(s.tasks))
                for s in report.stages if s.tasks}
    return Usage(by_stage, tuple(report.warnings))


def stage_costs(session: Session, views: Mapping[str, Sequence[ArtifactView]],
                used: Usage | None) -> tuple[list[StageCost], list[str]]:
    """One row per stage; warnings for requirements that could not be resolved."""
    resolve = _Resolver(session)
    rows: list[StageCost] = []
    for stage, vs in views.items():
        cpu: float | None = 0.0
        gpu: float | None = 0.0
        for v in vs:
            res = resolve(v)
            if res is None or res.time_s is None:
                cpu = gpu = None
                break
            assert cpu is not None and gpu is not None
            cpu += res.cpus * res.time_s / 3600
            gpu += res.gpus * res.time_s / 3600
        u_cpu, u_gpu, n = (used.by_stage.get(stage, (None, None, 0)) if used
                           else (None, None, 0))
        rows.append(StageCost(stage, len(vs), cpu, gpu, u_cpu, u_gpu if n else None, n))
    return rows, resolve.problems


class _Resolver:
    """The resources a launch would ask for, per artifact (planning's own resolver), or None
    with a problem noted when its requirements cannot be resolved."""

    def __init__(self, session: Session) -> None:
        self.resolve = RequirementResolver.for_session(session)
        self.problems: list[str] = []

    def __call__(self, view: ArtifactView) -> Resources | None:
        try:
            return self.resolve(view.artifact)
        except ExperimentsError as e:
            self.problems.append(f"cost not counted: {e}")
            return None
