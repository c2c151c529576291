"""Why a task is still queued: Slurm's pending reason → plain English, outlook and a hint.

Pure: the client passes in the ``Reason`` column of ``squeue`` (``PartitionTimeLimit``,
``ReqNodeNotAvail, Reserved for maintenance`` …) and, when it has them, what the job asks
(:class:`~.limits.JobRequest`) and the partition's and QOS's limits (:mod:`.limits`).

Why: with Slurm's default ``EnforcePartLimits=NO`` a job asking more than the site allows is
accepted and then pends forever; "queued" alone hides that. Each reason says whether it clears
on its own (:class:`Outlook`), and :func:`summarize` groups tasks into lines such as
``12 queued: PartitionTimeLimit — the gpu partition allows 12:00:00, the artifact asks
24:00:00; lower `time` (never clears on its own)``.

The codes in the table were seen on the policed test cluster (Slurm 22.05, see
tests/backends/slurm/data/policed_squeue_pending.txt) or are documented by Slurm
(``squeue(1)``, JOB REASON CODES); a code not in the table is shown as Slurm words it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ...states import Outlook
from .limits import PartitionLimits, QosLimits, format_time, gpu_count


@dataclass(frozen=True)
class PendingReason:
    """What one Slurm reason code means, whether it clears, and what to do (may be "")."""

    code: str
    meaning: str
    outlook: Outlook
    hint: str = ""


@dataclass(frozen=True)
class JobRequest:
    """What the job (artifact) asks for, to make hints concrete; every field optional."""

    partition: str | None = None
    time_s: int | None = None
    cpus: int | None = None
    gpus: int | None = None


@dataclass(frozen=True)
class Explanation:
    """One task's reason, explained in its context: ``code`` plus Slurm's ``detail`` if any."""

    code: str
    detail: str  # text after the comma: "Reserved for maintenance", "" if none
    meaning: str
    outlook: Outlook
    hint: str

    @property
    def label(self) -> str:
        """Slurm's words: ``ReqNodeNotAvail, Reserved for maintenance``."""
        return f"{self.code}, {self.detail}" if self.detail else self.code

    def line(self, count: int = 1, state: str = "queued") -> str:
        """``12 queued: <label> — <hint or meaning>`` plus the outlook when it never clears."""
        text = self.hint or self.meaning
        tail = f" ({self.outlook.value})" if self.outlook is not Outlook.CLEARS else ""
        return f"{count} {state}: {self.label} — {text}{tail}"


_C, _N, _U = Outlook.CLEARS, Outlook.NEVER, Outlook.UNKNOWN
_TABLE = [
    PendingReason("Priority", "other jobs are ahead of it in the queue", _C),
    PendingReason("Resources", "waiting for CPUs, memory or GPUs to become free", _C),
    PendingReason("Dependency", "waiting for the jobs it depends on to finish", _C),
    PendingReason("BeginTime", "waiting for its start time (also after being requeued, e.g. "
                  "preempted)", _C),
    PendingReason("JobArrayTaskLimit", "the array's own limit of tasks running at once", _C),
    PendingReason("Reservation", "waiting for its advance reservation to start", _C),
    PendingReason("Licenses", "waiting for licenses", _C),
    PendingReason("Prolog", "its prolog is running", _C),
    PendingReason("Cleaning", "the node is being cleaned up after a previous job", _C),
    PendingReason("NodeDown", "a node it needs is down", _U,
                  "ask the administrators if this lasts"),
    PendingReason("PartitionDown", "the partition is down", _U,
                  "ask the administrators, or choose another `partition`"),
    PendingReason("PartitionInactive", "the partition is inactive", _U,
                  "ask the administrators, or choose another `partition`"),
    PendingReason("ReqNodeNotAvail", "a node it needs is unavailable (down, drained or "
                  "reserved)", _C, "it starts once the nodes are back"),
    PendingReason("PartitionTimeLimit", "it asks more time than the partition allows", _N,
                  "lower `time` to the partition's MaxTime or choose another `partition`"),
    PendingReason("PartitionNodeLimit", "it asks more nodes than the partition allows", _N,
                  "ask for fewer nodes or choose another `partition`"),
    PendingReason("PartitionConfig", "it asks more than the partition's configuration allows "
                  "(e.g. more CPUs per node than MaxCPUsPerNode)", _N,
                  "lower `cpus` or choose another `partition`"),
    PendingReason("DependencyNeverSatisfied", "a job it depends on failed or was cancelled",
                  _N, "cancel it and launch again once its dependencies are built"),
    PendingReason("InvalidAccount", "its account is invalid or was removed", _N,
                  "set `account` to one of yours (`sacctmgr show assoc user=$USER`)"),
    PendingReason("InvalidQOS", "its QOS is invalid or was removed", _N,
                  "set `qos` to one your account may use"),
    PendingReason("QOSNotAllowed", "its account may not use that QOS", _N,
                  "set `qos` to one your account may use"),
    PendingReason("AccountNotAllowed", "the partition does not allow its account", _N,
                  "choose another `partition` or `account`"),
    PendingReason("BadConstraints", "its constraints can never be satisfied", _N,
                  "change the job's constraints"),
    PendingReason("JobHeldUser", "held by its owner", _N, "release it: scontrol release <job id>"),
    PendingReason("JobHeldAdmin", "held by an administrator", _N, "ask the administrators"),
    PendingReason("launch failed requeued held", "launching it failed; Slurm requeued and held "
                  "it", _N, "read its log, then scontrol release <job id>"),
]
REASONS: dict[str, PendingReason] = {r.code: r for r in _TABLE}

# QOS/association limits: QOSGrpGRES, AssocMaxJobsLimit, QOSMaxGRESPerUser,
# QOSMaxWallDurationPerJobLimit, QOSMaxSubmitJobPerUserLimit (a refusal at submission) …
_LIMIT_RE = re.compile(r"(?P<who>QOS|Assoc)(?P<scope>Grp|Max|Min)(?P<what>[A-Za-z]*?)"
                       r"(?P<per>PerJob|PerUser|PerAccount|PerNode|PerTRES)?(?:Limit)?(?:RunMinutes)?")
_LIMIT_WHAT = {"GRES": "GPUs or other generic resources", "Cpu": "CPUs", "CPU": "CPUs",
               "Mem": "memory", "MEM": "memory", "Node": "nodes", "Jobs": "running jobs",
               "SubmitJob": "submitted jobs", "WallDuration": "run time", "Wall": "run time",
               "Billing": "billing units"}


def _limit_reason(code: str) -> PendingReason | None:
    match = _LIMIT_RE.fullmatch(code)
    if not match:
        return None
    who = "the QOS" if match["who"] == "QOS" else "the account (association)"
    what = _LIMIT_WHAT.get(match["what"], match["what"] or "resources")
    per = {"PerJob": " per job", "PerUser": " per user", "PerAccount": " per account",
           "PerNode": " per node"}.get(match["per"] or "", "")
    if match["scope"] == "Grp":
        meaning = f"{who}'s limit on {what} for all its jobs together is reached"
    else:
        meaning = f"{who}'s limit on {what}{per} is reached"
    never = match["per"] == "PerJob" or match["what"] == "WallDuration" or match["scope"] == "Min"
    if never:
        return PendingReason(code, meaning.replace("is reached", "is exceeded by this job"), _N,
                             "ask for less (see `sacctmgr show qos` / `sacctmgr show assoc`)")
    whose = "other jobs under this limit" if match["scope"] == "Grp" else "other jobs of yours"
    return PendingReason(code, meaning, _C, f"it starts when {whose} finish")


def lookup(code: str) -> PendingReason:
    """The record for a reason code (``ReqNodeNotAvail``, not the text after the comma)."""
    return (REASONS.get(code) or _limit_reason(code)
            or PendingReason(code, f"Slurm says {code!r}", Outlook.UNKNOWN,
                             "see JOB REASON CODES in `man squeue`"))


def split_reason(text: str) -> tuple[str, str]:
    """``"ReqNodeNotAvail, Reserved for maintenance"`` → ``("ReqNodeNotAvail", "Reserved …")``.

    squeue puts the reason in parentheses in its default output; they are dropped.
    """
    text = text.strip().removeprefix("(").removesuffix(")")
    if text in REASONS:  # codes with commas or spaces in them are kept whole
        return text, ""
    code, _, detail = text.partition(",")
    return code.strip(), detail.strip()


def explain(reason: str, job: JobRequest | None = None, *,
            partition: PartitionLimits | None = None, qos: QosLimits | None = None,
            reservation_ends: bool = True, unusable: list[str] | None = None) -> Explanation:
    """Explain one task's pending reason in its context (all context optional).

    ``partition`` and ``qos`` are the limits the job runs under; with them the hint names the
    numbers (PartitionTimeLimit: "the gpu partition allows 12:00:00, the artifact asks
    24:00:00; lower `time`"), and a GPU limit the job exceeds on its own becomes "never
    clears". ``reservation_ends=False``: the reservation behind ReqNodeNotAvail has no end.
    ``unusable``: the nodes of its partition that cannot run it now ([] all healthy: a node
    reason is then a passing state that clears; None: not known).
    """
    code, detail = split_reason(reason)
    base = lookup(code)
    outlook, hint = base.outlook, base.hint
    job = job or JobRequest()
    if code == "PartitionTimeLimit":
        hint = _time_hint(job, partition) or hint
    elif code == "PartitionConfig" and partition and partition.max_cpus_per_node and job.cpus:
        hint = (f"the {partition.name} partition allows {partition.max_cpus_per_node} CPUs per "
                f"node, the artifact asks {job.cpus}; lower `cpus`")
    elif code == "ReqNodeNotAvail" and "maintenance" in detail.lower():
        hint = ("a maintenance reservation starts before the job would end; lower `time` so it "
                "ends before the window, or wait until the maintenance is over")
        if not reservation_ends:
            outlook = Outlook.NEVER
            hint = "the reservation never ends; ask the administrators"
    elif code == "ReqNodeNotAvail" and "reserv" in detail.lower():
        hint = ("the nodes it needs are reserved; it starts when the reservation ends "
                "(`scontrol show reservation`), or inside it with the `reservation` "
                "requirement")
    elif code in NODE_CODES and unusable is not None:
        outlook, hint = _node_outlook(unusable, outlook, hint)
    elif "GRES" in code and job.gpus and qos is not None:
        outlook, hint = _gres_outlook(code, job.gpus, qos, outlook, hint)
    return Explanation(code, detail, base.meaning, outlook, hint)


NODE_CODES = frozenset({"NodeDown", "ReqNodeNotAvail"})


def _node_outlook(unusable: list[str], outlook: Outlook, hint: str) -> tuple[Outlook, str]:
    """A node reason while every node of the partition is healthy is a passing state (a node
    restarting or briefly not responding): it clears. Otherwise name the nodes."""
    if not unusable:
        return Outlook.CLEARS, ("its partition's nodes are all up now (one was briefly "
                                "unavailable); it starts at the next scheduling pass")
    shown = ", ".join(unusable[:3]) + (f" and {len(unusable) - 3} more" if len(unusable) > 3
                                       else "")
    if all("RESERVED" in n for n in unusable):  # reserved, not broken: no node comes "back"
        return outlook, (f"its nodes are reserved ({shown}); it starts when the reservation "
                         "ends (`scontrol show reservation`), or inside it with the "
                         "`reservation` requirement")
    return outlook, f"unavailable now: {shown}; {hint}" if hint else f"unavailable now: {shown}"


def _time_hint(job: JobRequest, partition: PartitionLimits | None) -> str:
    if partition is None or partition.max_time_s is None:
        return ""
    asks = f", the artifact asks {format_time(job.time_s)}" if job.time_s is not None else ""
    return (f"the {partition.name} partition allows {format_time(partition.max_time_s)}"
            f"{asks}; lower `time`")


def _gres_outlook(code: str, gpus: int, qos: QosLimits, outlook: Outlook,
                  hint: str) -> tuple[Outlook, str]:
    """A GPU limit the job exceeds by itself never clears (QOSGrpGRES with 5 GPUs under 4)."""
    tres = (qos.grp_tres if "Grp" in code else
            qos.max_tres_per_user if "PerUser" in code else qos.max_tres_per_job)
    limit = gpu_count(tres)
    if limit is not None and gpus > limit:
        return Outlook.NEVER, (f"QOS {qos.name} allows {limit} GPUs, the artifact asks {gpus}; "
                               "lower `gpus`")
    if limit is not None:
        return outlook, f"QOS {qos.name} allows {limit} GPUs at once; it starts when GPUs free up"
    return outlook, hint


def summarize(explanations: Iterable[Explanation], state: str = "queued") -> list[str]:
    """Group tasks with the same explanation into one line each, counted.

    Lines that never clear on their own come first, then the largest groups:
    ``["12 queued: PartitionTimeLimit — the gpu partition allows 12:00:00, …", …]``.
    """
    counts = Counter(explanations)
    order = sorted(counts, key=lambda e: (e.outlook is Outlook.CLEARS,
                                          e.outlook is Outlook.UNKNOWN, -counts[e], e.label))
    return [e.line(counts[e], state) for e in order]
