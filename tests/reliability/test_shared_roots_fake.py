"""Two experiment files using one project name, on FakeBackend through the real CLI (in this
process): each job records the file that launched it, the second file is warned that the name
is shared, and ``cancel`` from one file leaves the other file's jobs alone and says so.

Which file owns a job is our record (verbs/cancel.py); test_shared_roots.py keeps the checks
that need real accounts and a real worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments import ArtifactSet, Executor
from experiments.backends.fake import FakeBackend
from experiments.session import Session
from tests.support.experiments import Down, FakeExecutor, Up


def _file(tmp_path: Path, path: str, n: int) -> FakeExecutor:
    """The experiment as the file ``path`` defines it: Up(i) for i < n, then Down over each."""
    ex = FakeExecutor(project="shared", artifact_path=str(tmp_path / "out"),
                      code_path=str(tmp_path))
    ex.source_file = str(tmp_path / path)  # as if ``path`` had made it
    a = ArtifactSet.from_product(cls=Up, params={"i": list(range(n))})
    ex.stage("a", a)
    ex.stage("b", a.map(lambda x: Down(up=x)))
    return ex


def _cli(ex: Executor, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the experiment's command line here; (exit code, stderr joined into one line)."""
    with pytest.raises(SystemExit) as ended:
        ex.auto_cli(list(argv))
    return int(ended.value.code or 0), " ".join(capsys.readouterr().err.split())


def _live(fake: FakeBackend) -> set[str]:
    return {job_id for job_id, job in fake.jobs.items() if any(t.state.live for t in job.tasks)}


def test_cancel_from_one_file_leaves_the_other_files_jobs(
        tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    mine_ex, other_ex = _file(tmp_path, "exp.py", 2), _file(tmp_path, "other/exp.py", 3)
    assert _cli(mine_ex, capsys, "launch")[0] == 0
    mine = _live(fake)
    code, said = _cli(other_ex, capsys, "launch")  # adds the artifacts of i=2
    assert code == 0, said
    assert f"is also used by {mine_ex.source_file}" in said
    theirs = _live(fake) - mine
    assert len(mine) == 2 and len(theirs) == 2
    records = Session.open(mine_ex, backend="fake", instances={"fake": fake}).records()
    by_file = {str(r.job_id): r.experiment_file for r in records}
    assert {by_file[j] for j in mine} == {mine_ex.source_file}
    assert {by_file[j] for j in theirs} == {other_ex.source_file}
    code, said = _cli(mine_ex, capsys, "cancel", "--yes")
    assert code == 0, said
    assert "another experiment file" in said and other_ex.source_file in said.replace(" ", "")
    assert _live(fake) == theirs  # only this file's jobs were cancelled
