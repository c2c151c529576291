"""``drylaunch`` and ``launch``: plan the stages, then show the plan or submit it.

Planning resolves each distinct requirement set once through the session's backend, so an
error names the first artifact that asked for it, and nothing is submitted before every group
has been resolved. ``launch`` holds the project's launch lock, reconciles intents left by a
crashed launch, and refuses to plan when a scheduler cannot say what is already queued.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from filelock import FileLock, Timeout

from .. import paths
from ..artifact import Artifact
from ..backends.base import Description, Resources, freeze_requirements
from ..config import lock_mode
from ..errors import DefinitionError, ExperimentsError, SchedulerQueryError
from ..identity import check_relpath
from ..launching import LaunchContext, Progress, pending_intents
from ..plan import Plan, build_plan
from ..session import Session
from ..status import Live, is_built, live_artifacts
from ..store import JobRecord, RecordState
from ..task import Download, Task, Upload
from .retry import RetrySelection, select_failed


@dataclass
class DryRun:
    """What ``drylaunch`` shows: the plan and, per group, what the backend would submit."""

    plan: Plan
    backend: str
    details: list[Description] = field(default_factory=list)  # one per group, in plan order
    problems: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # --retry-failed: escalated requirements


@dataclass
class LaunchResult:
    """What ``launch`` did: the plan, the jobs it recorded, and what it warned about."""

    plan: Plan
    records: list[JobRecord]
    warnings: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # --retry-failed: escalated requirements


def drylaunch(session: Session, stages: Sequence[str] | None = None, *,
              with_deps: bool = False, validate: bool = False,
              retry_failed: bool = False) -> DryRun:
    """The plan that ``launch`` would submit; submits and records nothing."""
    records = session.records()
    live = session.live(records)
    retry = _retry(session, records, live) if retry_failed else None
    plan = make_plan(session, stages, with_deps, records, live, retry)
    backend = session.backend()
    dry = DryRun(plan, backend.name, problems=live.warnings(),
                 changes=[c.describe() for c in retry.changes] if retry else [])
    for group in plan.groups:
        dry.details.append(backend.describe(group, validate=validate))
        dry.problems.extend(dry.details[-1].problems)
    check_storage(plan)
    return dry


def launch(session: Session, stages: Sequence[str] | None = None, *,
           with_deps: bool = False, progress: Progress | None = None,
           retry_failed: bool = False) -> LaunchResult:
    """Plan the stages and submit (or run, locally) everything not built or queued."""
    ex = session.experiment
    with _launch_lock(session):
        warnings = reconcile(session)
        records = session.records()
        live = session.live(records)
        if live.unreachable:
            name, why = next(iter(live.unreachable.items()))
            raise SchedulerQueryError(
                f"cannot launch: the {name} scheduler could not say which jobs are already "
                f"queued ({why}); nothing was submitted. Try again when it answers")
        retry = _retry(session, records, live) if retry_failed else None
        plan = make_plan(session, stages, with_deps, records, live, retry)
        check_storage(plan)
        ctx = LaunchContext.for_plan(
            plan, project=ex.project, home=session.store.home, config=session.config,
            store=session.store, artifact_path=ex.artifact_path, code_path=ex.code_path,
            python=session.config.python or sys.executable, progress=progress,
            setup=getattr(ex, "setup", ()))
        submitted = session.backend().launch(plan, ctx) if plan.groups else []
        return LaunchResult(plan, submitted, warnings,
                            [c.describe() for c in retry.changes] if retry else [])


def _retry(session: Session, records: Sequence[JobRecord], live: Live) -> RetrySelection:
    return select_failed(records, live, session.experiment.artifact_path,
                         session.config.escalation)


@contextmanager
def _launch_lock(session: Session) -> Iterator[None]:
    """One launcher per project at a time; a second one is refused, not queued."""
    project = session.experiment.project
    path = paths.launch_lock(session.store.home, project)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=2, mode=lock_mode(session.config.umask))
    try:
        lock.acquire()
    except Timeout:
        raise ExperimentsError(
            f"another launch of project {project!r} is running (lock {path}); wait for it to "
            "finish, or check `status`") from None
    try:
        yield
    finally:
        lock.release()


def reconcile(session: Session) -> list[str]:
    """Resolve intents left by a crashed launch: adopt the job if it exists, else drop it."""
    warnings = []
    for rec in pending_intents(session.store):
        found = session.backend(rec.backend).find_by_name(rec.name)
        if found:
            session.store.update(rec.stage, rec.name, job_id=found[0],
                                 state=RecordState.SUBMITTED)
            warnings.append(f"adopted job {found[0]} submitted by an interrupted launch")
        else:
            session.store.remove(rec.stage, {rec.name})
    return warnings


def make_plan(session: Session, stages: Sequence[str] | None, with_deps: bool,
              records: Sequence[JobRecord], live: Live,
              retry: RetrySelection | None = None) -> Plan:
    """The plan for ``stages``: closure, skips (built or live), tiers and resource groups.

    With ``retry``, only its failed artifacts are planned (every other one counts as done),
    with its escalated requirements.
    """
    ex = session.experiment
    selected = session.selected(stages)
    backend = session.backend()
    cache: dict[tuple[Any, ...], Resources] = {}

    def resources(art: Artifact) -> Resources:
        where = f"{type(art).__qualname__} {art.relpath}"
        merged = session.config.resolve_requirements(requirements_of(art, where))
        if retry is not None:
            merged.update(retry.overrides(art, merged))
        key = freeze_requirements(merged, where)
        if key not in cache:
            cache[key] = backend.resolve(merged, where)
        return cache[key]

    def built(art: Artifact) -> bool:
        check_relpath(art.relpath, type(art).__qualname__)
        if retry is not None and art.artifact_id not in retry.ids:
            return True  # --retry-failed: only the failed artifacts are planned
        return is_built(ex.artifact_path, art.relpath)

    return build_plan(ex.stages, selected, is_built=built, live=live_artifacts(records, live),
                      resources=resources, construct=lambda a: record_steps(session, a),
                      with_deps=with_deps)


def requirements_of(art: Artifact, where: str) -> dict[str, Any]:
    """``art.get_requirements()``, checked to be a dict (None means none)."""
    reqs = art.get_requirements()
    if reqs is None:
        return {}
    if not isinstance(reqs, dict):
        raise DefinitionError(f"{where}: get_requirements() must return a dict, got "
                              f"{type(reqs).__name__}")
    return reqs


def record_steps(session: Session, art: Artifact) -> tuple[Any, ...]:
    """Run ``art.construct`` on a fresh ``Task`` builder and return the steps it recorded."""
    ex = session.experiment
    builder = Task(artifact_path=ex.artifact_path, code_path=ex.code_path, relpath=art.relpath,
                   gs_path=ex.gs_path, where=f"{type(art).__qualname__} {art.relpath}")
    try:
        art.construct(builder)
    except ExperimentsError:
        raise
    except Exception as exc:
        raise DefinitionError(f"{type(art).__qualname__}.construct raised "
                              f"{type(exc).__name__}: {exc} (artifact {art.relpath})") from exc
    return tuple(builder.steps)


def check_storage(plan: Plan) -> None:
    """Fail before submission when a storage step's URL or packages are unusable."""
    urls = {s.url for g in plan.groups for t in g.tasks for s in t.steps
            if isinstance(s, (Upload, Download))}
    if urls:
        from .. import storage

        for url in sorted(urls):
            storage.check_url(url)

