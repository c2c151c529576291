"""Queued work planned with other parameters (issue 24 item 2), on FakeBackend.

Evaluations and the leaderboard are queued with ``num_examples=500``; then the default
becomes 4000. ``drylaunch`` and ``launch`` name them (which artifacts, which parameter);
``launch --rebuild-stale`` refuses to skip them as "already queued" without a word: it needs
``--replace-queued`` (cancel and resubmit, in one step) or ``--keep-queued``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments import verbs
from experiments.backends.fake import FakeBackend
from experiments.cli import main as cli_main
from experiments.states import JobState
from experiments.verbs import queued_stale
from experiments.verbs.queued_stale import QueuedStaleError
from experiments.worker import specs
from tests.support.truth_world import build, experiment, record, session


@pytest.fixture
def queued(tmp_path: Path, fake: FakeBackend) -> object:
    """Trainings built, evaluations and the leaderboard queued with 500; now it says 4000."""
    s = session(experiment(tmp_path), fake)
    verbs.launch(s)
    build(fake, record(s, "train"))
    return experiment(tmp_path, num_examples=4000)


def test_drylaunch_and_launch_name_queued_work_planned_otherwise(
        queued: object, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    s = session(queued, fake)  # type: ignore[arg-type]
    dry = verbs.drylaunch(s)
    stale = {q.relpath: q.reason for q in dry.queued_stale}
    evals = [r for _, r in record(s, "eval").tasks]
    assert all("num_examples was 500, now 4000" in stale[e] for e in evals)
    (board,) = [r for _, r in record(s, "board").tasks]
    assert "is rebuilt or replaced" in stale[board]  # it waits for what is replaced
    code = cli_main.run(queued, ["drylaunch"])  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert code == 0 and "3 queued or running task(s)" in out and "num_examples was 500" in out
    result = verbs.launch(s)  # without --rebuild-stale: nothing replaced, but said
    assert not result.records and any("build other than the experiment describes today" in w
                                      and "num_examples was 500, now 4000" in w
                                      for w in result.warnings)


def test_rebuild_stale_replaces_them_in_one_step_never_silently(
        queued: object, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    s = session(queued, fake)  # type: ignore[arg-type]
    old = {record(s, "eval").job_id, record(s, "board").job_id}
    with pytest.raises(QueuedStaleError) as refused:
        verbs.launch(s, rebuild_stale=True)
    assert refused.value.exit_code == 2 and "--replace-queued" in str(refused.value)
    assert not fake.calls["cancel"]  # nothing was touched
    code = cli_main.run(queued, ["launch", "--rebuild-stale"])  # type: ignore[arg-type]
    assert code == 2 and "--keep-queued" in capsys.readouterr().err
    result = verbs.launch(s, rebuild_stale=True, replace_queued=True)
    assert sorted(result.replaced) == sorted(old)
    for job in old:  # cancelled, every task
        assert all(t.state is JobState.CANCELLED for t in fake.jobs[job or ""].tasks)
    new = {r.stage: r for r in result.records}
    assert set(new) == {"eval", "board"}
    planned = [specs.read_task(new["eval"].spec_dir, i)["params"]["num_examples"]
               for i in range(len(new["eval"].tasks))]
    assert planned == [4000, 4000]
    assert new["board"].depends_on == [new["eval"].job_id]  # not on the cancelled job


def test_keep_queued_launches_the_rest_and_says_what_stays(queued: object,
                                                           fake: FakeBackend) -> None:
    s = session(queued, fake)  # type: ignore[arg-type]
    result = verbs.launch(s, rebuild_stale=True, replace_queued=False)
    assert not result.replaced and not fake.calls["cancel"]
    assert any("left queued as asked" in w for w in result.warnings)


def test_with_nothing_live_no_queued_work_is_named_and_the_grid_is_not_walked(
        queued: object, fake: FakeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    s = session(queued, fake)  # type: ignore[arg-type]
    for stage in ("eval", "board"):  # every queued task ends: nothing is live any more
        build(fake, record(s, stage))

    def walked(*_args: object) -> None:
        raise AssertionError("the grid was walked although no task is live")

    monkeypatch.setattr(queued_stale, "walk", walked)
    assert verbs.drylaunch(s).queued_stale == []
    assert not verbs.launch(s).replaced
