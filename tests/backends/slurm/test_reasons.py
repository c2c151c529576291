"""reasons.py on the pending reasons the policed test cluster really printed (data/).

``policed_squeue_pending.txt`` is ``squeue -h -t PD -O JobArrayID:|,UserName:|,State:|,
Partition:|,TimeLimit:|,tres-per-job:|,NumCPUs:|,Reason:|`` captured with one job per policy
pending (tests/policed/ produces the same reasons live).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from experiments.backends.slurm.limits import parse_partitions, parse_qos, parse_time_s
from experiments.backends.slurm.reasons import (
    REASONS,
    Explanation,
    JobRequest,
    Outlook,
    explain,
    lookup,
    split_reason,
    summarize,
)

DATA = Path(__file__).parent / "data"
PARTS = parse_partitions((DATA / "policed_scontrol_show_partition.txt").read_text())
QOS = parse_qos((DATA / "policed_sacctmgr_show_qos.txt").read_text())


@dataclasses.dataclass(frozen=True)
class Row:
    job_id: str
    reason: str
    job: JobRequest


def captured_rows() -> list[Row]:
    rows = []
    for line in (DATA / "policed_squeue_pending.txt").read_text().splitlines():
        job_id, _user, state, partition, limit, tres, cpus, reason, _ = line.split("|")
        assert state == "PENDING"
        gpus = re.search(r"gpu(?::\w+)?:(\d+)$", tres)
        rows.append(Row(job_id, reason, JobRequest(partition, parse_time_s(limit), int(cpus),
                                                   int(gpus.group(1)) if gpus else 0)))
    return rows


def explained(row: Row) -> Explanation:
    return explain(row.reason, row.job, partition=PARTS[row.job.partition], qos=QOS["normal"])


# What each captured job's reason must come to (job ids of the capture).
EXPECTED = {
    "13": ("PartitionTimeLimit", Outlook.NEVER,
           "the short partition allows 01:00:00, the artifact asks 02:00:00; lower `time`"),
    "15": ("PartitionTimeLimit", Outlook.NEVER,
           "the gpu partition allows 12:00:00, the artifact asks 24:00:00; lower `time`"),
    "19": ("PartitionConfig", Outlook.NEVER,
           "the gpu partition allows 16 CPUs per node, the artifact asks 20; lower `cpus`"),
    "16": ("QOSGrpGRES", Outlook.NEVER, "QOS normal allows 4 GPUs, the artifact asks 5; "
           "lower `gpus`"),
    "14": ("ReqNodeNotAvail, Reserved for maintenance", Outlook.CLEARS,
           "a maintenance reservation starts before the job would end; lower `time` so it "
           "ends before the window, or wait until the maintenance is over"),
    "24": ("JobHeldUser", Outlook.NEVER, "release it: scontrol release <job id>"),
    "18": ("QOSMaxJobsPerUserLimit", Outlook.CLEARS, "it starts when other jobs of yours finish"),
    "20_[20-21]": ("QOSMaxJobsPerUserLimit", Outlook.CLEARS,
                   "it starts when other jobs of yours finish"),
    "21": ("BeginTime", Outlook.CLEARS, ""),
    "47": ("Dependency", Outlook.CLEARS, ""),
}


def test_every_captured_reason_is_explained() -> None:
    rows = captured_rows()
    assert {r.job_id for r in rows} == set(EXPECTED)
    for row in rows:
        e = explained(row)
        label, outlook, hint = EXPECTED[row.job_id]
        assert (e.label, e.outlook, e.hint) == (label, outlook, hint), row
        assert e.meaning and e.outlook is not Outlook.UNKNOWN


def test_the_issue_line() -> None:
    e = explain("PartitionTimeLimit", JobRequest("gpu", 24 * 3600), partition=PARTS["gpu"])
    assert summarize([e] * 12) == [
        "12 queued: PartitionTimeLimit — the gpu partition allows 12:00:00, the artifact asks "
        "24:00:00; lower `time` (never clears on its own)"]


def test_summarize_groups_and_puts_what_never_clears_first() -> None:
    by_id = {r.job_id: explained(r) for r in captured_rows()}
    tasks = [by_id["21"]] * 5 + [by_id["13"]] * 2 + [by_id["15"]] * 3 + [by_id["18"]] * 7
    lines = summarize(tasks)
    assert [ln.split(" — ")[0] for ln in lines] == [
        "3 queued: PartitionTimeLimit", "2 queued: PartitionTimeLimit",
        "7 queued: QOSMaxJobsPerUserLimit", "5 queued: BeginTime"]
    assert lines[-1] == ("5 queued: BeginTime — waiting for its start time (also after being "
                         "requeued, e.g. preempted)")
    assert summarize([]) == [] and summarize([by_id["21"]], state="held")[0].startswith("1 held:")


def test_gres_limits_depend_on_what_the_job_asks() -> None:
    normal = QOS["normal"]
    assert explain("QOSGrpGRES", JobRequest(gpus=1), qos=normal).outlook is Outlook.CLEARS
    assert explain("QOSGrpGRES", JobRequest(gpus=5), qos=normal).outlook is Outlook.NEVER
    assert explain("QOSGrpGRES").outlook is Outlook.CLEARS  # no context: it may clear
    per_user = dataclasses.replace(normal, max_tres_per_user={"gres/gpu": 2})
    e = explain("QOSMaxGRESPerUser", JobRequest(gpus=3), qos=per_user)
    assert e.outlook is Outlook.NEVER and "allows 2 GPUs, the artifact asks 3" in e.hint
    assert explain("QOSMaxGRESPerUser", JobRequest(gpus=2), qos=per_user).outlook is Outlook.CLEARS


@pytest.mark.parametrize("code, outlook", [
    ("Priority", Outlook.CLEARS), ("Resources", Outlook.CLEARS), ("Dependency", Outlook.CLEARS),
    ("BeginTime", Outlook.CLEARS), ("QOSMaxJobsPerUserLimit", Outlook.CLEARS),
    ("AssocMaxJobsLimit", Outlook.CLEARS), ("QOSGrpCpuLimit", Outlook.CLEARS),
    ("AssocGrpGRES", Outlook.CLEARS), ("JobArrayTaskLimit", Outlook.CLEARS),
    ("PartitionTimeLimit", Outlook.NEVER), ("DependencyNeverSatisfied", Outlook.NEVER),
    ("InvalidAccount", Outlook.NEVER), ("InvalidQOS", Outlook.NEVER),
    ("QOSMaxWallDurationPerJobLimit", Outlook.NEVER), ("QOSMaxGRESPerJob", Outlook.NEVER),
    ("AssocMaxCpuPerJobLimit", Outlook.NEVER), ("PartitionNodeLimit", Outlook.NEVER),
    ("JobHeldAdmin", Outlook.NEVER), ("launch failed requeued held", Outlook.NEVER),
    ("PartitionDown", Outlook.UNKNOWN), ("SomethingNew", Outlook.UNKNOWN),
])
def test_outlook_without_context(code: str, outlook: Outlook) -> None:
    assert lookup(code).outlook is outlook
    assert explain(code).outlook is outlook


def test_reservation_that_never_ends() -> None:
    e = explain("ReqNodeNotAvail, Reserved for maintenance", reservation_ends=False)
    assert e.outlook is Outlook.NEVER and "never ends" in e.hint
    other = explain("ReqNodeNotAvail, UnavailableNodes:vm")
    assert (other.code, other.detail, other.outlook) == (
        "ReqNodeNotAvail", "UnavailableNodes:vm", Outlook.CLEARS)


def test_split_reason_and_unknown_codes() -> None:
    assert split_reason("(ReqNodeNotAvail, Reserved for maintenance)") == (
        "ReqNodeNotAvail", "Reserved for maintenance")
    assert split_reason("launch failed requeued held") == ("launch failed requeued held", "")
    assert split_reason(" Priority ") == ("Priority", "")
    e = explain("SomethingNew")
    assert "SomethingNew" in e.meaning and e.line(2).endswith("(may not clear on its own)")


def test_every_table_entry_is_complete() -> None:
    for code, reason in REASONS.items():
        assert reason.code == code and reason.meaning and isinstance(reason.outlook, Outlook)
        if reason.outlook is Outlook.NEVER:
            assert reason.hint, f"{code} never clears: it must say what to do"
