"""Relays on FakeBackend: waves past the submit allowance, a full allowance, a sweep's rungs.

A relay is ``launch`` run again inside a job of ours (``EXPERIMENTS_RELAY`` set, its own job
id in ``SLURM_ARRAY_JOB_ID``); here the test plays the scheduler: it ends a wave's jobs,
starts the relay and runs its launch, as Slurm would. The real chain runs on the test
clusters (tests/e2e/test_sweep_slurm.py, tests/policed/test_waves.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, verbs
from experiments.backends.fake import FakeBackend
from experiments.launching.relay import RELAY_ENV, RELAY_REQUIREMENTS
from experiments.plan import Plan
from experiments.resources import Resources, common_resources
from experiments.session import Session
from experiments.states import JobState
from experiments.tracking.store import JobRecord
from experiments.verbs.wait import Outcome, outcome
from tests.support.sweep import hyperband_brackets, loss, replay, replay_hyperband


@dataclass(frozen=True)
class Point(Artifact):
    """One artifact of a flat grid."""

    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class Train(Artifact):
    """A sweep trial."""

    x: int
    y: int
    z: int
    epochs: int = 1

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


class RelayingFake(FakeBackend):
    """FakeBackend with a submit allowance and relays (SubmitsRelays)."""

    def __init__(self, allowance: int) -> None:
        super().__init__()
        self.allowance = allowance
        self.relays: list[tuple[str, str, tuple[str, ...], int]] = []  # id, name, after, begin
        self.most_queued = 0

    def queued(self) -> int:
        return sum(t.state in (JobState.PENDING, JobState.RUNNING)
                   for j in self.jobs.values() for t in j.tasks)

    def wave_room(self, plan: Plan, records: Sequence[JobRecord]) -> int | None:
        room = self.allowance - self.queued()
        return None if plan.task_count <= room else max(0, room)

    def relay_resources(self, like: Mapping[str, Any]) -> Resources:
        return common_resources({**like, **RELAY_REQUIREMENTS}, "relay")

    def submit_relay(self, script: str, name: str, after: Sequence[str],
                     resources: Resources, begin_minutes: int = 0) -> str:
        job_id = self._submit(name, [f".relays/{name}"], self.root)
        assert job_id is not None
        self.relays.append((job_id, name, tuple(after), begin_minutes))
        return job_id

    def _submit(self, name: str, relpaths: list[str], root: str) -> str | None:
        got = super()._submit(name, relpaths, root)
        self.most_queued = max(self.most_queued, self.queued())
        return got


def _world(tmp_path: Path, stages: Mapping[str, ArtifactSet], allowance: int
           ) -> tuple[Session, RelayingFake]:
    ex = LocalExecutor(project="relays", artifact_path=str(tmp_path / "a"),
                       code_path=str(tmp_path), snapshot_code=False)
    for name, arts in stages.items():
        ex.stage(name, arts)
    fake = RelayingFake(allowance)
    fake.root = ex.artifact_path
    return Session.open(ex, backend="fake", instances={"fake": fake}), fake


def _run_relay(session: Session, fake: RelayingFake, monkeypatch: pytest.MonkeyPatch,
               end: Any = None) -> verbs.LaunchResult:
    """End every artifact job (``end(job_id)``, default finish), start the newest relay and
    run its launch, then end the relay as its script would."""
    for job_id, job in list(fake.jobs.items()):
        if not job.name.endswith(".relay") and job.tasks[0].state is JobState.PENDING:
            (end or fake.finish)(job_id)
    relay_id = fake.relays[-1][0]
    fake.start(relay_id)
    monkeypatch.setenv(RELAY_ENV, "1")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", relay_id)
    result = verbs.launch(session)
    fake.finish(relay_id)
    return result


def test_past_the_allowance_a_launch_goes_in_waves_each_planned_by_a_relay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grid = ArtifactSet.from_product(cls=Point, params={"i": list(range(25))})
    session, fake = _world(tmp_path, {"grid": grid}, allowance=10)
    first = verbs.launch(session)
    assert [len(r.tasks) for r in first.records] == [9]  # 9 tasks + the relay = 10
    assert first.relay is not None and "wave 1 of 3" in first.waiting[0]
    assert fake.relays[0][2] == (first.records[0].job_id,)  # afterany the wave
    fake.finish(first.records[0].job_id or "")
    report = verbs.status(session)  # the wave is built, the rest not started: not final yet
    assert report.relaying and outcome(report) is Outcome.LIVE
    waves = 1
    while fake.relays[-1][0] and any(
            j.tasks[0].state is JobState.PENDING for j in fake.jobs.values()):
        _run_relay(session, fake, monkeypatch)
        waves += 1
        assert waves < 10
    built = sorted((tmp_path / "a").rglob(".done"))
    assert len([p for p in built if ".relays" not in p.parts]) == 25
    submitted = [rel for j in fake.jobs.values() for rel in j.relpaths
                 if not rel.startswith(".relays")]
    assert len(submitted) == len(set(submitted)) == 25  # each artifact submitted once
    assert fake.most_queued <= 10


def test_a_relay_that_finds_the_allowance_full_queues_itself_again_with_a_begin_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grid = ArtifactSet.from_product(cls=Point, params={"i": list(range(25))})
    session, fake = _world(tmp_path, {"grid": grid}, allowance=10)
    verbs.launch(session)
    fake.allowance = 1  # others' jobs filled the allowance meanwhile
    result = _run_relay(session, fake, monkeypatch)
    assert result.records == [] and "allowance is full" in result.waiting[0]
    assert fake.relays[-1][3] == 5  # queued again with --begin=now+5minutes


def test_a_sweep_on_fake_decides_rungs_from_records_and_never_reruns_a_failed_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trials = ArtifactSet(Train(x, y, z) for x in range(3) for y in range(3) for z in range(3))
    sweep = trials.successive_halving(budget="epochs", budgets=[1, 3, 9], eta=3,
                                      metric="val_loss")
    session, fake = _world(tmp_path, {"sweep": sweep, "final": sweep.best(1)}, allowance=1000)
    fails, slow = {(0, 2, 2, 1)}, {(1, 0, 0, 3)}  # rung 1's best times out
    end = _ending(tmp_path, fake, sweep, fails, slow)
    first = verbs.launch(session)
    assert [len(r.tasks) for r in first.records] == [27] and first.relay is not None
    (open_,) = verbs.status(session).sweep_rungs  # rung 1 queued, the rest not reached
    assert [(r.reached, r.not_run, r.decided) for r in open_.rungs] == [
        (True, 27, False), (False, 9, False), (False, 3, False)]
    sizes = [len(_run_relay(session, fake, monkeypatch, end).records[0].tasks)
             for _ in range(2)]
    assert sizes == [9, 3]
    (mid,) = verbs.status(session).sweep_rungs  # rungs 1-2 decided, rung 3 queued
    assert [(r.promoted, r.stopped, r.failed, r.not_run) for r in mid.rungs] == [
        (9, 17, 1, 0), (3, 5, 1, 0), (0, 0, 0, 3)]
    table = verbs.table(session, "sweep")
    assert sorted(set(zip(table.column("rung"), table.column("decision"), strict=True))) == [
        (1, "failed"), (1, "promoted"), (1, "stopped"), (2, "failed"), (2, "promoted"),
        (2, "stopped"), (3, "pending")]
    last = _run_relay(session, fake, monkeypatch, end)
    assert last.records == [] and last.relay is None and not last.waiting  # all decided
    expected = replay(failed=frozenset(fails | slow))
    assert [(t.x, t.y, t.z) for t in _now(session, sweep.best(1))] == [expected[-1][0]]
    assert (1, 0, 0) not in expected[-1]  # the timed-out trial was never promoted
    for gone in (Train(0, 2, 2, 1), Train(1, 0, 0, 3)):
        runs = [rel for j in fake.jobs.values() for rel in j.relpaths if rel == gone.relpath]
        assert len(runs) == 1  # never submitted again


def test_hyperband_on_fake_runs_its_brackets_through_relays_as_the_replay_decides(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = [(x, y, z) for x in range(3) for y in range(3) for z in range(3)][:17]
    sweep = ArtifactSet(Train(*c) for c in configs).hyperband(
        budget="epochs", min_budget=1, max_budget=9, eta=3, metric="val_loss")
    session, fake = _world(tmp_path, {"sweep": sweep, "final": sweep.best(2)}, allowance=1000)
    fails, slow = {(0, 0, 1, 1)}, {(1, 0, 0, 3)}
    end = _ending(tmp_path, fake, sweep, fails, slow)
    first = verbs.launch(session)
    assert sum(len(r.tasks) for r in first.records) == 9 + 5 + 3  # every bracket's rung 0
    relays = 0
    while fake.relays and fake.jobs[fake.relays[-1][0]].tasks[0].state is JobState.PENDING:
        _run_relay(session, fake, monkeypatch, end)
        relays += 1
        assert relays < 6
    brackets, ranked, at_most = replay_hyperband(configs, 1, 9, 3, frozenset(fails | slow))
    built = {(t.x, t.y, t.z, t.epochs) for t in _all(sweep)
             if (tmp_path / "a" / t.relpath / "metrics.json").exists()}
    want = {(*c, b) for rungs, (_, budgets) in zip(brackets, hyperband_brackets(17, 1, 9, 3),
                                                   strict=True)
            for rung, b in zip(rungs, budgets, strict=True) for c in rung} - fails - slow
    assert built == want
    assert [(t.x, t.y, t.z) for t in _now(session, sweep.best(2))] == ranked[:2]
    (summary,) = verbs.status(session).sweep_rungs
    assert summary.finished and summary.budget_at_most == at_most
    assert summary.budget_spent == sum(t[3] for t in built | fails | slow)
    submitted = [rel for j in fake.jobs.values() for rel in j.relpaths
                 if not rel.startswith(".relays")]
    assert len(submitted) == len(set(submitted))  # each trial submitted once


def test_wait_keeps_waiting_for_a_queued_relay_when_the_disk_shows_every_trial_ended(
        tmp_path: Path) -> None:
    """The disk alone cannot tell that a relay will decide the next rung: ``wait`` asks the
    scheduler before calling an undecided sweep ended (it used to exit 1 between rungs)."""
    sweep = ArtifactSet(Train(x, 0, 0) for x in range(3)).successive_halving(
        budget="epochs", budgets=[1, 3], eta=3, metric="val_loss")
    session, fake = _world(tmp_path, {"sweep": sweep}, allowance=1000)
    first = verbs.launch(session)
    assert first.relay is not None
    now = [0.0]

    def ticking(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= 3:  # the trials end; the relay stays queued after them
            for job in first.records:
                _ending(tmp_path, fake, sweep, set(), set())(job.job_id or "")

    result = verbs.wait(session, interval_s=60, sleep=ticking, clock=lambda: now[0],
                        timeout_s=600)
    assert result.outcome is Outcome.TIMED_OUT, result.report.sweeps  # not "failed"
    assert "relay job" in result.report.sweeps[0]


def _ending(tmp_path: Path, fake: RelayingFake, sweep: Any,
            fails: set[tuple[int, int, int, int]], slow: set[tuple[int, int, int, int]]
            ) -> Any:
    """How the test ends a job: each trial writes its metric, ``fails`` fail and ``slow``
    run into their time limit (TIMEOUT), as a Slurm job would."""
    every = {t.relpath: t for t in _all(sweep)}

    def end(job_id: str) -> None:
        job = fake.jobs[job_id]
        for i, rel in enumerate(job.relpaths):
            t = every[rel]
            if (t.x, t.y, t.z, t.epochs) in fails | slow:
                (fake.fail if (t.x, t.y, t.z, t.epochs) in fails else fake.time_out)(job_id, i)
                continue
            (tmp_path / "a" / rel).mkdir(parents=True, exist_ok=True)
            (tmp_path / "a" / rel / "metrics.json").write_text(
                json.dumps({"val_loss": loss(t.x, t.y, t.z, t.epochs)}))
            fake.finish(job_id, i)
    return end


def _now(session: Session, arts: ArtifactSet) -> ArtifactSet:
    """``arts`` as the artifact root decides it now."""
    from experiments.tracking.sweep_outcomes import stages_now

    tracked = session.tracked()
    return stages_now({"x": arts}, session.experiment.artifact_path, tracked.records,
                      tracked.live)[0]["x"]


def _all(sweep: Any) -> list[Artifact]:
    """Every trial the sweep could ever run."""
    return [b.trial(c, k) for b in sweep.spec.brackets for c in b.configs
            for k in range(len(b.budgets))]
