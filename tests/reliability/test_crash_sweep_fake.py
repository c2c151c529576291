"""The crash sweep of a launch, on FakeBackend: the launcher is SIGKILLed in the middle of each
journal write of the launch (crash point ``jobs-json-write`` of ``experiments._faults``: the
line is written, its newline is not), then the same launch runs again. Whatever the point,
every artifact ends in exactly one job, the scheduler holds no job that is not tracked, later
tiers wait for the jobs holding their dependencies, and every artifact is built once.

The launcher is a forked child, so it really dies by SIGKILL (no ``finally``, no ``atexit``); the
fake scheduler's jobs are saved as it dies, so they outlive it as a real scheduler's do. The
points around each submission are swept on FakeBackend by tests/unit/test_launch_crashes.py;
the real-cluster case (a job Slurm accepted, then found by name) is in test_slurm_reliability.py.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, verbs
from experiments.backends.fake import FakeBackend
from experiments.session import Session
from experiments.tracking.status import ArtifactState
from experiments.tracking.store import JobRecord


@dataclass(frozen=True)
class A(Artifact):
    i: int

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "gpu", "time": "10:00"}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class B(Artifact):
    a: A

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "cpu", "time": "10:00"}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class C(Artifact):
    b: B

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def _experiment(tmp_path: Path) -> LocalExecutor:
    """Three tiers A -> B -> C of two artifacts each: three submissions, each waiting for the
    one before."""
    ex = LocalExecutor(project="sweep", artifact_path=str(tmp_path / "out"),
                       code_path=str(tmp_path))
    a = ArtifactSet.from_product(cls=A, params={"i": [0, 1]})
    b = a.map(lambda x: B(a=x))
    ex.stage("a", a)
    ex.stage("b", b)
    ex.stage("c", b.map(lambda x: C(b=x)))
    return ex


def _session(ex: LocalExecutor, fake: FakeBackend) -> Session:
    return Session.open(ex, backend="fake", instances={"fake": fake})


def _launch_and_die(ex: LocalExecutor, crash_at: str, saved: Path) -> int:
    """Launch in a forked child that SIGKILLs itself at ``crash_at``; the fake scheduler's state
    is pickled to ``saved`` just before the kill (or at the end, had the point not been
    reached). Returns the child's wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            fake = FakeBackend()
            kill = os.kill

            def save_then_kill(target: int, sig: int) -> None:
                if target == os.getpid() and sig == signal.SIGKILL:
                    saved.write_bytes(pickle.dumps(fake))
                kill(target, sig)

            os.kill = save_then_kill  # type: ignore[assignment]  # this process only
            os.environ["EXPERIMENTS_CRASH_AT"] = crash_at
            verbs.launch(_session(ex, fake))
            saved.write_bytes(pickle.dumps(fake))
        finally:
            os._exit(0)
    return os.waitpid(pid, 0)[1]


def _records(session: Session) -> list[JobRecord]:
    return [r for r in session.records() if r.job_id]


# Three submissions, two journal lines each (the intent, then its job id).
POINTS = [f"jobs-json-write:{n}" for n in range(1, 7)]


@pytest.mark.parametrize("crash_at", POINTS)
def test_crash_sweep_then_relaunch_builds_everything_once(tmp_path: Path, crash_at: str) -> None:
    ex = _experiment(tmp_path)
    saved = tmp_path / "scheduler.pickle"
    status = _launch_and_die(ex, crash_at, saved)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        f"the launch did not reach crash point {crash_at}")
    fake: FakeBackend = pickle.loads(saved.read_bytes())
    session = _session(ex, fake)
    verbs.launch(session)  # the same launch again: reconciles what the crash left

    records = _records(session)
    owners = Counter(t[0] for r in records for t in r.tasks)
    assert len(owners) == 6 and max(owners.values()) == 1, owners  # one job per artifact
    assert {r.job_id for r in records} == set(fake.jobs)  # no untracked job in the scheduler
    holder = {t[0]: r.job_id for r in records for t in r.tasks}
    for rec in records:  # later tiers wait for the jobs that hold their dependencies
        if rec.tier > 0:
            assert rec.depends_on and set(rec.depends_on) <= set(holder.values()), rec
    built = Counter(relpath for job in fake.jobs.values() for relpath in job.relpaths)
    assert len(built) == 6 and max(built.values()) == 1, built  # each built by one job only
    for job_id in fake.jobs:
        fake.finish(job_id)
    counts = {s.stage: s.counts for s in verbs.status(session).stages}
    assert counts == {stage: {ArtifactState.BUILT: 2} for stage in ("a", "b", "c")}
    assert verbs.launch(_session(ex, fake)).records == []  # nothing left to submit
