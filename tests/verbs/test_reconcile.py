"""``reconcile`` (experiments.verbs.reconcile) on FakeBackend: an intent left by an interrupted
launch is adopted when the scheduler knows its name (extra jobs of that name cancelled as
twins), dropped when nothing can still submit it, and refused while something might."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from experiments import _proc
from experiments.backends.fake import FakeBackend
from experiments.session import Session
from experiments.tracking.store import JobRecord, RecordState
from experiments.verbs.reconcile import SubmissionInFlight, reconcile_intents
from tests.support.experiments import fake_executor


@pytest.fixture
def session(tmp_path: Path, fake: FakeBackend) -> Session:
    return Session.open(fake_executor(tmp_path, "rec"))


def _intent(session: Session, name: str, **fields: object) -> JobRecord:
    fields = {"host": socket.gethostname(), "pid": None, **fields}
    record = JobRecord(name=name, backend="fake", stage="nodes", tier=0,
                       tasks=[["id0", "Node/i=0"]], state=RecordState.SUBMITTING, **fields)
    session.store.add(record)
    return record


def _ago(seconds: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds)).isoformat()


def test_an_intent_the_scheduler_knows_is_adopted_and_its_twins_cancelled(
        session: Session, fake: FakeBackend) -> None:
    _intent(session, "rec.nodes.x")
    first = fake._submit("rec.nodes.x", ["Node/i=0"], session.experiment.artifact_path)
    twin = fake._submit("rec.nodes.x", ["Node/i=0"], session.experiment.artifact_path)
    warnings = reconcile_intents(session, wait_s=0, sleep=lambda s: None)
    assert warnings == [f"adopted job {first} submitted by an interrupted launch",
                        f"cancelled untracked twin job(s) {twin} of rec.nodes.x"]
    [record] = session.records()
    assert (record.job_id, record.state) == (first, RecordState.SUBMITTED)
    assert not fake.jobs[twin or ""].tasks[0].state.live


def test_an_intent_nothing_can_still_submit_is_dropped(session: Session) -> None:
    _intent(session, "rec.nodes.gone")  # this host, no launcher left, unknown to the scheduler
    _intent(session, "rec.nodes.far", host="another-host", submitted_at=_ago(3600))
    assert reconcile_intents(session, wait_s=0, sleep=lambda s: None) == []
    assert session.records() == []


def test_an_intent_from_another_host_is_trusted_gone_only_when_old(session: Session) -> None:
    _intent(session, "rec.nodes.recent", host="another-host", submitted_at=_ago(5))
    with pytest.raises(SubmissionInFlight, match=r"job rec.nodes.recent .* on another-host"):
        reconcile_intents(session, wait_s=0, sleep=lambda s: None)
    assert [r.name for r in session.records()] == ["rec.nodes.recent"]  # kept, not dropped


def test_an_intent_whose_launcher_still_runs_refuses_the_launch(session: Session) -> None:
    launcher = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _intent(session, "rec.nodes.busy", pid=launcher.pid,
                pid_start=_proc.process_start(launcher.pid))
        with pytest.raises(SubmissionInFlight, match=f"its launcher, pid {launcher.pid}, is "
                                                     "still running"):
            reconcile_intents(session, wait_s=0, sleep=lambda s: None)
    finally:
        launcher.kill()
        launcher.wait()
    assert reconcile_intents(session, wait_s=0, sleep=lambda s: None) == []  # now it is gone
    assert session.records() == []
