"""What ``launch`` prints besides the plan: its waits while Slurm is slow to accept a job, and
the JSON of a launch refused part-way (:class:`~experiments.errors.LaunchIncomplete`)."""

from __future__ import annotations

import time

from rich.markup import escape

from ..errors import LaunchIncomplete
from ..launching.context import EventKind, LaunchEvent
from ..launching.waits import SubmitWait, WaitPhase
from . import render


def _at(seconds_from_now: float) -> str:
    return f"{time.strftime('%H:%M:%S', time.localtime(time.time() + seconds_from_now))} " \
           f"(in {seconds_from_now:.0f} s)"


def _next(w: SubmitWait) -> str:
    """What the submission does next, in words."""
    if w.phase is WaitPhase.SUBMITTING:
        then = ("the job is looked up by name one last time and the launch gives up if it is "
                "not found" if w.last_attempt else
                f"the job is looked up by name and submitted again (attempt {w.attempt + 1} "
                f"of {w.attempts})")
        return f"sbatch is stopped at {_at(w.next_in_s)}, then {then}"
    if w.phase is WaitPhase.RETRY:
        if w.lookup_only:
            return (f"one last look-up by name at {_at(w.next_in_s)}, then the launch gives "
                    "up")
        return (f"look the job up by name, then submit it again at {_at(w.next_in_s)}; "
                f"attempt {w.attempt} of {w.attempts}")
    return (f"no job of that name yet; looking again at {_at(w.next_in_s)}, in case the "
            "controller still creates it, before submitting it again")


def waiting_line(event: LaunchEvent) -> str:
    """``Slurm is slow to accept job … (stage a, tier 0, 3 artifacts; submission 1 of 2):
    waited 15 s; Slurm says "…". Next: …``"""
    w, rec = event.wait, event.record
    if w is None:
        return ""
    what = (f"job {w.job_name}" + (f" (stage {rec.stage}, tier {rec.tier}, "
                                   f"{len(rec.tasks)} artifact(s)" if rec else " (")
            + f"; submission {event.position} of {event.total})")
    said = f'; Slurm says "{w.said}"' if w.said else ""
    return f"Slurm is slow to accept {what}: waited {w.waited_s:.0f} s{said}. Next: {_next(w)}."


def print_waiting(event: LaunchEvent) -> None:
    """One line per wait, above the progress bar."""
    render.out.print(f"[yellow]{escape(waiting_line(event))}[/]", soft_wrap=True)


def waits_to_stderr(event: LaunchEvent) -> None:
    """``launch --json``'s progress: only the waits, on stderr (stdout holds the JSON)."""
    if event.kind is EventKind.WAITING:
        render.err.print(escape(waiting_line(event)), soft_wrap=True)


def incomplete_json(exc: LaunchIncomplete) -> dict[str, object]:
    """``launch --json`` of a launch refused part-way: what is queued, what is not, and why."""
    return {"incomplete": True, "error": exc.cause,
            "queued": [{"job_id": job, "stage": stage, "tier": tier, "artifacts": n}
                       for job, stage, tier, n in exc.queued],
            "missing": exc.missing, "message": str(exc)}
