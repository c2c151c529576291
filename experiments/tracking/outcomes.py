"""How a task ended, in the scheduler's own terms: the reason, the limit it hit, what to change.

Pure. The backends pass the scheduler's word for a task's end through
:class:`~experiments.states.TaskStatus` (``raw``: ``TIMEOUT``, ``OUT_OF_MEMORY``,
``CANCELLED by 1001`` …, ``reason``: Slurm's ``Reason`` column). :func:`scheduler_reason`
turns it into a :class:`Reason` — a short label, a sentence with the requested limit (from the
job record's requirements) and a hint that says what to change — or None when the scheduler's
word says nothing the worker's own account does not (``FAILED``, ``COMPLETED``).

Why here and not in the Slurm backend: the words are Slurm's, but the hints speak of the
framework's requirements (``time``, ``mem``) and of ``launch --set``, which a backend must not
know about. A backend that never says these words simply never triggers them.
"""

from __future__ import annotations

import enum
import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..resources import parse_duration_s


class Verdict(enum.Enum):
    """Which state a scheduler-reported end puts the task in (see ``status.ArtifactState``)."""

    FAILED = "failed"
    CANCELLED = "cancelled"
    DEP_FAILED = "dep-failed"


@dataclass(frozen=True)
class Reason:
    """The scheduler's account of a task's end, explained."""

    verdict: Verdict
    label: str    # short, shown beside the state: "TIMEOUT", "by an admin, root" (may be "")
    detail: str   # what happened, with the requested limit when there is one
    hint: str = ""  # what to change (may be "")

    @property
    def text(self) -> str:
        """``detail; hint`` — what status, history and cat print."""
        return f"{self.detail}; {self.hint}" if self.hint else self.detail


_BY = re.compile(r"CANCELLED\s+by\s+(\d+)", re.I)


def _word(raw: str) -> str:
    return raw.split(" ", 1)[0].rstrip("+").upper()


def user_name(uid: int) -> str:
    """The login name of ``uid`` (``uid 1234`` when this machine does not know it)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return f"uid {uid}"


def canceller(raw: str) -> str:
    """Who cancelled, from Slurm's ``CANCELLED by <uid>``: "you, alice", "an admin, root",
    "bob"; "" when the scheduler did not say."""
    match = _BY.search(raw)
    if not match:
        return ""
    uid = int(match.group(1))
    name = user_name(uid)
    if uid == os.getuid():
        return f"you, {name}"
    if uid == 0:
        return f"an admin, {name}"
    return name


def _asked(requirements: Mapping[str, Any], key: str, unit: str) -> str:
    """``time=0:01:00 requested`` or why there is no value to show."""
    if key in requirements:
        return f"{key}={requirements[key]} requested"
    return f"no `{key}` requirement: the partition's default {unit} applied"


def _longer_time(requirements: Mapping[str, Any]) -> str:
    """Twice the requested time as ``H:MM:SS`` (``<longer>`` when it cannot be read)."""
    try:
        seconds = parse_duration_s(str(requirements["time"]))
    except (KeyError, ValueError):
        return "<longer>"
    if seconds is None:
        return "<longer>"
    doubled = max(2 * seconds, 120)
    return f"{doubled // 3600}:{doubled // 60 % 60:02d}:{doubled % 60:02d}"


def _more_mem(requirements: Mapping[str, Any]) -> str:
    value = requirements.get("mem")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value * 2)
    return "<more>"


def _pack_timeout(requirements: Mapping[str, Any]) -> Reason:
    """A pack killed at its time limit: the limit is the pack's (``pack_time``, or ``pack`` ×
    ``time``), so the hint names what set it."""
    if "pack_time" in requirements:
        return Reason(Verdict.FAILED, "TIMEOUT",
                      "killed by the scheduler at its pack's time limit (pack_time="
                      f"{requirements['pack_time']} requested for the whole pack)",
                      "raise the `pack_time` requirement (or pack fewer artifacts per task with "
                      "`pack`), or for one launch: `launch --set pack_time=<longer>`; the "
                      "artifacts it did not reach are built by the next launch")
    return Reason(Verdict.FAILED, "TIMEOUT",
                  "killed by the scheduler at its pack's time limit (pack × time: "
                  f"{_asked(requirements, 'time', 'limit')} per artifact)",
                  "raise `time`, or give the pack a limit of its own with `pack_time`, e.g. "
                  "`launch --set pack_time=<longer>`; the artifacts it did not reach are built "
                  "by the next launch")


def scheduler_reason(raw: str, reason: str, requirements: Mapping[str, Any],
                     packed: bool = False) -> Reason | None:
    """The explained end of a task from the scheduler's state word, or None when the word adds
    nothing to the worker's account (``FAILED``, ``COMPLETED``, a live state, ``""``);
    ``packed``: the task built a pack of artifacts (its time limit was the pack's)."""
    word = _word(raw)
    if word == "TIMEOUT" and packed:
        return _pack_timeout(requirements)
    if word == "TIMEOUT":
        return Reason(Verdict.FAILED, "TIMEOUT",
                      "killed by the scheduler at its time limit "
                      f"({_asked(requirements, 'time', 'limit')})",
                      "raise the `time` requirement in get_requirements(), or for one launch: "
                      f"`launch --set time={_longer_time(requirements)}`")
    if word == "OUT_OF_MEMORY":
        return Reason(Verdict.FAILED, "OUT_OF_MEMORY",
                      f"killed by the scheduler for using more memory than it asked for "
                      f"({_asked(requirements, 'mem', 'memory')})",
                      "raise the `mem` requirement in get_requirements(), or for one launch: "
                      f"`launch --set mem={_more_mem(requirements)}`")
    if word == "NODE_FAIL":
        return Reason(Verdict.FAILED, "NODE_FAIL", "the node it ran on failed",
                      "not your code: launch again (with `requeue: true` Slurm retries by "
                      "itself)")
    if word == "BOOT_FAIL":
        return Reason(Verdict.FAILED, "BOOT_FAIL", "the node it was given failed to boot",
                      "not your code: launch again")
    if word == "PREEMPTED":
        return Reason(Verdict.FAILED, "PREEMPTED",
                      "preempted by a higher-priority job and not requeued",
                      "launch again; with `requeue: true` Slurm requeues preempted tasks "
                      "itself")
    if word == "DEADLINE":
        return Reason(Verdict.FAILED, "DEADLINE", "not finished before its deadline",
                      "check the `deadline` requirement")
    if word in ("CANCELLED", "REVOKED"):
        return _cancelled(raw, reason)
    return None


def _cancelled(raw: str, reason: str) -> Reason:
    if "dependency" in reason.lower():
        return Reason(Verdict.DEP_FAILED, "",
                      f"the scheduler cancelled it because a dependency failed ({reason})",
                      "rebuild the failed dependency, then launch again")
    who = canceller(raw)
    return Reason(Verdict.CANCELLED, f"by {who}" if who else "",
                  f"cancelled by {who}" if who else "cancelled before it finished",
                  "launch again to build it")
