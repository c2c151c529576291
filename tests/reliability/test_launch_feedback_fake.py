"""A launch refused part-way, on FakeBackend through the real CLI (in this process): the second
stage's job is refused after the first stage's was queued. The launch says what is queued and
what is not, exits 4 (``--json``: the same as a document), and the same launch run again once
fixed submits only what was missing, waiting for the job already queued.

The message is ours (verbs/launch_incomplete.py); tests/reliability/test_launch_feedback.py
proves on the real clusters that Slurm's own refusals (the submit limit) take this path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments import ArtifactSet, Executor, backends
from experiments.backends.fake import FakeBackend
from experiments.session import Session
from experiments.tracking.store import JobRecord
from tests.support.experiments import Down, FakeExecutor, Up

REFUSAL = "sbatch: error: invalid partition specified: nosuch"


class RefusingStage(FakeBackend):
    """Refuses every job of stage ``refused`` for sure, as Slurm refuses a partition it does
    not have (the job name is ``<project>.<stage>.<launch>.<tier/group/chunk>``)."""

    refused = ""

    def _submit(self, name: str, relpaths: list[str], root: str) -> str | None:
        if self.refused and name.split(".")[1] == self.refused:
            self.refuse_next(REFUSAL)
        return super()._submit(name, relpaths, root)




@pytest.fixture
def fake() -> Iterator[RefusingStage]:
    """A RefusingStage registered as the "fake" backend for this test, then put back."""
    backend = RefusingStage()
    previous = backends.register("fake", lambda options: backend)
    yield backend
    assert previous is not None
    backends.register("fake", previous)


@pytest.fixture
def ex(tmp_path: Path) -> FakeExecutor:
    executor = FakeExecutor(project="feedback", artifact_path=str(tmp_path / "out"),
                            code_path=str(tmp_path))
    a = ArtifactSet.from_product(cls=Up, params={"i": [0, 1, 2]})
    executor.stage("a", a)
    executor.stage("b", a.map(lambda x: Down(up=x)))
    return executor


def _cli(ex: Executor, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the experiment's command line here; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as ended:
        ex.auto_cli(list(argv))
    out = capsys.readouterr()
    return int(ended.value.code or 0), out.out, out.err


def _records(ex: Executor, fake: FakeBackend) -> list[JobRecord]:
    return Session.open(ex, backend="fake", instances={"fake": fake}).records()


@pytest.mark.parametrize("as_json", [False, True])
def test_a_launch_refused_part_way_says_what_is_queued_and_what_to_run(
        ex: FakeExecutor, fake: RefusingStage, capsys: pytest.CaptureFixture[str],
        as_json: bool) -> None:
    fake.refused = "b"
    code, out, err = _cli(ex, capsys, "launch", *(["--json"] if as_json else []))
    assert code == 4, out + err
    [a_job] = _records(ex, fake)  # the refused job's intent is not kept
    assert (a_job.stage, a_job.state.value) == ("a", "submitted")
    a_id = str(a_job.job_id)
    if as_json:
        report = json.loads(out)
        assert report["queued"] == [{"job_id": a_id, "stage": "a", "tier": 0, "artifacts": 3}]
        assert report["missing"] == {"b": 3} and report["incomplete"] is True
        assert REFUSAL in report["error"]
    else:
        text = " ".join(err.split())  # rich may wrap on a narrow terminal
        assert "launch stopped part-way: the fake scheduler refused job" in text
        assert REFUSAL in text
        assert f"job {a_id} [stage a, tier 0]: 3 artifact(s)" in text
        assert "Not submitted: 3 artifact(s) of stage b (tier 1)." in text
        assert "run the same launch command again" in text
        assert "submits only the 3 missing artifact(s)" in text

    fake.refused = ""  # fixed: the same launch again
    code, out, err = _cli(ex, capsys, "launch")
    assert code == 0, out + err
    records = {r.stage: r for r in _records(ex, fake)}
    assert len(records) == 2 and str(records["a"].job_id) == a_id
    assert records["b"].depends_on == [a_id] and len(records["b"].tasks) == 3
    assert "Submitted 1 job(s) for 3 artifact(s)" in out
    assert fake.calls["launch"] == 2 and len(fake.jobs) == 2  # only stage b was submitted
