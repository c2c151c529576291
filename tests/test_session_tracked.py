"""``Session.tracked``: the jobs holding this root's artifacts and what is live, asked once,
refusing to act blind when a verb must not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, verbs
from experiments.backends.fake import FakeBackend
from experiments.errors import SchedulerQueryError
from experiments.session import Session


@dataclass(frozen=True)
class Step(Artifact):
    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def _session(tmp_path: Path, fake: FakeBackend, root: str = "a") -> Session:
    ex = LocalExecutor(project="tr", artifact_path=str(tmp_path / root), code_path=str(tmp_path))
    ex.stage("one", ArtifactSet.from_product(cls=Step, params={"i": [0, 1]}))
    ex.stage("two", ArtifactSet.from_product(cls=Step, params={"i": [2]}))
    return Session.open(ex, backend="fake", instances={"fake": fake})


def test_tracked_keeps_the_jobs_of_this_root_and_asks_once(tmp_path: Path) -> None:
    fake = FakeBackend()
    verbs.launch(_session(tmp_path, fake, "other"))
    [mine_one, mine_two] = verbs.launch(_session(tmp_path, fake)).records
    fake.finish(mine_two.job_id or "")
    fake.calls.clear()
    tracked = _session(tmp_path, fake).tracked()
    assert len(tracked.every) == 4 and [r.name for r in tracked.records] == [
        mine_one.name, mine_two.name]
    assert [r.name for r in tracked.live_records()] == [mine_one.name]
    assert fake.calls["query"] == 1
    assert [r.name for r in _session(tmp_path, fake).tracked(["one"]).records] == [
        mine_one.name]


def test_tracked_refuses_when_strict_and_a_scheduler_cannot_be_asked(tmp_path: Path) -> None:
    fake = FakeBackend()
    session = _session(tmp_path, fake)
    verbs.launch(session)
    fake.unreachable = True
    assert session.tracked().live.unreachable  # not strict: says so, refuses nothing
    with pytest.raises(SchedulerQueryError, match=r"could not ask the fake scheduler \(the "
                       r"fake scheduler is unreachable\); live jobs are unknown"):
        session.tracked(strict=True)
    with pytest.raises(SchedulerQueryError, match=r"^cannot gc: fake said the fake sch"):
        session.tracked(strict="cannot gc: {name} said {why}")
