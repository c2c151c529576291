"""Which cluster a record is on and whether a job id still names our job
(experiments/backends/slurm/clusters.py): the pure parts, without a scheduler."""

from __future__ import annotations

from pathlib import Path

from experiments.backends.slurm import clusters
from experiments.backends.slurm.parse import parse_job_id, parse_submitted_cluster
from experiments.states import NOT_OURS, JobState, TaskKey
from experiments.tracking.store import JobRecord


def _record(job_id: str, cluster: str | None, name: str = "p.s.1") -> JobRecord:
    return JobRecord(name=name, backend="slurm", stage="s", tier=0,
                     tasks=[["a", "M/a"], ["b", "M/b"]], job_id=job_id, cluster=cluster)


def test_cluster_names_come_from_slurm_conf_lower_cased(tmp_path: Path) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text("# ClusterName=commented\nClusterName=Alpha # the lab's\nMinJobAge=300\n")
    assert clusters.conf_file_name({"SLURM_CONF": str(conf)}) == "alpha"
    assert clusters.conf_file_name({"SLURM_CONF": str(tmp_path / "none")}) is None
    assert clusters.config_name("ClusterName             = exptest\n") == "exptest"


def test_sbatch_names_the_cluster_it_sent_a_job_to() -> None:
    assert (parse_job_id("123;Beta\n"), parse_submitted_cluster("123;Beta\n")) == ("123", "beta")
    assert parse_submitted_cluster("123\n") is None


def test_records_of_another_cluster_are_not_asked_and_may_be_live() -> None:
    here, there, old = _record("1", "a"), _record("2", "b"), _record("3", None)
    asked, others = clusters.split([here, there, old], "a")
    assert (asked, others) == ([here, old], [there])
    assert clusters.split([there], None) == ([there], [])  # nothing names this cluster
    st = clusters.elsewhere(others)[TaskKey("2", 1)]
    assert st.state is JobState.ELSEWHERE and st.state.live
    assert "on another cluster (b): not asked" in st.hint


def test_rows_of_a_job_id_that_names_another_job_are_dropped_and_reported() -> None:
    squeue = "7_[0-1]|PENDING|0|Priority|p.s.1|\n9|PENDING|0|JobHeldUser|unrelated|\n"
    rows, foreign = clusters.named_rows(squeue, {"7": "p.s.1", "9": "p.s.2"})
    assert rows == "7_[0-1]|PENDING|0|Priority" and foreign == {"9": "unrelated"}
    sacct = "9|COMPLETED|0:0|None|unrelated"
    assert clusters.named_rows(sacct, {"9": "unrelated"}) == (
        "9|COMPLETED|0:0|None", {})
    st = clusters.not_ours({"9": _record("9", None, "p.s.2")}, foreign)[TaskKey("9", 0)]
    assert (st.state, st.raw) == (JobState.UNKNOWN, NOT_OURS) and not st.state.live
    assert "job id 9 now belongs to another job ('unrelated'" in st.hint


def test_accounting_holding_an_older_job_of_the_same_id_leaves_ours_ours() -> None:
    sacct = "368_0|FAILED|3:0|None|allocation\n368_0|COMPLETED|0:0|None|p.s.1"
    assert clusters.named_rows(sacct, {"368": "p.s.1"}) == ("368_0|COMPLETED|0:0|None", {})
