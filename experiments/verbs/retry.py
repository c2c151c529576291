"""``launch --retry-failed``: resubmit only the failed artifacts, with requirements escalated
by the opt-in ``escalation`` policy of ``config.json`` (say TIMEOUT → time ×2, OUT_OF_MEMORY →
mem ×2, with caps).

The starting point is what the failed attempt asked for (its job record), so each retry
escalates further, up to the caps. Each change is recorded with its reason, for ``drylaunch``
to show: ``time 1:00:00 → 2:00:00 after TIMEOUT in job 123_4``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DefinitionError
from ..model.artifact import Artifact
from ..resources import Scalar, mem_mb, parse_duration_s
from ..states import TaskKey
from ..tracking.status import ArtifactState, Live, latest_tasks, recorded_raw, task_state
from ..tracking.store import JobRecord

RETRIED = (ArtifactState.FAILED, ArtifactState.DEP_FAILED)


@dataclass(frozen=True)
class Change:
    """One escalated requirement of one artifact, and why."""

    relpath: str
    key: str
    before: str
    after: str
    state: str
    task: str
    capped: bool = False

    def describe(self) -> str:
        capped = " (capped)" if self.capped else ""
        return (f"{self.relpath}: {self.key} {self.before} → {self.after}{capped} after "
                f"{self.state} in job {self.task}")


@dataclass(frozen=True)
class _Failure:
    record: JobRecord
    index: int
    raw: str  # the scheduler's word: TIMEOUT, OUT_OF_MEMORY, FAILED…


@dataclass
class RetrySelection:
    """The failed artifacts to resubmit, and the changes made to their requirements."""

    policy: Mapping[str, Mapping[str, Any]]
    failures: dict[str, _Failure] = field(default_factory=dict)  # artifact id -> last attempt
    changes: list[Change] = field(default_factory=list)

    @property
    def ids(self) -> set[str]:
        return set(self.failures)

    def overrides(self, art: Artifact, merged: Mapping[str, Scalar]) -> dict[str, Scalar]:
        """Escalated requirements for ``art`` (empty when the policy says nothing)."""
        failure = self.failures.get(art.artifact_id)
        rule = self.policy.get(failure.raw, {}) if failure else {}
        out: dict[str, Scalar] = {}
        for key, factor in rule.items():
            asked = failure.record.requirements.get(key, merged.get(key)) if failure else None
            if asked is None or failure is None:
                continue
            before, after, capped = _escalate(key, asked, float(factor),
                                              self.policy.get("caps", {}), art.relpath)
            out[key] = after
            change = Change(art.relpath, key, before, after, failure.raw,
                            failure.record.task_id(failure.index), capped)
            if change not in self.changes:
                self.changes.append(change)
        return out


def select_failed(records: Sequence[JobRecord], live: Live, root: str,
                  policy: Mapping[str, Mapping[str, Any]]) -> RetrySelection:
    """Artifacts whose newest attempt failed or was dependency-failed, with that attempt."""
    sel = RetrySelection(policy)
    for artifact_id, (rec, i) in latest_tasks(records).items():
        if task_state(rec, i, live, root).state in RETRIED:
            st = live.get(TaskKey(rec.job_id or "", i))  # None once its end is recorded
            raw = (st.raw if st is not None else recorded_raw(rec, i)).split(" ")[0] or "FAILED"
            sel.failures[artifact_id] = _Failure(rec, i, raw)
    return sel


def _escalate(key: str, asked: Any, factor: float, caps: Mapping[str, Any],
              where: str) -> tuple[str, str, bool]:
    """``(before, after, capped)`` as Slurm spells them, ``after`` at most the cap."""
    if key == "time":
        seconds = _time(asked, where)
        cap = _time(caps["time"], "escalation caps") if "time" in caps else None
        new = math.ceil(seconds * factor)
        capped = cap is not None and new > cap
        return format_time(seconds), format_time(cap if capped and cap else new), capped
    mb = _mem(asked, where)
    cap_mb = _mem(caps["mem"], "escalation caps") if "mem" in caps else None
    new_mb = math.ceil(mb * factor)
    capped = cap_mb is not None and new_mb > cap_mb
    return format_mem(mb), format_mem(cap_mb if capped and cap_mb else new_mb), capped


def _time(value: Any, where: str) -> int:
    try:
        seconds = parse_duration_s(str(value))
    except ValueError:
        seconds = None
    if seconds is None:
        raise DefinitionError(f"{where}: time {value!r} cannot be escalated (no limit or not "
                              "a Slurm time)")
    return seconds


def _mem(value: Any, where: str) -> int:
    return mem_mb(value, where)


def format_time(seconds: int) -> str:
    """Seconds as Slurm writes a time limit: ``H:MM:SS`` or ``D-HH:MM:SS``."""
    days, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}-{h:02d}:{m:02d}:{s:02d}" if days else f"{h}:{m:02d}:{s:02d}"


def format_mem(mb: int) -> str:
    """MB as sbatch reads it: ``64G`` when whole gigabytes, else ``4000M``."""
    return f"{mb // 1024}G" if mb % 1024 == 0 else f"{mb}M"
