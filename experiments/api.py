"""The executors: stages of artifacts, and the verbs (launch, drylaunch, status, …) as calls.

Nothing here prints; the CLI renders what these return. ``SlurmExecutor`` submits to Slurm by
default, ``LocalExecutor`` runs on this machine; either can be told to use the other backend.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout

from . import config as config_mod
from . import paths
from .artifact import Artifact
from .backends.base import JobState
from .errors import DefinitionError, ExperimentsError, PlanError, SchedulerQueryError
from .launching import LaunchContext, Progress, pending_intents
from .plan import Plan, build_plan
from .sets import ArtifactSet
from .status import LiveStates, StageStatus, is_built, job_views, live_states, stage_status
from .store import JobRecord, Store
from .task import Download, Task, Upload

_registry: list[Executor] = []


class Backend(Protocol):
    """What the executor needs from a backend (see backends/base.py for JobState)."""

    name: str

    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]: ...
    def query(self, records: Sequence[JobRecord]) -> dict[str, Any]: ...
    def cancel(self, records: Sequence[JobRecord]) -> None: ...
    def find_by_name(self, name: str) -> list[str]: ...


@dataclass
class DryRun:
    """What ``drylaunch`` shows: the plan and, per group, what the backend would submit."""

    plan: Plan
    backend: str
    details: list[list[str]] = field(default_factory=list)   # per group, e.g. sbatch lines
    problems: list[str] = field(default_factory=list)        # validation errors found


@dataclass
class LaunchResult:
    plan: Plan
    records: list[JobRecord]
    warnings: list[str] = field(default_factory=list)


def _caller_file() -> str | None:
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("experiments"):
        frame = frame.f_back  # type: ignore[assignment]
    return frame.f_globals.get("__file__") if frame is not None else None


class Executor:
    """Holds the stages of an experiment and runs the CLI verbs against a backend."""

    default_backend = "slurm"

    def __init__(self, project: str | None = None, artifact_path: str | None = None,
                 code_path: str | None = None, gs_path: str | None = None,
                 workers: int | None = None) -> None:
        source = _caller_file()
        stem = Path(source).stem if source else "experiments"
        self.project = paths.check_name("project", project if project is not None else stem)
        base = Path(source).resolve().parent if source else Path.cwd()
        self.artifact_path = str(Path(artifact_path or base / "artifacts").expanduser()
                                 .absolute())
        self.code_path = str(Path(code_path or base).expanduser().absolute())
        self.gs_path = gs_path
        self.workers = workers
        self.stages: dict[str, ArtifactSet] = {}
        _registry.append(self)

    def stage(self, name: str, artifacts: Iterable[Artifact]) -> ArtifactSet:
        """Register ``artifacts`` under the stage ``name``; stages launch in any subset."""
        paths.check_name("stage", name)
        if name in self.stages:
            raise DefinitionError(f"stage {name!r} is defined twice; give each stage its own "
                                  "name")
        arts = artifacts if isinstance(artifacts, ArtifactSet) else ArtifactSet(artifacts)
        self.stages[name] = arts
        return arts

    def with_paths(self, artifact_path: str | None = None,
                   code_path: str | None = None) -> Executor:
        """The same executor with other artifact/code paths (CLI overrides)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        if artifact_path:
            other.artifact_path = str(Path(artifact_path).expanduser().absolute())
        if code_path:
            other.code_path = str(Path(code_path).expanduser().absolute())
        return other

    def auto_cli(self, argv: Sequence[str] | None = None) -> None:
        """Run the command line (launch, drylaunch, status, history, cat, cancel) and exit."""
        from .cli.main import run

        sys.exit(run(self, argv))

    # -- plumbing -------------------------------------------------------------------------
    def _config(self) -> config_mod.Config:
        cfg = config_mod.load()
        os.umask(cfg.umask)
        return cfg

    def backend(self, local: bool | None = None, cfg: config_mod.Config | None = None) -> Backend:
        use_local = self.default_backend == "local" if local is None else local
        if use_local:
            from .backends.local import LocalBackend

            return LocalBackend(self.workers)
        from .backends.slurm.backend import SlurmBackend

        return SlurmBackend(cfg or self._config())

    def _backends_for(self, records: Sequence[JobRecord],
                      cfg: config_mod.Config) -> dict[str, Backend]:
        names = {r.backend for r in records}
        return {n: self.backend(n == "local", cfg) for n in names}

    def _store(self) -> Store:
        return Store(config_mod.home(), self.project)

    def _selected(self, stages: Sequence[str] | None) -> list[str]:
        if not self.stages:
            raise DefinitionError("no stages are defined; call executor.stage(name, artifacts) "
                                  "in the experiment file")
        chosen = list(stages) if stages else list(self.stages)
        unknown = [s for s in chosen if s not in self.stages]
        if unknown:
            raise PlanError(f"unknown stage {unknown[0]!r}; stages are: "
                            f"{', '.join(self.stages)}")
        return chosen

    def _live(self, records: Sequence[JobRecord], cfg: config_mod.Config,
              warnings: list[str]) -> LiveStates:
        backends = self._backends_for(records, cfg)
        try:
            return live_states(records, backends)
        except SchedulerQueryError as exc:
            warnings.append(f"could not ask the scheduler ({exc}); live jobs are unknown")
            return LiveStates()

    def _live_artifacts(self, records: Sequence[JobRecord],
                        live: dict[str, JobState]) -> dict[str, str]:
        out: dict[str, str] = {}
        for rec in records:
            for i, (artifact_id, _) in enumerate(rec.tasks):
                st = live.get(f"{rec.job_id}_{i}")
                if st is not None and st.live:
                    out[artifact_id] = rec.job_id or ""
        return out

    def _task(self, art: Artifact) -> tuple[Any, ...]:
        builder = Task(artifact_path=self.artifact_path, code_path=self.code_path,
                       relpath=art.relpath, gs_path=self.gs_path,
                       where=f"{type(art).__qualname__} {art.relpath}")
        try:
            art.construct(builder)
        except ExperimentsError:
            raise
        except Exception as exc:
            raise DefinitionError(f"{type(art).__qualname__}.construct raised "
                                  f"{type(exc).__name__}: {exc} (artifact {art.relpath})"
                                  ) from exc
        return tuple(builder.steps)

    def _plan(self, stages: Sequence[str] | None, with_deps: bool, cfg: config_mod.Config,
              records: Sequence[JobRecord], warnings: list[str]) -> Plan:
        selected = self._selected(stages)
        live = self._live_artifacts(records, self._live(records, cfg, warnings))
        from .identity import check_relpath

        def built(art: Artifact) -> bool:
            check_relpath(art.relpath, f"{type(art).__qualname__}")
            return is_built(self.artifact_path, art.relpath)

        return build_plan(self.stages, selected, is_built=built, live=live,
                          requirements=lambda a: cfg.resolve_requirements(
                              _requirements(a)), construct=self._task, with_deps=with_deps)

    # -- verbs ----------------------------------------------------------------------------
    def drylaunch(self, stages: Sequence[str] | None = None, *, local: bool | None = None,
                  with_deps: bool = False, validate: bool = False) -> DryRun:
        """The plan that ``launch`` would submit; submits and records nothing."""
        cfg = self._config()
        warnings: list[str] = []
        records = self._store().all_records()
        plan = self._plan(stages, with_deps, cfg, records, warnings)
        backend = self.backend(local, cfg)
        dry = DryRun(plan, backend.name, problems=warnings)
        describe = getattr(backend, "describe", None)
        if describe is not None:
            for group in plan.groups:
                dry.details.append(describe(group, self, validate=validate, problems=dry.problems))
        _check_storage(plan)
        return dry

    def launch(self, stages: Sequence[str] | None = None, *, local: bool | None = None,
               with_deps: bool = False, progress: Progress | None = None) -> LaunchResult:
        """Plan the stages and submit (or run, locally) everything not built or queued."""
        cfg = self._config()
        home = config_mod.home()
        store = self._store()
        lock_path = paths.launch_lock(home, self.project)
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_path), timeout=2)
        try:
            lock.acquire()
        except Timeout:
            raise ExperimentsError(
                f"another launch of project {self.project!r} is running (lock {lock_path}); "
                "wait for it to finish, or check `status`"
            ) from None
        try:
            warnings: list[str] = []
            self._reconcile(store, cfg, warnings)
            plan = self._plan(stages, with_deps, cfg, store.all_records(), warnings)
            _check_storage(plan)
            backend = self.backend(local, cfg)
            ctx = LaunchContext.for_plan(
                plan, project=self.project, home=home, config=cfg, store=store,
                artifact_path=self.artifact_path, code_path=self.code_path,
                launch_id=os.urandom(4).hex(), python=cfg.python or sys.executable,
                **({"progress": progress} if progress else {}),
            )
            records = backend.launch(plan, ctx) if plan.groups else []
            return LaunchResult(plan, records, warnings)
        finally:
            lock.release()

    def _reconcile(self, store: Store, cfg: config_mod.Config, warnings: list[str]) -> None:
        """Resolve intents left by a crashed launch: adopt the job if it exists, else drop."""
        for rec in pending_intents(store):
            backend = self.backend(rec.backend == "local", cfg)
            found = backend.find_by_name(rec.name)
            if found:
                store.update(rec.stage, rec.name, job_id=found[0], state="submitted")
                warnings.append(f"adopted job {found[0]} submitted by an interrupted launch")
            else:
                store.remove(rec.stage, {rec.name})

    def status(self, stages: Sequence[str] | None = None) -> tuple[list[StageStatus], list[str]]:
        """Per stage: how many artifacts are built, running, queued, failed, not started."""
        cfg = self._config()
        store = self._store()
        selected = self._selected(stages)
        records = store.all_records([s for s in selected if s in store.stages()])
        warnings: list[str] = []
        live = self._live(records, cfg, warnings)
        out = [stage_status(s, self.stages[s], [r for r in records if r.stage == s], live,
                            self.artifact_path) for s in selected]
        return out, warnings

    def history(self, stages: Sequence[str] | None = None) -> tuple[list[Any], list[str]]:
        """Every tracked job with per-state task counts (one scheduler query in total)."""
        cfg = self._config()
        store = self._store()
        names = [s for s in (stages or store.stages())]
        records = store.all_records([s for s in names if s in store.stages()])
        warnings: list[str] = []
        live = self._live(records, cfg, warnings)
        views = job_views(records, live, self.artifact_path)
        views.sort(key=lambda v: (v.record.submitted_at, v.record.tier))
        return views, warnings

    def find_job(self, job: str) -> tuple[JobRecord, int | None]:
        """The record of ``<job_id>`` or ``<job_id>_<index>``."""
        job_id, _, idx = job.partition("_")
        for rec in self._store().all_records():
            if rec.job_id == job_id:
                if idx and (not idx.isdigit() or int(idx) >= len(rec.tasks)):
                    raise ExperimentsError(f"job {job_id} has tasks 0-{len(rec.tasks) - 1}; "
                                           f"{job} is not one of them")
                return rec, int(idx) if idx else None
        raise ExperimentsError(f"no job {job_id!r} in project {self.project!r}; `history` "
                               "lists the tracked jobs")

    def cancel(self, stages: Sequence[str] | None = None) -> list[str]:
        """Cancel the live jobs of the stages (all by default); returns the cancelled job ids."""
        cfg = self._config()
        store = self._store()
        selected = self._selected(stages)
        records = store.all_records([s for s in selected if s in store.stages()])
        warnings: list[str] = []
        live = self._live(records, cfg, warnings)
        if warnings:
            raise SchedulerQueryError(warnings[0])
        targets = [r for r in records
                   if any(live.get(f"{r.job_id}_{i}", JobState.UNKNOWN).live
                          for i in range(len(r.tasks)))]
        for name, backend in self._backends_for(targets, cfg).items():
            backend.cancel([r for r in targets if r.backend == name])
        for stage in {r.stage for r in targets}:
            store.update_many(stage, {r.name: {"state": "cancelled"}
                                      for r in targets if r.stage == stage})
        return [r.job_id or "" for r in targets]


class SlurmExecutor(Executor):
    """Submits each tier's requirement groups as Slurm array jobs (``--local`` runs here)."""

    default_backend = "slurm"


class LocalExecutor(Executor):
    """Runs everything on this machine with ``workers`` parallel processes."""

    default_backend = "local"


def _requirements(art: Artifact) -> dict[str, Any]:
    reqs = art.get_requirements()
    if reqs is None:
        return {}
    if not isinstance(reqs, dict):
        raise DefinitionError(f"{type(art).__qualname__}.get_requirements() must return a "
                              f"dict, got {type(reqs).__name__} (artifact {art.relpath})")
    return reqs


def _check_storage(plan: Plan) -> None:
    """Fail before submission when a storage step's URL or packages are unusable."""
    urls = {s.url for g in plan.groups for t in g.tasks for s in t.steps
            if isinstance(s, (Upload, Download))}
    if urls:
        from . import storage

        for url in sorted(urls):
            storage.check_url(url)


def registered() -> list[Executor]:
    """Executors created so far in this process (the `experiments --file` command uses it)."""
    return list(_registry)
