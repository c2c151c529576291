"""Relays on FakeBackend: waves past the submit allowance (known, or learned from a refusal
part-way), a full allowance, a relay beside the user's own launch, a relay killed while it
submits, a sweep's rungs.

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

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, _faults, verbs
from experiments.backends.fake import FakeBackend
from experiments.errors import LaunchIncomplete, SubmissionError
from experiments.launching.launch_lock import LaunchLocks
from experiments.launching.relay import RELAY_ENV, RELAY_REQUIREMENTS, REQUEUED_EXIT, RelayRequeued
from experiments.plan import Plan
from experiments.resources import Resources, common_resources
from experiments.session import Session
from experiments.states import JobState, TaskStatus
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
    """FakeBackend with a submit allowance and relays (SubmitsRelays). ``slurm_limit``: the
    limit the scheduler enforces when the known ``allowance`` is wrong (refused at it with
    Slurm's words, after which the right one is known, as the Slurm backend reads it)."""

    def __init__(self, allowance: int, slurm_limit: int | None = None) -> None:
        super().__init__()
        self.allowance = allowance
        self.slurm_limit = slurm_limit
        self.relays: list[tuple[str, str, tuple[str, ...], int]] = []  # id, name, after, begin
        self.most_queued = 0
        self.requeued: list[str] = []

    def relay_after(self, job_id: str, after: Sequence[str]) -> None:
        self.relays = [(i, n, tuple(after) if i == job_id else a, b)
                       for i, n, a, b in self.relays]

    def requeue_relay(self, job_id: str) -> None:
        self.requeued.append(job_id)
        self.jobs[job_id].tasks[0] = TaskStatus(JobState.PENDING, "PENDING")

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
        if job_id is None:
            raise SubmissionError(self._refuse.pop(0))
        self.relays.append((job_id, name, tuple(after), begin_minutes))
        return job_id

    def _submit(self, name: str, relpaths: list[str], root: str) -> str | None:
        if self.slurm_limit is not None and self.queued() + len(relpaths) > self.slurm_limit:
            self.refuse_next("QOSMaxSubmitJobPerUserLimit\nBatch job submission failed: Job "
                             "violates accounting/QOS policy (job submit limit, user's size "
                             "and/or time limits)")
            self.allowance = self.slurm_limit  # learned from the refusal
        got = super()._submit(name, relpaths, root)
        self.most_queued = max(self.most_queued, self.queued())
        return got


def _world(tmp_path: Path, stages: Mapping[str, ArtifactSet], allowance: int,
           slurm_limit: int | None = None) -> tuple[Session, RelayingFake]:
    ex = LocalExecutor(project="relays", artifact_path=str(tmp_path / "a"),
                       code_path=str(tmp_path), snapshot_code=False)
    for name, arts in stages.items():
        ex.stage(name, arts)
    fake = RelayingFake(allowance, slurm_limit)
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
    assert report.sweeps == [f"wave 2 of 3: 16 artifact(s) not yet submitted; relay job "
                             f"{fake.relays[0][0]} submits it when the jobs before it end"]
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


@dataclass(frozen=True)
class Sum(Artifact):
    """The second tier: one per point."""

    base: Point

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def _two_tiers(n: int) -> dict[str, ArtifactSet]:
    grid = ArtifactSet.from_product(cls=Point, params={"i": list(range(n))})
    return {"grid": grid, "sums": grid.map(lambda p: Sum(base=p))}


def _finish_chain(session: Session, fake: RelayingFake, monkeypatch: pytest.MonkeyPatch
                  ) -> None:
    """Play the scheduler until no relay is left to run."""
    for _ in range(10):
        if not any(j.tasks[0].state is JobState.PENDING for j in fake.jobs.values()):
            return
        _run_relay(session, fake, monkeypatch)
    raise AssertionError("the chain did not end")


def _submitted_once(fake: RelayingFake, n: int) -> None:
    submitted = [rel for j in fake.jobs.values() for rel in j.relpaths
                 if not rel.startswith(".relays")]
    assert len(submitted) == len(set(submitted)) == n  # each artifact submitted once


def test_a_refusal_at_the_submit_limit_part_way_leaves_the_rest_to_relays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the known limits say 1000 fit; Slurm enforces 10 and refuses the second array
    session, fake = _world(tmp_path, _two_tiers(6), allowance=1000, slurm_limit=10)
    first = verbs.launch(session)
    assert [len(r.tasks) for r in first.records] == [6, 3]  # then 3 + the relay = 10
    assert first.relay is not None, first.warnings
    assert "wave 1 of 2 (Slurm refused more: QOSMaxSubmitJobPerUserLimit)" in first.waiting[0]
    _finish_chain(session, fake, monkeypatch)
    _submitted_once(fake, 12)
    assert fake.most_queued <= 10


def test_a_refusal_part_way_when_the_learned_limits_leave_no_room_waits_for_a_relay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session, fake = _world(tmp_path, _two_tiers(6), allowance=1000, slurm_limit=7)
    first = verbs.launch(session)
    assert [len(r.tasks) for r in first.records] == [6] and first.relay is not None
    assert "Slurm refused more" in " ".join(first.waiting)
    _finish_chain(session, fake, monkeypatch)
    _submitted_once(fake, 12)
    assert fake.most_queued <= 7


def test_a_refusal_at_the_limit_with_nothing_to_wait_for_stops_as_before(
        tmp_path: Path) -> None:
    session, fake = _world(tmp_path, _two_tiers(3), allowance=1000, slurm_limit=0)
    with pytest.raises(SubmissionError, match="QOSMaxSubmitJobPerUserLimit"):
        verbs.launch(session)
    assert fake.relays == []


def test_without_relays_a_refusal_at_the_limit_part_way_stops_with_the_list(
        tmp_path: Path) -> None:
    ex = LocalExecutor(project="norelays", artifact_path=str(tmp_path / "a"),
                       code_path=str(tmp_path), snapshot_code=False)
    for name, arts in _two_tiers(3).items():
        ex.stage(name, arts)
    fake = FakeBackend()
    session = Session.open(ex, backend="fake", instances={"fake": fake})
    original = fake._submit  # the first array is accepted, the second refused at the limit

    def second_refused(name: str, relpaths: list[str], root: str) -> str | None:
        if fake.jobs:
            fake.refuse_next("QOSMaxSubmitJobPerUserLimit")
        return original(name, relpaths, root)

    fake._submit = second_refused  # type: ignore[method-assign]
    with pytest.raises(LaunchIncomplete, match="Not submitted: 3 artifact"):
        verbs.launch(session)


def test_a_relay_that_meets_the_users_own_launch_is_queued_again_not_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grid = ArtifactSet.from_product(cls=Point, params={"i": list(range(25))})
    session, fake = _world(tmp_path, {"grid": grid}, allowance=10)
    verbs.launch(session)
    relay_id = fake.relays[-1][0]
    ex = session.experiment
    users_launch = LaunchLocks(session.store.home, ex.project, ex.artifact_path, 0o022)
    users_launch.acquire()  # the user's `launch` holds the lock while the relay starts
    try:
        with pytest.raises(RelayRequeued, match=f"relay \\(job {relay_id}\\) is queued again"
                           ) as got:
            _run_relay(session, fake, monkeypatch)
    finally:
        users_launch.release()
    assert got.value.exit_code == REQUEUED_EXIT
    assert fake.requeued == [relay_id] and len(fake.relays) == 1  # no second relay
    assert fake.jobs[relay_id].tasks[0].state is JobState.PENDING  # queued again
    _finish_chain(session, fake, monkeypatch)
    _submitted_once(fake, 25)


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (no except clause catches it)."""


def test_a_relay_killed_while_it_submits_leaves_a_successor_that_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session, fake = _world(tmp_path, _two_tiers(12), allowance=10)
    verbs.launch(session)  # wave 1: 9 points and a relay
    relay_id = fake.relays[-1][0]

    def die() -> None:
        raise Killed

    monkeypatch.setattr(_faults, "_die", die)
    monkeypatch.setattr(_faults, "_seen", {})
    monkeypatch.setenv("EXPERIMENTS_CRASH_AT", "after-submit:2")  # 1: its successor
    with pytest.raises(Killed):  # the wave's first array is accepted, its id not recorded
        _run_relay(session, fake, monkeypatch)
    monkeypatch.delenv("EXPERIMENTS_CRASH_AT")
    successor = fake.relays[-1]
    assert successor[2] == (relay_id,)  # queued first, waiting for the killed relay only
    fake.fail(relay_id)  # the killed relay ends; Slurm starts its successor
    _finish_chain(session, fake, monkeypatch)
    _submitted_once(fake, 24)  # the killed relay's array was adopted, never sent again
    assert fake.most_queued <= 10


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
