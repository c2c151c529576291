"""Hyperband as artifacts: successive-halving brackets side by side, decided from the root.

Hyperband (Li et al., 2018) runs ``s_max + 1`` brackets, ``s_max = floor(log_eta(R / r))``
for the smallest budget ``r`` and the largest ``R``. Bracket ``s`` (``s_max`` down to 0)
starts ``n_s = ceil((s_max + 1) / (s + 1) * eta**s)`` configurations at budget ``R * eta**-s``
and is a successive-halving chain (:class:`~experiments.model.sweeps.SweepSpec`) whose rungs
multiply the budget by ``eta`` up to ``R``: every bracket's last rung trains at ``R``.

Configurations go to the brackets in the order listed: the first ``n_{s_max}`` to bracket
``s_max`` (the most exploratory), the next ``n_{s_max - 1}`` to the next, and so on. A set
smaller than ``sum(n_s)`` fills the brackets in that order and leaves the last ones short (a
bracket with no configuration is dropped); a larger one is refused, naming how many it takes.
Each bracket decides its rungs from the artifact root alone, as successive halving does;
``best(k)`` ranks the built trials of every bracket's last rung (all at budget ``R``) by the
metric, ties to the configuration listed first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DefinitionError
from .artifact import Artifact
from .sweeps import Outcomes, SweepSpec


def schedule(min_budget: float, max_budget: float, eta: int) -> list[tuple[int, list[Any]]]:
    """Per bracket (``s_max`` first): how many configurations it starts and its budgets.

    ``schedule(1, 27, 3)`` is ``[(27, [1, 3, 9, 27]), (12, [3, 9, 27]), (6, [9, 27]),
    (4, [27])]``; budgets are ints when whole."""
    if not 0 < min_budget <= max_budget:
        raise DefinitionError(f"hyperband(min_budget={min_budget!r}, max_budget="
                              f"{max_budget!r}): need 0 < min_budget <= max_budget")
    s_max = 0
    while min_budget * eta ** (s_max + 1) <= max_budget * (1 + 1e-9):
        s_max += 1
    out = []
    for s in range(s_max, -1, -1):
        n = -(-(s_max + 1) * eta ** s // (s + 1))  # ceil((s_max + 1) / (s + 1) * eta^s)
        out.append((n, [_whole(max_budget / eta ** (s - i)) for i in range(s + 1)]))
    return out


def _whole(value: float) -> Any:
    """``value`` as an int when it is one (budgets are epochs, steps, samples)."""
    return int(round(value)) if abs(value - round(value)) < 1e-9 else value


@dataclass(frozen=True)
class HyperbandSpec:
    """Hyperband over ``configs``: its brackets (successive-halving chains) and decisions."""

    configs: tuple[Artifact, ...]
    brackets: tuple[SweepSpec, ...]
    budget: str
    eta: int
    metric: str
    mode: str

    @classmethod
    def build(cls, configs: Sequence[Artifact], *, budget: str, min_budget: float,
              max_budget: float, eta: int, metric: str, mode: str, resume: str | None
              ) -> HyperbandSpec:
        """Deal ``configs`` to the brackets of :func:`schedule` in the order listed."""
        if not isinstance(eta, int) or eta < 2:
            raise DefinitionError(f"hyperband(eta={eta!r}): eta must be an int >= 2")
        plan = schedule(min_budget, max_budget, eta)
        needed = sum(n for n, _ in plan)
        if len(configs) > needed:
            raise DefinitionError(
                f"hyperband over {len(configs)} configurations: its {len(plan)} brackets "
                f"({', '.join(str(n) for n, _ in plan)}) take {needed}; pass the first "
                f"{needed} (set[:{needed}]) or widen min_budget/max_budget")
        brackets, start = [], 0
        for n, budgets in plan:
            chunk = tuple(configs[start:start + n])
            start += n
            if chunk:
                brackets.append(SweepSpec(chunk, budget, tuple(budgets), eta, metric, mode,
                                          resume))
        if not brackets:
            raise DefinitionError("hyperband: the set is empty; sweep over at least one "
                                  "configuration")
        return cls(tuple(configs), tuple(brackets), budget, eta, metric, mode)

    @property
    def kind(self) -> str:
        """What drylaunch, status and the report call it."""
        return "hyperband"

    def to_plan(self, outcomes: Outcomes) -> list[Artifact]:
        """Every bracket's trials decided so far (see :meth:`SweepSpec.to_plan`)."""
        return [t for b in self.brackets for t in b.to_plan(outcomes)]

    def finished(self, outcomes: Outcomes) -> bool:
        """Whether every bracket's last rung is decided."""
        return all(b.finished(outcomes) for b in self.brackets)

    def winners(self, outcomes: Outcomes, k: int) -> list[Artifact] | None:
        """The ``k`` best trials over every bracket's last rung, or None while one runs."""
        if not self.finished(outcomes):
            return None
        order = {c.artifact_id: i for i, c in enumerate(self.configs)}
        sign = 1.0 if self.mode == "min" else -1.0
        ranked: list[tuple[float, int, Artifact]] = []
        for b in self.brackets:
            last = b.rungs(outcomes)[-1]
            if last.index != len(b.budgets) - 1:
                continue  # the bracket ended early: nothing was left to promote
            by_trial = {b.trial(c, last.index).artifact_id: c for c in b.configs}
            ranked += [(sign * last.scores[t.artifact_id],
                        order[by_trial[t.artifact_id].artifact_id], t)
                       for t in last.promoted or ()]
        return [t for _, _, t in sorted(ranked, key=lambda r: r[:2])][:k]

    def waiting_on(self, outcomes: Outcomes) -> str:
        """The rung each unfinished bracket waits for (empty once all are finished)."""
        return "; ".join(f"bracket {i + 1}: {b.waiting_on(outcomes)}"
                         for i, b in enumerate(self.brackets) if not b.finished(outcomes))

    def describe(self) -> str:
        """What drylaunch shows: a heading, then one line per bracket (its rungs' sizes and
        budgets, and what it spends at most)."""
        lines = [f"hyperband over {len(self.configs)} in {len(self.brackets)} bracket(s) (eta "
                 f"{self.eta}, {self.mode} {self.metric}), budget at most "
                 f"{self.budget_spent_at_most():g}:"]
        lines += [f"  bracket {i}: {' → '.join(map(str, b.sizes()))} trials at {self.budget} "
                  f"{', '.join(map(str, b.budgets))} (budget at most "
                  f"{b.budget_spent_at_most():g})" for i, b in enumerate(self.brackets, 1)]
        return "\n".join(lines)

    def budget_spent_at_most(self) -> float:
        """The budget spent if every trial runs: the sum over the brackets."""
        return sum(b.budget_spent_at_most() for b in self.brackets)
