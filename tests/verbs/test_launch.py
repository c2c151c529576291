"""The verbs over a session, on FakeBackend: launch, status, history, cancel, reconcile.

These run in milliseconds and cover the shapes a scheduler can take (failed, timed out, held,
lost, unreachable, refused, ambiguous). The same behaviours are proven on the real Slurm
cluster and the local backend in tests/e2e and tests/reliability.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, verbs
from experiments.backends.fake import FakeBackend, SubmissionLost
from experiments.errors import DefinitionError, SchedulerQueryError, SubmissionError
from experiments.session import Session
from experiments.tracking.status import ArtifactState as S
from experiments.tracking.store import RecordState
from experiments.worker.build import WorkerState


@dataclass(frozen=True)
class Pre(Artifact):
    lr: float
    gpus: int = 1

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "gpu", "gpus": self.gpus, "time": "1:00:00"}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre
    data: str

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@pytest.fixture
def world(tmp_path: Path) -> tuple[LocalExecutor, FakeBackend]:
    ex = LocalExecutor(project="p", artifact_path=str(tmp_path / "art"),
                       code_path=str(tmp_path))
    pre = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2], "gpus": [1, 2]})
    ex.stage("pre", pre)
    ex.stage("fine", ArtifactSet.join_product(pre, ["a"]).map(lambda m, d: Fine(m, d)))
    return ex, FakeBackend()


def _session(world: tuple[LocalExecutor, FakeBackend]) -> Session:
    ex, fake = world
    return Session.open(ex, backend="fake", instances={"fake": fake})


def _counts(session: Session) -> dict[str, dict[S, int]]:
    return {s.stage: s.counts for s in verbs.status(session).stages}


def test_launch_submits_one_job_per_tier_and_group(world) -> None:
    result = verbs.launch(_session(world))
    jobs = [(r.stage, r.tier, len(r.tasks), r.depends_on) for r in result.records]
    assert jobs[:2] == [("pre", 0, 2, []), ("pre", 0, 2, [])]  # gpus=1 and gpus=2 groups
    assert jobs[2][:3] == ("fine", 1, 4) and sorted(jobs[2][3]) == ["100", "101"]
    assert all(r.state is RecordState.SUBMITTED for r in result.records)


def test_relaunch_while_queued_submits_nothing(world) -> None:
    verbs.launch(_session(world))
    again = verbs.launch(_session(world))
    assert again.records == [] and len(again.plan.skipped) == 8
    assert world[1].calls["launch"] == 1


def test_status_follows_what_happens_to_each_task(world) -> None:
    session = _session(world)
    verbs.launch(session)
    fake = world[1]
    assert _counts(session) == {"pre": {S.QUEUED: 4}, "fine": {S.QUEUED: 4}}
    fake.finish("100")
    fake.fail("101", 0, error="exit 3")
    fake.time_out("101", 1)
    fake.fail("102", 0, error="dependency x is not built",
              worker_state=WorkerState.DEPENDENCY_FAILED)
    fake.start("102", 1)
    counts = _counts(session)
    assert counts["pre"] == {S.BUILT: 2, S.FAILED: 2}
    assert counts["fine"] == {S.DEP_FAILED: 1, S.RUNNING: 1, S.QUEUED: 2}
    details = sorted(p.detail for s in verbs.status(session).stages for p in s.problems
                     if p.state is S.FAILED)
    assert details[0] == "exit 3"
    assert details[1].startswith("killed by the scheduler at its time limit (time=1:00:00")


def test_held_tasks_are_problems_with_the_backends_hint(world) -> None:
    session = _session(world)
    verbs.launch(session)
    world[1].hold("100", 1)
    problems = [p for s in verbs.status(session).stages for p in s.problems]
    assert [(p.state, p.held) for p in problems] == [(S.QUEUED, True)]
    assert "fake-release 100_1" in problems[0].detail


def test_a_lost_task_is_unknown_never_built(world) -> None:
    session = _session(world)
    verbs.launch(session)
    world[1].lose("100", 0)
    problems = [p for s in verbs.status(session).stages for p in s.problems]
    assert [p.state for p in problems] == [S.UNKNOWN]
    assert "no longer known" in problems[0].detail


def test_unreachable_scheduler_is_said_and_blocks_launch_and_cancel(world) -> None:
    session = _session(world)
    verbs.launch(session)
    fake = world[1]
    fake.unreachable = True
    report = verbs.status(session)
    assert report.warnings and "could not ask the fake scheduler" in report.warnings[0]
    details = {p.detail for s in report.stages for p in s.problems}
    assert details == {"the scheduler could not be asked; run `status` again later"}
    with pytest.raises(SchedulerQueryError, match="cannot launch.*nothing was submitted"):
        verbs.launch(_session(world))
    with pytest.raises(SchedulerQueryError):
        verbs.cancel(_session(world))
    assert fake.calls["launch"] == 1 and fake.calls["cancel"] == 0


def test_status_asks_the_scheduler_once(world) -> None:
    session = _session(world)
    verbs.launch(session)
    before = world[1].calls["query"]
    verbs.status(session)
    verbs.history(session)
    assert world[1].calls["query"] - before == 2


def test_cancel_cancels_live_jobs_and_records_it(world) -> None:
    session = _session(world)
    verbs.launch(session)
    world[1].finish("100")
    cancelled = verbs.cancel(session, ["pre"])
    assert cancelled == ["101"]
    assert _counts(session)["pre"] == {S.BUILT: 2, S.CANCELLED: 2}
    states = {r.job_id: r.state for r in session.records()}
    assert states["101"] is RecordState.CANCELLED and states["100"] is RecordState.SUBMITTED


def test_refused_submission_leaves_no_intent_and_keeps_earlier_jobs(world) -> None:
    session = _session(world)
    fake = world[1]
    fake.refuse_next("invalid partition")
    with pytest.raises(SubmissionError, match="invalid partition"):
        verbs.launch(session)
    assert session.records() == []
    verbs.launch(_session(world), ["pre"])
    assert len(session.records()) == 2


def test_ambiguous_submission_is_adopted_not_duplicated(world) -> None:
    fake = world[1]
    fake.uncertain_next()
    with pytest.raises(SubmissionLost):
        verbs.launch(_session(world), ["pre"])
    [intent] = _session(world).records()
    assert intent.state is RecordState.SUBMITTING
    result = verbs.launch(_session(world), ["pre"])
    assert any("adopted job 100" in w for w in result.warnings)
    assert len(fake.jobs) == 2  # the lost one, adopted, and the second group
    assert {r.job_id for r in _session(world).records()} == {"100", "101"}


def test_an_artifact_in_two_stages_has_one_state(world, tmp_path: Path) -> None:
    ex, fake = world
    ex.stage("again", ex.stages["pre"][:1])
    session = _session(world)
    verbs.launch(session, ["pre"])
    counts = _counts(session)
    assert counts["again"] == {S.QUEUED: 1}


def test_chunks_follow_the_backends_array_limit(world) -> None:
    world[1].max_array_size = 1
    result = verbs.launch(_session(world), ["pre"])
    assert [len(r.tasks) for r in result.records] == [1, 1, 1, 1]
    assert len({r.name for r in result.records}) == 4


def test_bad_requirement_names_the_artifact_and_the_key(world) -> None:
    ex, _ = world

    @dataclass(frozen=True)
    class Bad(Artifact):
        n: int

        def get_requirements(self) -> dict[str, object]:
            return {"cpus": 0}

        def construct(self, builder: Task) -> None:
            builder.run_command("true")

    ex.stage("bad", [Bad(3)])
    with pytest.raises(DefinitionError) as err:
        verbs.drylaunch(_session(world), ["bad"])
    assert "Bad" in str(err.value) and Bad(3).relpath in str(err.value)
    assert "'cpus'" in str(err.value)


def test_missing_dependency_hint_names_the_users_stages(world) -> None:
    from experiments.errors import PlanError

    with pytest.raises(PlanError, match=r"`launch pre fine`"):
        verbs.drylaunch(_session(world), ["fine"])


def test_find_job(world) -> None:
    session = _session(world)
    verbs.launch(session, ["pre"])
    assert verbs.find_job(session, "101_1")[1] == 1
    assert verbs.find_job(session, "100")[1] is None
    with pytest.raises(Exception, match="tasks 0-1"):
        verbs.find_job(session, "100_7")
    with pytest.raises(Exception, match="no job '9'"):
        verbs.find_job(session, "9")


def test_a_numpy_grid_after_a_literal_grid_plans_nothing(tmp_path: Path) -> None:
    """Identity is about values: np.logspace gives the same artifacts as the literal floats."""
    import numpy as np

    ex = LocalExecutor(project="np", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("pre", ArtifactSet.from_product(cls=Pre, params={"lr": [0.001, 0.01, 0.1, 1.0]}))
    fake = FakeBackend()
    first = verbs.launch(Session.open(ex, backend="fake", instances={"fake": fake}))
    assert first.plan.task_count == 4
    fake.finish("100")
    grid = ArtifactSet.from_product(cls=Pre, params={"lr": np.logspace(-3, 0, 4)})
    again = LocalExecutor(project="np", artifact_path=str(tmp_path / "a"),
                          code_path=str(tmp_path))
    again.stage("pre", grid)
    dry = verbs.drylaunch(Session.open(again, backend="fake", instances={"fake": fake}))
    assert dry.plan.task_count == 0 and len(dry.plan.skipped) == 4
