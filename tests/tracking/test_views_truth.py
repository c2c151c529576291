"""Views that list attempts and jobs say the truth (issue 24 items 3, 8 and 11), on
FakeBackend: another root's run is not an attempt of this root's artifact (``logs``,
``executor.artifacts()``, the report's failures; the report's Jobs table names each job's
root); artifacts waiting inside a running pack are queued, not running; ``history``'s
"rebuilt by" is what happened, not what today's done markers say.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments import paths, verbs
from experiments._atomic import write_json
from experiments.backends.fake import FakeBackend
from experiments.report.data import collect
from experiments.tracking.status import ArtifactState as S
from experiments.verbs import logs as logs_verb
from tests.support.truth_world import FakeExecutor, build, classes, experiment, record, session


def test_a_run_into_another_root_is_not_an_attempt_of_this_roots_artifact(
        tmp_path: Path, fake: FakeBackend) -> None:
    here = session(experiment(tmp_path, "A"), fake)
    verbs.launch(here, ["train"])
    mine = record(here, "train")
    fake.start(mine.job_id or "")
    there = session(experiment(tmp_path, "B"), fake)  # a smoke run into another root
    verbs.launch(there, ["train"])
    theirs = record(there, "train")
    fake.fail(theirs.job_id or "", error="boom in B")
    art = here.experiment.stages["train"][0]
    attempts = logs_verb.attempts(here, art)
    assert [a.record.job_id for a in attempts] == [mine.job_id]
    assert attempts[-1].view is not None and attempts[-1].view.state is S.RUNNING
    views = verbs.artifacts(here, "train")
    assert [(v.state, v.job) for v in views] == [(S.RUNNING, f"{mine.job_id}_{i}")
                                                 for i in range(2)]
    data = collect(here, accounting=False)
    assert data.failures == []
    roots = {j["job"]: j["root"] for j in data.jobs}
    assert roots[mine.job_id] == here.experiment.artifact_path
    assert roots[theirs.job_id] == there.experiment.artifact_path


def test_artifacts_waiting_in_a_running_pack_are_queued(tmp_path: Path,
                                                        fake: FakeBackend) -> None:
    train, _ev, _board = classes()
    ex = FakeExecutor(project="packs", artifact_path=str(tmp_path / "A"),
                      code_path=str(tmp_path))
    ex.stage("train", [train(seed=i) for i in range(6)])
    s = session(ex, fake)
    verbs.launch(s)
    rec = s.store.update("train", record(s, "train").name, array_indices=[0, 0, 0, 1, 1, 1])
    job = rec.job_id or ""
    fake.start(job)  # Slurm reports every artifact of a running pack as running
    root = ex.artifact_path

    def worker(position: int, state: str, **extra: object) -> None:  # as the worker writes
        write_json(paths.status_file(root, rec.tasks[position][1]),
                   {"state": state, "job": f"{job}_{rec.array_index(position)}", **extra},
                   durable=False)

    worker(0, "running")
    worker(3, "failed", error="boom")  # the second pack's first artifact failed ...
    worker(4, "running")  # ... and the pack went on with the next
    counts = verbs.status(s).stages[0].counts
    assert counts == {S.RUNNING: 2, S.QUEUED: 3, S.FAILED: 1}
    tasks = verbs.job_view(s, rec).tasks
    assert [t.state for t in tasks] == [S.RUNNING, S.QUEUED, S.QUEUED, S.FAILED, S.RUNNING,
                                        S.QUEUED]
    assert "waiting in its pack" in tasks[1].detail


def test_launch_prints_array_tasks_not_artifacts_for_a_pack(
        tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.cli.launch_cmd import launched

    train, _ev, _board = classes()
    ex = FakeExecutor(project="packs", artifact_path=str(tmp_path / "A"),
                      code_path=str(tmp_path))
    ex.stage("train", [train(seed=i) for i in range(200)])
    s = session(ex, fake)
    result = verbs.launch(s)
    rec = s.store.update("train", result.records[0].name,
                         array_indices=[i // 50 for i in range(200)])
    result.records[0] = rec
    launched(result)
    out = capsys.readouterr().out
    assert "4 array task(s) for 200 artifact(s)" in out and "200 tasks" not in out
    assert "Submitted 1 job(s) for 200 artifact(s) (4 array task(s))" in out


def test_rebuilt_by_is_what_happened_not_todays_markers(tmp_path: Path,
                                                        fake: FakeBackend) -> None:
    s = session(experiment(tmp_path), fake)
    verbs.launch(s, ["train"])
    first = record(s, "train")
    fake.fail(first.job_id or "", 0, error="boom")
    build(fake, first, 1)
    verbs.history(s)  # what happened is recorded when first seen
    verbs.launch(s, ["train"])
    second = record(s, "train")
    build(fake, second)
    verbs.history(s)
    verbs.invalidate(s, ["train"], where=["seed=1"])  # today's marker of it is gone ...
    notes = {v.record.job_id: [t.note for t in v.tasks] for v in verbs.history(s).jobs}
    assert notes[first.job_id] == [f"rebuilt by {second.job_id}", ""]  # ... what happened stays


def test_a_pack_killed_at_its_time_limit_advises_pack_time(tmp_path: Path,
                                                           fake: FakeBackend) -> None:
    train, _ev, _board = classes()
    ex = FakeExecutor(project="packs", artifact_path=str(tmp_path / "A"),
                      code_path=str(tmp_path))
    ex.stage("train", [train(seed=i) for i in range(4)])
    s = session(ex, fake)
    verbs.launch(s)
    rec = s.store.update("train", record(s, "train").name, array_indices=[0, 0, 0, 0],
                         requirements={"time": "5:00", "pack": 4, "pack_time": "1"})
    fake.time_out(rec.job_id or "")
    (problem, *_) = verbs.status(s).stages[0].problems
    assert problem.reason == "TIMEOUT" and "pack_time=1 requested for the whole pack" in \
        problem.detail
    assert "raise the `pack_time` requirement" in problem.detail
    assert "raise the `time` requirement" not in problem.detail
