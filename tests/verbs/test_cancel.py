"""``cancel`` (experiments.verbs.cancel) on FakeBackend: only the chosen stages' live jobs,
recorded as cancelled; another experiment file's jobs left alone and named; a running launch
asked to stop, and never a success reported while it still runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from filelock import FileLock

from experiments import ArtifactSet, paths, verbs
from experiments.backends.fake import FakeBackend
from experiments.errors import ExperimentsError
from experiments.launching.launch_context import stop_requested
from experiments.session import Session
from experiments.tracking.store import RecordState
from experiments.verbs.cancel import cancel_jobs, cancel_targets, other_files
from tests.support.experiments import FakeExecutor, Node, fake_executor


@pytest.fixture
def session(tmp_path: Path, fake: FakeBackend) -> Session:
    ex: FakeExecutor = fake_executor(tmp_path, "stop", n=2, stage="a")
    ex.stage("b", ArtifactSet.from_product(cls=Node, params={"i": [5, 6]}))
    session = Session.open(ex)
    verbs.launch(session)  # job 100: stage a, job 101: stage b
    return session


def _states(session: Session) -> dict[str, RecordState]:
    return {r.job_id or "": r.state for r in session.records()}


def test_only_the_chosen_stages_live_jobs_are_cancelled_and_recorded(
        session: Session, fake: FakeBackend) -> None:
    assert [r.job_id for r in cancel_targets(session, ["a"])] == ["100"]
    result = cancel_jobs(session, ["a"])
    assert result.job_ids == ["100"] and result.notes == []
    assert _states(session) == {"100": RecordState.CANCELLED, "101": RecordState.SUBMITTED}
    assert fake.query(session.records(["b"]))  # b still queued at the scheduler
    fake.finish("101")
    assert cancel_targets(session) == [] and cancel_jobs(session).job_ids == []


def test_another_experiment_files_jobs_are_left_alone_and_named(session: Session) -> None:
    [b] = session.records(["b"])
    session.store.update("b", b.name, experiment_file="/elsewhere/other.py")
    assert [r.job_id for r in cancel_targets(session)] == ["100"]
    result = cancel_jobs(session)
    assert result.job_ids == ["100"]
    assert result.notes == ["not cancelled: live job(s) 101 of project 'stop' were launched "
                            "from another experiment file, /elsewhere/other.py; cancel them "
                            "from that file"]
    assert _states(session)["101"] is RecordState.SUBMITTED
    [warning] = other_files(session)
    assert "project 'stop' is also used by /elsewhere/other.py" in warning


def test_a_launch_that_does_not_stop_makes_cancel_fail_after_cancelling_what_is_live(
        session: Session) -> None:
    home, project = session.store.home, session.experiment.project
    with FileLock(str(paths.launch_lock(home, project))):  # as a launch holds it
        with pytest.raises(ExperimentsError, match=r"a launch of project 'stop' is still "
                                                   r"running .* cancelled 2 job\(s\) so far"):
            cancel_jobs(session, wait_s=0)
    assert set(_states(session).values()) == {RecordState.CANCELLED}
    assert stop_requested(home, project) is None  # the request is withdrawn all the same
