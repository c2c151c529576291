"""The executors: an experiment's stages and paths, and the verbs as methods.

An executor holds only what the experiment file says: the project, where artifacts go, where
the code is, and the stages. Each verb method opens a :class:`~experiments.session.Session`
and calls the verb function in :mod:`experiments.verbs`, so the same calls work from a
notebook, a script or the CLI (which ``auto_cli`` hands over to, and which never imports this
module back). ``SlurmExecutor`` submits to Slurm by default, ``LocalExecutor`` runs on this
machine; either can be told to use the other backend.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from . import _registry, paths
from .errors import DefinitionError
from .experiment import Experiment, absolute
from .model.artifact import Artifact
from .model.sets import ArtifactSet
from .worker import task_setup

if TYPE_CHECKING:
    from .launching.launch_context import Progress
    from .plan.overrides import Overrides
    from .report import ReportWritten
    from .session import Session
    from .tracking.views import ArtifactView, ResultTable
    from .verbs import Acceptance, DryRun, HistoryReport, Invalidation, LaunchResult, StatusReport


def _caller_file() -> str | None:
    """The file of the first caller outside this package (the experiment file)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("experiments"):
        frame = frame.f_back  # type: ignore[assignment]
    return frame.f_globals.get("__file__") if frame is not None else None


class Executor:
    """The stages of an experiment and where they build: the project, artifact root and code.

    ``project`` defaults to the experiment file's name, ``artifact_path`` to ``artifacts``
    beside it and ``code_path`` to its folder. ``setup`` lists shell lines run before each
    task (after those of ``config.json``), e.g. ``["module load cuda/12.1"]``.

    ``snapshot_code`` (default True): each launch freezes ``code_path`` into a content-addressed
    snapshot and the tasks run there, so editing the code after ``launch`` never changes what
    queued tasks run. False runs them in the live ``code_path`` (also the config key
    ``"code_snapshots": false``).
    """

    default_backend: ClassVar[str] = "slurm"

    def __init__(self, project: str | None = None, artifact_path: str | None = None,
                 code_path: str | None = None, gs_path: str | None = None,
                 workers: int | None = None, snapshot_code: bool = True,
                 setup: Sequence[str] | None = None) -> None:
        source = _caller_file()
        stem = Path(source).stem if source else "experiments"
        self.source_file = str(Path(source).resolve()) if source else ""  # owns its jobs
        self.project = paths.check_name("project", project if project is not None else stem)
        base = Path(source).resolve().parent if source else Path.cwd()
        self.artifact_path = absolute(artifact_path or base / "artifacts")
        self.code_path = absolute(code_path or base)
        self.gs_path = gs_path
        self.workers = workers
        self.snapshot_code = snapshot_code
        try:  # shell lines run before each task, after config.json's (see task_setup)
            self.setup = task_setup.check_lines(list(setup or []), "executor")
        except ValueError as exc:
            raise DefinitionError(str(exc)) from None
        self.stages: dict[str, ArtifactSet] = {}
        _registry.add(self)

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
            other.artifact_path = absolute(artifact_path)
        if code_path:
            other.code_path = absolute(code_path)
        return other

    def experiment(self) -> Experiment:
        """What this executor describes now, as the frozen record every verb works on."""
        return Experiment(
            project=self.project, artifact_path=self.artifact_path, code_path=self.code_path,
            stages=dict(self.stages), gs_path=self.gs_path, setup=tuple(self.setup),
            snapshot_code=self.snapshot_code, source_file=self.source_file,
            default_backend=self.default_backend, workers=self.workers)

    def auto_cli(self, argv: Sequence[str] | None = None) -> None:
        """Run the command line (launch, drylaunch, status, history, cat, cancel) and exit."""
        from .cli.main import run

        sys.exit(run(self.experiment(), argv))

    # -- the verbs, for scripts and notebooks --------------------------------------------------
    def session(self, *, local: bool | None = None) -> Session:
        """A session on this executor's backend (``local=True``: this machine)."""
        from .session import Session

        return Session.open(self.experiment(), backend="local" if local else None)

    def drylaunch(self, stages: Sequence[str] | None = None, *, local: bool | None = None,
                  with_deps: bool = False, validate: bool = False,
                  overrides: Overrides | None = None, rebuild_stale: bool = False,
                  retry_failed: bool = False) -> DryRun:
        """The plan that ``launch`` would submit; submits and records nothing."""
        from . import verbs

        return verbs.drylaunch(self.session(local=local), stages, with_deps=with_deps,
                               validate=validate, overrides=overrides,
                               rebuild_stale=rebuild_stale, retry_failed=retry_failed)

    def launch(self, stages: Sequence[str] | None = None, *, local: bool | None = None,
               with_deps: bool = False, progress: Progress | None = None,
               max_running: int | None = None, overrides: Overrides | None = None,
               rebuild_stale: bool = False, retry_failed: bool = False,
               replace_queued: bool | None = None) -> LaunchResult:
        """Plan the stages and submit (or run, locally) everything not built or queued;
        ``max_running`` bounds how many of its tasks run at once; ``overrides`` are
        ``launch --set`` values (:func:`experiments.plan.overrides.parse_overrides`);
        ``rebuild_stale`` also rebuilds stale results and their dependents (``replace_queued``:
        True cancels and resubmits queued work planned with other parameters, False keeps it;
        None refuses when there is some); ``retry_failed`` only the failed ones, with
        escalated requirements."""
        from . import verbs

        return verbs.launch(self.session(local=local), stages, with_deps=with_deps,
                            progress=progress, max_running=max_running, overrides=overrides,
                            rebuild_stale=rebuild_stale, retry_failed=retry_failed,
                            replace_queued=replace_queued)

    def status(self, stages: Sequence[str] | None = None) -> StatusReport:
        """Per stage: how many artifacts are built, running, queued, failed, not started."""
        from . import verbs

        return verbs.status(self.session(), stages)

    def history(self, stages: Sequence[str] | None = None) -> HistoryReport:
        """Every tracked job with per-state task counts."""
        from . import verbs

        return verbs.history(self.session(), stages)

    def artifacts(self, stage: str, where: Mapping[str, Any] | Sequence[str] | None = None
                  ) -> list[ArtifactView]:
        """Each artifact of ``stage`` (matching ``where``: ``{"lr": 0.1}`` or ``["lr=0.1"]``)
        with its flattened parameters, folder, state, provenance and metrics."""
        from . import verbs

        return verbs.artifacts(self.session(), stage, where)

    def table(self, stage: str, where: Mapping[str, Any] | Sequence[str] | None = None, *,
              columns: Sequence[str] | None = None, sort: str | None = None) -> ResultTable:
        """The results of ``stage`` as rows (``.to_pandas()``, ``.to_csv()``, ...): every
        parameter (as each result was built), every metric, then state, changed and folder;
        ``sort="-acc"`` sorts descending."""
        from . import verbs

        return verbs.table(self.session(), stage, where, columns, sort)

    def report(self, path: str = "report.html", stages: Sequence[str] | None = None
               ) -> ReportWritten:
        """Write the HTML report of ``stages`` (all by default) to ``path``."""
        from .report import write_report

        return write_report(self.session(), stages, path)

    def invalidate(self, stages: Sequence[str], *, where: Sequence[str] = (),
                   downstream: bool = False) -> Invalidation:
        """Mark built artifacts for rebuilding (done markers moved aside), without asking."""
        from . import verbs

        return verbs.invalidate(self.session(), stages, where=where, downstream=downstream)

    def accept(self, stages: Sequence[str], *, where: Sequence[str] = (),
               reason: str | None = None) -> Acceptance:
        """Declare stale results of ``stages`` current on purpose, without asking (recorded
        in each one's ``.artifact.json``; ``invalidate`` undoes it)."""
        from . import verbs

        return verbs.accept(self.session(), stages, where=where, reason=reason)

    def cancel(self, stages: Sequence[str] | None = None) -> list[str]:
        """Cancel the live jobs of the stages (all by default); returns the job ids."""
        from . import verbs

        return verbs.cancel(self.session(), stages)


class SlurmExecutor(Executor):
    """Submits each tier's resource groups as Slurm array jobs (``--local`` runs here)."""

    default_backend = "slurm"


class LocalExecutor(Executor):
    """Runs everything on this machine with ``workers`` parallel processes."""

    default_backend = "local"
