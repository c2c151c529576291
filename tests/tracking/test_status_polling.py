"""Polite polling, on FakeBackend: the scheduler is asked only about jobs with a task whose end
is not recorded yet, so a project whose jobs have all ended costs no query at all; and what
was recorded still drives status, history, retries and rebuilding. (The same on the real
cluster, counted in squeue/sacct calls: tests/reliability/test_polling_slurm.py.)"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, Task, paths, verbs
from experiments.backends.fake import FakeBackend
from experiments.cli import main as cli_main
from experiments.session import Session
from experiments.states import TaskKey, TaskStatus
from experiments.tracking.status import ArtifactState as S
from experiments.tracking.status import needs_asking
from experiments.tracking.store import JobRecord
from tests.support.experiments import FakeExecutor


@dataclass(frozen=True)
class Timed(Artifact):
    i: int

    def get_requirements(self) -> dict[str, object]:
        return {"time": "1:00:00"}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class After(Artifact):
    base: Timed

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


class Asked:
    """Wraps ``fake.query`` to keep the job ids each query was asked about."""

    def __init__(self, fake: FakeBackend) -> None:
        self.calls: list[list[str]] = []
        self._query = fake.query

        def query(records: Sequence[JobRecord]) -> dict[TaskKey, TaskStatus]:
            self.calls.append(sorted(r.job_id or "" for r in records))
            return self._query(records)

        fake.query = query  # type: ignore[method-assign]


@pytest.fixture
def ex(tmp_path: Path) -> FakeExecutor:
    executor = FakeExecutor(project="poll", artifact_path=str(tmp_path / "a"),
                            code_path=str(tmp_path))
    first = ArtifactSet.from_product(cls=Timed, params={"i": [0, 1, 2]})
    executor.stage("first", first)
    executor.stage("then", first.map(lambda t: After(t)))
    return executor


def test_an_ended_project_costs_no_query_in_status_history_wait_launch(
        ex: FakeExecutor, fake: FakeBackend) -> None:
    assert cli_main.run(ex, ["launch", "first"]) == 0
    asked = Asked(fake)
    fake.finish("100", 0)
    fake.fail("100", 1)
    fake.time_out("100", 2)
    session = Session.open(ex)
    first = verbs.status(session, ["first"])  # sees every end and records it
    assert asked.calls == [["100"]]
    assert first.stages[0].counts == {S.BUILT: 1, S.FAILED: 2}
    assert all(not needs_asking(r) for r in session.records())

    again = verbs.status(session, ["first"])
    verbs.history(session)
    assert verbs.wait(session, ["first"]).outcome is verbs.Outcome.FAILED
    assert cli_main.run(ex, ["drylaunch", "first"]) == 0
    assert asked.calls == [["100"]]  # nothing more was asked
    def told(report: verbs.StatusReport) -> list[tuple[str, str]]:
        return sorted((p.label, p.detail) for p in report.stages[0].problems)

    assert again.stages[0].counts == first.stages[0].counts
    assert told(again) == told(first)  # the recorded ends tell the same story
    assert [label for label, _ in told(again)] == ["failed", "failed (TIMEOUT)"]


def test_only_jobs_with_unrecorded_ends_are_asked(ex: FakeExecutor, fake: FakeBackend) -> None:
    assert cli_main.run(ex, ["launch", "first"]) == 0
    fake.finish("100")
    session = Session.open(ex)
    verbs.status(session)  # job 100 ended: recorded
    assert cli_main.run(ex, ["launch", "then"]) == 0  # job 101, queued
    asked = Asked(fake)
    verbs.status(session)
    fake.finish("101", 0)
    verbs.status(session)  # 101_0 ended: recorded; 101_1, 101_2 still queued
    fake.finish("101")
    verbs.status(session)
    verbs.status(session)
    assert asked.calls == [["101"], ["101"], ["101"]]
    record = next(r for r in session.records() if r.job_id == "101")
    assert sorted(record.ended) == ["0", "1", "2"]
    assert record.ended["0"]["observed_at"] <= record.ended["1"]["observed_at"]


def test_a_recorded_timeout_still_escalates_a_retry(
        ex: FakeExecutor, fake: FakeBackend, exp_home: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    exp_home.mkdir(parents=True, exist_ok=True)
    (exp_home / "config.json").write_text(json.dumps({"escalation": {"TIMEOUT": {"time": 2}}}))
    assert cli_main.run(ex, ["launch", "first"]) == 0
    fake.finish("100", 0)
    fake.time_out("100", 1)
    fake.time_out("100", 2)
    verbs.status(Session.open(ex))  # the ends are recorded; the job is not asked again
    asked = Asked(fake)
    capsys.readouterr()
    assert cli_main.run(ex, ["drylaunch", "first", "--retry-failed"]) == 0
    out = capsys.readouterr().out
    assert asked.calls == []
    assert "time 1:00:00 → 2:00:00 after TIMEOUT in job 100_1" in out  # from the record


def test_a_recorded_build_whose_marker_is_gone_is_not_started_and_rebuilt(
        ex: FakeExecutor, fake: FakeBackend, tmp_path: Path) -> None:
    assert cli_main.run(ex, ["launch", "first"]) == 0
    fake.finish("100")
    session = Session.open(ex)
    assert verbs.status(session, ["first"]).stages[0].counts == {S.BUILT: 3}
    relpath = session.records()[0].tasks[0][1]
    Path(paths.done_marker(str(tmp_path / "a"), relpath)).unlink()  # e.g. invalidated
    asked = Asked(fake)
    report = verbs.status(session, ["first"])
    assert report.stages[0].counts == {S.BUILT: 2, S.NOT_STARTED: 1}  # never "failed"
    assert asked.calls == []
    result = verbs.launch(session, ["first"])
    assert [len(r.tasks) for r in result.records] == [1]


def test_warnings_that_are_not_about_the_scheduler_do_not_keep_a_watch_going(
        ex: FakeExecutor, fake: FakeBackend) -> None:
    assert cli_main.run(ex, ["launch", "first"]) == 0
    fake.finish("100")
    session = Session.open(ex)
    report = verbs.status(session, ["first"])
    report.warnings.append("job(s) 7 were recorded without their artifact root")
    assert verbs.outcome(report) is verbs.Outcome.BUILT
    assert cli_main.run(ex, ["launch", "then"]) == 0
    fake.unreachable = True
    assert verbs.outcome(verbs.status(session)) is verbs.Outcome.LIVE  # 101 cannot be asked
