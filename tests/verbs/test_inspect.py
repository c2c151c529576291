"""``status``, ``history`` and the job look-ups of ``cat`` (experiments.verbs.inspect) on
FakeBackend: history's order, what one job's view records, the roots the project built into."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments import verbs
from experiments.backends.fake import FakeBackend
from experiments.session import Session
from experiments.tracking.status import ArtifactState as S
from experiments.verbs.inspect import job_view, tracked_roots
from tests.support.experiments import fake_executor


@pytest.fixture
def session(tmp_path: Path, fake: FakeBackend) -> Session:
    return Session.open(fake_executor(tmp_path, "look", n=2))


def test_history_lists_jobs_by_submission_time_then_tier(session: Session,
                                                         fake: FakeBackend) -> None:
    verbs.launch(session)
    fake.fail("100")
    verbs.launch(session)  # job 101 retries both
    store = session.store
    [first, second] = session.records()
    store.update("nodes", first.name, submitted_at="2030-01-01T00:00:00+00:00")
    assert [v.record.job_id for v in verbs.history(session).jobs] == ["101", "100"]
    store.update("nodes", second.name, submitted_at="2030-01-01T00:00:00+00:00", tier=-1)
    assert [v.record.job_id for v in verbs.history(session).jobs] == ["101", "100"]
    store.update("nodes", second.name, tier=1)
    assert [v.record.job_id for v in verbs.history(session).jobs] == ["100", "101"]


def test_one_jobs_view_records_the_ends_it_sees(session: Session, fake: FakeBackend) -> None:
    verbs.launch(session)
    fake.finish("100", 0)
    fake.fail("100", 1, error="boom")
    [record] = session.records()
    view = job_view(session, record)
    assert [t.state for t in view.tasks] == [S.BUILT, S.FAILED]
    [recorded] = session.records()
    assert {k: v["state"] for k, v in recorded.ended.items()} == {"0": "built", "1": "failed"}
    fake.unreachable = True  # recorded ends need no scheduler any more
    assert [t.state for t in job_view(session, recorded).tasks] == [S.BUILT, S.FAILED]


def test_tracked_roots_are_the_roots_jobs_built_into(session: Session, tmp_path: Path,
                                                     fake: FakeBackend) -> None:
    assert tracked_roots(session) == []
    verbs.launch(session)
    elsewhere = Session.open(session.experiment.with_paths(str(tmp_path / "b")))
    verbs.launch(elsewhere)
    assert tracked_roots(session) == [session.experiment.artifact_path, str(tmp_path / "b")]
    report = verbs.status(session)
    assert report.other_roots == [str(tmp_path / "b")] and report.stages[0].counts == {
        S.QUEUED: 2}
