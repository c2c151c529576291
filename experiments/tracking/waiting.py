"""Why queued tasks wait, grouped: one line's worth of data per (stage, reason, hint).

Pure. The backend explains each queued task (``TaskStatus.reason`` in the scheduler's words,
``hint`` in plain ones, ``outlook``: whether it clears on its own);
:mod:`experiments.tracking.status`
keeps them on the task's view; this groups them so that ``status``, ``wait``, ``history`` and
the report can say "12 queued: PartitionTimeLimit — …" once instead of twelve times, with the
groups that never clear on their own first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ..states import Outlook
from .status import ArtifactState, TaskView


@dataclass(frozen=True)
class WaitGroup:
    """Queued tasks of one stage that wait for the same reason."""

    stage: str
    reason: str   # the scheduler's words: "PartitionTimeLimit"
    hint: str     # what it means and what to change
    outlook: Outlook
    count: int

    @property
    def never_clears(self) -> bool:
        return self.outlook is Outlook.NEVER

    @property
    def text(self) -> str:
        """``12 queued: PartitionTimeLimit — <hint> (never clears on its own)``."""
        tail = "" if self.outlook is Outlook.CLEARS else f" ({self.outlook.value})"
        hint = f" — {self.hint}" if self.hint else ""
        return f"{self.count} queued: {self.reason}{hint}{tail}"

    def as_dict(self) -> dict[str, object]:
        return {"stage": self.stage, "reason": self.reason, "hint": self.hint,
                "outlook": self.outlook.value, "never_clears": self.never_clears,
                "count": self.count}


_RANK = {Outlook.NEVER: 0, Outlook.UNKNOWN: 1, Outlook.CLEARS: 2}


def group(views: Iterable[tuple[str, TaskView]]) -> list[WaitGroup]:
    """Queued ``(stage, view)`` pairs with a reason, grouped and counted; never-clearing groups
    first, then the largest."""
    counts = Counter((stage, v.reason, v.detail, v.outlook) for stage, v in views
                     if v.state is ArtifactState.QUEUED and v.outlook is not None and v.reason)
    groups = [WaitGroup(stage, reason, hint, outlook, n)
              for (stage, reason, hint, outlook), n in counts.items() if outlook is not None]
    return sorted(groups, key=lambda g: (_RANK[g.outlook], -g.count, g.stage, g.reason))


def short(groups: Iterable[WaitGroup]) -> str:
    """``12 PartitionTimeLimit (never clears on its own), 3 Priority`` (stages summed)."""
    counts: Counter[tuple[str, Outlook]] = Counter()
    for g in groups:
        counts[(g.reason, g.outlook)] += g.count
    order = sorted(counts, key=lambda k: (_RANK[k[1]], -counts[k], k[0]))
    return ", ".join(f"{counts[k]} {k[0]}" + ("" if k[1] is Outlook.CLEARS
                                               else f" ({k[1].value})") for k in order)
