"""A site's limits, read from the text of Slurm's commands: partitions, associations, QOS.

Pure: no subprocesses. The client runs the commands (as the user, who can read all of this on
a default Slurm setup) and passes their output in:

* ``scontrol show partition -o`` → :func:`parse_partitions` → :class:`PartitionLimits`
* ``scontrol show node -o`` → :func:`parse_node_gpus` (GPUs per node, from the nodes' GRES)
* ``sacctmgr -n -P show assoc user=$USER format=<ASSOC_FORMAT>`` → :func:`parse_assocs`
* ``sacctmgr -n -P show qos format=<QOS_FORMAT>`` → :func:`parse_qos`
* ``scontrol show reservation -o`` (TZ=UTC, SLURM_TIME_FORMAT=standard) → :func:`parse_reservations`

Why: with ``EnforcePartLimits=NO`` (Slurm's default) a job asking more than its partition allows
is accepted and then pends forever, and a launch with more array tasks than the user's submit
allowance is refused half-way. :func:`check_job` and :func:`remaining_submit_allowance` let
``drylaunch --validate`` and ``launch`` say so before anything is submitted.

Times are seconds (``None`` for ``UNLIMITED``); TRES are ``{name: count}`` with memory in MB.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import TypeVar

from ...errors import SchedulerQueryError
from ...resources import parse_duration_s

# The columns the parsers expect; the client asks for exactly these (``format=...``).
ASSOC_FORMAT = ("Cluster,Account,User,Partition,QOS,DefaultQOS,MaxJobs,MaxSubmit,GrpTRES,"
                "MaxTRES,MaxWall,GrpJobs,GrpSubmit")
QOS_FORMAT = ("Name,Priority,Preempt,PreemptMode,Flags,MaxWall,MaxTRES,MaxTRESPU,MaxJobsPU,"
              "MaxSubmitPU,GrpTRES,GrpJobs,GrpSubmit")

_T = TypeVar("_T")
_UNLIMITED = {"UNLIMITED", "INFINITE", "NONE", "N/A", ""}
_MEM_MB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024, "P": 1024 ** 3}


# -- times -----------------------------------------------------------------------------------
def parse_time_s(text: str) -> int | None:
    """Seconds in a Slurm time limit as Slurm prints it; ``None`` for no limit.

    sacctmgr and scontrol also write "no limit" as ``NONE``, ``N/A`` or nothing; every other
    form is parsed by :func:`~experiments.resources.parse_duration_s` (``30`` is 30 minutes,
    ``4:00`` 4 minutes). Raises ``ValueError`` for anything else.
    """
    return None if text.strip().upper() in _UNLIMITED else parse_duration_s(text)


def format_time(seconds: int | None) -> str:
    """A duration as users write ``time``: ``12:00:00``, ``24:00:00``, ``00:30:00``, ``UNLIMITED``.

    Hours are not folded into days (Slurm prints ``1-00:00:00``; sbatch accepts both), so a
    hint repeats the value the way the config spells it.
    """
    if seconds is None:
        return "UNLIMITED"
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


# -- small field parsers -----------------------------------------------------------------------
def _int_or_none(text: str) -> int | None:
    text = text.strip()
    return None if text.upper() in _UNLIMITED else int(text)


def parse_tres(text: str) -> dict[str, int]:
    """``cpu=32,mem=200000M,gres/gpu=8`` → ``{"cpu": 32, "mem": 200000, "gres/gpu": 8}``.

    Memory (``mem``) becomes megabytes; other counts are integers. Empty text → ``{}``.
    """
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"not a TRES item: {item!r} in {text!r}")
        unit = value[-1:].upper()
        if unit in _MEM_MB:
            out[name] = round(float(value[:-1]) * _MEM_MB[unit])
        else:
            out[name] = int(value)
    return out


def gpu_count(tres: Mapping[str, int]) -> int | None:
    """GPUs in a TRES map: ``gres/gpu``, else the sum of typed ``gres/gpu:<type>``; None if none."""
    if "gres/gpu" in tres:
        return tres["gres/gpu"]
    typed = [n for name, n in tres.items() if name.startswith("gres/gpu:")]
    return sum(typed) if typed else None


def _checked(what: str, line: str, parse: Callable[[], _T]) -> _T:
    """Run a row parser, turning a parse failure into SchedulerQueryError naming the line."""
    try:
        return parse()
    except (ValueError, KeyError) as exc:
        raise SchedulerQueryError(f"cannot read {what} line {line!r}: {exc}") from None


# -- partitions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartitionLimits:
    """One partition's limits (``scontrol show partition -o``); ``None`` means unlimited."""

    name: str
    max_time_s: int | None
    default_time_s: int | None  # what a job without --time gets (MaxTime when unset)
    max_nodes: int | None
    max_cpus_per_node: int | None
    total_cpus: int | None
    total_nodes: int | None
    tres: Mapping[str, int] = field(default_factory=dict)  # the partition's total TRES
    default: bool = False
    state: str = "UP"

    @property
    def gpus(self) -> int | None:
        """GPUs in the whole partition (None when it has none)."""
        return gpu_count(self.tres)


def _key_values(line: str) -> dict[str, str]:
    """``A=1 B=x y C=2``: values may contain spaces (rare), so split before each ``Key=``."""
    pairs = re.findall(r"(\w+)=(.*?)(?=\s+\w+=|\s*$)", line.strip())
    return dict(pairs)


def _partition(kv: Mapping[str, str]) -> PartitionLimits:
    max_time = parse_time_s(kv["MaxTime"])
    default_time = kv.get("DefaultTime", "NONE")
    return PartitionLimits(
        name=kv["PartitionName"],
        max_time_s=max_time,
        default_time_s=max_time if default_time.upper() in _UNLIMITED
        else parse_time_s(default_time),
        max_nodes=_int_or_none(kv.get("MaxNodes", "UNLIMITED")),
        max_cpus_per_node=_int_or_none(kv.get("MaxCPUsPerNode", "UNLIMITED")),
        total_cpus=_int_or_none(kv.get("TotalCPUs", "")),
        total_nodes=_int_or_none(kv.get("TotalNodes", "")),
        tres=parse_tres(kv.get("TRES", "")),
        default=kv.get("Default", "NO") == "YES",
        state=kv.get("State", "UP"),
    )


def parse_partitions(text: str) -> dict[str, PartitionLimits]:
    """Partitions by name from ``scontrol show partition -o`` (one partition per line)."""
    out: dict[str, PartitionLimits] = {}
    for line in text.splitlines():
        if not line.startswith("PartitionName="):
            continue
        kv = _key_values(line)
        limits = _checked("scontrol show partition", line, partial(_partition, kv))
        out[limits.name] = limits
    return out


# -- nodes -----------------------------------------------------------------------------------
def gres_gpus(text: str) -> int:
    """GPUs in a node's ``Gres=`` (``gpu:A100:8``, ``gpu:8``, ``gpu:a100:4(S:0-1),gpu:v100:2``,
    ``(null)``): the counts of every ``gpu`` entry, typed or not, summed."""
    total = 0
    for item in re.sub(r"\([^)]*\)", "", text).split(","):
        fields = item.strip().split(":")
        if len(fields) >= 2 and fields[0] == "gpu" and fields[-1].isdigit():
            total += int(fields[-1])
    return total


def parse_node_gpus(text: str) -> dict[str, list[int]]:
    """Each partition's GPUs per node, from the nodes' GRES in ``scontrol show node -o``.

    The nodes' GRES is where Slurm keeps GPUs whatever accounting tracks: with Slurm's default
    ``AccountingStorageTRES`` (no ``gres/gpu``) a partition's ``TRES=`` lists no GPU although
    its nodes have ``Gres=gpu:A100:8`` and GPU jobs start on them.
    """
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        if not line.startswith("NodeName="):
            continue
        kv = _key_values(line)
        gpus = gres_gpus(kv.get("Gres", ""))
        for part in filter(None, kv.get("Partitions", "").split(",")):
            out.setdefault(part, []).append(gpus)
    return out


_UNUSABLE = ("DOWN", "DRAIN", "FAIL", "NOT_RESPONDING", "POWERED_DOWN", "MAINT", "REBOOT",
             "RESERVED")


def parse_unusable_nodes(text: str) -> dict[str, list[str]]:
    """Each partition's nodes that cannot run a job now (``node1 (DOWN+NOT_RESPONDING)``),
    from ``scontrol show node -o``; a partition all of whose nodes are usable maps to []."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("NodeName="):
            continue
        kv = _key_values(line)
        state = kv.get("State", "")
        bad = any(word in state for word in _UNUSABLE) or state.endswith("*")
        for part in filter(None, kv.get("Partitions", "").split(",")):
            out.setdefault(part, [])
            if bad:
                out[part].append(f"{kv.get('NodeName', '?')} ({state})")
    return out


# -- reservations ----------------------------------------------------------------------------
ENDLESS_S = 365 * 86400  # Slurm 22.05 stores Duration=UNLIMITED as 365-00:00:00


@dataclass(frozen=True)
class Reservation:
    """One reservation (``scontrol show reservation -o`` run with TZ=UTC, standard times)."""

    name: str
    start: datetime
    end: datetime
    duration_s: int | None
    nodes: str
    flags: tuple[str, ...]
    state: str  # ACTIVE or INACTIVE

    @property
    def maintenance(self) -> bool:
        """A MAINT reservation: jobs reaching into it pend "ReqNodeNotAvail, Reserved for
        maintenance"."""
        return "MAINT" in self.flags

    @property
    def endless(self) -> bool:
        """It never ends (Duration=UNLIMITED, which Slurm shows as 365 days)."""
        return self.duration_s is None or self.duration_s >= ENDLESS_S

    def overlaps(self, start: datetime, time_s: int) -> bool:
        """Whether a job running ``time_s`` from ``start`` would reach into it."""
        return start < self.end and start + timedelta(seconds=time_s) > self.start


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _reservation(kv: Mapping[str, str]) -> Reservation:
    return Reservation(
        name=kv["ReservationName"], start=_utc(kv["StartTime"]), end=_utc(kv["EndTime"]),
        duration_s=parse_time_s(kv.get("Duration", "")), nodes=kv.get("Nodes", ""),
        flags=_names(kv.get("Flags", "")), state=kv.get("State", ""))


def parse_reservations(text: str) -> list[Reservation]:
    """Reservations from ``scontrol show reservation -o`` ("No reservations …" → [])."""
    return [_checked("scontrol show reservation", line, partial(_reservation, _key_values(line)))
            for line in text.splitlines() if line.startswith("ReservationName=")]


# -- associations and QOS --------------------------------------------------------------------
@dataclass(frozen=True)
class AssocLimits:
    """One association (``sacctmgr show assoc``): cluster/account/user[/partition] and limits.

    Account rows have ``user == ""``. A blank limit is ``None`` here; Slurm then applies the
    parent's (the account's) limit, so read the account row too when you need the effective one.
    """

    cluster: str
    account: str
    user: str
    partition: str
    qos: tuple[str, ...]
    default_qos: str
    max_jobs: int | None
    max_submit_jobs: int | None
    grp_tres: Mapping[str, int] = field(default_factory=dict)
    max_tres_per_job: Mapping[str, int] = field(default_factory=dict)
    max_wall_s: int | None = None
    grp_jobs: int | None = None
    grp_submit_jobs: int | None = None


@dataclass(frozen=True)
class QosLimits:
    """One QOS (``sacctmgr show qos``). ``None`` or an empty map means no such limit."""

    name: str
    priority: int
    preempt: tuple[str, ...]  # QOS whose jobs this one may preempt
    preempt_mode: str
    flags: tuple[str, ...]
    max_wall_s: int | None
    max_tres_per_job: Mapping[str, int]
    max_tres_per_user: Mapping[str, int]
    max_jobs_per_user: int | None
    max_submit_jobs_per_user: int | None
    grp_tres: Mapping[str, int]
    grp_jobs: int | None
    grp_submit_jobs: int | None


def _rows(text: str, fmt: str) -> Iterable[tuple[str, dict[str, str]]]:
    """``sacctmgr -n -P`` lines as ``{column: value}`` under the column names of ``fmt``."""
    names = fmt.split(",")
    for line in text.splitlines():
        if not line.strip():
            continue
        values = line.split("|")
        if len(values) == len(names) + 1 and not values[-1]:  # some versions end rows with "|"
            values.pop()
        if len(values) != len(names):
            raise SchedulerQueryError(
                f"sacctmgr line {line!r} has {len(values)} fields, expected {len(names)} ({fmt})")
        yield line, dict(zip(names, values, strict=True))


def _names(text: str) -> tuple[str, ...]:
    return tuple(sorted(filter(None, (n.strip() for n in text.split(",")))))


def parse_assocs(text: str, fmt: str = ASSOC_FORMAT) -> list[AssocLimits]:
    """Associations from ``sacctmgr -n -P show assoc format=<fmt>`` (default ASSOC_FORMAT)."""
    def one(r: Mapping[str, str]) -> AssocLimits:
        return AssocLimits(
            cluster=r["Cluster"], account=r["Account"], user=r["User"],
            partition=r["Partition"], qos=_names(r["QOS"]), default_qos=r["DefaultQOS"],
            max_jobs=_int_or_none(r["MaxJobs"]), max_submit_jobs=_int_or_none(r["MaxSubmit"]),
            grp_tres=parse_tres(r["GrpTRES"]), max_tres_per_job=parse_tres(r["MaxTRES"]),
            max_wall_s=parse_time_s(r["MaxWall"]), grp_jobs=_int_or_none(r["GrpJobs"]),
            grp_submit_jobs=_int_or_none(r["GrpSubmit"]))
    return [_checked("sacctmgr show assoc", line, partial(one, r))
            for line, r in _rows(text, fmt)]


def parse_qos(text: str, fmt: str = QOS_FORMAT) -> dict[str, QosLimits]:
    """QOS by name from ``sacctmgr -n -P show qos format=<fmt>`` (default QOS_FORMAT)."""
    def one(r: Mapping[str, str]) -> QosLimits:
        return QosLimits(
            name=r["Name"], priority=int(r["Priority"] or 0), preempt=_names(r["Preempt"]),
            preempt_mode=r["PreemptMode"], flags=_names(r["Flags"]),
            max_wall_s=parse_time_s(r["MaxWall"]), max_tres_per_job=parse_tres(r["MaxTRES"]),
            max_tres_per_user=parse_tres(r["MaxTRESPU"]),
            max_jobs_per_user=_int_or_none(r["MaxJobsPU"]),
            max_submit_jobs_per_user=_int_or_none(r["MaxSubmitPU"]),
            grp_tres=parse_tres(r["GrpTRES"]), grp_jobs=_int_or_none(r["GrpJobs"]),
            grp_submit_jobs=_int_or_none(r["GrpSubmit"]))
    out: dict[str, QosLimits] = {}
    for line, r in _rows(text, fmt):
        qos = _checked("sacctmgr show qos", line, partial(one, r))
        out[qos.name] = qos
    return out


# -- checks ----------------------------------------------------------------------------------
def check_job(partition: PartitionLimits, time_s: int | None, cpus: int, gpus: int, *,
              nodes: int = 1, qos: QosLimits | None = None,
              node_gpus: Sequence[int] | None = None) -> list[str]:
    """Why a job (per node: ``cpus``, ``gpus``) could never start in ``partition``; [] if it can.

    Independent of ``EnforcePartLimits``: with ``NO`` Slurm accepts such a job and leaves it
    pending (PartitionTimeLimit, PartitionConfig, …) instead of refusing it. ``time_s`` None
    means the partition's DefaultTime. With ``qos``, its per-job and group limits are checked too.
    GPUs are counted from ``node_gpus`` (the partition's nodes' GRES, :func:`parse_node_gpus`)
    when given, else from the partition's TRES, which lists GPUs only where accounting tracks
    ``gres/gpu``.
    """
    p, problems = partition, []
    if time_s is not None and p.max_time_s is not None and time_s > p.max_time_s:
        problems.append(f"the {p.name} partition allows {format_time(p.max_time_s)}, the job "
                        f"asks {format_time(time_s)}; lower `time` (Slurm: PartitionTimeLimit)")
    if p.max_nodes is not None and nodes > p.max_nodes:
        problems.append(f"the {p.name} partition allows {p.max_nodes} node(s) per job, the job "
                        f"asks {nodes} (Slurm: PartitionNodeLimit)")
    if p.max_cpus_per_node is not None and cpus > p.max_cpus_per_node:
        problems.append(f"the {p.name} partition allows {p.max_cpus_per_node} CPUs per node, the "
                        f"job asks {cpus}; lower `cpus` (Slurm: PartitionConfig)")
    elif p.total_cpus is not None and cpus * nodes > p.total_cpus:
        problems.append(f"the {p.name} partition has {p.total_cpus} CPUs in all, the job asks "
                        f"{cpus * nodes}; lower `cpus`")
    if gpus:
        problems.extend(_check_gpus(p, gpus, nodes, node_gpus))
    if qos is not None:
        problems.extend(_check_qos(qos, time_s, cpus * nodes, gpus * nodes))
    return problems


def _check_gpus(p: PartitionLimits, gpus: int, nodes: int,
                node_gpus: Sequence[int] | None) -> list[str]:
    """A job asking ``gpus`` per node on ``nodes`` nodes against the partition's GPUs."""
    if node_gpus is None:  # the nodes could not be read: the TRES, when it counts GPUs
        if p.gpus is None or p.gpus >= gpus * nodes:
            return []
        return [f"the {p.name} partition has {p.gpus} GPUs in all, the job asks "
                f"{gpus * nodes}; lower `gpus` or choose a GPU partition"]
    if sum(n >= gpus for n in node_gpus) >= nodes:
        return []
    most = max(node_gpus, default=0)
    if not most:
        return [f"the {p.name} partition's nodes have no GPUs (their GRES), the job asks "
                f"{gpus} per node; choose a GPU partition"]
    if nodes == 1 or most < gpus:
        return [f"the {p.name} partition's nodes have at most {most} GPUs each (their GRES), "
                f"the job asks {gpus} per node; lower `gpus`"]
    return [f"the {p.name} partition has {sum(n >= gpus for n in node_gpus)} node(s) with "
            f"{gpus} GPUs (their GRES), the job asks {nodes}; lower `nodes` or `gpus`"]


def _check_qos(qos: QosLimits, time_s: int | None, cpus: int, gpus: int) -> list[str]:
    problems = []
    if time_s is not None and qos.max_wall_s is not None and time_s > qos.max_wall_s:
        problems.append(f"QOS {qos.name} allows {format_time(qos.max_wall_s)} per job, the job "
                        f"asks {format_time(time_s)}; lower `time`")
    for what, tres, scope in (("per job", qos.max_tres_per_job, "PerJob"),
                              ("per user", qos.max_tres_per_user, "PerUser"),
                              ("for all its jobs together", qos.grp_tres, "Grp")):
        limit = gpu_count(tres)
        if gpus and limit is not None and gpus > limit:
            problems.append(f"QOS {qos.name} allows {limit} GPUs {what}, the job asks {gpus}; "
                            f"lower `gpus` (it would pend forever, Slurm: QOS…GRES {scope})")
        cpu_limit = tres.get("cpu")
        if cpu_limit is not None and cpus > cpu_limit:
            problems.append(f"QOS {qos.name} allows {cpu_limit} CPUs {what}, the job asks {cpus}; "
                            "lower `cpus`")
    return problems


def remaining_submit_allowance(limits: Sequence[AssocLimits | QosLimits],
                               current_jobs: int) -> int | None:
    """How many more jobs (array tasks count one each) the user may submit; None = no limit.

    ``limits``: the QOS the jobs would run under, and the association they would run under
    followed by its ancestors (user row, then account rows up the tree), in that order.
    ``current_jobs``: the user's pending and running jobs, counted per task (lines of
    ``squeue --me -h -r -t PD,R,S,CG``). Slurm's precedence, seen on the policed cluster: a
    QOS's MaxSubmitJobsPerUser overrides the association's MaxSubmitJobs (with QOS 100 and
    association 50, 51 jobs were accepted); without one, the nearest association that sets
    MaxSubmitJobs decides (a blank one inherits its parent's). Counting every job of the user
    is exact for one account and one QOS and errs on the safe side otherwise. Group limits
    (GrpSubmit) are shared with other users and not counted here.
    """
    qos_caps = [q.max_submit_jobs_per_user for q in limits
                if isinstance(q, QosLimits) and q.max_submit_jobs_per_user is not None]
    assoc_caps = [a.max_submit_jobs for a in limits
                  if isinstance(a, AssocLimits) and a.max_submit_jobs is not None]
    cap = min(qos_caps) if qos_caps else (assoc_caps[0] if assoc_caps else None)
    return None if cap is None else max(0, cap - current_jobs)
