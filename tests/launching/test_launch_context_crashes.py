"""A launch killed around a submission, then launched again, on FakeBackend: every artifact is
held by exactly one job, and no job the scheduler knows is untracked.

The crash points ``before-submit`` and ``after-submit`` sit in ``LaunchContext.prepare`` and
``confirm``, which every backend passes through, so the reconcile logic is proven here in
milliseconds; tests/reliability/test_slurm_reliability.py kills a real launcher on Slurm.
A SIGKILL is played by an exception that no handler of the package catches.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, _faults, verbs
from experiments.backends.fake import FakeBackend
from experiments.session import Session
from experiments.tracking.status import ArtifactState
from experiments.tracking.store import RecordState, Store
from tests.support.experiments import Down, Up


class Killed(BaseException):
    """Stands in for the SIGKILL of a crash point (not an Exception: nothing may catch it)."""



@dataclass(frozen=True)
class C(Artifact):
    b: Down

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def _session(tmp_path: Path, fake: FakeBackend) -> Session:
    ex = LocalExecutor(project="p", artifact_path=str(tmp_path / "art"), code_path=str(tmp_path))
    a = ArtifactSet.from_product(cls=Up, params={"i": [0, 1]})
    b = a.map(lambda x: Down(up=x))
    ex.stage("a", a)
    ex.stage("b", b)
    ex.stage("c", b.map(lambda x: C(b=x)))
    return Session.open(ex, backend="fake", instances={"fake": fake})


def _die() -> None:
    raise Killed


@pytest.mark.parametrize("crash_at", ["before-submit:1", "before-submit:2", "after-submit:1",
                                      "after-submit:2"])
def test_crash_around_a_submission_then_relaunch(tmp_path: Path, crash_at: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeBackend()
    monkeypatch.setattr(_faults, "_die", _die)
    monkeypatch.setattr(_faults, "_seen", {})
    monkeypatch.setenv("EXPERIMENTS_CRASH_AT", crash_at)
    with pytest.raises(Killed):
        verbs.launch(_session(tmp_path, fake))
    monkeypatch.delenv("EXPERIMENTS_CRASH_AT")
    session = _session(tmp_path, fake)
    verbs.launch(session)
    records = [r for r in session.records() if r.job_id]
    owners = Counter(t[0] for r in records for t in r.tasks)
    assert len(owners) == 6 and set(owners.values()) == {1}  # one job per artifact
    assert {r.job_id for r in records} == set(fake.jobs)  # no untracked twin was submitted
    holder = {t[0]: r.job_id for r in records for t in r.tasks}
    for rec in records:  # later tiers wait for the jobs holding their dependencies
        assert rec.tier == 0 or (rec.depends_on and set(rec.depends_on) <= set(holder.values()))
    for job_id in sorted(fake.jobs):
        fake.finish(job_id)
    counts = {s.stage: s.counts for s in verbs.status(session).stages}
    assert counts == {s: {ArtifactState.BUILT: 2} for s in ("a", "b", "c")}


def _power_cut(home: Path) -> None:
    """What a power cut right after the launch leaves: each journal as far as its header says
    is committed (fsynced); the lines written after the last fsync are gone."""
    for journal in home.glob("projects/p/*/jobs.journal-*.jsonl"):
        with open(journal, "rb") as fh:
            committed = int(json.loads(fh.readline())["committed"])
        os.truncate(journal, committed)


def _committed_to_the_end(home: Path) -> bool:
    journals = list(home.glob("projects/p/*/jobs.journal-*.jsonl"))
    assert journals
    for journal in journals:
        with open(journal, "rb") as fh:
            if int(json.loads(fh.readline())["committed"]) != journal.stat().st_size:
                return False
    return True


def test_a_confirmation_lost_to_a_power_cut_is_found_again_by_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job id is committed without its own fsync (one fsync per submission: the intent's);
    a power cut before the launch ends (before its ``sync``) can lose it: the intent stays, and
    the next launch finds the job by name, submitting no twin."""
    fake = FakeBackend()
    session = _session(tmp_path, fake)
    with monkeypatch.context() as m:
        m.setattr(Store, "sync", lambda self: None)  # the power goes before the launch ends
        verbs.launch(session)
    _power_cut(session.store.home)
    again = _session(tmp_path, fake)
    lost = [r.name for r in again.records() if r.state is RecordState.SUBMITTING]
    assert lost, "every confirmation was fsynced: the power cut lost nothing"
    verbs.launch(again)
    records = [r for r in again.records() if r.job_id]
    owners = Counter(t[0] for r in records for t in r.tasks)
    assert len(owners) == 6 and set(owners.values()) == {1}
    assert {r.job_id for r in records} == set(fake.jobs) and len(fake.jobs) == 3
    assert not [r for r in again.records() if r.state is RecordState.SUBMITTING]


def test_a_finished_launch_leaves_every_journal_committed_to_its_last_line(
        tmp_path: Path) -> None:
    """What the launch did not fsync one by one, it fsyncs before it ends: a journal at rest
    that lost its last line is an error (tests/reliability/test_journal_loss.py), not a power
    cut."""
    session = _session(tmp_path, FakeBackend())
    verbs.launch(session)
    assert _committed_to_the_end(session.store.home)
