"""A job record (:class:`JobRecord`) and how the store keeps it on disk: per-task fields as
columns, not one small list or dict per task.

A record of a 1,000-task array used to hold ``tasks`` as 1,000 ``[id, relpath]`` pairs and, once
its tasks ended, ``ended`` as 1,000 dicts that nearly all say the same thing ("cancelled, seen at
12:03:07"): 100,000 ended tasks made a 30-40 MB ``jobs.json`` that every ``status`` parsed, and
writing 1,000 such records cost a deep copy (``asdict``) of a million small lists. Format 2 of
the store (``jobs.json`` ``"version": 2``) keeps them as columns::

    "tasks": {"ids": [id, ...], "relpaths": [relpath, ...]}
    "ended": [[entry, ...], [k, -1, k, ...]]      # distinct entries; per position: which (-1: none)

Each field is told apart from its format-1 form by its JSON type (format 1: a list of pairs and a
dict of entries), so a stage may mix both: a snapshot written by an older release whose journal
holds events of this one, or the reverse. Both are read; writing always uses format 2, except an
``ended`` map whose keys are not task positions (never written by this package), kept as it is.
In memory a record is the same :class:`JobRecord` whatever its format on disk. Standard library
only, like the store (which re-exports :class:`JobRecord`, :class:`RecordState`, :func:`now_iso`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any

from .. import paths

FORMAT_VERSION = 2  # what this code writes (jobs.json "version"); 1 is read too


def now_iso() -> str:
    """The current time as ISO 8601 with its UTC offset."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class RecordState(str, Enum):
    """What the store knows about a job without asking the scheduler."""

    SUBMITTING = "submitting"   # intent written, scheduler not yet confirmed
    SUBMITTED = "submitted"
    CANCELLED = "cancelled"     # by us
    FINISHED = "finished"       # the local runner saw every task end

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class JobRecord:
    """One submitted (or being submitted) array job and the artifacts its tasks build."""

    name: str
    backend: str
    stage: str
    tier: int
    tasks: list[list[str]]                 # [artifact_id, relpath] per array index
    requirements: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    spec_dir: str = ""
    log_dir: str = ""
    job_id: str | None = None
    state: RecordState = RecordState.SUBMITTING
    submitted_at: str = field(default_factory=now_iso)
    host: str | None = None
    pid: int | None = None
    pid_start: int | None = None
    task_states: dict[str, str] = field(default_factory=dict)  # index -> final local state
    # The scheduler's array index of each task when it is not simply its position (an array
    # laid out to line up with its upstream array's indices); empty means ``0..n-1``.
    array_indices: list[int] = field(default_factory=list)
    # The artifact root the tasks build into; None in records written before roots were kept.
    artifact_path: str | None = None
    # Requirement overrides given with ``launch --set`` that apply to this job (already merged
    # into ``requirements``); empty when none were given.
    overrides: dict[str, Any] = field(default_factory=dict)
    # index -> what was first observed when the task ended (see experiments/tracking/outcomes.py);
    # written once per task and never rewritten, so history keeps what happened.
    ended: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiment_file: str = ""  # the experiment file that launched it ("" for older records)

    def __post_init__(self) -> None:
        # Callers pass plain strings ("submitted"); keep the field an enum member.
        object.__setattr__(self, "state", RecordState(self.state))
    snapshot: str | None = None  # id of the code snapshot its tasks run in (None: live code)
    # When `gc` removed the job's logs and spec folder (the record and its ended states stay).
    collected_at: str | None = None
    throttle: int | None = None  # at most this many of its tasks at once (None: no throttle)
    # index -> the local runner's word for a task's end when its state alone does not say it
    # (TIMEOUT, OUT_OF_MEMORY), as Slurm's state column would
    task_raw: dict[str, str] = field(default_factory=dict)
    # How long after a task's end the scheduler can still requeue it (Slurm's MinJobAge, read
    # at submission; 0: for ever); a recorded failure is asked about again for that long.
    # None (older records, backends that cannot requeue): an end, once recorded, is final.
    requeue_window_s: int | None = None
    # The cluster that accepted it (Slurm's ClusterName); None: not recorded (older records,
    # backends without clusters). Commands run on another cluster never ask it or cancel it.
    cluster: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data (a deep copy; the store writes :meth:`stored`)."""
        data = asdict(self)
        data["state"] = self.state.value
        return data

    def stored(self) -> dict[str, Any]:
        """The record as the store writes it: per-task fields in columns (:mod:`.record_format`),
        other lists and dicts copied once, not deep-copied (``asdict`` of a million tasks)."""
        data = {k: getattr(self, k) for k in _FIELDS}
        data = {k: (v.copy() if isinstance(v, (list, dict)) else v) for k, v in data.items()}
        data["state"] = self.state.value
        return encode_fields(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        """A record from its stored fields, in either format; unknown fields are ignored."""
        return cls(**{k: v for k, v in decode_fields(data).items() if k in _FIELDS})

    def log_path(self, index: int) -> Path:
        """The log file of task ``index`` (its position; the file bears its array index)."""
        return paths.task_log(Path(self.log_dir), self.job_id or "?", self.array_index(index))

    def array_index(self, position: int) -> int:
        """The scheduler's array index of the task at ``position`` in ``tasks``."""
        return self.array_indices[position] if self.array_indices else position

    @cached_property
    def packed(self) -> bool:
        """Whether some array task builds several artifacts (a pack: repeated indices)."""
        return len(set(self.array_indices)) < len(self.array_indices)

    def task_id(self, position: int) -> str:
        """Slurm's name of the task that builds the artifact at ``position``: ``<job>_<array
        index>`` (what squeue, sacct and Slurm's mails say; a pack's task builds several)."""
        return f"{self.job_id or '?'}_{self.array_index(position)}"

    def address(self, position: int) -> str:
        """How to name that one artifact's task unmistakably: its task id, followed by
        ``/<relpath>`` when the task is a pack's (``cat 3351_1/P/i=7``)."""
        task = self.task_id(position)
        return f"{task}/{self.tasks[position][1]}" if self.packed else task

    def positions(self, array_index: int) -> list[int]:
        """The positions of the artifacts that Slurm's task ``array_index`` builds."""
        if not self.array_indices:
            return [array_index] if 0 <= array_index < len(self.tasks) else []
        return [i for i, a in enumerate(self.array_indices) if a == array_index]

    def log_section(self, position: int) -> str | None:
        """The relpath whose section of the task's log is this artifact's, when the log is a
        pack's (several artifacts, one after the other); None when the log is its own."""
        return self.tasks[position][1] if self.packed else None


_FIELDS = tuple(JobRecord.__dataclass_fields__)


def encode_tasks(tasks: list[list[str]]) -> dict[str, list[str]]:
    """``[[id, relpath], ...]`` as two columns."""
    return {"ids": [t[0] for t in tasks], "relpaths": [t[1] for t in tasks]}


def decode_tasks(value: Any) -> list[list[str]]:
    """The tasks of a record in either format, as fresh ``[id, relpath]`` lists (a caller may
    change them without touching the store's copy)."""
    if isinstance(value, dict):
        ids, relpaths = value.get("ids") or [], value.get("relpaths") or []
        if len(ids) != len(relpaths):
            raise ValueError(f"{len(ids)} task ids but {len(relpaths)} relpaths")
        return list(map(list, zip(ids, relpaths, strict=True)))
    return [list(pair) for pair in value or ()]


def encode_ended(ended: dict[str, dict[str, Any]]) -> Any:
    """``{position: entry}`` as the distinct entries and, per position, which one; the map as it
    is when a key is not a position (``"3"``, not ``"x"`` or ``"03"``)."""
    if not ended:
        return {}
    if not all(k.isdigit() and str(int(k)) == k for k in ended):
        return {k: dict(v) for k, v in ended.items()}
    table: list[dict[str, Any]] = []
    seen: dict[tuple[tuple[str, Any], ...], int] = {}
    at = [-1] * (max(map(int, ended)) + 1)
    for key, entry in ended.items():
        sig = _signature(entry)
        k = seen.get(sig)
        if k is None:
            k = seen[sig] = len(table)
            table.append(dict(entry))
        at[int(key)] = k
    return [table, at]


def _signature(entry: dict[str, Any]) -> Any:
    """What makes two entries equal, hashable (entries hold strings and numbers; anything
    else, by its JSON text)."""
    sig = tuple(sorted(entry.items()))
    try:
        hash(sig)
    except TypeError:
        return json.dumps(entry, sort_keys=True, default=str)
    return sig


def decode_ended(value: Any) -> dict[str, dict[str, Any]]:
    """The ``ended`` map of a record in either format, as a fresh dict (entries that were equal
    on disk are one dict object here: callers never change an entry in place)."""
    if isinstance(value, list):
        if len(value) != 2 or not isinstance(value[0], list) or not isinstance(value[1], list):
            raise ValueError("'ended' columns are not [entries, positions]")
        table, at = value
        if at and max(at) >= len(table):
            raise ValueError(f"'ended' names entry {max(at)} of {len(table)}")
        return {str(i): table[k] for i, k in enumerate(at) if k >= 0}
    return dict(value or {})


def encode_fields(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a record's fields, or an update's changes) with its per-task fields in
    columns; the other values as they are."""
    if "tasks" in data:
        data["tasks"] = encode_tasks(data["tasks"])
    if "ended" in data:
        data["ended"] = encode_ended(data["ended"])
    return data


def decode_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """A record's fields as :class:`~.store.JobRecord` takes them: per-task fields decoded, and
    every other list or dict copied (the store keeps ``raw``; callers may change what they get).
    Raises ``ValueError`` for columns that do not fit together."""
    out = dict(raw)
    for key, value in raw.items():
        if key == "tasks":
            out[key] = decode_tasks(value)
        elif key == "ended":
            out[key] = decode_ended(value)
        elif isinstance(value, list):
            out[key] = [list(v) if isinstance(v, list) else v for v in value]
        elif isinstance(value, dict):
            out[key] = dict(value)
    return out


def upgraded(raw: dict[str, Any]) -> dict[str, Any]:
    """A stored record with its format-1 per-task fields in columns (format 2 left as it is)."""
    if isinstance(raw.get("tasks"), list) or isinstance(raw.get("ended"), dict):
        out = dict(raw)
        if isinstance(raw.get("tasks"), list):
            out["tasks"] = encode_tasks(decode_tasks(raw["tasks"]))
        if isinstance(raw.get("ended"), dict):
            out["ended"] = encode_ended(decode_ended(raw["ended"]))
        return out
    return raw

