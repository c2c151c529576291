"""Adaptive sweeps as artifacts: successive halving decided from the artifact root alone.

A sweep's trials are ordinary artifacts: the trial of rung *k* for a configuration is that
configuration with its budget field set to ``budgets[k]``. Which trials exist is a pure
function of what the artifact root says (:class:`Outcomes`: built, live, failed, metrics), so
every planner — ``launch``, a relay job, a relaunch after ``cancel`` — takes the same
decisions without a database or a driver process.

A rung is *decided* once none of its trials is live and each one is built or failed (a
timed-out trial is a failed one); the built trials with a numeric metric are ranked (``mode``
min or max; ties go to the configuration listed first in the sweep) and the top
``len(rung) // eta`` (at least one) are promoted. Failed trials are never promoted and never
block a rung. :class:`Deferred` sets (``sweep.best(k)`` and what is mapped from it) are empty
until the last rung is decided.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import DefinitionError
from .artifact import Artifact


class Outcomes(Protocol):
    """What the artifact root and the scheduler say about one artifact, for sweep decisions."""

    def built(self, art: Artifact) -> bool: ...

    def live(self, art: Artifact) -> bool: ...

    def failed(self, art: Artifact) -> bool: ...

    def metrics(self, art: Artifact) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Rung:
    """One rung as decided so far: its trials and, once decided, the promoted and failed ones.

    ``promoted`` is None while the rung is undecided; for the last rung it is the ranking of
    every built trial (best first), which ``best(k)`` cuts.
    """

    index: int
    budget: Any
    trials: tuple[Artifact, ...]
    promoted: tuple[Artifact, ...] | None
    failed: tuple[Artifact, ...] = ()
    scores: Mapping[str, float] = dataclasses.field(default_factory=dict)  # artifact id -> metric

    @property
    def decided(self) -> bool:
        """Every trial has ended (built or failed, nothing live)."""
        return self.promoted is not None


@dataclass(frozen=True)
class SweepSpec:
    """A successive-halving sweep over ``configs``: its trials and its decisions.

    ``resume``, a field name, makes each trial of rung k > 0 carry the same configuration's
    rung k-1 trial in that field (None at rung 0): a dependency, so the planner orders it and
    the task finds its folder (``builder.artifact_path + "/" + self.<resume>.relpath``).
    """

    configs: tuple[Artifact, ...]
    budget: str
    budgets: tuple[Any, ...]
    eta: int = 3
    metric: str = "loss"
    mode: str = "min"
    resume: str | None = None

    def __post_init__(self) -> None:
        _check(self.configs, self.budget, self.budgets, self.eta, self.mode, self.resume)

    def trial(self, config: Artifact, k: int) -> Artifact:
        """The trial of rung ``k`` for ``config``: the budget field set to ``budgets[k]``."""
        values: dict[str, Any] = {self.budget: self.budgets[k]}
        if self.resume is not None:
            values[self.resume] = self.trial(config, k - 1) if k > 0 else None
        return dataclasses.replace(config, **values)  # type: ignore[type-var]

    @property
    def kind(self) -> str:
        """What drylaunch, status and the report call it."""
        return "successive halving"

    @property
    def brackets(self) -> tuple[SweepSpec, ...]:
        """The successive-halving chains it runs side by side: itself (see ``hyperband``)."""
        return (self,)

    def sizes(self) -> list[int]:
        """How many trials each rung has by the schedule: ``27, 9, 3`` (failures aside)."""
        sizes, n = [], len(self.configs)
        for _ in self.budgets:
            sizes.append(n)
            n = self.keep(n)
        return sizes

    def keep(self, n: int) -> int:
        """How many of a rung of ``n`` configurations are promoted: ``n // eta``, at least 1
        (the rung's size, not how many were built: the schedule, and so the budget, is fixed)."""
        return max(1, n // self.eta)

    def rungs(self, outcomes: Outcomes) -> list[Rung]:
        """The rungs decided so far, then the first undecided one (if any)."""
        out: list[Rung] = []
        configs = list(self.configs)
        for k, budget in enumerate(self.budgets):
            trials = [self.trial(c, k) for c in configs]
            rung = _decide(k, budget, trials, outcomes, self.metric, self.mode)
            out.append(rung)
            if not rung.promoted:  # undecided, or nothing to promote
                break
            by_id = {t.artifact_id: c for t, c in zip(trials, configs, strict=True)}
            configs = [by_id[t.artifact_id] for t in rung.promoted[:self.keep(len(configs))]]
        return out

    def to_plan(self, outcomes: Outcomes) -> list[Artifact]:
        """Every trial of the rungs decided so far and of the first undecided one, without
        those that ended failed (a relay must not rerun them)."""
        return [t for r in self.rungs(outcomes) for t in r.trials
                if outcomes.built(t) or outcomes.live(t) or not outcomes.failed(t)]

    def finished(self, outcomes: Outcomes) -> bool:
        """Whether the last rung is decided (or a rung left nothing to promote)."""
        last = self.rungs(outcomes)[-1]
        return last.decided and (last.index == len(self.budgets) - 1 or not last.promoted)

    def winners(self, outcomes: Outcomes, k: int) -> list[Artifact] | None:
        """The ``k`` best trials of the last rung, or None while the sweep is not finished."""
        if not self.finished(outcomes):
            return None
        last = self.rungs(outcomes)[-1]
        return list((last.promoted or ())[:k]) if last.index == len(self.budgets) - 1 else []

    def waiting_on(self, outcomes: Outcomes) -> str:
        """The rung the sweep waits for (empty once finished)."""
        if self.finished(outcomes):
            return ""
        last = self.rungs(outcomes)[-1]
        return f"rung {last.index + 1} of {len(self.budgets)} (budget {last.budget})"

    def describe(self) -> str:
        """``successive halving over 27: 27 → 9 → 3 trials at epochs 1, 3, 9 (eta 3), budget
        at most 81`` — what drylaunch shows."""
        sizes = [str(n) for n in self.sizes()]
        return (f"successive halving over {len(self.configs)}: {' → '.join(sizes)} trials at "
                f"{self.budget} {', '.join(map(str, self.budgets))} (eta {self.eta}, "
                f"{self.mode} {self.metric}), budget at most {self.budget_spent_at_most():g}")

    def budget_spent_at_most(self) -> float:
        """The budget spent if every trial runs: the sum over rungs of size x budget."""
        return sum(n * float(b) for n, b in zip(self.sizes(), self.budgets, strict=True))


def _decide(k: int, budget: Any, trials: list[Artifact], outcomes: Outcomes, metric: str,
            mode: str) -> Rung:
    """Rung ``k``: undecided while a trial is live or not yet run, else its built trials
    ranked by ``metric`` (ties: the configuration listed first wins)."""
    failed: list[Artifact] = []
    for t in trials:
        if outcomes.built(t):
            continue
        if outcomes.live(t) or not outcomes.failed(t):
            return Rung(k, budget, tuple(trials), None)
        failed.append(t)
    gone = {t.artifact_id for t in failed}
    scores = {t.artifact_id: s for t in trials if t.artifact_id not in gone
              and (s := score(outcomes.metrics(t), metric)) is not None}
    sign = 1.0 if mode == "min" else -1.0
    ranked = [t for _, _, t in sorted((sign * scores[t.artifact_id], i, t)
                                      for i, t in enumerate(trials) if t.artifact_id in scores)]
    return Rung(k, budget, tuple(trials), tuple(ranked), tuple(failed), scores)

def score(metrics: Mapping[str, Any], name: str) -> float | None:
    """The metric as a finite float, or None (missing, not a number, NaN: never promoted)."""
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _check(configs: Sequence[Artifact], budget: str, budgets: Sequence[Any], eta: int,
           mode: str, resume: str | None) -> None:
    """Refuse a sweep that cannot run, naming the argument to fix."""
    if not configs:
        raise DefinitionError("successive_halving: the set is empty; sweep over at least one "
                              "configuration")
    if not budgets:
        raise DefinitionError("successive_halving(budgets=[...]) needs at least one budget")
    if not isinstance(eta, int) or eta < 2:
        raise DefinitionError(f"successive_halving(eta={eta!r}): eta must be an int >= 2")
    if mode not in ("min", "max"):
        raise DefinitionError(f"successive_halving(mode={mode!r}): use 'min' or 'max'")
    for cls in {type(c) for c in configs}:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for field in (budget, resume):
            if field is not None and field not in names:
                raise DefinitionError(f"successive_halving: {cls.__qualname__} has no field "
                                      f"{field!r}; name the budget/resume field of the trials")
