"""Which cluster a job is on, and whether a job id still names our job.

Many sites run several clusters (or a reinstalled one) behind one shared ``$HOME``, so one
project's records can hold jobs of cluster A while its commands run on a login node of B, whose
job ids may reach A's. Two checks keep a record from being confused with another job:

* **The cluster.** Each record keeps Slurm's ``ClusterName`` of the cluster that accepted it
  (``sbatch --parsable`` prints ``<id>;<cluster>`` when it sent the job to another cluster;
  otherwise the name of the cluster this machine's commands reach). A record of another
  cluster is never asked about, resubmitted or cancelled from here: its tasks are
  :attr:`~experiments.states.JobState.ELSEWHERE` ("on another cluster (A): not asked"). No
  ``-M``/``--clusters`` is ever passed: a query would then go through slurmdbd, and one down
  slurmdbd would blind every command. Records without a cluster (written before it was kept)
  are asked as before, protected by the second check.
* **The name.** Every squeue and sacct row carries the job's name; a row whose name is not the
  one the record submitted belongs to another job that now has the id: it is dropped, never
  shown, never cancelled, and its tasks are :data:`NOT_OURS` (the record says so once seen).
  For a few seconds after a job ends, accounting can list it under its plain id with a
  placeholder name (``allocation``): sacct's verdict counts only for jobs squeue no longer
  shows (squeue, which printed our name, is authoritative for what the controller holds).

This machine's cluster is read without a scheduler call where it can be: from the configuration
a launch has already read, else from ``slurm.conf`` (``$SLURM_CONF`` or Slurm's default path),
else from one ``scontrol show config`` (cached for the command).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ...states import NOT_OURS, JobState, TaskKey, TaskStatus

if TYPE_CHECKING:
    from ...tracking.store import JobRecord

DEFAULT_CONF = "/etc/slurm/slurm.conf"
_NAME_RE = re.compile(r"^\s*ClusterName\s*=\s*([^\s#]+)", re.I | re.M)


def config_name(text: str) -> str | None:
    """``ClusterName`` from ``slurm.conf`` or ``scontrol show config`` text (Slurm lowercases
    it); None when it is not there."""
    match = _NAME_RE.search(text)
    return match.group(1).lower() if match else None


def conf_file_name(env: Mapping[str, str]) -> str | None:
    """``ClusterName`` from the ``slurm.conf`` Slurm's commands read here (``SLURM_CONF`` in
    ``env`` or this process's environment, else Slurm's default path); None if unreadable."""
    path = env.get("SLURM_CONF") or os.environ.get("SLURM_CONF") or DEFAULT_CONF
    try:
        return config_name(Path(path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def split(records: Iterable[JobRecord], here: str | None
          ) -> tuple[list[JobRecord], list[JobRecord]]:
    """(records this cluster can be asked about, records of another cluster)."""
    ours: list[JobRecord] = []
    theirs: list[JobRecord] = []
    for r in records:
        (theirs if r.cluster and here and r.cluster != here else ours).append(r)
    return ours, theirs


def elsewhere(records: Iterable[JobRecord]) -> dict[TaskKey, TaskStatus]:
    """Every task of records of another cluster: not asked, may be live there."""
    out: dict[TaskKey, TaskStatus] = {}
    for r in records:
        st = TaskStatus(JobState.ELSEWHERE, hint=f"on another cluster ({r.cluster}): not asked; "
                                                 f"run this on a login node of {r.cluster}")
        out.update((TaskKey(r.job_id or "", i), st) for i in range(len(r.tasks)))
    return out


def not_ours(records: Mapping[str, JobRecord], foreign: Mapping[str, str]
             ) -> dict[TaskKey, TaskStatus]:
    """Every task of jobs whose id the scheduler now gives to a job of another name."""
    out: dict[TaskKey, TaskStatus] = {}
    for job_id, name in foreign.items():
        rec = records[job_id]
        st = TaskStatus(JobState.UNKNOWN, NOT_OURS,
                        hint=f"not ours: job id {job_id} now belongs to another job ({name!r}, "
                             f"not {rec.name!r}); it is never shown or cancelled as this one")
        out.update((TaskKey(job_id, i), st) for i in range(len(rec.tasks)))
    return out


def named_rows(stdout: str, names: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Rows ``JobID|State|ExitCode|Reason|Name`` (squeue's with a trailing ``|``, or sacct's)
    as the four-field rows :func:`.parse.parse_rows` reads, without those whose name is not
    the one ``names`` expects for their job id; and the ids that only such rows name, with
    the name found (accounting can hold several jobs of one id: a reinstalled cluster's)."""
    kept: list[str] = []
    foreign: dict[str, str] = {}
    matched: set[str] = set()
    for line in stdout.splitlines():
        fields = line.split("|")
        if len(fields) == 6 and not fields[5]:
            fields.pop()
        if len(fields) != 5:
            continue
        job_id = fields[0].strip().split("_", 1)[0]
        name, want = fields[4].strip(), names.get(job_id)
        if want is not None and name != want:
            foreign.setdefault(job_id, name)
            continue
        matched.add(job_id)
        kept.append("|".join(fields[:4]))
    return "\n".join(kept), {k: v for k, v in foreign.items() if k not in matched}
