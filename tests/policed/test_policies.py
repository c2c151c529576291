"""Each policy of the policed test cluster is really in force, and what Slurm says about it.

Jobs are submitted as the unprivileged test users (``run_as``), each test under its own job
name, and cancelled after the test. The reasons asserted here are the ones Slurm 22.05 printed
on this cluster; reasons.py and limits.py are checked against the same live output.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from experiments.backends.slurm import limits, reasons
from tests.support.slurm_cluster import PolicedCluster

pytestmark = pytest.mark.slurm

REFUSED_ACCOUNT = "Invalid account or account/partition combination specified"
LIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "SUSPENDED")


@pytest.fixture
def job_name(policed_cluster: PolicedCluster) -> Iterator[str]:
    """A job name unique to the test; its jobs (any user's) are cancelled and gone afterwards."""
    name = f"policed-{uuid.uuid4().hex[:10]}"
    yield name
    policed_cluster.run("scancel", f"--name={name}", check=False)
    deadline = time.monotonic() + 60
    while policed_cluster.run("squeue", "-h", "-n", name, "-o", "%i", check=False).stdout.strip():
        assert time.monotonic() < deadline, f"jobs named {name} still there after scancel"
        time.sleep(0.3)


def sbatch(c: PolicedCluster, user: str, name: str, *args: str, cmd: str = "sleep 300",
           check: bool = True):
    """sbatch as ``user``; the CompletedProcess (stdout: the job id) with check=False."""
    r = c.run_as(user, "sbatch", "--parsable", f"--job-name={name}", "-o", "/dev/null",
                 "-e", "/dev/null", *args, "--wrap", cmd, check=False)
    if check:
        assert r.returncode == 0, f"sbatch {args} as {user} refused: {r.stderr}"
    return r


def job_id(r) -> str:
    return r.stdout.strip().split(";")[0]


def state_reason(c: PolicedCluster, job: str) -> tuple[str, str]:
    out = c.run("squeue", "-h", "-t", "all", "-j", job, "-O", "State:|,Reason:|",
                check=False).stdout
    state, _, rest = out.strip().partition("|")
    return state, rest.rstrip("|")


def wait_reason(c: PolicedCluster, job: str, want: str, timeout: float = 30) -> str:
    """Poll until the pending job's reason is ``want``; fail with the last reason seen."""
    deadline = time.monotonic() + timeout
    while True:
        state, reason = state_reason(c, job)
        if state == "PENDING" and reason == want:
            return reason
        assert time.monotonic() < deadline, f"job {job}: {state} {reason!r}, want PENDING {want!r}"
        time.sleep(0.3)


def wait_state(c: PolicedCluster, job: str, want: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (got := state_reason(c, job)[0]) != want:
        assert time.monotonic() < deadline, f"job {job} is {got!r}, want {want}"
        time.sleep(0.3)


def partitions(c: PolicedCluster, user: str) -> dict[str, limits.PartitionLimits]:
    return limits.parse_partitions(c.run_as(user, "scontrol", "show", "partition", "-o").stdout)


def qos(c: PolicedCluster, user: str) -> dict[str, limits.QosLimits]:
    out = c.run_as(user, "sacctmgr", "-n", "-P", "show", "qos",
                   f"format={limits.QOS_FORMAT}").stdout
    return limits.parse_qos(out)


# -- accounts ----------------------------------------------------------------------------------
def test_a_job_must_name_one_of_its_users_accounts(policed_cluster, job_name):
    c, (u1, u2) = policed_cluster, policed_cluster.users[:2]
    none = sbatch(c, u1, job_name, check=False)
    assert none.returncode != 0
    assert "this cluster requires an account" in none.stderr and REFUSED_ACCOUNT in none.stderr
    foreign = sbatch(c, u2, job_name, f"--account={c.other_account}", check=False)
    assert foreign.returncode != 0 and REFUSED_ACCOUNT in foreign.stderr
    assert sbatch(c, u1, job_name, f"--account={c.account}", "--hold").returncode == 0
    assert sbatch(c, u1, job_name, f"--account={c.other_account}", "--hold").returncode == 0


# -- QOS limits -------------------------------------------------------------------------------
def test_the_101st_submitted_job_is_refused_array_tasks_count(policed_cluster, job_name):
    c, (u1, u2) = policed_cluster, policed_cluster.users[:2]
    acct, later = f"--account={c.account}", "--begin=now+1hour"
    too_big = sbatch(c, u1, job_name, acct, later, "--array=0-100", check=False)
    assert too_big.returncode != 0 and "QOSMaxSubmitJobPerUserLimit" in too_big.stderr
    sbatch(c, u1, job_name, acct, later, "--array=0-99", cmd="true")
    refused = sbatch(c, u1, job_name, acct, later, cmd="true", check=False)
    assert refused.returncode != 0
    assert "QOSMaxSubmitJobPerUserLimit" in refused.stderr
    assert "Job violates accounting/QOS policy" in refused.stderr
    sbatch(c, u2, job_name, acct, later, cmd="true")  # the limit is per user
    # what the product will compute from what the user can read
    mine = c.run_as(u1, "squeue", "--me", "-h", "-r", "-o", "%i").stdout.split()
    assert len(mine) == 100
    assert limits.remaining_submit_allowance([qos(c, u1)["normal"]], len(mine)) == 0


def test_running_jobs_per_user_are_capped_at_20(policed_cluster, job_name):
    c, u1 = policed_cluster, policed_cluster.users[0]
    job = job_id(sbatch(c, u1, job_name, f"--account={c.account}", "-t", "10", "--array=0-20"))
    wait_reason(c, f"{job}_20", "QOSMaxJobsPerUserLimit")
    out = c.run("squeue", "-h", "-r", "-j", job, "-o", "%T").stdout.split()
    assert out.count("RUNNING") == 20 and out.count("PENDING") == 1
    assert reasons.explain("QOSMaxJobsPerUserLimit").outlook is reasons.Outlook.CLEARS


def test_gpus_over_the_qos_group_limit_pend_qosgrpgres(policed_cluster, job_name):
    c, (u1, u2) = policed_cluster, policed_cluster.users[:2]
    gpu = (f"--account={c.account}", "-p", "gpu", "-t", "10")
    four = job_id(sbatch(c, u1, job_name, *gpu, "--gpus=A100:4"))
    wait_state(c, four, "RUNNING")
    one = job_id(sbatch(c, u2, job_name, *gpu, "--gpus=A100:1"))  # another user: Grp is shared
    five = job_id(sbatch(c, u1, job_name, *gpu, "--gpus=A100:5"))  # over the limit on its own
    wait_reason(c, one, "QOSGrpGRES")
    wait_reason(c, five, "QOSGrpGRES")
    normal = qos(c, u1)["normal"]
    assert limits.gpu_count(normal.grp_tres) == 4
    one_says = reasons.explain("QOSGrpGRES", reasons.JobRequest(gpus=1), qos=normal)
    five_says = reasons.explain("QOSGrpGRES", reasons.JobRequest(gpus=5), qos=normal)
    assert one_says.outlook is reasons.Outlook.CLEARS
    assert five_says.outlook is reasons.Outlook.NEVER and "allows 4 GPUs" in five_says.hint
    assert any("4 GPUs" in p for p in limits.check_job(partitions(c, u1)["gpu"], 600, 1, 5,
                                                       qos=normal))


# -- partition limits with EnforcePartLimits=NO ------------------------------------------------
def test_too_long_a_job_is_accepted_and_pends_partitiontimelimit(policed_cluster, job_name):
    c, u1 = policed_cluster, policed_cluster.users[0]
    config = c.run("scontrol", "show", "config").stdout
    assert any(ln.split("=", 1)[1].strip() == "NO" for ln in config.splitlines()
               if ln.startswith("EnforcePartLimits"))
    short = job_id(sbatch(c, u1, job_name, f"--account={c.account}", "-p", "short",
                          "-t", "2:00:00"))
    gpu = job_id(sbatch(c, u1, job_name, f"--account={c.account}", "-p", "gpu",
                        "-t", "24:00:00", "--gpus=A100:1"))
    wait_reason(c, short, "PartitionTimeLimit")
    wait_reason(c, gpu, "PartitionTimeLimit")  # though it also overlaps the maintenance window
    parts = partitions(c, u1)
    said = reasons.explain("PartitionTimeLimit", reasons.JobRequest("gpu", 24 * 3600),
                           partition=parts["gpu"])
    assert said.line(12) == ("12 queued: PartitionTimeLimit — the gpu partition allows 12:00:00, "
                             "the artifact asks 24:00:00; lower `time` (never clears on its own)")
    assert limits.check_job(parts["short"], 7200, 1, 0) != []
    assert limits.check_job(parts["short"], 3600, 1, 0) == []


def test_more_cpus_than_maxcpuspernode_pend_partitionconfig(policed_cluster, job_name):
    c, u1 = policed_cluster, policed_cluster.users[0]
    job = job_id(sbatch(c, u1, job_name, f"--account={c.account}", "-p", "gpu", "-t", "10",
                        "-c", "20"))
    wait_reason(c, job, "PartitionConfig")
    assert any("16 CPUs per node" in p for p in limits.check_job(partitions(c, u1)["gpu"],
                                                                  600, 20, 0))


# -- reservation ------------------------------------------------------------------------------
def test_jobs_reaching_into_the_maintenance_window_pend(policed_cluster, job_name):
    c, u1 = policed_cluster, policed_cluster.users[0]
    resv = c.run("scontrol", "show", "reservation", "maintenance", "-o",
                 check=False).stdout
    assert "Flags=MAINT" in resv and "State=INACTIVE" in resv, resv
    long = job_id(sbatch(c, u1, job_name, f"--account={c.account}", "-p", "gpu",
                         "-t", "11:00:00"))
    brief = job_id(sbatch(c, u1, job_name, f"--account={c.account}", "-p", "gpu", "-t", "10"))
    wait_reason(c, long, "ReqNodeNotAvail, Reserved for maintenance")
    wait_state(c, brief, "RUNNING")  # ends long before the window
    shown = c.run_as(u1, "env", "TZ=UTC", "SLURM_TIME_FORMAT=standard", "scontrol", "show",
                     "reservation", "-o").stdout
    [maint] = limits.parse_reservations(shown)
    now = datetime.now(timezone.utc)
    assert maint.maintenance and not maint.endless
    assert maint.overlaps(now, 11 * 3600) and not maint.overlaps(now, 600)
    said = reasons.explain("ReqNodeNotAvail, Reserved for maintenance")
    assert said.code == "ReqNodeNotAvail" and said.outlook is reasons.Outlook.CLEARS
    forever = reasons.explain("ReqNodeNotAvail, Reserved for maintenance",
                              reservation_ends=False)
    assert forever.outlook is reasons.Outlook.NEVER


# -- users and preemption ---------------------------------------------------------------------
def test_users_cannot_cancel_each_others_jobs(policed_cluster, job_name):
    c, (u1, u2) = policed_cluster, policed_cluster.users[:2]
    job = job_id(sbatch(c, u1, job_name, f"--account={c.account}", "--hold"))
    denied = c.run_as(u2, "scancel", job, check=False)
    assert "Access/permission denied" in denied.stderr, denied.stderr
    assert state_reason(c, job) == ("PENDING", "JobHeldUser")
    c.run_as(u1, "scancel", job)
    wait_state(c, job, "CANCELLED")


def test_high_qos_preempts_normal_jobs_by_requeueing_them(policed_cluster, job_name):
    c, (u1, u2) = policed_cluster, policed_cluster.users[:2]
    whole_node = job_id(sbatch(c, u1, job_name, f"--account={c.account}", "-p", "medium",
                               "-t", "30", "-c", "32", "--requeue"))
    wait_state(c, whole_node, "RUNNING")
    urgent = job_id(sbatch(c, u2, job_name, f"--account={c.account}", "--qos=high", "-t", "5"))
    wait_state(c, urgent, "RUNNING")
    wait_reason(c, whole_node, "BeginTime")  # requeued: eligible again after a delay
    shown = c.run("scontrol", "show", "job", whole_node).stdout
    assert "Restarts=1" in shown, shown
    assert reasons.explain("BeginTime").outlook is reasons.Outlook.CLEARS


def test_qos_limits_override_the_associations_own(policed_cluster, job_name):
    """expuser1's chemistry association says MaxSubmitJobs=50, MaxJobs=10, GrpTRES=gres/gpu=2;
    QOS normal sets the same kinds (100, 20 per user, gres/gpu=4), and Slurm obeys the QOS."""
    c, u1 = policed_cluster, policed_cluster.users[0]
    out = c.run_as(u1, "sacctmgr", "-n", "-P", "show", "assoc", f"user={u1}",
                   f"format={limits.ASSOC_FORMAT}").stdout
    chem = next(a for a in limits.parse_assocs(out) if a.account == c.other_account)
    assert (chem.max_submit_jobs, chem.max_jobs, limits.gpu_count(chem.grp_tres)) == (50, 10, 2)
    acct = f"--account={c.other_account}"
    sbatch(c, u1, job_name, acct, "--begin=now+1hour", "--array=0-50", cmd="true")  # 51 > 50
    running = job_id(sbatch(c, u1, job_name, acct, "-t", "10", "--array=0-11"))  # 12 > 10
    gpus = job_id(sbatch(c, u1, job_name, acct, "-p", "gpu", "-t", "10", "--gpus=A100:3"))
    wait_state(c, gpus, "RUNNING")  # 3 GPUs > the association's 2
    deadline = time.monotonic() + 30
    while c.run("squeue", "-h", "-r", "-t", "R", "-j", running, "-o", "%i").stdout.count("\n") < 12:
        assert time.monotonic() < deadline, "12 tasks should run despite MaxJobs=10"
        time.sleep(0.3)
    mine = c.run_as(u1, "squeue", "--me", "-h", "-r", "-o", "%i").stdout.split()
    assert limits.remaining_submit_allowance([qos(c, u1)["normal"], chem], len(mine)) == \
        100 - len(mine)
