"""limits.py against text captured from the policed and the default test cluster (data/)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from experiments.backends.slurm.limits import (
    ASSOC_FORMAT,
    AssocLimits,
    check_job,
    format_time,
    gpu_count,
    parse_assocs,
    parse_partitions,
    parse_qos,
    parse_reservations,
    parse_time_s,
    parse_tres,
    remaining_submit_allowance,
)
from experiments.errors import SchedulerQueryError

DATA = Path(__file__).parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_text()


@pytest.fixture(scope="module")
def parts():
    return parse_partitions(read("policed_scontrol_show_partition.txt"))


@pytest.fixture(scope="module")
def qos():
    return parse_qos(read("policed_sacctmgr_show_qos.txt"))


@pytest.fixture(scope="module")
def assocs():
    return parse_assocs(read("policed_sacctmgr_show_assoc.txt"))


@pytest.mark.parametrize("text, seconds", [
    ("UNLIMITED", None), ("INFINITE", None), ("1-00:00:00", 86400), ("12:00:00", 43200),
    ("30", 1800), ("4:00", 240), ("0:30", 30), ("2-12", 216000), ("1-2:30", 95400),
    ("00:30:00", 1800), ("36:00:00", 129600),
])
def test_parse_time_s(text: str, seconds: int | None) -> None:
    assert parse_time_s(text) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "1:2:3:4", "1-", "-1", "12h", "1.5"])
def test_parse_time_s_rejects_what_slurm_would(bad: str) -> None:
    if bad == "":
        assert parse_time_s(bad) is None  # an empty column means "no limit" in sacctmgr
        return
    with pytest.raises(ValueError, match="not a Slurm time"):
        parse_time_s(bad)


def test_format_time_spells_hours_as_users_do() -> None:
    assert [format_time(s) for s in (None, 1800, 43200, 86400, 95400)] == [
        "UNLIMITED", "00:30:00", "12:00:00", "24:00:00", "26:30:00"]


def test_parse_tres() -> None:
    assert parse_tres("cpu=32,mem=200000M,node=1,billing=32,gres/gpu=8") == {
        "cpu": 32, "mem": 200000, "node": 1, "billing": 32, "gres/gpu": 8}
    assert parse_tres("mem=2G") == {"mem": 2048} and parse_tres("") == {}
    assert gpu_count({"gres/gpu:a100": 2, "gres/gpu:v100": 1}) == 3
    assert gpu_count({"gres/gpu": 4, "gres/gpu:a100": 4}) == 4 and gpu_count({"cpu": 1}) is None
    with pytest.raises(ValueError):
        parse_tres("cpu")


def test_policed_partitions(parts) -> None:
    assert list(parts) == ["short", "medium", "gpu"]
    assert [(p.max_time_s, p.default_time_s) for p in parts.values()] == [
        (3600, 1800), (4 * 3600, 3600), (12 * 3600, 3600)]
    gpu = parts["gpu"]
    assert (gpu.max_cpus_per_node, gpu.max_nodes, gpu.total_cpus, gpu.gpus) == (16, 1, 32, 8)
    assert parts["short"].default and not gpu.default and parts["short"].max_cpus_per_node is None
    assert gpu.tres["mem"] == 200000 and gpu.state == "UP"


def test_default_cluster_partitions_are_unlimited() -> None:
    parts = parse_partitions(read("default_scontrol_show_partition.txt"))
    assert set(parts) == {"cpu", "gpu"}
    for p in parts.values():
        assert p.max_time_s is None and p.default_time_s is None and p.max_nodes is None
        assert check_job(p, 10 * 86400, 32, 0) == []


def test_assocs(assocs) -> None:
    by_key = {(a.account, a.user): a for a in assocs}
    chem = by_key["chemistry", "expuser1"]
    assert (chem.max_submit_jobs, chem.max_jobs, gpu_count(chem.grp_tres)) == (50, 10, 2)
    assert chem.qos == ("high", "normal") and chem.default_qos == "normal"
    assert chem.cluster == "exptestpoliced" and chem.partition == ""
    phys = by_key["physics", "expuser2"]
    assert phys.max_submit_jobs is None and phys.grp_tres == {} and phys.max_wall_s is None
    assert ("physics", "") in by_key  # the account's own row


def test_qos(qos) -> None:
    normal, high = qos["normal"], qos["high"]
    assert (normal.max_submit_jobs_per_user, normal.max_jobs_per_user) == (100, 20)
    assert normal.grp_tres == {"gres/gpu": 4} and normal.max_wall_s is None
    assert high.preempt == ("normal",) and high.priority == 100
    assert (high.max_submit_jobs_per_user, high.max_jobs_per_user) == (20, 4)


def test_damaged_output_is_a_query_error() -> None:
    with pytest.raises(SchedulerQueryError, match="has 2 fields, expected 13"):
        parse_assocs("a|b\n")
    with pytest.raises(SchedulerQueryError, match="cannot read sacctmgr show qos line"):
        parse_qos("normal|x|||||||20|100|gres/gpu=4||\n")
    with pytest.raises(SchedulerQueryError, match="MaxTime"):
        parse_partitions("PartitionName=p MaxTime=soon\n")
    assert ASSOC_FORMAT.count(",") == 12


def test_check_job_partition_limits(parts) -> None:
    gpu, short = parts["gpu"], parts["short"]
    assert check_job(gpu, 12 * 3600, 16, 8) == []
    assert check_job(gpu, None, 1, 1) == []  # DefaultTime applies
    [problem] = check_job(gpu, 24 * 3600, 8, 1)
    assert problem.startswith("the gpu partition allows 12:00:00, the job asks 24:00:00; "
                              "lower `time`")
    [problem] = check_job(gpu, 600, 20, 0)
    assert "allows 16 CPUs per node, the job asks 20" in problem
    assert len(check_job(short, 7200, 64, 5, nodes=2)) == 4  # time, nodes, CPUs, GPUs
    [problem] = check_job(short, 600, 1, 9)
    assert "has 8 GPUs in all, the job asks 9" in problem


def test_check_job_qos_limits(parts, qos) -> None:
    assert check_job(parts["gpu"], 600, 1, 4, qos=qos["normal"]) == []
    [problem] = check_job(parts["gpu"], 600, 1, 5, qos=qos["normal"])
    assert "QOS normal allows 4 GPUs for all its jobs together, the job asks 5" in problem
    walled = dataclasses.replace(qos["normal"], max_wall_s=3600)
    assert any("allows 01:00:00 per job" in p for p in check_job(parts["gpu"], 7200, 1, 0,
                                                                  qos=walled))


def test_remaining_submit_allowance(assocs, qos) -> None:
    by_key = {(a.account, a.user): a for a in assocs}
    normal, chem = qos["normal"], by_key["chemistry", "expuser1"]
    assert remaining_submit_allowance([normal, by_key["physics", "expuser1"]], 30) == 70
    # the QOS's MaxSubmitJobsPerUser (100) overrides the association's MaxSubmitJobs (50)
    assert remaining_submit_allowance([normal, chem, by_key["chemistry", ""]], 30) == 70
    assert remaining_submit_allowance([normal], 100) == 0
    assert remaining_submit_allowance([normal], 150) == 0
    no_qos_cap = dataclasses.replace(normal, max_submit_jobs_per_user=None)
    assert remaining_submit_allowance([no_qos_cap, chem], 30) == 20
    # the nearest association that sets a limit wins: user row before its account's row
    account = AssocLimits("c", "chemistry", "", "", (), "", None, 5)
    assert remaining_submit_allowance([no_qos_cap, chem, account], 30) == 20
    blank_user = dataclasses.replace(chem, max_submit_jobs=None)
    assert remaining_submit_allowance([no_qos_cap, blank_user, account], 3) == 2
    assert remaining_submit_allowance([by_key["physics", "expuser2"]], 5) is None
    assert remaining_submit_allowance([], 5) is None
    assert remaining_submit_allowance([qos["high"], normal], 3) == 17  # the stricter QOS


def test_reservations() -> None:
    [maint] = parse_reservations(read("policed_scontrol_show_reservation.txt"))
    assert (maint.name, maint.maintenance, maint.endless, maint.state) == (
        "maintenance", True, False, "INACTIVE")
    assert maint.duration_s == 7200 and maint.end - maint.start == timedelta(hours=2)
    assert maint.start.tzinfo is timezone.utc and "IGNORE_JOBS" in maint.flags
    before = maint.start - timedelta(hours=6)
    assert maint.overlaps(before, 11 * 3600) and not maint.overlaps(before, 5 * 3600)
    assert not maint.overlaps(maint.end, 3600)
    [forever] = parse_reservations(read("policed_scontrol_show_reservation_unlimited.txt"))
    assert forever.endless and forever.duration_s == 365 * 86400  # Duration=UNLIMITED
    assert parse_reservations("No reservations in the system\n") == []
    with pytest.raises(SchedulerQueryError, match="show reservation"):
        parse_reservations("ReservationName=x StartTime=soon EndTime=later\n")
