"""Planning for ``launch`` and ``drylaunch``: from the session's stages to a :class:`Plan`.

Requirements are resolved by one :class:`RequirementResolver` (config defaults under each
artifact's own requirements, ``--retry-failed`` escalation on top, then the backend's
``resolve``, once per distinct set), which the report's cost table uses too, so a cost counts
exactly what a launch would ask for. :class:`BuiltCheck` says what counts as built (relpaths
checked on the way, ``--rebuild-stale`` and ``--retry-failed`` applied). :func:`prologue` is
what both verbs do before they part: the jobs of the root and what is live, stale artifacts,
the failed ones to retry, the plan. Submitting (the launch lock, reconcile, the code snapshot)
stays in :mod:`experiments.verbs.launch`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _gc
from ..backends.base import Backend
from ..config.settings import Config
from ..errors import DefinitionError, ExperimentsError
from ..model.artifact import Artifact
from ..model.id_cache import prime_stages
from ..model.identity import check_relpath
from ..model.sets import resolve_stages
from ..model.task import Download, Task, Upload
from ..plan import Plan, build_plan
from ..plan.overrides import Overrides, apply_overrides
from ..resources import Resources, freeze_requirements
from ..session import Session
from ..tracking.ends import of_root, record_endings
from ..tracking.markers import DoneIndex
from ..tracking.staleness import Stale
from ..tracking.status import Live, live_artifacts
from ..tracking.store import JobRecord
from ..tracking.sweep_outcomes import RootOutcomes
from .queued_stale import QueuedStale, for_drylaunch, settle
from .retry import RetrySelection, select_failed
from .stale import find_stale

CANNOT_LAUNCH = ("cannot launch: the {name} scheduler could not say which jobs are already "
                 "queued ({why}); nothing was submitted. Try again when it answers")


class RequirementResolver:
    """Each artifact's ``Resources``: config defaults → its own requirements → (with
    ``retry``) escalation → the backend's ``resolve``, once per distinct requirement set.

    Errors name the artifact (class and relpath) and the key. Artifacts of one class asking
    for equal plain dicts share one answer without merging again (a grid of thousands asks a
    handful of sets); with ``retry`` that shortcut is off, since escalation differs per
    artifact even where the asks are equal.
    """

    def __init__(self, config: Config, backend: Backend, *,
                 retry: RetrySelection | None = None) -> None:
        self.config = config
        self.backend = backend
        self.retry = retry
        self._by_set: dict[tuple[Any, ...], Resources] = {}
        self._by_ask: dict[tuple[type, tuple[tuple[str, Any], ...]], Resources] = {}

    @classmethod
    def for_session(cls, session: Session, *,
                    retry: RetrySelection | None = None) -> RequirementResolver:
        """A resolver on the session's config and backend."""
        return cls(session.config, session.backend(), retry=retry)

    def __call__(self, art: Artifact) -> Resources:
        """The resources ``art`` is submitted with."""
        reqs = art.get_requirements()
        ask = (type(art), tuple(reqs.items())) if (
            self.retry is None and type(reqs) is dict) else None
        if ask is not None:
            try:
                return self._by_ask[ask]
            except KeyError:
                pass
            except TypeError:  # a value that is not hashable: no shortcut
                ask = None
        where = f"{type(art).__qualname__} {art.relpath}"
        merged = self.config.resolve_requirements(requirements_of(art, where, reqs))
        if self.retry is not None:
            merged.update(self.retry.overrides(art, merged))
        key = freeze_requirements(merged, where)
        if key not in self._by_set:
            self._by_set[key] = self.backend.resolve(merged, where)
        if ask is not None:
            self._by_ask[ask] = self._by_set[key]
        return self._by_set[key]


@dataclass
class BuiltCheck:
    """Whether planning counts an artifact as built, checking each relpath on the way.

    Built means its done marker is in ``done``; ids in ``rebuild`` count as not built
    (``--rebuild-stale``); with ``retry_ids`` (``--retry-failed``) every other artifact counts
    as built, so only those are planned.
    """

    done: Callable[[str], bool]
    rebuild: frozenset[str] = frozenset()
    retry_ids: frozenset[str] | None = None
    _checked: set[type] = field(default_factory=set)  # classes whose default relpath passed

    def __call__(self, art: Artifact) -> bool:
        cls = type(art)
        if cls.relpath is not Artifact.relpath or cls not in self._checked:
            check_relpath(art.relpath, cls.__qualname__)  # an override: check every one
            if cls.relpath is Artifact.relpath:
                self._checked.add(cls)  # the default is safe once its class name is
        if self.retry_ids is not None and art.artifact_id not in self.retry_ids:
            return True
        if self.rebuild and art.artifact_id in self.rebuild:
            return False
        return self.done(art.relpath)


def make_plan(session: Session, stages: Sequence[str] | None, with_deps: bool,
              records: Sequence[JobRecord], live: Live, *,
              overrides: Overrides | None = None,
              rebuild: Collection[str] = (),
              retry: RetrySelection | None = None) -> Plan:
    """The plan for ``stages``: closure, skips (built or live), tiers and resource groups.

    Only ``records`` building into the session's root hold artifacts; ``overrides`` are merged
    last, over the config's defaults and each artifact's own requirements. Artifact ids in
    ``rebuild`` count as not built (``--rebuild-stale``: staleness is transitive, so the
    dependents of a stale artifact are in it too). With ``retry``, only its failed artifacts
    are planned (every other one counts as done), with its escalated requirements.
    """
    ex = session.experiment
    selected = session.selected(stages)
    resolver = RequirementResolver.for_session(session, retry=retry)
    of_this_root = of_root(records, ex.artifact_path)
    done = DoneIndex(ex.artifact_path)
    built = BuiltCheck(done, frozenset(rebuild),
                       frozenset(retry.ids) if retry is not None else None)
    resolved, waiting = resolve_stages(ex.stages, RootOutcomes(ex.artifact_path, of_this_root,
                                                               live, done))
    with _gc.paused():
        plan = build_plan(resolved, selected, is_built=built,
                          live=live_artifacts(of_this_root, live),
                          resources=resolver, construct=steps_recorder(session),
                          with_deps=with_deps)
    plan = apply_overrides(plan, overrides or Overrides(), resolver.backend.resolve)
    return dataclasses.replace(plan, waiting=tuple(w for w in waiting
                                                   if w.split(":")[0] in selected))


@dataclass
class Prepared:
    """What ``launch`` and ``drylaunch`` know once planned: the root's jobs and what is live,
    stale artifacts, the retry selection, the plan, and what to warn about."""

    records: list[JobRecord]  # the jobs building into the session's root (or of unknown root)
    live: Live
    plan: Plan
    stale: list[Stale] = field(default_factory=list)
    retry: RetrySelection | None = None
    warnings: list[str] = field(default_factory=list)
    queued_stale: list[QueuedStale] = field(default_factory=list)  # queued, planned otherwise
    replaced: list[str] = field(default_factory=list)  # their jobs, cancelled to rebuild them

    @property
    def changes(self) -> list[str]:
        """``--retry-failed``: the escalated requirements, one line each."""
        return [c.describe() for c in self.retry.changes] if self.retry else []


def prologue(session: Session, stages: Sequence[str] | None, *, with_deps: bool = False,
             overrides: Overrides | None = None, rebuild_stale: bool = False,
             retry_failed: bool = False, launching: bool = False,
             replace_queued: bool | None = None) -> Prepared:
    """Plan ``stages`` as ``launch`` (``launching``) or ``drylaunch`` does.

    ``launching`` refuses when a scheduler cannot say what is queued, records the ends it sees
    (before anything is rebuilt) and looks for stale artifacts only with ``rebuild_stale``;
    ``drylaunch`` lists them always and warns where ``launch`` refuses. Queued work planned
    with other parameters is named, and with ``rebuild_stale`` replaced as ``replace_queued``
    says (:mod:`.queued_stale`). Storage steps are checked last, so an unusable URL fails
    before anything is submitted. The cyclic collector is paused throughout (see
    :mod:`experiments._gc`): at a million artifacts its passes over the growing heap cost a
    tenth of the planning; reference counting frees what is made here meanwhile, and the
    collector runs again afterwards (also after an error). What exists when planning ends is
    frozen (``gc.freeze``): the passes that follow (laying out, writing specs, submitting)
    leave the plan alone; the verbs give it back to the collector when they return
    (:func:`experiments._gc.thawed_after`).
    """
    with _gc.paused(freeze=True):
        return _prologue(session, stages, with_deps=with_deps, overrides=overrides,
                         rebuild_stale=rebuild_stale, retry_failed=retry_failed,
                         launching=launching, replace_queued=replace_queued)


def _prologue(session: Session, stages: Sequence[str] | None, *, with_deps: bool,
              overrides: Overrides | None, rebuild_stale: bool, retry_failed: bool,
              launching: bool, replace_queued: bool | None) -> Prepared:
    """:func:`prologue` with the collector paused."""
    root = session.experiment.artifact_path
    prime_stages(session.experiment.stages, session.selected(stages), session.store.home,
                 session.experiment.project)
    tracked = session.tracked(strict=CANNOT_LAUNCH if launching else False)
    if launching:
        record_endings(session.store, tracked.records, tracked.live, root)
    stale: list[Stale] = []
    warnings = tracked.live.warnings()
    if rebuild_stale or not launching:
        stale, stale_warnings = find_stale(session, stages)
        warnings += stale_warnings
    ids = {s.artifact_id for s in stale}
    if launching:
        settled = settle(session, stages, tracked.records, tracked.live, ids, rebuild_stale,
                         replace_queued)
        live, queued, replaced = settled.live, settled.found, settled.replaced
        warnings += settled.warnings
    else:
        live, queued = for_drylaunch(session, stages, tracked.records, tracked.live, ids,
                                     rebuild_stale)
        replaced = []
    retry = (select_failed(tracked.records, live, root, session.config.escalation)
             if retry_failed else None)
    plan = make_plan(session, stages, with_deps, tracked.records, live, overrides=overrides,
                     retry=retry, rebuild=ids if rebuild_stale else ())
    check_storage(plan)
    return Prepared(tracked.records, live, plan, stale, retry, warnings, queued, replaced)


def requirements_of(art: Artifact, where: str, reqs: Any = None) -> dict[str, Any]:
    """``art.get_requirements()`` (or ``reqs``, its result), checked to be a dict (None means
    none)."""
    if reqs is None:
        reqs = art.get_requirements()
    if reqs is None:
        return {}
    if not isinstance(reqs, dict):
        raise DefinitionError(f"{where}: get_requirements() must return a dict, got "
                              f"{type(reqs).__name__}")
    return reqs


def steps_recorder(session: Session) -> Callable[[Artifact], tuple[Any, ...]]:
    """A function that runs an artifact's ``construct`` on a fresh ``Task`` builder and returns
    the steps it recorded (the experiment's paths looked up once, not per artifact)."""
    ex = session.experiment
    artifact_path, code_path, gs_path = ex.artifact_path, ex.code_path, ex.gs_path

    def record(art: Artifact) -> tuple[Any, ...]:
        relpath = art.relpath
        builder = Task(artifact_path=artifact_path, code_path=code_path, relpath=relpath,
                       gs_path=gs_path, where=f"{type(art).__qualname__} {relpath}")
        try:
            art.construct(builder)
        except ExperimentsError:
            raise
        except Exception as exc:
            raise DefinitionError(f"{type(art).__qualname__}.construct raised "
                                  f"{type(exc).__name__}: {exc} (artifact {relpath})") from exc
        return tuple(builder.steps)

    return record


def check_storage(plan: Plan) -> None:
    """Fail before submission when a storage step's URL or packages are unusable."""
    urls = {s.url for g in plan.groups for t in g.tasks for s in t.steps
            if isinstance(s, (Upload, Download))}
    if urls:
        from .. import storage

        for url in sorted(urls):
            storage.check_url(url)
