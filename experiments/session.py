"""A session: what every verb works over — the experiment, the config, the store, the backends.

Opening a session reads the configuration and applies its ``umask`` (and whose done markers
count, see :mod:`experiments.worker.trust`) to this process (every file the verbs create follows it)
and keeps the experiments home private (mode 700); nothing else changes process state.
Backends are created by name
on first use and kept, so one verb asks each scheduler through one object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import backends as registry
from .backends.base import Backend, BackendOptions
from .config import settings as config_mod
from .errors import DefinitionError, PlanError, SchedulerQueryError
from .experiment import DescribesExperiment, Experiment, as_experiment
from .launching import shipped
from .states import TaskKey
from .tracking.ends import of_root
from .tracking.status import Live, query_live
from .tracking.store import JobRecord, Store
from .worker import trust


def keep_private(home: os.PathLike[str] | str) -> None:
    """The experiments home (records, specs, default logs) stays readable by its owner only,
    whatever umask results are written with; a home of someone else's is left alone."""
    try:
        st = os.stat(home)
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(home, st.st_mode & 0o700)
    except OSError:
        pass


@dataclass(frozen=True)
class Tracked:
    """The jobs that hold artifacts of this experiment's root, and what the scheduler says of
    them (see :meth:`Session.tracked`)."""

    every: list[JobRecord]  # the stages' jobs, whatever root they build into
    records: list[JobRecord]  # those building into the session's root (or of unknown root)
    live: Live

    def live_records(self) -> list[JobRecord]:
        """The ``records`` with a task the scheduler reports queued or running."""
        return [r for r in self.records if any(
            (st := self.live.get(TaskKey(r.job_id or "", i))) is not None and st.state.live
            for i in range(len(r.tasks)))]


@dataclass
class Session:
    """The experiment and the services its verbs need, for one command."""

    experiment: Experiment
    config: config_mod.Config
    store: Store
    backend_name: str
    workers: int | None = None
    _backends: dict[str, Backend] = field(default_factory=dict)

    @classmethod
    def open(cls, source: Experiment | DescribesExperiment, *, backend: str | None = None,
             workers: int | None = None,
             instances: Mapping[str, Backend] | None = None) -> Session:
        """A session for the experiment ``source`` is (or describes, as an executor does) on
        ``backend`` (default: the experiment's own).

        ``instances`` supplies ready backends by name (tests pass a FakeBackend this way).
        """
        experiment = shipped.experiment(as_experiment(source))  # --on: the file's lasting name
        cfg = config_mod.load()
        keep_private(config_mod.home())
        os.umask(cfg.umask)
        trust.configure(cfg.trusted_uids, cfg.trusted_gids)
        return cls(experiment, cfg, Store(config_mod.home(), experiment.project, umask=cfg.umask),
                   backend or experiment.default_backend,
                   workers if workers is not None else experiment.workers,
                   dict(instances or {}))

    @property
    def home(self) -> str:
        return str(self.store.home)

    def backend(self, name: str | None = None) -> Backend:
        """The backend called ``name`` (default: the session's), created once."""
        name = name or self.backend_name
        if name not in self._backends:
            self._backends[name] = registry.get(name, BackendOptions(self.config, self.workers))
        return self._backends[name]

    def backends_for(self, records: Sequence[JobRecord]) -> dict[str, Backend]:
        """The backends that track ``records``, by name."""
        return {r.backend: self.backend(r.backend) for r in records}

    def live(self, records: Sequence[JobRecord]) -> Live:
        """Ask each backend once about every task of ``records``."""
        return query_live(records, self.backends_for(records))

    def tracked(self, stages: Sequence[str] | None = None, *,
                strict: bool | str = False) -> Tracked:
        """The jobs of ``stages`` (every tracked stage by default) that build into this
        experiment's artifact root, or may (root unknown), and the scheduler's answer about
        them: one query per backend.

        With ``strict``, refuses (``SchedulerQueryError``) when a scheduler cannot be asked,
        for verbs that must not act blind: ``True`` says why in ``Live``'s words, a string is
        the message, with ``{name}`` (the backend) and ``{why}`` filled in.
        """
        every = self.records(stages)
        records = of_root(every, self.experiment.artifact_path)
        live = self.live(records)
        if strict and live.unreachable:
            name, why = next(iter(live.unreachable.items()))
            raise SchedulerQueryError(strict.format(name=name, why=why)
                                      if isinstance(strict, str) else live.warnings()[0])
        return Tracked(every, records, live)

    def selected(self, stages: Sequence[str] | None) -> list[str]:
        """The named stages (all by default), checked against the experiment's stages."""
        defined = self.experiment.stages
        if not defined:
            raise DefinitionError("no stages are defined; call executor.stage(name, artifacts) "
                                  "in the experiment file")
        chosen = list(stages) if stages else list(defined)
        unknown = [s for s in chosen if s not in defined]
        if unknown:
            raise PlanError(f"unknown stage {unknown[0]!r}; stages are: {', '.join(defined)}")
        return chosen

    def records(self, stages: Sequence[str] | None = None) -> list[JobRecord]:
        """Tracked jobs of the given stages (all tracked stages by default)."""
        tracked = self.store.stages()
        names = tracked if stages is None else [s for s in stages if s in tracked]
        return self.store.all_records(names)
