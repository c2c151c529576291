"""A sweep rung by rung and trial by trial, as the views show it (pure, from outcomes).

Per rung (of each bracket): its trials by the schedule, how many were built, promoted,
stopped (built, not promoted), failed (failed or timed out: never promoted) and not run yet
(queued, running, not submitted, or the rung not reached), and its best trial so far. Per
trial: its bracket, rung and *decision* — ``promoted``, ``stopped``, ``failed``, ``pending``
(its rung is not decided yet) or ``final`` (built in the last rung: ``best(k)`` takes the
first k of them by the metric). The numbers are those of the same decisions the planner
takes (:meth:`SweepSpec.rungs`), so every view agrees with what the relays submit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .artifact import Artifact
from .sweeps import Outcomes, Rung, SweepSpec, score

PROMOTED, STOPPED, FAILED, PENDING, FINAL = "promoted", "stopped", "failed", "pending", "final"


@dataclass(frozen=True)
class Best:
    """A trial and its metric."""

    relpath: str
    value: float


@dataclass(frozen=True)
class RungSummary:
    """One rung of one bracket (both counted from 1, as the views say them)."""

    bracket: int
    rung: int
    budget: Any
    trials: int
    built: int = 0
    promoted: int = 0
    stopped: int = 0
    failed: int = 0
    not_run: int = 0
    decided: bool = False
    reached: bool = False
    last: bool = False  # the bracket's last rung: "promoted" counts what best(k) ranks
    best: Best | None = None


@dataclass(frozen=True)
class TrialDecision:
    """Where a trial stands in its sweep."""

    bracket: int
    rung: int
    decision: str
    value: float | None = None


@dataclass(frozen=True)
class SweepSummary:
    """A sweep stage as every view shows it (see the module)."""

    stage: str
    kind: str
    metric: str
    mode: str
    eta: int
    budget: str
    budget_at_most: float
    budget_spent: float
    finished: bool
    rungs: tuple[RungSummary, ...]
    best: Best | None
    trials: Mapping[str, TrialDecision]  # artifact id -> its decision

    @property
    def brackets(self) -> int:
        """How many successive-halving chains run side by side (1 but for Hyperband)."""
        return max((r.bracket for r in self.rungs), default=1)

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``status --json``'s ``sweep_rungs`` (docs/states.md)."""
        out = asdict(self)
        del out["trials"]
        out["brackets"] = self.brackets
        return out


def summarize(stage: str, spec: Any, outcomes: Outcomes) -> SweepSummary:
    """``spec`` (a SweepSpec or a HyperbandSpec: anything with ``brackets``) as it stands."""
    rungs: list[RungSummary] = []
    trials: dict[str, TrialDecision] = {}
    spent, tops = 0.0, []
    for b, bracket in enumerate(spec.brackets, 1):
        decided = bracket.rungs(outcomes)
        for rung in decided:
            row, marks = _rung(b, rung, len(bracket.budgets), outcomes, bracket)
            rungs.append(row)
            trials.update(marks)
            spent += _budget(rung.budget) * (row.built + row.failed)
            if row.best is not None:
                tops.append((float(_budget(rung.budget)), row.best))
        for k in range(len(decided), len(bracket.budgets)):
            size = bracket.sizes()[k]
            rungs.append(RungSummary(b, k + 1, bracket.budgets[k], size, not_run=size,
                                     last=k == len(bracket.budgets) - 1))
    sign = 1.0 if spec.mode == "min" else -1.0
    best = min(tops, key=lambda t: (-t[0], sign * t[1].value), default=None)
    return SweepSummary(stage, spec.kind, spec.metric, spec.mode, spec.eta, spec.budget,
                        spec.budget_spent_at_most(), spent, spec.finished(outcomes),
                        tuple(rungs), best[1] if best else None, trials)


def _rung(bracket: int, rung: Rung, rungs: int, outcomes: Outcomes, spec: SweepSpec
          ) -> tuple[RungSummary, dict[str, TrialDecision]]:
    """One reached rung's counts and its trials' decisions."""
    last = rung.index == rungs - 1
    ranked = rung.promoted or ()
    keep = {t.artifact_id for t in (ranked if last else ranked[:spec.keep(len(rung.trials))])}
    failed = {t.artifact_id for t in rung.failed}
    marks: dict[str, TrialDecision] = {}
    counts = dict.fromkeys((PROMOTED, STOPPED, FAILED, PENDING, FINAL), 0)
    built = 0
    for t in rung.trials:
        value = _value(t, rung, outcomes, spec.metric)
        is_built = outcomes.built(t)
        built += is_built
        decision = _decision(t, rung, last, keep, failed, is_built, outcomes)
        counts[decision] += 1
        marks[t.artifact_id] = TrialDecision(bracket, rung.index + 1, decision, value)
    scored = [(v, i, t) for i, t in enumerate(rung.trials)
              if (v := marks[t.artifact_id].value) is not None and outcomes.built(t)]
    sign = 1.0 if spec.mode == "min" else -1.0
    top = min(scored, key=lambda s: (sign * s[0], s[1]), default=None)
    not_run = len(rung.trials) - built - counts[FAILED]
    return RungSummary(bracket, rung.index + 1, rung.budget, len(rung.trials), built,
                       counts[PROMOTED] + counts[FINAL], counts[STOPPED], counts[FAILED], not_run,
                       rung.decided, True, last, Best(top[2].relpath, top[0]) if top else None
                       ), marks


def _decision(t: Artifact, rung: Rung, last: bool, keep: set[str], failed: set[str],
              built: bool, outcomes: Outcomes) -> str:
    """What the rung decided for trial ``t`` (see the module)."""
    if t.artifact_id in failed or (not built and not outcomes.live(t) and outcomes.failed(t)):
        return FAILED
    if not rung.decided:
        return PENDING
    if t.artifact_id in keep:
        return FINAL if last else PROMOTED
    return STOPPED


def _value(t: Artifact, rung: Rung, outcomes: Outcomes, metric: str) -> float | None:
    """The trial's metric (what the decision ranked, or what a built trial wrote so far)."""
    if t.artifact_id in rung.scores:
        return rung.scores[t.artifact_id]
    return score(outcomes.metrics(t), metric) if outcomes.built(t) else None


def _budget(value: Any) -> float:
    """A budget as a number (0 when it is not one: then nothing is summed)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def text_lines(summary: SweepSummary) -> list[str]:
    """What ``status`` prints for a sweep: a heading, then one line per rung."""
    head = (f"Sweep {summary.stage} ({summary.kind}, {summary.mode} {summary.metric}, eta "
            f"{summary.eta}): {summary.budget} spent {summary.budget_spent:g} of at most "
            f"{summary.budget_at_most:g}")
    if summary.best is not None:
        head += (f"; {'best' if summary.finished else 'best so far'} {summary.metric} "
                 f"{summary.best.value:g} ({summary.best.relpath})")
    out = [head]
    several = summary.brackets > 1
    for r in summary.rungs:
        where = f"bracket {r.bracket} rung {r.rung}" if several else f"rung {r.rung}"
        if not r.reached:
            out.append(f"  {where} ({summary.budget} {r.budget}): {r.trials} trial(s), "
                       "not reached yet")
            continue
        parts = [f"{n} {word}" for n, word in (
            (r.promoted, "ranked for best(k)" if r.last else "promoted"),
            (r.stopped, "stopped"), (r.failed, "failed"),
            (r.built if not r.decided else 0, "built"), (r.not_run, "not run yet")) if n]
        best = f"; best {r.best.value:g} ({r.best.relpath})" if r.best else ""
        out.append(f"  {where} ({summary.budget} {r.budget}): {r.trials} trial(s): "
                   f"{', '.join(parts) or 'none'}{best}")
    return out
