"""A launch refused part-way (experiments.verbs.launch_incomplete): the message says what was
queued, what was not, which job may exist all the same, and that the same command goes on."""

from __future__ import annotations

from types import SimpleNamespace

from experiments.errors import LaunchIncomplete, SubmissionError
from experiments.tracking.store import JobRecord
from experiments.verbs.launch_incomplete import incomplete


def _task(artifact_id: str) -> SimpleNamespace:
    return SimpleNamespace(artifact_id=artifact_id)


def _record(job_id: str | None, stage: str, tier: int, ids: list[str]) -> JobRecord:
    return JobRecord(name=f"p.{stage}.{job_id}", backend="slurm", stage=stage, tier=tier,
                     tasks=[[i, f"M/{i}"] for i in ids], job_id=job_id)


def test_the_message_accounts_for_every_artifact_of_the_plan() -> None:
    plan = SimpleNamespace(groups=[
        SimpleNamespace(stage="pre", tier=0, tasks=[_task("a"), _task("b")]),
        SimpleNamespace(stage="pre", tier=0, tasks=[_task("c")]),
        SimpleNamespace(stage="fine", tier=1, tasks=[_task("d"), _task("e")]),
        SimpleNamespace(stage="fine", tier=2, tasks=[_task("f")])])
    queued = [_record("11", "pre", 0, ["a", "b"])]
    maybe = [_record(None, "pre", 0, ["c"])]
    exc = incomplete(plan, queued, SubmissionError("QOSMaxSubmitJobPerUserLimit"),
                     unconfirmed=maybe)
    assert isinstance(exc, LaunchIncomplete)
    assert exc.queued == (("11", "pre", 0, 2),)
    assert exc.missing == {"pre": 1, "fine": 3} and exc.cause == "QOSMaxSubmitJobPerUserLimit"
    lines = str(exc).splitlines()
    assert lines[0] == "launch stopped part-way: QOSMaxSubmitJobPerUserLimit"
    assert "  job 11 [stage pre, tier 0]: 2 artifact(s)" in lines
    assert ("Not submitted: 1 artifact(s) of stage pre (tier 0); 3 artifact(s) of stage fine "
            "(tier 1, 2).") in lines
    assert any(line.startswith("Job p.pre.None (1 artifact(s) of stage pre) may exist")
               for line in lines)
    assert lines[-1].endswith("submits only the 4 missing artifact(s).")
