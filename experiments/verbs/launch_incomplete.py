"""A launch refused part-way: say exactly what is queued, what is not, and what to run next.

Jobs submitted before the refusal stay queued and tracked (they will run); the refused job's
intent is dropped, or kept when its submission is uncertain (the next launch looks it up by
name). Running the same launch again is always the way on: it skips what is built or queued,
so it submits only what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import LaunchIncomplete, SubmissionError
from ..plan import Plan
from ..tracking.store import JobRecord


def incomplete(plan: Plan, submitted: Sequence[JobRecord], exc: SubmissionError,
               unconfirmed: Sequence[JobRecord] = ()) -> LaunchIncomplete:
    """The error for ``exc`` raised after ``submitted`` jobs of ``plan`` were queued;
    ``unconfirmed``: intents whose submission may have gone through (kept for the next
    launch to look up)."""
    queued = tuple((r.job_id or "?", r.stage, r.tier, len(r.tasks)) for r in submitted)
    held = {t[0] for r in submitted for t in r.tasks}
    missing: dict[str, int] = {}
    tiers: dict[str, set[int]] = {}
    for group in plan.groups:
        for task in group.tasks:
            if task.artifact_id not in held:
                missing[group.stage] = missing.get(group.stage, 0) + 1
                tiers.setdefault(group.stage, set()).add(group.tier)
    lines = [f"launch stopped part-way: {exc}",
             "Queued before that (tracked; they will run, `cancel` withdraws them):"]
    lines += [f"  job {job} [stage {stage}, tier {tier}]: {n} artifact(s)"
              for job, stage, tier, n in queued]
    lines.append("Not submitted: " + "; ".join(
        f"{n} artifact(s) of stage {stage} (tier {', '.join(map(str, sorted(tiers[stage])))})"
        for stage, n in missing.items()) + ".")
    for rec in unconfirmed:
        lines.append(f"Job {rec.name} ({len(rec.tasks)} artifact(s) of stage {rec.stage}) may "
                     "exist all the same: the next launch looks it up by name before "
                     "submitting anything again.")
    lines.append(f"Next: fix what Slurm refused (or wait until it accepts more of your jobs), "
                 f"then run the same launch command again: it skips what is built or queued "
                 f"and submits only the {sum(missing.values())} missing artifact(s).")
    return LaunchIncomplete("\n".join(lines), queued=queued, missing=missing, cause=str(exc))
