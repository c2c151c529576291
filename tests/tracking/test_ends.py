"""What is recorded and shown about jobs, on FakeBackend: roots, recorded ends, scheduler
reasons and ``--set`` overrides (issue 10, points 1, 5 and 6).

The same behaviours run on the real Slurm cluster in tests/e2e/test_trust.py.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, paths, verbs
from experiments._atomic import write_json
from experiments.backends.fake import FakeBackend
from experiments.errors import PlanError
from experiments.plan.overrides import Overrides, parse_overrides
from experiments.session import Session
from experiments.states import JobState
from experiments.tracking import ends as tracking
from experiments.tracking.outcomes import Verdict, scheduler_reason
from experiments.tracking.status import ArtifactState as S
from experiments.tracking.store import JobRecord, Store
from experiments.worker.build import WorkerState


@dataclass(frozen=True)
class Step(Artifact):
    x: int

    def get_requirements(self) -> dict[str, object]:
        return {"time": "1:00", "mem": 2, "gpus": self.x % 2}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@pytest.fixture
def ex(tmp_path: Path) -> LocalExecutor:
    ex = LocalExecutor(project="p", artifact_path=str(tmp_path / "A"), code_path=str(tmp_path))
    ex.stage("s", ArtifactSet.from_product(cls=Step, params={"x": [0, 1, 2, 3]}))
    return ex


def _session(ex: LocalExecutor, fake: FakeBackend, root: str | None = None) -> Session:
    return Session.open(ex.with_paths(root) if root else ex, backend="fake",
                        instances={"fake": fake})


def _counts(session: Session) -> dict[S, int]:
    return verbs.status(session).stages[0].counts


def _job(session: Session, job_id: str) -> JobRecord:
    return next(r for r in session.records() if r.job_id == job_id)


def _history(session: Session) -> dict[str, list[str]]:
    return {v.record.job_id or "": [t.label + (f" [{t.note}]" if t.note else "")
                                    for t in v.tasks] for v in verbs.history(session).jobs}


def _interrupted(ex: LocalExecutor, relpath: str, job: str) -> None:
    """What the real worker writes when Slurm sends SIGTERM at the time limit."""
    write_json(paths.status_file(ex.artifact_path, relpath),
               {"state": WorkerState.INTERRUPTED.value, "error": "interrupted by SIGTERM",
                "job": job}, durable=False)


# -- 1. tracking per artifact root -------------------------------------------------------------
def test_jobs_of_root_a_do_not_hold_or_fail_root_b(ex, fake, tmp_path) -> None:
    a = _session(ex, fake)
    assert [len(r.tasks) for r in verbs.launch(a).records] == [2, 2]
    b = _session(ex, fake, str(tmp_path / "B"))
    assert _counts(b) == {S.NOT_STARTED: 4}  # A's queued jobs say nothing about B
    fake.finish("100")
    fake.fail("101")
    assert _counts(b) == {S.NOT_STARTED: 4}  # ... nor, when they end, "failed" in B
    again = verbs.launch(b)
    assert sum(len(r.tasks) for r in again.records) == 4
    assert {r.artifact_path for r in again.records} == {str(tmp_path / "B")}
    assert _counts(a) == {S.BUILT: 2, S.FAILED: 2}  # A's own status is unchanged
    assert verbs.launch(_session(ex, fake, str(tmp_path / "B"))).records == []  # B is queued


def test_cancel_and_status_say_only_their_root(ex, fake, tmp_path) -> None:
    verbs.launch(_session(ex, fake))
    b = _session(ex, fake, str(tmp_path / "B"))
    verbs.launch(b)
    assert sorted(verbs.cancel(b)) == ["102", "103"]  # A's 100 and 101 are left alone
    assert _counts(_session(ex, fake)) == {S.QUEUED: 4}
    report = verbs.status(b)
    assert report.root == str(tmp_path / "B") and report.other_roots == [ex.artifact_path]
    views = verbs.history(b).jobs
    assert all(v.show_root for v in views)
    assert [v.root for v in views] == [ex.artifact_path] * 2 + [str(tmp_path / "B")] * 2


def test_a_record_without_root_is_read_from_its_spec_or_counted_everywhere(
        ex, fake, tmp_path) -> None:
    session = _session(ex, fake)
    verbs.launch(session)
    store = session.store
    rec = store.records("s")[0]
    store.update("s", rec.name, artifact_path=None)  # as an older version wrote it
    b = _session(ex, fake, str(tmp_path / "B"))
    assert _counts(b) == {S.NOT_STARTED: 4}  # the spec header still names root A
    os.unlink(os.path.join(rec.spec_dir, "job.json"))  # and its spec is gone too
    tracking._spec_root.cache_clear()
    report = verbs.status(b)
    assert report.stages[0].counts == {S.QUEUED: 2, S.NOT_STARTED: 2}  # unknown: held
    assert any("without their artifact root" in w for w in report.warnings)


# -- 2. history keeps what happened ------------------------------------------------------------
def test_a_failure_stays_in_history_after_a_rebuild(ex, fake) -> None:
    session = _session(ex, fake)
    verbs.launch(session)
    fake.fail("100", 0, error="exit 3")
    fake.finish("100", 1)
    fresh = verbs.launch(_session(ex, fake))  # records 100's ends before rebuilding
    assert [r.job_id for r in fresh.records] == ["102"]
    fake.finish("102")
    history = _history(session)
    assert history["100"] == ["failed [rebuilt by 102]", "built"]
    assert history["102"] == ["built"]
    assert _counts(session) == {S.BUILT: 2, S.QUEUED: 2}  # status: today's truth
    ended = _job(session, "100").ended
    assert ended["0"]["state"] == "failed" and ended["0"]["error"] == "exit 3"
    assert ended["0"]["raw"] == "FAILED" and ended["0"]["worker_state"] == "failed"
    assert "observed_at" in ended["0"] and "1" in ended and "0" not in _job(session,
                                                                           "101").ended


def test_a_cancelled_job_stays_cancelled(ex, fake) -> None:
    session = _session(ex, fake)
    verbs.launch(session)
    verbs.cancel(session)
    verbs.launch(session)
    fake.finish("102")
    fake.finish("103")
    assert _history(session)["100"] == ["cancelled [rebuilt by 102]"] * 2
    view = verbs.job_view(session, _job(session, "101"))
    assert [t.state for t in view.tasks] == [S.CANCELLED] * 2
    assert all(t.recorded and t.note == "rebuilt by 103" for t in view.tasks)


def test_an_end_is_recorded_once_and_never_rewritten(ex, fake) -> None:
    session = _session(ex, fake)
    verbs.launch(session)
    fake.time_out("100", 0)
    verbs.status(session)
    first = _job(session, "100").ended["0"]
    fake.end("100", 0, raw="CANCELLED by 0")  # a later, different answer changes nothing
    verbs.history(session)
    verbs.status(session)
    assert _job(session, "100").ended["0"] == first
    assert first["raw"] == "TIMEOUT" and first["label"] == "TIMEOUT"


def test_observations_take_one_store_write_per_command(ex, fake, monkeypatch) -> None:
    session = _session(ex, fake)
    verbs.launch(session)
    fake.fail("100")
    fake.time_out("101")
    writes: list[int] = []
    real = Store.update_many

    def counting(self, stage, changes):  # type: ignore[no-untyped-def]
        writes.append(len(changes))
        return real(self, stage, changes)

    monkeypatch.setattr(Store, "update_many", counting)
    verbs.history(session)
    assert writes == [2]  # both jobs, four tasks, one write
    verbs.history(session)
    verbs.status(session)
    assert writes == [2]  # nothing new: no write


def test_live_and_unanswered_tasks_are_not_recorded(ex, fake) -> None:
    session = _session(ex, fake)
    verbs.launch(session)
    fake.start("100", 0)
    fake.lose("100", 1)
    verbs.history(session)
    assert _job(session, "100").ended == {}
    fake.fail("101")
    fake.unreachable = True
    verbs.history(session)
    assert _job(session, "101").ended == {}


# -- 3. the scheduler's reason -----------------------------------------------------------------
def test_a_time_limit_shows_as_timeout_with_the_limit_and_the_hint(ex, fake) -> None:
    session = _session(ex, fake)
    verbs.launch(session)
    relpath = _job(session, "100").tasks[0][1]
    fake.time_out("100", 0)
    _interrupted(ex, relpath, "100_0")
    [problem] = verbs.status(session).stages[0].problems
    assert problem.label == "failed (TIMEOUT)"
    assert "time limit (time=1:00 requested)" in problem.detail
    assert "`time` requirement" in problem.detail and "launch --set time=0:02:00" in problem.detail
    assert "SIGTERM" not in problem.detail
    assert _history(session)["100"][0] == "failed (TIMEOUT)"
    entry = _job(session, "100").ended["0"]  # both accounts are kept
    assert entry["raw"] == "TIMEOUT" and entry["error"] == "interrupted by SIGTERM"


def test_a_later_jobs_worker_account_is_not_this_tasks(ex, fake) -> None:
    session = _session(ex, fake)
    verbs.launch(session)
    relpath = _job(session, "100").tasks[0][1]
    fake.lose("100", 0)
    write_json(paths.status_file(ex.artifact_path, relpath),
               {"state": "failed", "error": "exit 9", "job": "999_0"}, durable=False)
    [view] = [v for v in verbs.history(session).jobs if v.record.job_id == "100"]
    assert view.tasks[0].state is S.UNKNOWN and "exit 9" not in view.tasks[0].detail


@pytest.mark.parametrize("raw,reason,label,verdict,words", [
    ("OUT_OF_MEMORY", "", "OUT_OF_MEMORY", Verdict.FAILED, ["mem=2 requested", "--set mem=4"]),
    ("NODE_FAIL", "", "NODE_FAIL", Verdict.FAILED, ["node", "launch again"]),
    ("PREEMPTED", "", "PREEMPTED", Verdict.FAILED, ["preempted", "requeue"]),
    ("CANCELLED", "DependencyNeverSatisfied", "", Verdict.DEP_FAILED,
     ["dependency failed"]),
    ("TIMEOUT", "", "TIMEOUT", Verdict.FAILED, ["time=1:00 requested", "--set time=0:02:00"]),
])
def test_scheduler_words_are_explained(raw, reason, label, verdict, words) -> None:
    why = scheduler_reason(raw, reason, {"time": "1:00", "mem": 2})
    assert why is not None and (why.label, why.verdict) == (label, verdict)
    assert all(w in why.text for w in words), why.text
    assert scheduler_reason("FAILED", "", {}) is None
    assert scheduler_reason("COMPLETED", "", {}) is None


def test_who_cancelled_is_named(ex, fake) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    other = 0 if os.getuid() else 65534
    session = _session(ex, fake)
    verbs.launch(session)
    fake.end("100", 0, raw=f"CANCELLED by {os.getuid()}", state=JobState.CANCELLED)
    fake.end("100", 1, raw=f"CANCELLED by {other}", state=JobState.CANCELLED)
    fake.end("101", raw="CANCELLED", reason="DependencyNeverSatisfied",
             state=JobState.CANCELLED)
    labels = _history(session)
    assert labels["100"][0] == f"cancelled (by you, {me})"
    assert labels["100"][1].startswith("cancelled (by ")
    assert labels["100"][1] != labels["100"][0]
    assert labels["101"] == ["dep-failed", "dep-failed"]
    assert _counts(session) == {S.CANCELLED: 2, S.DEP_FAILED: 2}


# -- 4. launch --set ---------------------------------------------------------------------------
def test_set_values_are_json_or_strings_per_stage_or_everywhere() -> None:
    ov = parse_overrides(["time=2:00:00", "cpus=4", "requeue=true", "s:mem=64", "s:time=5"],
                         ["s", "t"])
    assert ov.for_stage("t") == {"time": "2:00:00", "cpus": 4, "requeue": True}
    assert ov.for_stage("s") == {"time": 5, "cpus": 4, "requeue": True, "mem": 64}
    assert not Overrides() and ov
    for bad, words in [("time", "KEY=VALUE"), ("x:time=1", "unknown stage 'x'"),
                       ("mem=[1]", "not list"), ("=3", "KEY=VALUE")]:
        with pytest.raises(PlanError, match=words):
            parse_overrides([bad], ["s"])


def test_set_changes_requirements_not_identity_and_is_recorded(ex, fake) -> None:
    session = _session(ex, fake)
    ids = sorted(a.artifact_id for a in ex.stages["s"])
    ov = parse_overrides(["time=0:05:00", "s:gpus=1"], ["s"])
    dry = verbs.drylaunch(session, overrides=ov)
    [group] = dry.plan.groups  # gpus=0 and gpus=1 became one group
    assert dict(group.resources.requirements)["time"] == "0:05:00"
    assert group.resources.time_s == 300 and group.resources.gpus == 1
    assert sorted(t.artifact_id for t in group.tasks) == ids
    assert dry.overrides == ov and fake.calls["launch"] == 0
    [rec] = verbs.launch(session, overrides=ov).records
    assert rec.requirements["time"] == "0:05:00" and rec.requirements["mem"] == 2
    assert rec.overrides == {"time": "0:05:00", "gpus": 1}
    assert rec.artifact_path == ex.artifact_path
    plain = verbs.drylaunch(_session(ex, fake, ex.artifact_path + "2"))
    assert {dict(g.resources.requirements)["time"] for g in plain.plan.groups} == {"1:00"}


def test_a_bad_override_names_the_stage_and_the_key(ex, fake) -> None:
    with pytest.raises(Exception, match="with --set time=abc.*'time'"):
        verbs.drylaunch(_session(ex, fake), overrides=parse_overrides(["time=abc"], ["s"]))


def test_sacct_names_who_cancelled_where_squeue_does_not() -> None:
    from experiments.backends.slurm.parse import merge
    from experiments.states import TaskStatus

    squeue = {"5_0": TaskStatus(JobState.CANCELLED, "CANCELLED", "None", "0:15"),
              "5_1": TaskStatus(JobState.RUNNING, "RUNNING", "None", "0:0")}
    sacct = {"5_0": TaskStatus(JobState.CANCELLED, "CANCELLED by 1001", "Dependency", "0:0"),
             "5_1": TaskStatus(JobState.CANCELLED, "CANCELLED by 0", "None", "0:0")}
    out = merge(squeue, sacct)
    assert out["5_0"] == TaskStatus(JobState.CANCELLED, "CANCELLED by 1001", "Dependency",
                                    "0:15")
    assert out["5_1"] == squeue["5_1"]  # squeue still says it runs: it does


# -- 5. roots, without a verb --------------------------------------------------------------------
def _rooted(job_id: str, root: str | None) -> JobRecord:
    return JobRecord(name=f"j{job_id}", backend="fake", stage="s", tier=0, tasks=[["a", "A/a"]],
                     job_id=job_id, artifact_path=root)


def test_roots_are_compared_normalised_and_unknown_ones_count_in_every_root() -> None:
    records = [_rooted("1", "/data/real/"), _rooted("2", "/scratch/smoke"), _rooted("3", None),
               _rooted("4", "/data/./real")]
    assert [r.job_id for r in tracking.of_root(records, "/data/real/")] == ["1", "3", "4"]
    assert [r.job_id for r in tracking.of_root(records, "/elsewhere")] == ["3"]
    assert tracking.roots(records) == ["/data/real", "/scratch/smoke", None]
    assert tracking.root_text(None).startswith("(unknown root")


def test_the_unknown_root_warning_names_five_jobs_and_counts_the_rest() -> None:
    assert tracking.unknown_root_warning([_rooted("1", "/r")]) == []
    [warning] = tracking.unknown_root_warning([_rooted(str(i), None) for i in range(8)])
    assert warning.startswith("job(s) 0, 1, 2, 3, 4 and 3 more were recorded without their "
                              "artifact root")
