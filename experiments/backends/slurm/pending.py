"""Queued tasks explained in their context: Slurm's pending reason → hint and outlook.

The backend calls :func:`explain_pending` on every query's answer. Each pending task keeps
Slurm's own words in ``TaskStatus.reason`` (``PartitionTimeLimit``, ``ReqNodeNotAvail,
Reserved for maintenance``) and gets a plain ``hint`` ("the gpu partition allows 12:00:00, the
artifact asks 24:00:00; lower `time`") and an ``outlook`` (clears on its own or never) from
:mod:`.reasons`, so nothing above the seam has to know Slurm's vocabulary.

The site's limits (:mod:`.site`) are read only when a reason needs them (partition reasons →
``scontrol show partition``; a QOS GRES reason → the jobs' QOS and ``sacctmgr show qos``;
maintenance → ``scontrol show reservation``), once per backend, so an ordinary ``status``
costs no extra call.
What the job asks comes from its record's requirements; a limit that cannot be read only makes
the hint less concrete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from ...errors import DefinitionError, SchedulerQueryError
from ...resources import common_resources
from ...states import JobState, TaskKey, TaskStatus
from ...tracking.store import JobRecord
from . import reasons
from .limits import PartitionLimits, QosLimits, Reservation
from .site_limits import SiteLimits

PARTITION_CODES = frozenset({"PartitionTimeLimit", "PartitionConfig", "PartitionNodeLimit"})
NO_REASON = ("", "None")
_T = TypeVar("_T")


def has_reason(status: TaskStatus) -> bool:
    """A pending task for which Slurm gives a reason (squeue says ``None`` right after submit)."""
    return status.state is JobState.PENDING and status.reason.strip() not in NO_REASON


def job_request(requirements: Mapping[str, Any], partition: str | None) -> reasons.JobRequest:
    """What a job asks, from its record's requirements (config defaults merged in)."""
    name = str(requirements.get("partition") or partition or "") or None
    try:
        res = common_resources(requirements, "job")
    except DefinitionError:
        return reasons.JobRequest(name)
    return reasons.JobRequest(name, res.time_s, res.cpus, res.gpus)


def _quietly(read: Callable[[], _T]) -> _T | None:
    """A limit that cannot be read makes the hint less concrete, never the query fail."""
    try:
        return read()
    except SchedulerQueryError:
        return None


class _Context:
    """The site's limits, read lazily, and one explanation per (job, reason)."""

    def __init__(self, site: SiteLimits, records: Sequence[JobRecord],
                 pending: Mapping[TaskKey, TaskStatus]) -> None:
        self.records = {r.job_id: r for r in records if r.job_id}
        codes = {reasons.split_reason(s.reason)[0] for s in pending.values()}
        nodes = any(reasons.split_reason(s.reason)[0] in reasons.NODE_CODES
                    and "reserv" not in s.reason.lower() for s in pending.values())
        self.partitions: dict[str, PartitionLimits] = (
            _quietly(site.partitions) if codes & PARTITION_CODES or nodes else None) or {}
        self.unusable = _quietly(site.unusable_nodes) if nodes else None
        gres_jobs = sorted({k.job_id for k, s in pending.items() if "GRES" in s.reason})
        self.job_qos: dict[str, str] = (
            _quietly(lambda: site.job_qos(gres_jobs)) if gres_jobs else None) or {}
        self.qos: dict[str, QosLimits] = (
            _quietly(site.qos_limits) if self.job_qos else None) or {}
        maint = any("maintenance" in s.reason.lower() for s in pending.values())
        resv: list[Reservation] = (_quietly(site.reservations) if maint else None) or []
        self.reservation_ends = not any(r.maintenance and r.endless for r in resv)
        self.default_partition = next((p.name for p in self.partitions.values() if p.default),
                                      None)
        self._cache: dict[tuple[str, str], reasons.Explanation] = {}

    def explain(self, job_id: str, reason: str) -> reasons.Explanation:
        key = (job_id, reason)
        if key not in self._cache:
            record = self.records.get(job_id)
            job = job_request(record.requirements if record else {}, self.default_partition)
            part = job.partition or ""
            self._cache[key] = reasons.explain(
                reason, job, partition=self.partitions.get(part),
                qos=self.qos.get(self.job_qos.get(job_id, "")),
                reservation_ends=self.reservation_ends,
                unusable=None if self.unusable is None or part not in self.unusable
                else self.unusable[part])
        return self._cache[key]


def explain_pending(site: SiteLimits, records: Sequence[JobRecord],
                    statuses: Mapping[TaskKey, TaskStatus]) -> dict[TaskKey, TaskStatus]:
    """``statuses`` with every pending task's reason explained (held tasks keep their hint)."""
    pending = {k: s for k, s in statuses.items() if has_reason(s)}
    out = dict(statuses)
    if not pending:
        return out
    ctx = _Context(site, records, pending)
    # The tasks of an array not yet split share one status object: explain it once per job.
    made: dict[tuple[int, str], TaskStatus] = {}
    for key, status in pending.items():
        explained = made.get((id(status), key.job_id))
        if explained is None:
            said = ctx.explain(key.job_id, status.reason)
            hint = status.hint if status.held else (said.hint or said.meaning)
            explained = made[(id(status), key.job_id)] = replace(
                status, reason=said.label, hint=hint, outlook=said.outlook)
        out[key] = explained
    return out
