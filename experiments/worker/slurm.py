"""Every Slurm call the worker makes on a compute node, and what it reads of Slurm's environment.

On the node, the worker asks Slurm about a lock file's holder (:func:`job_live`) and about its
own end time (:func:`job_end_time`), cancels the tasks that wait on it with ``aftercorr`` when
it dies (:func:`cancel_task`) and requeues itself after a checkpoint signal (:func:`requeue`).
It learns who it is from ``SLURM_ARRAY_JOB_ID``/``SLURM_ARRAY_TASK_ID``/``SLURM_JOB_ID`` and
``SLURM_RESTART_COUNT``; outside Slurm (the local backend) they are unset and every function
here says so. Commands start through ``_proc.run`` only. Standard library only: the worker
imports it at every task's start.
"""

from __future__ import annotations

import os

from .. import _proc

TYPE_CHECKING = False  # typing stays out of every task's start
if TYPE_CHECKING:
    from collections.abc import Callable

SQUEUE_TIMEOUT_S = 10.0
SCANCEL_TIMEOUT_S = 10.0
REQUEUE_TIMEOUT_S = 60.0
END_TIME_TIMEOUT_S = 30.0
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
         "BOOT_FAIL", "DEADLINE", "PREEMPTED", "REVOKED")


# -- who this task is -----------------------------------------------------------------------------
def job_id() -> str | None:
    """This task's own Slurm job id (``$SLURM_JOB_ID``), None outside Slurm."""
    return os.environ.get("SLURM_JOB_ID") or None


def task_key() -> str | None:
    """``<array job id>_<index>`` of this array task, else the plain job id; None outside
    Slurm."""
    array, idx = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{idx}" if array and idx else job_id()


def array_index() -> int:
    """This task's array index (``$SLURM_ARRAY_TASK_ID``); KeyError outside an array job."""
    return int(os.environ["SLURM_ARRAY_TASK_ID"])


def restart_count() -> int:
    """How often Slurm has requeued this task (``$SLURM_RESTART_COUNT``; 0 when unset)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)


# -- asking Slurm ---------------------------------------------------------------------------------
def job_live(job: str, say: Callable[[str], None]) -> bool | None:
    """Whether Slurm still runs (or will run) job ``job``; None when it cannot tell (``say``
    says why: the caller decides what that means), False for a job it no longer knows."""
    if not job.isdigit():
        return None
    try:
        res = _proc.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"],
                        timeout_s=SQUEUE_TIMEOUT_S)
    except (OSError, _proc.ProcTimeout) as exc:
        say(f"cannot ask Slurm whether job {job} still runs ({exc})")
        return None
    if not res.ok:
        if "Invalid job id" in res.stderr:
            return False
        say(f"cannot ask Slurm whether job {job} still runs ({res.describe()})")
        return None
    states = res.stdout.split()
    return bool(states) and not all(s.split(" ")[0] in ENDED for s in states)


def job_end_time() -> float | None:
    """Epoch seconds at which Slurm will end this job (``$SLURM_JOB_END_TIME``, else asked),
    None when it does not say (or outside Slurm)."""
    text = os.environ.get("SLURM_JOB_END_TIME", "")
    if text.isdigit():
        return float(text)
    job = job_id()
    if not job:
        return None
    try:
        res = _proc.run(["squeue", "-h", "-j", job, "-o", "%e"], timeout_s=END_TIME_TIMEOUT_S,
                        env={"SLURM_TIME_FORMAT": "%s"})
    except (OSError, _proc.ProcTimeout):
        return None
    out = res.stdout.strip()
    return float(out) if res.ok and out.isdigit() else None


def cancel_task(key: str) -> None:
    """Cancel one task (``<job id>_<index>``); raises OSError or ``_proc.ProcTimeout`` when
    the command cannot run (best effort: the caller says so in the log)."""
    _proc.run(["scancel", key], timeout_s=SCANCEL_TIMEOUT_S)


def requeue(job: str) -> str:
    """Ask Slurm to run job ``job`` again; "" when it agreed, else why not."""
    try:
        result = _proc.run(["scontrol", "requeue", job], timeout_s=REQUEUE_TIMEOUT_S)
    except (OSError, _proc.ProcTimeout) as err:
        return str(err) or type(err).__name__
    if result.returncode == 0:
        return ""
    return (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
