"""Planning on FakeBackend: one requirement resolver (for plans and the report's cost table),
what counts as built, and the prologue ``launch`` and ``drylaunch`` share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, verbs
from experiments.backends.fake import FakeBackend
from experiments.errors import DefinitionError, SchedulerQueryError
from experiments.report.cost_table import stage_costs
from experiments.session import Session
from experiments.states import JobState, TaskStatus
from experiments.tracking.status import ArtifactState
from experiments.tracking.views import ArtifactView
from experiments.verbs.planning import (
    CANNOT_LAUNCH,
    BuiltCheck,
    RequirementResolver,
    make_plan,
    prologue,
)
from experiments.verbs.retry import select_failed


@dataclass(frozen=True)
class Run(Artifact):
    i: int
    gpus: int = 1

    def get_requirements(self) -> dict[str, object]:
        return {"gpus": self.gpus, "time": "1:00:00", "mem": "1000M"}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class Odd(Artifact):
    """An artifact whose relpath override escapes its folder."""

    i: int

    @property
    def relpath(self) -> str:
        return f"../Odd/{self.i}"

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@pytest.fixture
def session(tmp_path: Path) -> Session:
    ex = LocalExecutor(project="pl", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("run", ArtifactSet.from_product(cls=Run, params={"i": [0, 1, 2], "gpus": [1, 2]}))
    return Session.open(ex, backend="fake", instances={"fake": FakeBackend()})


def _fake(session: Session) -> FakeBackend:
    backend = session.backend()
    assert isinstance(backend, FakeBackend)
    return backend


def _arts(session: Session) -> list[Artifact]:
    return list(session.experiment.stages["run"])


def test_the_resolver_asks_the_backend_once_per_distinct_requirement_set(
        session: Session) -> None:
    resolve = RequirementResolver.for_session(session)
    got = [resolve(a) for a in _arts(session)]
    assert _fake(session).calls["resolve"] == 2  # gpus=1 and gpus=2, six artifacts
    assert len({id(r) for r in got}) == 2 and {r.gpus for r in got} == {1, 2}


def test_config_defaults_sit_under_the_artifacts_own_requirements(
        session: Session, exp_home: Path) -> None:
    (exp_home / "config.json").write_text(json.dumps(
        {"default_slurm_args": {"*": {"cpus": 3, "mem": "9G"}}}))
    resolve = RequirementResolver.for_session(Session.open(
        session.experiment, backend="fake", instances={"fake": FakeBackend()}))
    res = resolve(_arts(session)[0])
    assert res.cpus == 3 and res.mem_mb == 1000  # the config's cpus, the artifact's mem


def test_with_retry_equal_asks_are_escalated_per_artifact(session: Session) -> None:
    (Path(session.home) / "config.json").write_text(json.dumps(
        {"escalation": {"TIMEOUT": {"time": 2}}}))
    session = Session.open(session.experiment, backend="fake", instances={"fake": FakeBackend()})
    [rec] = [r for r in verbs.launch(session).records if r.requirements.get("gpus") == 1]
    _fake(session).time_out(rec.job_id or "", 0)  # the first gpus=1 artifact timed out
    tracked = session.tracked()
    retry = select_failed(tracked.records, tracked.live, session.experiment.artifact_path,
                          session.config.escalation)
    resolve = RequirementResolver.for_session(session, retry=retry)
    times = {a.relpath: resolve(a).time_s for a in _arts(session) if a.gpus == 1}
    assert times[rec.tasks[0][1]] == 7200  # escalated, although its ask equals the others'
    assert sorted(times.values()) == [3600, 3600, 7200]


def test_the_cost_table_counts_what_planning_resolves(session: Session) -> None:
    plan = make_plan(session, None, False, [], session.live([]))
    planned = {t.relpath: g.resources for g in plan.groups for t in g.tasks}
    views = {"run": [ArtifactView(a, "run", {}, "", ArtifactState.NOT_STARTED)
                     for a in _arts(session)]}
    [row], problems = stage_costs(session, views, None)
    assert problems == []
    assert row.gpu_hours == sum(r.gpus * (r.time_s or 0) / 3600 for r in planned.values())


def test_built_check_applies_rebuild_and_retry_and_checks_relpaths(tmp_path: Path) -> None:
    done = {Run(0).relpath, Run(1).relpath}
    assert BuiltCheck(done.__contains__)(Run(0)) is True
    assert BuiltCheck(done.__contains__, frozenset({Run(0).artifact_id}))(Run(0)) is False
    only_2 = BuiltCheck(done.__contains__, retry_ids=frozenset({Run(2).artifact_id}))
    assert only_2(Run(1)) is True and only_2(Run(2)) is False  # done, and not retried
    with pytest.raises(DefinitionError, match="Odd"):
        BuiltCheck(done.__contains__)(Odd(1))


def test_prologue_warns_for_drylaunch_and_refuses_for_launch(session: Session) -> None:
    verbs.launch(session)
    _fake(session).unreachable = True
    dry = prologue(session, None)
    assert dry.warnings and "live jobs are unknown" in dry.warnings[0]
    with pytest.raises(SchedulerQueryError, match="cannot launch: the fake scheduler"):
        prologue(session, None, launching=True)
    assert CANNOT_LAUNCH.startswith("cannot launch")


def test_launch_records_ends_it_sees_before_planning_drylaunch_does_not(
        session: Session) -> None:
    [first, *_] = verbs.launch(session).records
    _fake(session)._set(first.job_id or "", 0, TaskStatus(JobState.FAILED, "FAILED"))
    prologue(session, None)
    assert not session.store.all_records()[0].ended  # drylaunch records nothing
    prologue(session, None, launching=True)
    assert "0" in next(r for r in session.store.all_records() if r.name == first.name).ended


def test_planning_leaves_the_plan_out_of_the_collectors_passes_until_the_verb_returns(
        session: Session) -> None:
    """What exists when planning ends is frozen (the collector's passes while laying out and
    submitting a million tasks would walk it again and again); drylaunch and launch give it
    back to the collector when they return, also after an error."""
    import gc

    gc.unfreeze()
    prologue(session, None)
    assert gc.get_freeze_count() > 0 and gc.isenabled()
    gc.unfreeze()
    verbs.drylaunch(session)
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    verbs.launch(session)
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    _fake(session).unreachable = True
    with pytest.raises(SchedulerQueryError):
        verbs.launch(session)
    assert gc.get_freeze_count() == 0 and gc.isenabled()
