"""pending.py and site.py: each queued task explained in its context, limits read only when
needed and once.

The commands' answers are the policed cluster's own output (data/); the client's ``_run`` is
served from them so that the calls can be counted. tests/policed/test_pending_reasons.py runs
the same path against the live cluster as an unprivileged user.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from experiments import _proc
from experiments.backends.slurm.client import SlurmClient
from experiments.backends.slurm.pending import explain_pending, has_reason, job_request
from experiments.backends.slurm.site_limits import SiteLimits
from experiments.states import JobState, Outlook, TaskKey, TaskStatus
from experiments.tracking.store import JobRecord, RecordState

DATA = Path(__file__).parent / "data"
ANSWERS = {
    ("scontrol", "show", "partition"): (DATA / "policed_scontrol_show_partition.txt").read_text(),
    ("sacctmgr", "-n", "-P"): (DATA / "policed_sacctmgr_show_qos.txt").read_text(),
    ("squeue", "--me", "-h"): "16|normal\n",
    ("scontrol", "show", "reservation"): (
        DATA / "policed_scontrol_show_reservation_unlimited.txt").read_text(),
}


class CapturedClient(SlurmClient):
    """Answers the limit queries with captured output and counts them."""

    def __init__(self, answers: dict[tuple[str, ...], str] | None = None) -> None:
        super().__init__()
        self.answers = ANSWERS if answers is None else answers
        self.calls: list[str] = []

    def _run(self, argv: Sequence[str]) -> _proc.ProcResult:
        self.calls.append(argv[0])
        for prefix, text in self.answers.items():
            if tuple(argv[:len(prefix)]) == prefix:
                return _proc.ProcResult(tuple(argv), 0, text, "")
        return _proc.ProcResult(tuple(argv), 1, "", f"{argv[0]}: error: nothing captured")


def _record(job_id: str, **requirements: object) -> JobRecord:
    return JobRecord("n", "slurm", "train", 0, [["a", "A/i=0"], ["b", "A/i=1"]],
                     requirements=dict(requirements), job_id=job_id, state=RecordState.SUBMITTED)


def _pending(reason: str) -> TaskStatus:
    return TaskStatus(JobState.PENDING, "PENDING", reason)


def test_an_ordinary_wait_costs_no_extra_call() -> None:
    client = CapturedClient()
    site = SiteLimits(client)
    statuses = {TaskKey("15", 0): _pending("Priority"), TaskKey("15", 1): _pending("None"),
                TaskKey("16", 0): TaskStatus(JobState.RUNNING, "RUNNING", "None")}
    out = explain_pending(site, [_record("15")], statuses)
    assert client.calls == []
    assert out[TaskKey("15", 0)] == TaskStatus(
        JobState.PENDING, "PENDING", "Priority", hint="other jobs are ahead of it in the queue",
        outlook=Outlook.CLEARS)
    assert out[TaskKey("15", 1)] == statuses[TaskKey("15", 1)]  # "None": no reason yet
    assert out[TaskKey("16", 0)] == statuses[TaskKey("16", 0)]
    assert not has_reason(statuses[TaskKey("15", 1)])


def test_partition_time_limit_names_the_partition_and_what_the_job_asks() -> None:
    client = CapturedClient()
    site = SiteLimits(client)
    records = [_record("15", partition="gpu", gpus=1, time="24:00:00"), _record("17")]
    statuses = {TaskKey("15", i): _pending("PartitionTimeLimit") for i in range(2)}
    statuses[TaskKey("17", 0)] = _pending("PartitionTimeLimit")  # no partition: the default
    out = explain_pending(site, records, statuses)
    assert client.calls == ["scontrol"]  # once for all tasks
    said = out[TaskKey("15", 1)]
    assert (said.reason, said.outlook) == ("PartitionTimeLimit", Outlook.NEVER)
    assert said.hint == ("the gpu partition allows 12:00:00, the artifact asks 24:00:00; "
                         "lower `time`")
    assert out[TaskKey("17", 0)].hint.startswith("the short partition allows 01:00:00;")


def test_qos_gres_reads_the_jobs_qos_and_its_limit() -> None:
    client = CapturedClient()
    site = SiteLimits(client)
    out = explain_pending(site, [_record("16", partition="gpu", gpus="A100:5", time="10")],
                          {TaskKey("16", 0): _pending("QOSGrpGRES")})
    assert client.calls == ["squeue", "sacctmgr"]
    said = out[TaskKey("16", 0)]
    assert said.outlook is Outlook.NEVER
    assert said.hint == "QOS normal allows 4 GPUs, the artifact asks 5; lower `gpus`"


def test_an_endless_maintenance_reservation_never_clears() -> None:
    client = CapturedClient()
    site = SiteLimits(client)
    out = explain_pending(site, [_record("14")],
                          {TaskKey("14", 0): _pending("ReqNodeNotAvail, Reserved for maintenance")})
    said = out[TaskKey("14", 0)]
    assert client.calls == ["scontrol"]
    assert (said.reason, said.outlook) == ("ReqNodeNotAvail, Reserved for maintenance",
                                           Outlook.NEVER)


def test_limits_that_cannot_be_read_leave_a_plainer_hint() -> None:
    client = CapturedClient(answers={})
    site = SiteLimits(client)
    out = explain_pending(site, [_record("15", partition="gpu", time="24:00:00")],
                          {TaskKey("15", 0): _pending("PartitionTimeLimit")})
    said = out[TaskKey("15", 0)]
    assert said.outlook is Outlook.NEVER
    assert said.hint == "lower `time` to the partition's MaxTime or choose another `partition`"


def test_held_tasks_keep_their_release_hint() -> None:
    held = TaskStatus(JobState.PENDING, "PENDING", "JobHeldUser", held=True, hint="release it")
    out = explain_pending(SiteLimits(CapturedClient()), [_record("24")], {TaskKey("24", 0): held})
    assert out[TaskKey("24", 0)].hint == "release it"
    assert out[TaskKey("24", 0)].outlook is Outlook.NEVER


def test_job_request_reads_the_records_requirements() -> None:
    got = job_request({"partition": "gpu", "time": "1-00:00:00", "cpus": 8, "gpus": "A100:2"},
                      None)
    assert (got.partition, got.time_s, got.cpus, got.gpus) == ("gpu", 86400, 8, 2)
    assert job_request({"time": "soon"}, "short").partition == "short"  # unreadable: partition


def test_a_wait_asks_each_jobs_qos_once() -> None:
    client = CapturedClient()
    site = SiteLimits(client)
    records = [_record("16", partition="gpu", gpus="A100:5", time="10")]
    for _ in range(3):  # three polls of the same client
        explain_pending(site, records, {TaskKey("16", 0): _pending("QOSGrpGRES")})
    assert client.calls == ["squeue", "sacctmgr"]
