"""Printing why queued tasks wait (``status``, ``wait``, ``history``), grouped by reason.

The groups come from :mod:`experiments.tracking.waiting`; this only decides how they look: a
heading,
one line per group with its stage, the ones that never clear on their own in red with a
closing sentence that says so plainly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.markup import escape

from ..tracking import waiting
from ..tracking.status import JobView, StageStatus
from ..tracking.waiting import WaitGroup


def of_stages(stages: Sequence[StageStatus]) -> list[WaitGroup]:
    """The wait groups of a status report's stages."""
    return waiting.group((s.stage, v) for s in stages for v in s.waiting)


def of_jobs(views: Iterable[JobView]) -> list[WaitGroup]:
    """The wait groups of the live tasks in ``history``'s jobs."""
    return waiting.group((v.record.stage, t) for v in views for t in v.tasks)


def lines(groups: Sequence[WaitGroup]) -> list[str]:
    """Plain lines: ``12 queued: PartitionTimeLimit — … (never clears on its own) [train]``."""
    return [f"{g.text} [{g.stage}]" for g in groups]


def show(out: Console, groups: Sequence[WaitGroup], limit: int | None = 20) -> None:
    """The groups under a heading, never-clearing ones first and in red; then what to do."""
    if not groups:
        return
    out.print("[bold]Why queued tasks wait[/] (the scheduler's reason):")
    shown = groups if limit is None else groups[:limit]
    for g, line in zip(shown, lines(shown), strict=True):
        style = "red" if g.never_clears else "blue"
        out.print(f"  [{style}]{escape(line)}[/]", soft_wrap=True)
    if len(groups) > len(shown):
        out.print(f"  … and {len(groups) - len(shown)} more reasons (`status -v` lists all)",
                  markup=False)
    stuck = sum(g.count for g in groups if g.never_clears)
    if stuck:
        out.print(f"{stuck} queued task(s) will never start on their own: change what the "
                  "hint says, `cancel` them and launch again.", markup=False, soft_wrap=True)


def summary(stages: Sequence[StageStatus]) -> str:
    """`` — why: 12 PartitionTimeLimit (never clears on its own)`` for one poll line."""
    text = waiting.short(of_stages(stages))
    return f" — why: {text}" if text else ""

