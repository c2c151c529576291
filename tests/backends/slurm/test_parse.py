"""Which jobs sacct is asked about, and how rows become task states (pure; the same on the real
cluster, counted through wrappers: tests/reliability/test_polling_slurm.py)."""

from __future__ import annotations

from experiments.backends.slurm.parse import keyed, merge, parse_rows, parse_usage, to_account
from experiments.states import JobState, TaskKey
from experiments.tracking.store import JobRecord


def _record(job_id: str, n: int, ended: int = 0, array_indices: list[int] | None = None
            ) -> JobRecord:
    return JobRecord(name=f"p.s.{job_id}", backend="slurm", stage="s", tier=0,
                     tasks=[[f"a{i}", f"A/i={i}"] for i in range(n)], job_id=job_id,
                     state="submitted", array_indices=array_indices or [],
                     ended={str(i): {"state": "built"} for i in range(ended)})


def test_sacct_only_for_jobs_with_an_unrecorded_task_squeue_does_not_show_live() -> None:
    queued = parse_rows("7_[0-2]|PENDING|0|PartitionDown|\n"        # all live
                        "8_0|COMPLETED|0|None|\n8_[1-2]|PENDING|0|Priority|\n"  # 8_0 ended
                        "9_[1-2]|PENDING|0|Priority|\n")             # 9_0 gone from squeue
    records = {r.job_id or "": r for r in (_record("7", 3), _record("8", 3), _record("9", 3),
                                           _record("10", 2, ended=2), _record("11", 3, ended=1))}
    # 10: every end recorded; 11: 11_0 recorded, 11_1 and 11_2 unknown to squeue
    assert to_account(records, queued) == ["8", "9", "11"]
    records["8"] = _record("8", 3, ended=1)  # 8_0's end is recorded now
    records["9"] = _record("9", 3, ended=1)
    assert to_account(records, queued) == ["11"]


def test_an_array_accounting_knows_only_by_its_plain_id_ends_every_task() -> None:
    # seen on the test cluster: arrays cancelled while wholly pending, then forgotten by the
    # controller, stay in sacct as one plain row for good
    states = merge({}, parse_rows("48|CANCELLED by 0|0:0|PartitionDown\n"
                                  "47_[0-2]|CANCELLED by 0|0:0|PartitionDown\n"))
    records = {"48": _record("48", 3), "47": _record("47", 3)}
    out = keyed(states, records)
    assert sorted(out) == [TaskKey(j, i) for j in ("47", "48") for i in range(3)]
    assert {st.state for st in out.values()} == {JobState.CANCELLED}
    assert out[TaskKey("48", 2)].raw == "CANCELLED by 0"


def test_rows_are_keyed_by_position_and_held_tasks_marked_each() -> None:
    states = parse_rows("5_[10-11]|PENDING|0|JobHeldUser|\n5_12|RUNNING|0|None|\n")
    out = keyed(states, {"5": _record("5", 3, array_indices=[10, 11, 12])})
    assert [out[TaskKey("5", i)].state for i in range(3)] == [
        JobState.PENDING, JobState.PENDING, JobState.RUNNING]
    # the hint names the task as Slurm does (its array index), not its position
    assert out[TaskKey("5", 0)].held and "scontrol release 5_10`" in out[TaskKey("5", 0)].hint
    assert "scontrol release 5_11`" in out[TaskKey("5", 1)].hint
    assert not out[TaskKey("5", 2)].held


def test_sacct_usage_rows_are_parsed_per_task() -> None:
    rows = ["12_0|COMPLETED|00:10:00|00:35:00|", "12_0.batch|COMPLETED|00:10:00|00:35:00|2048K",
            "12_0.extern|COMPLETED|00:10:00|00:00:00|1G", "12_1|TIMEOUT|1-00:00:01|10:00.500|",
            "12_2|CANCELLED by 0|00:00:00|00:00:00|"]
    used = parse_usage(rows)
    assert used["12_0"].elapsed_s == 600 and used["12_0"].cpu_s == 2100
    assert used["12_0"].max_rss_mb == 1024  # the largest step
    assert used["12_1"].elapsed_s == 86401 and used["12_1"].cpu_s == 600.5
    assert used["12_1"].max_rss_mb is None and used["12_2"].state == "CANCELLED"
