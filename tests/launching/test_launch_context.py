"""LaunchContext: specs and intents before submission, records after, dependencies by job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import ArtifactSet, LocalExecutor
from experiments.backends.fake import FakeBackend
from experiments.launching.launch_context import (
    EventKind,
    LaunchContext,
    LaunchEvent,
    pending_intents,
)
from experiments.session import Session
from experiments.tracking.status import Live
from experiments.tracking.store import RecordState
from experiments.verbs.planning import make_plan
from experiments.worker import specs
from tests.support.experiments import Down, Up


@pytest.fixture
def session(tmp_path: Path) -> Session:
    ex = LocalExecutor(project="lp", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ups = ArtifactSet.from_product(cls=Up, params={"i": [0, 1]})
    ex.stage("up", ups)
    ex.stage("down", ups.map(lambda u: Down(u)))
    return Session.open(ex, backend="fake", instances={"fake": FakeBackend()})


def _ctx(session: Session, events: list[LaunchEvent]) -> tuple[LaunchContext, object]:
    plan = make_plan(session, None, False, [], Live())
    ctx = LaunchContext.for_plan(plan, session.experiment, session.config, session.store,
                                 progress=events.append)
    return ctx, plan


def test_prepare_writes_the_spec_and_an_intent_before_any_job_id(session: Session) -> None:
    events: list[LaunchEvent] = []
    ctx, plan = _ctx(session, events)
    group = plan.tiers[0][0]  # type: ignore[attr-defined]
    job = ctx.prepare(group, group.tasks, ctx.job_name(group, 0, 0), "fake")
    [intent] = pending_intents(session.store)
    assert intent.name == job.record.name and intent.state is RecordState.SUBMITTING
    assert intent.job_id is None and intent.tasks == [[t.artifact_id, t.relpath]
                                                     for t in group.tasks]
    header = specs.read_header(job.record.spec_dir)
    assert header.project == "lp" and header.stage == "up" and header.version == specs.VERSION
    assert specs.read_task(job.record.spec_dir, 1)["relpath"] == group.tasks[1].relpath
    assert events == []


def test_confirm_records_the_job_and_dependents_wait_for_it(session: Session) -> None:
    events: list[LaunchEvent] = []
    ctx, plan = _ctx(session, events)
    up, down = plan.tiers[0][0], plan.tiers[1][0]  # type: ignore[attr-defined]
    job = ctx.prepare(up, up.tasks, ctx.job_name(up, 0, 0), "fake")
    record = ctx.confirm(job, "77")
    assert record.state is RecordState.SUBMITTED and record.job_id == "77"
    assert pending_intents(session.store) == []
    assert [e.kind for e in events] == [EventKind.SUBMITTED] and events[0].record == record
    dependent = ctx.prepare(down, down.tasks, ctx.job_name(down, 1, 0), "fake")
    assert dependent.depends_on == ("77",)


def test_discard_forgets_a_refused_intent(session: Session) -> None:
    ctx, plan = _ctx(session, [])
    group = plan.tiers[0][0]  # type: ignore[attr-defined]
    job = ctx.prepare(group, group.tasks, ctx.job_name(group, 0, 0), "fake")
    ctx.discard(job)
    assert session.store.all_records() == []


def test_job_names_are_unique_per_launch_and_group(session: Session) -> None:
    ctx, plan = _ctx(session, [])
    other, _ = _ctx(session, [])
    group = plan.tiers[0][0]  # type: ignore[attr-defined]
    names = {ctx.job_name(group, g, c) for g in range(3) for c in range(3)}
    assert len(names) == 9 and ctx.job_name(group, 0, 0) != other.job_name(group, 0, 0)


def test_for_plan_takes_home_from_the_store_and_python_from_the_config(
        session: Session, exp_home: Path) -> None:
    (exp_home / "config.json").write_text(json.dumps({"python": "/opt/py/bin/python3"}))
    session = Session.open(session.experiment, backend="fake", instances={"fake": FakeBackend()})
    plan = make_plan(session, None, False, [], Live())
    ctx = LaunchContext.for_plan(plan, session.experiment, session.config, session.store)
    assert ctx.python == "/opt/py/bin/python3" and ctx.home == session.store.home
    assert (ctx.project, ctx.artifact_path) == ("lp", session.experiment.artifact_path)
    group = plan.tiers[0][0]  # type: ignore[attr-defined]
    job = ctx.prepare(group, group.tasks, ctx.job_name(group, 0, 0), "fake")
    assert job.record.experiment_file == session.experiment.source_file
    header = specs.read_header(job.record.spec_dir)
    assert header.code_path == session.experiment.code_path and header.snapshot is None
