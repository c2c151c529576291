"""Slurm's answers read into our words: pure functions, pinned by ``tests/backends/slurm/data``.

Rows. squeue and sacct both print ``JobID|State|ExitCode|Reason`` rows (:func:`parse_rows`),
with rows for arrays not yet split into tasks (``12_[0-4,6-99%10]``) expanded
(:func:`expand_key`). :func:`merge` lays squeue's answer (authoritative for what the controller
still holds) over sacct's (what it has forgotten): a task that sacct calls live but squeue no
longer knows is UNKNOWN (accounting lagging). :func:`to_account` picks the jobs sacct must be
asked about; :func:`keyed` turns rows into ``TaskKey`` positions (lanes and packs), marking held
tasks (:func:`with_hold`). :func:`parse_usage` reads accounting's usage rows,
:func:`parse_job_id` sbatch's answer and :func:`slurm_message` a failed command's words.

State mapping (``STATES``): pending-like and requeue states → PENDING; RUNNING, COMPLETING,
STAGE_OUT, and SUSPENDED/STOPPED (a started task holding its allocation) → RUNNING; COMPLETED;
FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, BOOT_FAIL, DEADLINE and PREEMPTED → FAILED; CANCELLED
(also "CANCELLED by 0") and REVOKED → CANCELLED; anything else → UNKNOWN. PREEMPTED is final: a
job Slurm will requeue after preemption is shown as REQUEUED/PENDING by both commands, so a task
still reported PREEMPTED was preempted for good.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ...states import JobState, TaskKey, TaskStatus, TaskUsage

if TYPE_CHECKING:
    from ..._proc import ProcResult
    from ...tracking.store import JobRecord

JOB_ID_RE = re.compile(r"(\d+)(?:;(\S+))?")
QUERY_ID_RE = re.compile(r"\d+(_\d+)?")
RANGE_RE = re.compile(r"(\d+)_\[([0-9,\-]+)(?:%\d+)?\]")

_P, _R = JobState.PENDING, JobState.RUNNING
STATES: dict[str, JobState] = {
    **dict.fromkeys(["PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                     "RESIZING", "RESV_DEL_HOLD", "SPECIAL_EXIT", "POWER_UP_NODE"], _P),
    **dict.fromkeys(["RUNNING", "COMPLETING", "STAGE_OUT", "SUSPENDED", "STOPPED",
                     "SIGNALING", "UPDATE_DB"], _R),
    "COMPLETED": JobState.COMPLETED,
    **dict.fromkeys(["FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
                     "DEADLINE", "PREEMPTED"], JobState.FAILED),
    "CANCELLED": JobState.CANCELLED, "REVOKED": JobState.CANCELLED,
}


def map_state(raw: str) -> JobState:
    """Our state for Slurm's state text (first word: "CANCELLED by 0" → CANCELLED)."""
    word = raw.split(" ", 1)[0].rstrip("+").upper()
    return STATES.get(word, JobState.UNKNOWN)


def expand_key(job_id: str) -> list[str]:
    """``12_[0-2,5%2]`` → ``["12_0", "12_1", "12_2", "12_5"]``; other ids unchanged."""
    match = RANGE_RE.fullmatch(job_id)
    if not match:
        return [job_id]
    keys: list[str] = []
    for part in match.group(2).split(","):
        lo, _, hi = part.partition("-")
        keys.extend(f"{match.group(1)}_{i}" for i in range(int(lo), int(hi or lo) + 1))
    return keys


def _exit_code(text: str) -> str:
    """sacct prints "1:0"; squeue prints the raw wait status (256), turned into "1:0" here."""
    if not text.isdigit():
        return text
    return f"{int(text) >> 8}:{int(text) & 0x7F}"


def parse_rows(stdout: str) -> dict[str, TaskStatus]:
    """Rows ``JobID|State|ExitCode|Reason`` (of squeue or sacct) keyed by task."""
    out: dict[str, TaskStatus] = {}
    for line in stdout.splitlines():
        fields = line.split("|")
        if len(fields) == 5 and not fields[4]:  # squeue's "|" suffix after the last field
            fields.pop()
        if len(fields) != 4:
            continue
        job_id, raw, code, reason = (f.strip() for f in fields)
        status = TaskStatus(map_state(raw), raw, reason, _exit_code(code))
        out.update(dict.fromkeys(expand_key(job_id), status))
    return out


def merge(live: Mapping[str, TaskStatus], accounted: Mapping[str, TaskStatus]
          ) -> dict[str, TaskStatus]:
    """squeue's answer over sacct's; sacct's live claims that squeue can't confirm → UNKNOWN."""
    out = dict(live)
    arrays = {key.split("_", 1)[0] for key in live if "_" in key}
    for key, status in accounted.items():
        if key in out:
            out[key] = _with_words(out[key], status)
            continue
        if key in arrays:  # sacct lags: an array can still show as its plain id
            continue
        if status.state.live:
            status = TaskStatus(JobState.UNKNOWN, status.raw, status.reason, status.exit_code)
        out[key] = status
    return out


def _with_words(live: TaskStatus, accounted: TaskStatus) -> TaskStatus:
    """squeue's ended state with sacct's fuller words for the same end: squeue says
    ``CANCELLED`` where sacct says ``CANCELLED by 1001`` (who cancelled)."""
    if live.state.live or accounted.state is not live.state or len(accounted.raw) <= len(
            live.raw) or not accounted.raw.upper().startswith(live.raw.upper()):
        return live
    reason = live.reason if live.reason not in ("", "None") else accounted.reason
    return TaskStatus(live.state, accounted.raw, reason, live.exit_code, live.held, live.hint)


def _seconds(text: str) -> float | None:
    """``[D-][HH:]MM:SS[.mmm]`` (sacct's Elapsed and TotalCPU) in seconds; None if empty."""
    text = text.strip()
    if not text or text in ("INVALID", "UNLIMITED", "Partition_Limit"):
        return None
    days, _, rest = text.rpartition("-")
    parts = rest.split(":")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        return None
    while len(nums) < 3:
        nums.insert(0, 0.0)
    return (int(days or 0) * 24 + nums[0]) * 3600 + nums[1] * 60 + nums[2]


_RSS_UNIT_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024, "": 1 / 1024 / 1024}


def _rss_mb(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    unit = text[-1].upper() if text[-1].isalpha() else ""
    try:
        return float(text[:-1] if unit else text) * _RSS_UNIT_MB.get(unit, 1.0)
    except ValueError:
        return None


USAGE_FORMAT = "JobID,State,Elapsed,TotalCPU,MaxRSS,Timelimit,Start"


def parse_usage(rows: Sequence[str]) -> dict[str, TaskUsage]:
    """Rows ``USAGE_FORMAT`` of ``sacct --duplicates`` (every attempt of a requeued task, and
    the steps of each) keyed by task: elapsed and CPU time summed over the attempts, MaxRSS the
    largest of any step; state and time limit those of the attempt that started last (one not
    started yet, ``Start=Unknown``, sorts last)."""
    attempts: dict[str, list[tuple[str, TaskUsage]]] = {}
    rss: dict[str, float] = {}
    for row in rows:
        cols = row.split("|")
        if len(cols) < 5:
            continue
        job, _, step = cols[0].partition(".")
        mb = _rss_mb(cols[4])
        if mb is not None:
            rss[job] = max(rss.get(job, 0.0), mb)
        if not step:
            cols += [""] * (7 - len(cols))
            attempts.setdefault(job, []).append((cols[6], TaskUsage(
                cols[1].split(" ")[0], int(_seconds(cols[2]) or 0), _seconds(cols[3]),
                time_limit_s=_limit_s(cols[5]))))
    out = {}
    for job, runs in attempts.items():
        runs.sort(key=lambda r: r[0])
        cpu = [u.cpu_s for _, u in runs if u.cpu_s is not None]
        last = runs[-1][1]
        out[job] = replace(last, elapsed_s=sum(u.elapsed_s for _, u in runs),
                           cpu_s=sum(cpu) if cpu else None, max_rss_mb=rss.get(job),
                           attempts=len(runs))
    return out


def _limit_s(text: str) -> int | None:
    """sacct's Timelimit in seconds (None: UNLIMITED, Partition_Limit, empty)."""
    seconds = _seconds(text)
    return None if seconds is None else int(seconds)


def slurm_message(result: ProcResult, max_lines: int = 4) -> str:
    """Slurm's own words from a failed command: its first non-empty stderr (or stdout) lines."""
    lines = [ln.strip() for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
    return " | ".join(lines[:max_lines]) or f"exit status {result.returncode}, no message"


def parse_job_id(stdout: str) -> str | None:
    """The job id from ``sbatch --parsable`` output (``123`` or ``123;cluster``)."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    match = JOB_ID_RE.fullmatch(lines[-1]) if lines else None
    return match.group(1) if match else None


def parse_submitted_cluster(stdout: str) -> str | None:
    """The cluster of ``sbatch --parsable``'s ``123;cluster`` (None for a plain ``123``)."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    match = JOB_ID_RE.fullmatch(lines[-1]) if lines else None
    return match.group(2).lower() if match and match.group(2) else None


# -- query shaping: rows → task positions ---------------------------------------------------
def to_account(records: Mapping[str, JobRecord], queued: Mapping[str, TaskStatus]
                ) -> list[str]:
    """The jobs with a task whose end is not recorded and that squeue does not show live
    (it ended, or the controller forgot it): only sacct can say how those ended."""
    live: dict[str, int] = {}
    for text, status in queued.items():
        if status.state.live:
            job_id = text.rpartition("_")[0]
            live[job_id] = live.get(job_id, 0) + 1
    out = []
    for job_id, rec in records.items():
        if len(rec.ended) >= len(rec.tasks):
            continue
        if not rec.ended and live.get(job_id, 0) >= len(rec.tasks):
            continue  # nothing recorded and every task live (the common case, counted)
        if any(str(i) not in rec.ended and not _live(queued.get(f"{job_id}_{a}"))
               for i, a in enumerate(rec.array_indices or range(len(rec.tasks)))):
            out.append(job_id)
    return out


def _live(status: TaskStatus | None) -> bool:
    """A status saying the task may still run."""
    return status is not None and status.state.live


def keyed(states: Mapping[str, TaskStatus], records: Mapping[str, JobRecord]
           ) -> dict[TaskKey, TaskStatus]:
    """Statuses keyed by task position (``TaskKey``), held tasks marked. The rows of an array
    not yet split share one status object, so ``with_hold`` is asked once per object unless
    it changes something (a held task's hint names the task). A job answered only by its plain
    id (sacct keeps an array cancelled while wholly pending that way, for good, once the
    controller forgot it) gives that answer to each of its tasks without one of its own."""
    positions: dict[str, dict[int, list[int]]] = {}
    for job_id, r in records.items():
        if r.array_indices:  # lanes and packs: positions differ from indices
            at = positions[job_id] = {}
            for i, a in enumerate(r.array_indices):
                at.setdefault(a, []).append(i)  # a pack: every artifact of it
    out: dict[TaskKey, TaskStatus] = {}
    unchanged: set[int] = set()  # ids of status objects with_hold leaves alone
    for text, status in states.items():
        job_id, sep, index = text.rpartition("_")
        if not (sep and job_id and index.isdigit()):
            continue
        where, number = positions.get(job_id), int(index)
        if id(status) not in unchanged:
            marked = with_hold(TaskKey(job_id, number), status)  # Slurm's own name
            if marked is status:
                unchanged.add(id(status))
            status = marked
        for i in where.get(number, [number]) if where else [number]:
            out[TaskKey(job_id, i)] = status
    for job_id, rec in records.items():  # an array accounting knows only as a whole: an
        whole = states.get(job_id)        # array cancelled before any task was split off
        if whole is not None:
            for i in range(len(rec.tasks)):
                out.setdefault(TaskKey(job_id, i), whole)
    return out


def with_hold(key: TaskKey, status: TaskStatus) -> TaskStatus:
    """Mark a task Slurm holds (it will never start on its own) and say how to release it."""
    if status.state is not JobState.PENDING or "held" not in status.reason.lower():
        return status
    return TaskStatus(status.state, status.raw, status.reason, status.exit_code, held=True,
                      hint=f"held by the scheduler ({status.reason}); it will not start "
                           f"until `scontrol release {key}`")
