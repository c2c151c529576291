"""What `launch` prints for a thousand arrays: the first jobs and a count, not every line."""

from __future__ import annotations

import pytest

from experiments.cli import launch_cmd as render
from experiments.plan import Group, Plan
from experiments.resources import common_resources
from experiments.tracking.store import JobRecord
from experiments.verbs import LaunchResult


def _result(n_jobs: int) -> LaunchResult:
    records = [JobRecord(name=f"j{i}", backend="slurm", stage="s", tier=0,
                         tasks=[["id", "R/x"]], job_id=str(1000 + i), state="submitted")
               for i in range(n_jobs)]
    group = Group("s", 0, common_resources({}, "test", ()), ())
    return LaunchResult(Plan(("s",), ((group,),)), records)


@pytest.mark.parametrize("n_jobs, lines", [(3, 3), (20, 20), (1000, 10)])
def test_launch_lists_at_most_twenty_jobs(n_jobs: int, lines: int,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    render.launched(_result(n_jobs))
    out = capsys.readouterr().out
    assert out.count("\njob 1") + out.startswith("job 1") == lines
    assert (f"… and {n_jobs - 10} more job(s)" in out) == (n_jobs > 20)
