"""Task and artifact states (experiments.tracking.status) from records, markers, the worker's
status file and the scheduler's answer, with no verb around them: which source wins when they
disagree, which jobs are worth a query, what a stage counts."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from experiments import _atomic, paths
from experiments.model.sets import ArtifactSet
from experiments.states import NOT_OURS, JobState, TaskKey, TaskStatus
from experiments.tracking.stage_counts import stage_status
from experiments.tracking.status import ArtifactState as S
from experiments.tracking.status import (
    Live,
    built_by,
    ended_entry,
    latest_tasks,
    needs_asking,
    task_state,
    worker_account,
)
from experiments.tracking.store import JobRecord, RecordState
from experiments.worker.common import WorkerState
from tests.support.experiments import Node


def _record(job_id: str | None = "7", n: int = 2, **fields: object) -> JobRecord:
    return JobRecord(name=f"job{job_id}", backend="fake", stage="s", tier=0,
                     tasks=[[f"id{i}", f"M/a{i}"] for i in range(n)], job_id=job_id,
                     state=fields.pop("state", RecordState.SUBMITTED), **fields)


def _live(*statuses: tuple[str, int, TaskStatus], unreachable: bool = False) -> Live:
    return Live({TaskKey(job, i): st for job, i, st in statuses},
                {"fake": "down"} if unreachable else {})


def _done(root: Path, relpath: str, job: str = "7_0") -> None:
    _atomic.write_json(paths.done_marker(str(root), relpath), {"job": job}, durable=False)


def _worker(root: Path, relpath: str, state: WorkerState, job: str = "", error: str = "") -> None:
    _atomic.write_json(paths.status_file(str(root), relpath),
                       {"state": state.value, "error": error, "job": job}, durable=False)


RUNNING = TaskStatus(JobState.RUNNING, "RUNNING")


def test_only_submitted_jobs_with_an_unrecorded_end_are_worth_a_query() -> None:
    assert needs_asking(_record())
    assert not needs_asking(_record(job_id=None, state=RecordState.SUBMITTING))
    assert not needs_asking(_record(state=RecordState.FINISHED))
    assert needs_asking(_record(ended={"0": {"state": "built"}}))
    assert not needs_asking(_record(ended={"0": {"state": "built"}, "1": {"state": "failed"}}))


def test_a_recorded_failure_is_asked_about_again_while_the_scheduler_can_requeue_it() -> None:
    ended = {"0": {"state": "built", "observed_at": "2026-01-01T00:00:00+00:00"},
             "1": {"state": "failed", "observed_at": "2026-01-01T00:00:00+00:00"}}
    at = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    young = _record(ended=ended, requeue_window_s=300)
    assert needs_asking(young, now=at + 299)
    assert not needs_asking(young, now=at + 301)  # past MinJobAge: no call at all
    assert needs_asking(_record(ended=ended, requeue_window_s=0), now=at + 10**7)  # kept for ever
    assert not needs_asking(_record(ended=ended), now=at)  # older records: an end is final
    built = {k: {**v, "state": "built"} for k, v in ended.items()}
    assert not needs_asking(_record(ended=built, requeue_window_s=300), now=at)


def test_the_done_marker_wins_over_a_live_answer_and_is_the_only_way_to_built(
        tmp_path: Path) -> None:
    rec = _record()
    _done(tmp_path, "M/a0")
    live = _live(("7", 0, RUNNING), ("7", 1, TaskStatus(JobState.COMPLETED, "COMPLETED")))
    assert task_state(rec, 0, live, str(tmp_path)).state is S.BUILT
    ended = task_state(rec, 1, live, str(tmp_path))
    assert (ended.state, ended.detail) == (S.FAILED, "task ended without a done marker")


def test_an_unconfirmed_submission_and_a_recorded_end_are_read_from_the_record(
        tmp_path: Path) -> None:
    root = str(tmp_path)
    assert task_state(_record(state=RecordState.SUBMITTING), 0, Live(), root).state \
        is S.SUBMITTING
    rec = _record(ended={"0": {"state": "failed", "label": "TIMEOUT", "detail": "hit 1:00:00"},
                         "1": {"state": "built"}})
    failed = task_state(rec, 0, Live(), root)
    assert (failed.state, failed.reason, failed.detail, failed.recorded) == (
        S.FAILED, "TIMEOUT", "hit 1:00:00", True)
    gone = task_state(rec, 1, Live(), root)  # recorded built, marker moved aside since
    assert gone.state is S.NOT_STARTED and "done marker has been moved aside" in gone.detail


def test_the_schedulers_reason_wins_over_the_workers_account_of_the_same_end(
        tmp_path: Path) -> None:
    rec = _record(requirements={"time": "1:00:00"})
    _worker(tmp_path, "M/a0", WorkerState.INTERRUPTED, "7_0", "interrupted by SIGTERM")
    live = _live(("7", 0, TaskStatus(JobState.FAILED, "TIMEOUT")))
    view = task_state(rec, 0, live, str(tmp_path))
    assert view.state is S.FAILED and view.reason == "TIMEOUT"
    _worker(tmp_path, "M/a1", WorkerState.DEPENDENCY_FAILED, "7_1", "upstream M/x failed")
    dep = task_state(rec, 1, _live(("7", 1, TaskStatus(JobState.FAILED, "FAILED"))),
                     str(tmp_path))
    assert (dep.state, dep.detail) == (S.DEP_FAILED, "upstream M/x failed")


def test_a_status_file_of_another_jobs_attempt_is_not_this_tasks_account(
        tmp_path: Path) -> None:
    rec = _record()
    _worker(tmp_path, "M/a0", WorkerState.FAILED, job="9_0", error="a later attempt")
    assert worker_account(rec, 0, str(tmp_path)) == {}
    _worker(tmp_path, "M/a0", WorkerState.FAILED, job="7_0", error="mine")
    assert worker_account(rec, 0, str(tmp_path))["error"] == "mine"
    packed = _record(array_indices=[3, 3])  # the worker names its task by array index
    _worker(tmp_path, "M/a1", WorkerState.FAILED, job="7_3", error="packed")
    assert worker_account(packed, 1, str(tmp_path))["error"] == "packed"


@pytest.mark.parametrize(("unreachable", "detail"), [
    (True, "could not be asked"), (False, "no longer known to the scheduler")])
def test_a_task_nobody_knows_about_is_unknown_never_built(tmp_path: Path, unreachable: bool,
                                                          detail: str) -> None:
    view = task_state(_record(), 0, _live(unreachable=unreachable), str(tmp_path))
    assert view.state is S.UNKNOWN and detail in view.detail


def test_built_by_names_the_job_of_the_done_marker(tmp_path: Path) -> None:
    assert built_by(str(tmp_path), "M/a0") is None
    _done(tmp_path, "M/a0", job="12_3")
    assert built_by(str(tmp_path), "M/a0") == "12"
    _atomic.write_json(paths.done_marker(str(tmp_path), "M/a1"), {}, durable=False)
    assert built_by(str(tmp_path), "M/a1") == ""


def test_a_stage_counts_each_artifact_once_by_its_newest_task(tmp_path: Path) -> None:
    arts = list(ArtifactSet.from_product(cls=Node, params={"i": [0, 1, 2, 3]}))

    def rec(job: str, picked: list[Node]) -> JobRecord:
        return JobRecord(name=job, backend="fake", stage="s", tier=0, job_id=job,
                         tasks=[[a.artifact_id, a.relpath] for a in picked],
                         state=RecordState.SUBMITTED)

    old, new = rec("1", arts[:2]), rec("2", arts[1:3])  # arts[1] was retried by job 2
    latest = latest_tasks([old, new])
    assert latest[arts[1].artifact_id] == (new, 0) and latest[arts[0].artifact_id] == (old, 0)
    _done(tmp_path, arts[3].relpath)  # built without any record (another checkout)
    live = _live(("1", 0, TaskStatus(JobState.FAILED, "FAILED")), ("1", 1, RUNNING),
                 ("2", 0, TaskStatus(JobState.PENDING, "PENDING")), ("2", 1, RUNNING))
    status = stage_status("s", arts, latest, live, str(tmp_path))
    assert status.counts == {S.FAILED: 1, S.QUEUED: 1, S.RUNNING: 1, S.BUILT: 1}
    assert [p.relpath for p in status.problems] == [arts[0].relpath]


def test_a_task_on_another_cluster_is_live_and_one_whose_id_is_not_ours_is_recorded_so(
        tmp_path: Path) -> None:
    rec = _record()
    away = TaskStatus(JobState.ELSEWHERE, hint="on another cluster (a): not asked")
    view = task_state(rec, 0, _live(("7", 0, away)), str(tmp_path))
    assert (view.state, view.detail) == (S.ELSEWHERE, "on another cluster (a): not asked")
    assert ended_entry(rec, 0, _live(("7", 0, away)), str(tmp_path)) is None  # not an end
    gone = TaskStatus(JobState.UNKNOWN, NOT_OURS, hint="not ours: job id 7 now belongs to x")
    view = task_state(rec, 1, _live(("7", 1, gone)), str(tmp_path))
    assert (view.state, view.label) == (S.UNKNOWN, "unknown (not ours)")
    entry = ended_entry(rec, 1, _live(("7", 1, gone)), str(tmp_path))
    assert entry is not None and entry["label"] == "not ours"  # the record says so


def test_a_cancelled_task_or_job_is_not_asked_about_again() -> None:
    ended = {"0": {"state": "cancelled", "observed_at": "2026-01-01T00:00:00+00:00"},
             "1": {"state": "failed", "observed_at": "2026-01-01T00:00:00+00:00"}}
    at = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    assert needs_asking(_record(ended=ended, requeue_window_s=300), now=at)
    assert not needs_asking(_record(ended=ended, requeue_window_s=300,
                                    state=RecordState.CANCELLED), now=at)  # by `cancel`
    scancelled = {**ended, "1": {**ended["1"], "state": "cancelled"}}
    assert not needs_asking(_record(ended=scancelled, requeue_window_s=300), now=at)
